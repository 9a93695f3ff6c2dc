"""The data stage: split, loaders, prepare, the cache and every bad-input case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import write_tiny_dataset

from robustmer.cli import main
from robustmer.data import load_cache, paper_split, prepare, read_midlevel, read_ratings
from robustmer.data.prepare import excerpt
from robustmer.errors import RobustmerError


def test_paper_split_reproduces_the_papers_test_clips():
    split = paper_split(360)
    assert [len(split[k]) for k in ("train", "validation", "test")] == [288, 36, 36]
    assert (split["test"][:5] + 1).tolist() == [146, 310, 335, 329, 57]
    everything = np.concatenate([split["train"], split["validation"], split["test"]])
    assert sorted(everything.tolist()) == list(range(360))


@pytest.mark.parametrize(
    ("n", "sizes"),
    [(10, (8, 1, 1)), (61, (48, 7, 6)), (120, (96, 12, 12)), (600, (480, 60, 60))],
)
def test_split_sizes_follow_the_formula(n, sizes):
    split = paper_split(n)
    assert tuple(len(split[k]) for k in ("train", "validation", "test")) == sizes


def test_excerpt_cuts_and_repeats():
    spec = np.arange(10, dtype=np.float64)[:, None] * np.ones((1, 3))
    rng = np.random.default_rng(0)
    cut, off = excerpt(spec, 4, rng)
    assert cut.shape == (4, 3)
    np.testing.assert_array_equal(cut[:, 0], np.arange(off, off + 4))
    looped, off = excerpt(spec[:3], 8, np.random.default_rng(1))  # shorter: tiled 0,1,2,0,1,2...
    assert looped.shape == (8, 3)
    np.testing.assert_array_equal(looped[:, 0], (np.arange(off, off + 8) % 3))


def test_prepare_round_trip(tiny_dataset, tmp_path):
    st, mid = tiny_dataset
    out = prepare(st, mid, tmp_path / "cache", frames=40, progress=False)
    cache = load_cache(out)
    assert cache.ids == [1, 2, 3, 4, 5, 6]
    assert cache.excerpts.shape == (6, 40, 149)
    # ratings / 10, as written by the fixture: clip 1 valence = 1 + (1 + 0) % 8 + 0.25 = 2.25
    assert cache.emotions[0, 0] == pytest.approx(0.225)
    assert cache.midlevel[0, 0] == pytest.approx(0.3)  # 2 + (1 * 1) % 7 = 3 -> 0.3
    assert sorted(sum(cache.split.values(), [])) == cache.ids
    # normalisation over the training split: train excerpts' source spectrograms have mean 0
    specs = [np.load(out / "spectrograms" / f"{i:03d}.npy") for i in cache.split["train"]]
    allv = np.concatenate([s.ravel() for s in specs]).astype(np.float64)
    assert cache.normalization.mean == pytest.approx(allv.mean(), rel=1e-6)
    assert cache.normalization.std == pytest.approx(allv.std(), rel=1e-6)
    # 1-s clips are shorter than the excerpt (31.3 fps): they were looped
    assert cache.manifest["sources"]["001"]["frames"] == 32
    x, emo, midl, ids = cache.arrays("test")
    assert x.shape == (len(ids), 1, 40, 149) and emo.shape == (len(ids), 8)
    assert midl.shape == (len(ids), 7)


def test_prepare_norm_stats_all_and_reuse(tiny_dataset, tmp_path, caplog):
    st, mid = tiny_dataset
    out = prepare(st, mid, tmp_path / "cache", frames=40, norm_stats="all", progress=False)
    first = load_cache(out)
    specs = [np.load(out / "spectrograms" / f"{i:03d}.npy") for i in first.ids]
    allv = np.concatenate([s.ravel() for s in specs]).astype(np.float64)
    assert first.normalization.mean == pytest.approx(allv.mean(), rel=1e-6)
    with caplog.at_level("INFO"):
        prepare(st, mid, out, frames=40, norm_stats="all", progress=False)
    assert "0 computed, 6 re-used" in caplog.text
    np.testing.assert_array_equal(load_cache(out).excerpts, first.excerpts)


def test_loader_reads_ratings_and_midlevel(tiny_dataset):
    st, mid = tiny_dataset
    ids, ratings, targets = read_ratings(st / "mean_ratings_set1.csv")
    assert ids == [1, 2, 3, 4, 5, 6] and ratings.shape == (6, 8) and targets[0] == "HAPPY"
    table = read_midlevel(mid, ids)
    assert sorted(table) == ids  # the jamendo row is filtered out
    np.testing.assert_allclose(table[2], [2 + (2 * k) % 7 for k in range(1, 8)])


# --- bad input: one clear error, exit code 2, nothing written -------------------------------


def run_prepare_cli(st: Path, mid: Path, out: Path, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(["prepare", "--soundtracks", str(st), "--midlevel", str(mid), "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert not out.exists(), "a failed prepare must not leave a cache behind"
    assert not list(out.parent.glob(f".{out.name}*")), "temporary files left behind"
    return err


def _edit_csv(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new, 1))


BAD_RATINGS = {
    "missing column": ("number,valence,energy,", "number,energy,", "missing column(s) valence"),
    "renamed column": (",tension,", ",tensions,", "missing column(s) tension"),
    "duplicate number": ("\n002,", "\n001,", "duplicate number 001"),
    "non-numeric rating": ("\n003,", "\n003,abc", "line 4: valence 'abc4.25' is not a number"),
    "nan rating": ("\n003,4.25", "\n003,nan", "valence is 'nan'"),
    "empty rating": ("\n003,4.25", "\n003,", "'' is not a number"),
    "rating outside 1-9": ("\n003,4.25", "\n003,9.50", "valence = 9.5 is outside 1-9"),
}


@pytest.mark.parametrize("case", sorted(BAD_RATINGS))
def test_bad_ratings_csv(case, tmp_path, capsys):
    st, mid = write_tiny_dataset(tmp_path / "raw")
    old, new, message = BAD_RATINGS[case]
    _edit_csv(st / "mean_ratings_set1.csv", old, new)
    err = run_prepare_cli(st, mid, tmp_path / "cache", capsys)
    assert "mean_ratings_set1.csv" in err and message in err


def test_missing_soundtracks_directory(tmp_path, capsys):
    _, mid = write_tiny_dataset(tmp_path / "raw")
    err = run_prepare_cli(tmp_path / "nope", mid, tmp_path / "cache", capsys)
    assert "nope: Soundtracks directory not found" in err


def test_missing_ratings_file(tmp_path, capsys):
    st, mid = write_tiny_dataset(tmp_path / "raw")
    (st / "mean_ratings_set1.csv").unlink()
    err = run_prepare_cli(st, mid, tmp_path / "cache", capsys)
    assert "mean_ratings_set1.csv not found" in err


def test_missing_audio_file(tmp_path, capsys):
    st, mid = write_tiny_dataset(tmp_path / "raw")
    (st / "Set1" / "004.wav").unlink()
    err = run_prepare_cli(st, mid, tmp_path / "cache", capsys)
    assert "no audio file for 1 clip(s)" in err and "004" in err


def test_missing_midlevel_file(tmp_path, capsys):
    st, mid = write_tiny_dataset(tmp_path / "raw")
    (mid / "annotations.csv").unlink()
    err = run_prepare_cli(st, mid, tmp_path / "cache", capsys)
    assert "annotations.csv not found" in err


def test_audio_that_does_not_decode(tmp_path, capsys):
    st, mid = write_tiny_dataset(tmp_path / "raw")
    (st / "Set1" / "002.wav").write_bytes(b"RIFF not really a wave file" * 10)
    err = run_prepare_cli(st, mid, tmp_path / "cache", capsys)
    assert "002.wav: not a decodable audio file" in err


def test_silent_audio(tmp_path, capsys):
    import soundfile as sf

    st, mid = write_tiny_dataset(tmp_path / "raw")
    sf.write(st / "Set1" / "005.wav", np.zeros(22050), 22050)
    err = run_prepare_cli(st, mid, tmp_path / "cache", capsys)
    assert "005.wav" in err and "silent" in err


def test_clip_shorter_than_one_frame(tmp_path, capsys):
    import soundfile as sf

    st, mid = write_tiny_dataset(tmp_path / "raw")
    sf.write(st / "Set1" / "003.wav", 0.5 * np.ones(1000), 22050)
    err = run_prepare_cli(st, mid, tmp_path / "cache", capsys)
    assert "003.wav" in err and "shorter than one frame" in err


def test_midlevel_ids_do_not_cover_the_clips(tmp_path, capsys):
    st, mid = write_tiny_dataset(tmp_path / "raw")
    _edit_csv(mid / "metadata.csv", "506;soundtracks;6;", "506;soundtracks;66;")
    err = run_prepare_cli(st, mid, tmp_path / "cache", capsys)
    assert "annotations.csv" in err and "no mid-level annotation for 1" in err and "006" in err


def test_midlevel_without_soundtracks_rows(tmp_path, capsys):
    st, mid = write_tiny_dataset(tmp_path / "raw")
    meta = mid / "metadata.csv"
    meta.write_text(meta.read_text().replace(";soundtracks;", ";jamendo;"))
    err = run_prepare_cli(st, mid, tmp_path / "cache", capsys)
    assert "metadata.csv" in err and "no rows with Source 'soundtracks'" in err


def test_failed_prepare_keeps_the_previous_cache(tmp_path, capsys):
    st, mid = write_tiny_dataset(tmp_path / "raw")
    out = prepare(st, mid, tmp_path / "cache", frames=40, progress=False)
    before = (out / "manifest.json").read_bytes()
    _edit_csv(st / "mean_ratings_set1.csv", "\n003,4.25", "\n003,nan")
    with pytest.raises(RobustmerError, match="nan"):
        prepare(st, mid, out, frames=40, progress=False)
    assert (out / "manifest.json").read_bytes() == before


def test_load_cache_errors(tmp_path):
    with pytest.raises(RobustmerError, match="data cache not found"):
        load_cache(tmp_path / "missing")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "manifest.json").write_text('{"format": "robustmer-cache", "version": 0}')
    with pytest.raises(RobustmerError, match="made by another robustmer"):
        load_cache(tmp_path / "old")
