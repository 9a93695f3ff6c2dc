"""The study command end to end: CLI, synthetic path, resume after kills, report contents."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_CLIPS, TINY_SECONDS, tiny_profile, write_tiny_dataset

from robustmer.attacks import PaperAttack, PaperConfig
from robustmer.cli import main
from robustmer.errors import RobustmerError
from robustmer.study import StudyProfile, run_study, shrunk
from robustmer.study.profiles import PAPER, QUICK

TINY = tiny_profile(
    seconds=2.0,
    seeds=(6, 21),
    train={"max_epochs": 3, "patience": 3, "width": 0.0625},
    attacks=(PaperConfig(steps=12),),
)
REPORT_TABLES = ("table1", "delta_mae", "clips", "tests")


def cli(*args: str) -> int:
    """Run the CLI in-process; return its exit code."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    return exc.value.code


def test_tiny_study_through_the_cli(tiny_cache, tmp_path, capsys):
    out = tmp_path / "study"
    args = (
        "study",
        "--data",
        str(tiny_cache),
        "--profile",
        "quick",
        "--systems",
        "A2E,A2M2E",
        "--seeds",
        "6,21",
        "--out",
        str(out),
        "--jobs",
        "1",
        "--device",
        "cpu",
    )
    assert cli(*args) == 0
    assert "report.html" in capsys.readouterr().out
    state = json.loads((out / "study.json").read_text())
    keys = [a.key() for a in QUICK.evaluation_attacks()]
    assert state["plan"] == [
        "data",
        *(
            name
            for model in ("A2E-seed6", "A2E-seed21", "A2M2E-seed6", "A2M2E-seed21")
            for name in (f"train/{model}", *(f"attack/{model}/{k}" for k in keys))
        ),
        "report",
    ]
    assert all(u["state"] == "done" for u in state["units"].values())
    assert state["profile"] == "quick" and state["data"]["kind"] == "given cache"

    report = out / "report"
    for name in (
        "report.md",
        "report.html",
        "summary.json",
        "figures/fig3_delta_mae.png",
        "figures/fig3_delta_mae.svg",
        "figures/fig4_true_vs_pred.png",
    ):
        assert (report / name).is_file(), name
    table1 = pd.read_csv(report / "table1.csv")
    assert list(table1.loc[table1["kind"] == "system", "system"]) == ["A2E", "A2M2E"]
    # the ridge baseline on the study's own cache, as the last row
    assert list(table1["kind"]) == ["system", "system", "baseline"]
    assert np.isfinite(table1["avg_corr_mean"].iloc[-1])
    # Table 1 is the mean over seeds of each run's clean test correlation (final.json)
    for system in ("A2E", "A2M2E"):
        runs = [
            json.loads((out / "runs" / f"{system}-seed{s}" / "final.json").read_text())
            for s in (6, 21)
        ]
        corr = [r["metrics"]["test"]["emotions"]["avg_corr"] for r in runs]
        row = table1[table1["system"] == system].iloc[0]
        assert row["avg_corr_mean"] == pytest.approx(np.mean(corr))
        assert np.isfinite(row["mae_mean"]) and row["mae_mean"] > 0
    clips = pd.read_parquet(report / "clips.parquet")
    assert len(clips) == 4 * 3  # 4 models x 3 test clips
    assert (clips["iterations"] >= 1).all() and np.isfinite(clips["mae_adv"]).all()
    tests = pd.read_csv(report / "tests.csv")
    row = tests[(tests["a"] == "A2E") & (tests["b"] == "A2M2E")].iloc[0]
    assert row["n"] == 6  # 3 test clips x 2 seeds, paired
    # The first units did not run again on a second invocation (all done):
    before = (out / "runs" / "A2E-seed6" / "final.json").stat().st_mtime_ns
    assert cli(*args) == 0
    assert (out / "runs" / "A2E-seed6" / "final.json").stat().st_mtime_ns == before


def test_synthetic_study_and_what_it_shrank(tmp_path):
    out = tmp_path / "study"
    report = run_study(out, profile=TINY, device="cpu", jobs=1, progress=False)
    state = json.loads((out / "study.json").read_text())
    assert state["data"]["kind"] == "synthetic" and state["data"]["clips_in_cache"] == 30
    store = Path(state["data"]["store"])
    assert (store / "data" / "soundtracks" / "Set1" / "001.flac").is_file()
    assert state["data"]["reused"] is False
    assert state["shrunk"]["frames"] == {"paper": 313, "used": 16}
    assert state["shrunk"]["train.max_epochs"] == {"paper": 199, "used": 3}
    summary = json.loads((report / "summary.json").read_text())
    assert "frames" in json.dumps(summary)  # the report says what was shrunk
    stages = state["stage_seconds"]
    assert list(stages) == ["synthesis", "spectrograms", "training", "attacks", "report"]
    assert all(v > 0 for v in stages.values())
    assert stages["training"] + stages["attacks"] == pytest.approx(
        state["units_wall_seconds"], abs=2e-3
    )
    shown = pd.read_csv(report / "stages.csv").set_index("stage")["seconds"].to_dict()
    before_report = {k: stages[k] for k in list(stages)[:4]}  # the report shows these
    assert shown == pytest.approx({**before_report, "total": sum(before_report.values())})


def test_stage_seconds_split_the_units_wall_time_by_their_own_clocks():
    from robustmer.study.run import stage_seconds

    doc = {
        "data": {"stage_seconds": {"synthesis": 2.0, "spectrograms": 1.0}},
        "units": {
            "train/A": {"train_seconds": 30.0},
            "attack/A": {"attack_seconds": 10.0},
            "train/B": {"train_seconds": 50.0},
        },
        "units_wall_seconds": 45.0,  # two workers: less than the 90 s of unit clocks
    }
    assert stage_seconds(doc) == {
        "synthesis": 2.0, "spectrograms": 1.0, "training": 40.0, "attacks": 5.0
    }
    assert stage_seconds({"units": {}}) == {}


def test_second_study_reuses_the_stored_synthetic_data(tmp_path, monkeypatch):
    """Synthetic clips and spectrograms are made once: a second study with the same data
    settings neither synthesises nor computes a spectrogram, and gets the same cache."""
    import robustmer.audio
    import robustmer.data.synth as synth
    from robustmer.data import load_cache
    from robustmer.study.run import _prepare_data

    profile = TINY.with_overrides(systems=("A2E",), seeds=(6,))
    given = {"data": None, "soundtracks": None, "midlevel": None}
    first, info1 = _prepare_data(tmp_path / "a", profile, **given)

    def fail(*args, **kwargs):
        raise AssertionError("the stored data should have been reused")

    monkeypatch.setattr(synth, "generate_synthetic", fail)
    monkeypatch.setattr(robustmer.audio, "spectrogram_from_file", fail)
    second, info2 = _prepare_data(tmp_path / "b", profile, **given)
    assert (info1["reused"], info2["reused"]) == (False, True)
    assert info1["store"] == info2["store"]
    assert load_cache(first).manifest_hash == load_cache(second).manifest_hash
    assert second == tmp_path / "b" / "cache" and (second / "excerpts.npy").is_file()


def test_a_moved_study_uses_its_own_files(tmp_path, monkeypatch):
    """study.json records paths relative to the study directory (or absolute): a study
    moved elsewhere and resumed from another working directory redoes nothing and reads
    its own cache."""
    import shutil

    import robustmer.data
    from robustmer.training import load_run

    st, mid = write_tiny_dataset(tmp_path / "raw", n=TINY_CLIPS, seconds=TINY_SECONDS)
    profile = TINY.with_overrides(systems=("A2E",), seeds=(6,))
    monkeypatch.chdir(tmp_path)
    run_study(
        "study",
        soundtracks="raw/soundtracks",
        midlevel="raw/midlevel",
        profile=profile,
        device="cpu",
        jobs=1,
        progress=False,
    )
    state = json.loads((tmp_path / "study" / "study.json").read_text())
    assert state["data"]["cache"] == "cache"
    assert state["settings"]["soundtracks"] == str(st.resolve())
    assert state["settings"]["midlevel"] == str(mid.resolve())

    (tmp_path / "elsewhere").mkdir()
    shutil.move(tmp_path / "study", tmp_path / "elsewhere" / "moved")
    monkeypatch.chdir(tmp_path / "elsewhere")

    def no_work(*args, **kwargs):
        raise AssertionError("the moved study redid its data")

    monkeypatch.setattr(robustmer.data, "prepare", no_work)
    monkeypatch.setattr(robustmer.data, "generate_synthetic", no_work)
    before = (Path("moved") / "runs" / "A2E-seed6" / "final.json").stat().st_mtime_ns
    run_study(
        "moved", soundtracks=st, midlevel=mid, profile=profile, device="cpu", jobs=1, progress=False
    )
    assert (Path("moved") / "runs" / "A2E-seed6" / "final.json").stat().st_mtime_ns == before
    run = load_run(tmp_path / "elsewhere" / "moved" / "runs" / "A2E-seed6")
    assert run.cache.path.resolve() == (tmp_path / "elsewhere" / "moved" / "cache").resolve()


def test_quick_profile_keeps_the_papers_recipe():
    changed = shrunk(QUICK)
    allowed = {
        "clips",
        "seconds",
        "frames",
        "seeds",
        "train.max_epochs",
        "train.patience",
        "train.width",
        "train.lr",  # far fewer steps than the paper's (docs/quick-profile.md)
        "train.amp",  # bf16 autocast of the training steps: a speed option
        "train.adv_attack.steps",
        "attack.paper.steps",
        "attack.apgd.steps",
        "attack.pgd.steps",  # the targeted waveform attack: 10 steps on 2 clips
        "attack.pgd.max_clips",
        "epsilons",
        "snrs_db",
    }
    assert set(changed) <= allowed, set(changed) - allowed
    assert len(QUICK.seeds) >= 3 and QUICK.systems == PAPER.systems
    assert shrunk(PAPER) == {}


def _tables(report: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(report / f"{name}.csv") for name in REPORT_TABLES}


def _assert_same_tables(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    for name in REPORT_TABLES:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)


@pytest.fixture(scope="module")
def reference_dir(tiny_cache, tmp_path_factory) -> Path:
    """An uninterrupted TINY study, its units in two worker processes with 1 thread each."""
    out = tmp_path_factory.mktemp("reference") / "study"
    run_study(out, data=tiny_cache, profile=TINY, device="cpu", jobs=2, threads=1, progress=False)
    return out


@pytest.fixture(scope="module")
def reference(reference_dir) -> dict[str, pd.DataFrame]:
    return _tables(reference_dir / "report")


def test_resume_after_kills_in_training_and_attack(tiny_cache, reference, tmp_path, monkeypatch):
    import robustmer.training as training
    from robustmer.attacks import ATTACKS

    # 1st invocation: killed during the 2nd epoch bookkeeping of the second unit's training.
    real_train = training.train

    def killed_train(cache, out_dir, config, **kw):
        def hook(epoch, row):
            if config.system == "A2E" and config.seed == 21 and epoch == 2:
                raise KeyboardInterrupt

        return real_train(cache, out_dir, config, on_epoch_end=hook, **kw)

    monkeypatch.setattr(training, "train", killed_train)
    out = tmp_path / "study"
    with pytest.raises(KeyboardInterrupt):
        run_study(
            out, data=tiny_cache, profile=TINY, device="cpu", jobs=1, threads=1, progress=False
        )
    run = out / "runs" / "A2E-seed21"
    assert (run / "state.pt").is_file() and not (run / "final.json").exists()
    assert len(pd.read_csv(run / "metrics.csv")) == 2
    monkeypatch.setattr(training, "train", real_train)

    # 2nd invocation: killed in the middle of the attack of the first A2M2E model (after 5
    # iterations); A2E-seed21 resumes its training and is attacked before that.
    class KillingAttack(PaperAttack):
        def __call__(self, x, y, *, callback=None):
            def cb(iteration, n_active, mean_r):
                if iteration == 5 and self.model.config.arch == "a2m2e":
                    raise KeyboardInterrupt
                if callback is not None:
                    callback(iteration, n_active, mean_r)

            return super().__call__(x, y, callback=cb)

    first_done = (out / "runs" / "A2E-seed6" / "final.json").stat().st_mtime_ns
    monkeypatch.setitem(ATTACKS, "paper", KillingAttack)
    with pytest.raises(KeyboardInterrupt):
        run_study(out, data=tiny_cache, profile=TINY, device="cpu", jobs=1, progress=False)
    key = TINY.attacks[0].key()
    assert not (out / "runs" / "A2M2E-seed6" / "attacks" / key / "summary.json").exists()
    state = json.loads((out / "study.json").read_text())
    assert state["units"][f"attack/A2E-seed6/{key}"]["state"] == "done"
    assert state["units"][f"attack/A2E-seed21/{key}"]["state"] == "done"
    assert state["units"]["train/A2M2E-seed6"]["state"] == "done"
    assert state["units"][f"attack/A2M2E-seed6/{key}"]["state"] == "running"
    monkeypatch.setitem(ATTACKS, "paper", PaperAttack)

    # 3rd invocation finishes; nothing finished is redone and the tables equal the reference.
    resumed = _tables(
        run_study(out, data=tiny_cache, profile=TINY, device="cpu", jobs=1, progress=False)
    )
    assert (out / "runs" / "A2E-seed6" / "final.json").stat().st_mtime_ns == first_done
    _assert_same_tables(resumed, reference)


def test_study_bad_input(tiny_cache, tmp_path, capsys):
    assert (
        cli("study", "--data", str(tiny_cache), "--systems", "A2X", "--out", str(tmp_path / "s"))
        == 2
    )
    assert "system 'A2X': unknown" in capsys.readouterr().err
    # the library names its parameters, the CLI its flags
    with pytest.raises(RobustmerError, match="needs both soundtracks and midlevel"):
        run_study(tmp_path / "s2", soundtracks=tmp_path)
    with pytest.raises(RobustmerError, match="either a cache or soundtracks/midlevel"):
        run_study(tmp_path / "s3", data=tiny_cache, soundtracks=tmp_path, midlevel=tmp_path)
    both = ("--data", str(tiny_cache), "--soundtracks", str(tmp_path), "--midlevel", str(tmp_path))
    assert cli("study", *both, "--out", str(tmp_path / "s3")) == 2
    assert "give either --data or --soundtracks/--midlevel" in capsys.readouterr().err
    assert cli("study", "--soundtracks", str(tmp_path), "--out", str(tmp_path / "s2")) == 2
    assert "needs both --soundtracks and --midlevel" in capsys.readouterr().err
    run_study(
        tmp_path / "s4",
        data=tiny_cache,
        profile=TINY.with_overrides(systems=("A2E",), seeds=(6,)),
        device="cpu",
        jobs=1,
        progress=False,
    )
    with pytest.raises(RobustmerError, match="made with other settings"):
        run_study(
            tmp_path / "s4", data=tiny_cache, profile=TINY, device="cpu", jobs=1, progress=False
        )


def test_parallel_workers_finish_every_unit(reference_dir):
    """--jobs 2: every unit ran in a spawned worker with the recorded thread count (the
    other tests compare these tables with units that ran in the main process)."""
    state = json.loads((reference_dir / "study.json").read_text())
    assert state["settings"]["threads"] == 1
    units = {k: v for k, v in state["units"].items() if k.split("/")[0] in ("train", "attack")}
    assert len(units) == 8 and all(u["state"] == "done" for u in state["units"].values())
    assert all(u["threads"] == 1 for u in units.values())


STUDY_SCRIPT = """
import signal
import sys
from robustmer.cli import main
from robustmer.study import STUDY_PROFILES, StudyProfile

if __name__ == "__main__":
    # as in a terminal, even where the test runs as a background job that ignores SIGINT
    signal.signal(signal.SIGINT, signal.default_int_handler)
    STUDY_PROFILES["tiny"] = StudyProfile.from_dict({profile!r})
    main(sys.argv[1:])
"""


def _tiny_profile_dict() -> dict:
    d = TINY.to_dict()
    assert StudyProfile.from_dict(d) == TINY  # the JSON round trip
    return d


def test_ctrl_c_then_resume_and_a_single_unit_study(tiny_cache, reference, tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while two workers
    train: one line, exit code 130, no worker left; the same command resumes (remaining
    units now run in the main process) and the tables equal the uninterrupted study's; a
    one-unit study gives that unit's rows exactly."""
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "study.py"
    script.write_text(STUDY_SCRIPT.format(profile=_tiny_profile_dict()))
    out = tmp_path / "study"
    args = ["study", "--data", str(tiny_cache), "--profile", "tiny", "--out", str(out)]
    args += ["--device", "cpu", "--threads", "1"]
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": str(src), "ROBUSTMER_PROGRESS": "0"}
    proc = subprocess.Popen(
        [sys.executable, str(script), *args, "--jobs", "2"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob("runs/*/metrics.csv")) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    lines = err.strip().splitlines()
    assert lines[-1] == f"robustmer: study interrupted; run the same command to resume {out}"
    assert sum("interrupted" in line for line in lines) == 1
    state = json.loads((out / "study.json").read_text())
    assert not all(u["state"] == "done" for u in state["units"].values())

    resumed = run_study(out, data=tiny_cache, profile=TINY, device="cpu", jobs=1, progress=False)
    _assert_same_tables(_tables(resumed), reference)

    single = run_study(
        tmp_path / "single",
        data=tiny_cache,
        profile=TINY.with_overrides(systems=("A2M2E",), seeds=(21,)),
        device="cpu",
        threads=1,
        progress=False,
    )
    for name in ("delta_mae", "clips"):
        one, ref = _tables(single)[name], reference[name]
        ref = ref[(ref["system"] == "A2M2E") & (ref["seed"] == 21)].reset_index(drop=True)
        pd.testing.assert_frame_equal(one, ref, check_exact=True)


def test_study_on_real_data_layout(tmp_path):
    st, mid = write_tiny_dataset(tmp_path / "raw", n=TINY_CLIPS, seconds=TINY_SECONDS)
    profile = TINY.with_overrides(systems=("A2B2E",), seeds=(6,))
    report = run_study(
        tmp_path / "study",
        soundtracks=st,
        midlevel=mid,
        profile=profile,
        device="cpu",
        jobs=1,
        progress=False,
    )
    state = json.loads((tmp_path / "study" / "study.json").read_text())
    assert state["data"]["kind"] == "real" and state["data"]["clips_in_cache"] == 30
    assert (tmp_path / "study" / "cache" / "manifest.json").is_file()
    assert len(pd.read_csv(report / "clips.csv")) == 3  # the 3 test clips of 30


def test_a_study_unit_equals_train_with_the_recorded_threads(tiny_cache, tmp_path):
    """With the quick profile's bf16 autocast: a unit trained in a worker (two units,
    two jobs), the same unit as a one-unit study (main process) and ``train()`` called
    directly with the same TrainConfig under the thread count study.json records give
    byte-identical checkpoints and the same final metrics."""
    import hashlib
    from dataclasses import replace

    import torch

    from robustmer.training import TrainConfig, train

    train_amp = {**TINY.train, "amp": True}
    profile = replace(TINY, seeds=(6,), train=train_amp, attacks=(PaperConfig(steps=2),))
    workers = tmp_path / "workers"
    run_study(workers, data=tiny_cache, profile=profile, device="cpu", jobs=2, progress=False)
    threads = json.loads((workers / "study.json").read_text())["settings"]["threads"]
    single = tmp_path / "single"
    one = profile.with_overrides(systems=("A2E",))
    run_study(single, data=tiny_cache, profile=one, device="cpu", threads=threads, progress=False)

    config = TrainConfig(system="A2E", seed=6, device="cpu", **profile.train)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        train(tiny_cache, tmp_path / "direct", config, device=torch.device("cpu"), progress=False)
    finally:
        torch.set_num_threads(previous)

    runs = [workers / "runs" / "A2E-seed6", single / "runs" / "A2E-seed6", tmp_path / "direct"]
    hashes = {hashlib.sha256((r / "best.safetensors").read_bytes()).hexdigest() for r in runs}
    assert len(hashes) == 1, hashes
    finals = [json.loads((r / "final.json").read_text()) for r in runs]
    assert finals[0]["metrics"] == finals[1]["metrics"] == finals[2]["metrics"]
    assert finals[0]["best_epoch"] == finals[1]["best_epoch"] == finals[2]["best_epoch"]
