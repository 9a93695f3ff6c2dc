"""Faults a user meets (issue 11): unwritable outputs, concurrent and killed studies, long
repeats and duplicate clips, edited caches, undecodable audio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import write_tiny_dataset

from robustmer._io import check_writable
from robustmer.cli import main
from robustmer.data import load_cache, prepare
from robustmer.errors import RobustmerError
from robustmer.study import run_study
from robustmer.study.lock import LOCK_FILE, study_lock

SRC = Path(__file__).resolve().parents[1] / "src"


def cli(*args: str) -> int:
    """Run the CLI in-process; return its exit code."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    return exc.value.code


def _cannot_write(directory: Path) -> bool:
    try:
        fd, tmp = __import__("tempfile").mkstemp(dir=directory)
    except OSError:
        return True
    os.close(fd)
    os.unlink(tmp)
    return False


@pytest.fixture
def read_only_dir(tmp_path) -> Path:
    """A directory this process cannot write into.

    Permission bits do not stop root, so as root a directory of a kernel file system that
    refuses new files (sysfs, procfs) stands in for a read-only mount.
    """
    if os.geteuid() != 0:
        ro = tmp_path / "read-only"
        ro.mkdir()
        ro.chmod(0o555)
        yield ro
        ro.chmod(0o755)
        return
    for candidate in (Path("/sys/kernel"), Path("/sys"), Path("/proc")):
        if candidate.is_dir() and _cannot_write(candidate):
            yield candidate
            return
    pytest.skip("running as root with no directory that refuses writes")


@pytest.fixture(scope="module")
def tiny_run(tiny_cache, tmp_path_factory) -> Path:
    from robustmer.training import make_config, train

    out = tmp_path_factory.mktemp("faults-run") / "run"
    config = make_config("A2E", 6, max_epochs=1, width=0.0625, device="cpu")
    train(tiny_cache, out, config, progress=False)
    return out


# --- case 5: unwritable output locations ------------------------------------------------


def test_check_writable(tmp_path, read_only_dir):
    assert check_writable(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # nothing created, nothing left behind
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RobustmerError, match="not writable"):
        check_writable(read_only_dir / "out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RobustmerError, match="is not a directory"):
        check_writable(tmp_path / "file" / "out")
    with pytest.raises(RobustmerError, match="exists and is not a directory"):
        check_writable(tmp_path / "file")


def _no_work(*args, **kwargs):
    raise AssertionError("work started before the output location was checked")


def test_every_command_checks_its_output_first(
    read_only_dir, tiny_cache, tiny_run, tmp_path, monkeypatch, capsys
):
    import robustmer.audio
    import robustmer.data

    st, mid = write_tiny_dataset(tmp_path / "raw")
    monkeypatch.setattr(robustmer.audio, "spectrogram_from_file", _no_work)
    monkeypatch.setattr(robustmer.data, "generate_synthetic", _no_work)
    out = str(read_only_dir / "robustmer-out")
    commands = {
        "study": ["study", "--out", out, "--device", "cpu"],
        "synth": ["synth", "--out", out, "--clips", "2"],
        "prepare": ["prepare", "--soundtracks", str(st), "--midlevel", str(mid), "--out", out],
        "train": ["train", "--system", "A2E", "--seed", "1", "--data", str(tiny_cache)]
        + ["--out", out, "--device", "cpu"],
        "attack": ["attack", "--run", str(tiny_run), "--out", out, "--device", "cpu"],
    }
    for name, args in commands.items():
        assert cli(*args) == 2, name
        err = capsys.readouterr().err
        assert "Traceback" not in err, name
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "robustmer-out" in lines[0], (name, err)
        assert "not writable" in lines[0], (name, err)
    assert not (tiny_run / "attacks").exists()  # the attack did not run


# --- case 6: one study per directory; workers die with the main process; Ctrl-C ---------


def test_second_study_into_a_locked_directory_fails_at_once(tiny_cache, tmp_path, capsys):
    out = tmp_path / "study"
    out.mkdir()
    with study_lock(out):
        assert (out / LOCK_FILE).read_text().strip() == str(os.getpid())
        with pytest.raises(RobustmerError, match=f"another study \\(PID {os.getpid()}\\)"):
            run_study(out, data=tiny_cache, profile="quick", device="cpu", progress=False)
        assert cli("study", "--data", str(tiny_cache), "--out", str(out)) == 2
        err = capsys.readouterr().err
        assert f"PID {os.getpid()}" in err and "Traceback" not in err
        assert not (out / "study.json").exists()
    with study_lock(out):  # released at the end of the block
        pass


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie awaiting its reaper has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


POOL_SCRIPT = """
import multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from robustmer.study import workers


def init_without_prctl(parent_pid):
    workers._set_parent_death_signal = lambda sig: False  # only the watchdog thread is left
    workers.worker_init(parent_pid)


if __name__ == "__main__":
    init = workers.worker_init if sys.argv[1] == "prctl" else init_without_prctl
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(1, mp_context=ctx, initializer=init, initargs=(os.getpid(),))
    worker = pool.submit(os.getpid).result()
    pool.submit(time.sleep, 600)
    print(worker, flush=True)
    time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("mechanism", ["prctl", "watchdog"])
def test_workers_end_when_the_main_process_is_killed(mechanism, tmp_path):
    script = tmp_path / "pool.py"
    script.write_text(POOL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [sys.executable, str(script), mechanism], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        worker = int(proc.stdout.readline())
        assert _alive(worker)
        proc.kill()  # SIGKILL: the main process cannot clean up
        proc.wait()
        deadline = time.monotonic() + 60
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), "the worker outlived the killed main process"
    finally:
        proc.kill()
        proc.wait()


# --- case 7: long repeats and duplicate clip files --------------------------------------


def test_prepare_refuses_excerpts_that_repeat_a_clip_too_often(tmp_path, capsys):
    st, mid = write_tiny_dataset(tmp_path / "raw", seconds=1.0)  # 32 frames per clip
    with pytest.raises(RobustmerError, match=r"001\.wav: 32 frames long.*repeat it 4\.1 times"):
        prepare(st, mid, tmp_path / "cache", frames=130, progress=False)
    assert not (tmp_path / "cache").exists()
    prepare(st, mid, tmp_path / "cache", frames=128, progress=False)  # exactly 4x: fine
    out = tmp_path / "long"
    base = ["prepare", "--soundtracks", str(st), "--midlevel", str(mid), "--out", str(out)]
    assert cli(*base, "--frames", "1000") == 2
    assert "repeat it 31.2 times" in capsys.readouterr().err
    assert cli(*base, "--frames", "1000", "--allow-repeat") == 0
    assert load_cache(out).excerpts.shape == (6, 1000, 149)


def test_duplicate_clip_files_are_an_error_naming_both(tmp_path, capsys):
    st, mid = write_tiny_dataset(tmp_path / "raw")
    (st / "Set1" / "003.flac").write_bytes((st / "Set1" / "003.wav").read_bytes())
    args = ["prepare", "--soundtracks", str(st), "--midlevel", str(mid)]
    assert cli(*args, "--out", str(tmp_path / "cache")) == 2
    err = capsys.readouterr().err
    assert "clip 003 has two audio files" in err
    assert "003.flac" in err and "003.wav" in err


# --- case 8: the cache's hashes ---------------------------------------------------------


def _edit_manifest(cache: Path, edit) -> None:
    manifest = json.loads((cache / "manifest.json").read_text())
    edit(manifest)
    (cache / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["emotions"][0].__setitem__(0, 0.9),
        lambda m: m["normalization"].__setitem__("mean", m["normalization"]["mean"] + 1.0),
        lambda m: m["split"]["test"].append(m["split"]["train"].pop()),
    ],
    ids=["ratings", "normalisation mean", "split"],
)
def test_edited_manifest_is_refused(tiny_dataset, tmp_path, edit):
    st, mid = tiny_dataset
    cache = prepare(st, mid, tmp_path / "cache", frames=32, progress=False)
    manifest = json.loads((cache / "manifest.json").read_text())
    hashed = {"excerpts.npy", "emotions.npy", "midlevel.npy", "targets", "spectrograms"}
    assert set(manifest["sha256"]) == hashed
    _edit_manifest(cache, edit)
    with pytest.raises(RobustmerError, match=r"manifest\.json: its ratings"):
        load_cache(cache)


def test_edited_array_is_refused(tiny_dataset, tmp_path):
    st, mid = tiny_dataset
    cache = prepare(st, mid, tmp_path / "cache", frames=32, progress=False)
    emotions = np.load(cache / "emotions.npy")
    emotions[0, 0] += 0.1
    np.save(cache / "emotions.npy", emotions)
    with pytest.raises(RobustmerError, match=r"emotions\.npy: content differs"):
        load_cache(cache)


def test_edited_spectrogram_is_not_reused(tiny_dataset, tmp_path, caplog):
    st, mid = tiny_dataset
    cache = prepare(st, mid, tmp_path / "cache", frames=32, progress=False)
    first = load_cache(cache).excerpts
    spec = np.load(cache / "spectrograms" / "004.npy")
    np.save(cache / "spectrograms" / "004.npy", spec + 1.0)
    with caplog.at_level("INFO"):
        prepare(st, mid, cache, frames=32, progress=False)
    assert "1 computed, 5 re-used" in caplog.text
    np.testing.assert_array_equal(load_cache(cache).excerpts, first)


# --- case 10: undecodable audio ---------------------------------------------------------


def test_undecodable_mp3_names_the_file_and_keeps_decoder_notes_off_the_terminal(
    tmp_path, capfd
):
    st, mid = write_tiny_dataset(tmp_path / "raw")
    (st / "Set1" / "002.wav").unlink()
    (st / "Set1" / "002.mp3").write_text("this is text, not audio\n" * 20)
    args = ["prepare", "--soundtracks", str(st), "--midlevel", str(mid), "--frames", "32"]
    assert cli(*args, "--out", str(tmp_path / "cache")) == 2
    captured = capfd.readouterr()
    err = captured.err + captured.out
    assert "002.mp3: not a decodable audio file" in err
    assert "Note:" not in err and "possibly a pipe" not in err
    print("stderr still reaches the terminal", file=sys.stderr)
    assert "still reaches" in capfd.readouterr().err
