"""Models on audio: :class:`robustmer.models.WaveformModel`, sliding-window prediction and
``robustmer predict``, checked against the cache path and hand-computed window averages."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from audio_helpers import AUDIO_FRAMES

from robustmer.audio import FrontEndConfig, LogFilteredSpectrogram, load_audio
from robustmer.errors import RobustmerError
from robustmer.models import WaveformModel, excerpt_samples, predict_file, window_starts
from robustmer.names import EMOTIONS, MIDLEVEL_FEATURES


def _clip_segments(run, model: WaveformModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Each cached clip's audio from its excerpt's first frame on, and the first frames."""
    cache = run.cache
    offsets = cache.manifest["excerpt"]["offsets"]
    segments = np.zeros((len(cache.ids), model.samples))
    for row, (clip, first) in enumerate(zip(cache.ids, offsets, strict=True)):
        wave = load_audio(cache.manifest["sources"][f"{clip:03d}"]["file"])
        piece = wave[math.floor(first * cache.frontend.hop) :][: model.samples]
        segments[row, : piece.size] = piece
    return torch.from_numpy(segments), torch.tensor(offsets)


def test_wrapper_on_audio_equals_the_cache_path(audio_run) -> None:
    model = WaveformModel.from_run(audio_run).eval()
    wave, first = _clip_segments(audio_run, model)
    x = torch.from_numpy(audio_run.cache.excerpts).unsqueeze(1)  # [N, 1, 16, 149]
    with torch.no_grad():
        spec = model.spectrogram(wave, first)
        ours, ref = model(wave, first), audio_run.model(x)
    assert spec.shape == x.shape and spec.dtype == torch.float32
    np.testing.assert_allclose(spec.numpy(), x.numpy(), atol=2e-5)
    np.testing.assert_allclose(ours.emotions.numpy(), ref.emotions.numpy(), atol=1e-5)
    np.testing.assert_allclose(ours.midlevel.numpy(), ref.midlevel.numpy(), atol=1e-5)


def test_excerpt_follows_the_whole_clips_frame_grid() -> None:
    frontend = LogFilteredSpectrogram(FrontEndConfig())
    rng = np.random.default_rng(3)
    clip = torch.from_numpy(rng.uniform(-1, 1, 30000))  # [T]
    full = frontend(clip)  # [43, 149]
    frames = 5
    first = torch.tensor([0, 1, 7, 39, 42])  # 39 and 42 run past the end (zero padding)
    size = excerpt_samples(frontend.config, frames)
    rows = torch.zeros(len(first), size, dtype=torch.float64)
    for b, o in enumerate(first.tolist()):
        piece = clip[math.floor(o * frontend.config.hop) :][:size]
        rows[b, : piece.numel()] = piece
    got = frontend.excerpt(rows, first, frames)  # [5, 5, 149]
    for b, o in enumerate(first.tolist()):
        n = min(frames, full.shape[0] - o)
        torch.testing.assert_close(got[b, :n], full[o : o + n], atol=1e-12, rtol=0)
    rows.requires_grad_(True)
    frontend.excerpt(rows, first, frames).sum().backward()
    assert torch.isfinite(rows.grad).all() and rows.grad.abs().sum() > 0


def test_window_starts() -> None:
    assert window_starts(10, 16, 8) == [0]
    assert window_starts(16, 16, 8) == [0]
    assert window_starts(32, 16, 8) == [0, 8, 16]
    assert window_starts(35, 16, 8) == [0, 8, 16, 19]
    assert window_starts(40, 16, 5) == [0, 5, 10, 15, 20, 24]


def _by_hand(run, wave: np.ndarray, starts: list[int]) -> np.ndarray:
    """Average of the model's predictions on slices of the whole clip's spectrogram, x 10."""
    frontend = LogFilteredSpectrogram(run.cache.frontend)
    with torch.no_grad():
        spec = frontend(torch.from_numpy(wave))  # [n, 149] float64
        x = run.cache.normalization.normalize(spec).float()  # [n, 149]
        windows = torch.stack([x[s : s + AUDIO_FRAMES] for s in starts]).unsqueeze(1)
        out = run.model(windows)
    both = torch.cat([out.emotions, out.midlevel], dim=1)  # [K, 15]
    return both.double().mean(dim=0).numpy() * 10.0


def test_sliding_window_average_by_hand(audio_run, tmp_path: Path) -> None:
    model = WaveformModel.from_run(audio_run)
    sr = 44100
    t = np.arange(int(3.3 * sr)) / sr
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 330 * t * (1 + t)), 0.2 * np.sin(600 * t)])
    path = tmp_path / "long.flac"
    sf.write(path, stereo.T, sr)
    wave = load_audio(path)
    n_frames = math.ceil(wave.size / audio_run.cache.frontend.hop)
    assert n_frames == 104  # 72765 samples at 22050 Hz
    starts = [*range(0, n_frames - AUDIO_FRAMES + 1, 8)]
    if starts[-1] != n_frames - AUDIO_FRAMES:
        starts.append(n_frames - AUDIO_FRAMES)
    pred = predict_file(model, path)
    assert pred.windows == len(starts) == 12  # 0, 8, ..., 88 = 104 - 16
    expected = _by_hand(audio_run, wave, starts)
    np.testing.assert_allclose(pred.emotions, expected[:8], atol=1e-5)
    np.testing.assert_allclose(pred.midlevel, expected[8:], atol=1e-5)
    assert pred.seconds == pytest.approx(wave.size / 22050)
    other = predict_file(model, path, hop_frames=30)
    assert other.windows == 4  # 0, 30, 60, then 88 to end at the last frame
    by_hand = _by_hand(audio_run, wave, [0, 30, 60, 88])[:8]
    np.testing.assert_allclose(other.emotions, by_hand, atol=1e-5)


def test_short_clip_is_looped(audio_run, tmp_path: Path) -> None:
    model = WaveformModel.from_run(audio_run)
    t = np.arange(int(0.3 * 22050)) / 22050
    path = tmp_path / "short.wav"
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440 * t) * np.exp(-3 * t), 22050)
    wave = load_audio(path)
    pred = predict_file(model, path)
    assert pred.windows == 1
    looped = np.resize(wave, model.samples)
    np.testing.assert_allclose(pred.emotions, _by_hand(audio_run, looped, [0])[:8], atol=1e-5)


def test_front_end_mismatch_is_an_error(audio_run) -> None:
    with pytest.raises(RobustmerError, match="front end"):
        WaveformModel.from_run(audio_run, frontend=FrontEndConfig(fps=50.0))
    assert WaveformModel.from_run(audio_run, frontend=FrontEndConfig()).frames == AUDIO_FRAMES
    with pytest.raises(RobustmerError, match="frames"):
        WaveformModel(audio_run.model, FrontEndConfig(), audio_run.cache.normalization, 8)
    with pytest.raises(RobustmerError, match="samples"):
        WaveformModel.from_run(audio_run)(torch.zeros(2, 3, 4))


def _cli(args: list[str]) -> int:
    from robustmer.cli import main

    with pytest.raises(SystemExit) as info:
        main(args)
    return int(info.value.code or 0)


def test_cli_predict_prints_and_writes_csv(
    audio_run, audio_run_dir: Path, tmp_path: Path, capsys
) -> None:
    model = WaveformModel.from_run(audio_run)
    files = []
    for k, fmt in enumerate(("wav", "flac", "mp3")):
        t = np.arange(int((1.5 + k) * 22050)) / 22050
        path = tmp_path / f"clip{k}.{fmt}"
        sf.write(path, 0.4 * np.sin(2 * np.pi * (200 + 150 * k) * t), 22050)
        files.append(path)
    out = tmp_path / "pred.csv"
    code = _cli(["predict", "--run", str(audio_run_dir), *map(str, files), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "valence" in printed and "melodiousness" in printed and "clip2.mp3" in printed
    table = pd.read_csv(out)
    assert list(table.columns) == ["file", "seconds", "windows", *EMOTIONS, *MIDLEVEL_FEATURES]
    assert len(table) == 3
    for row, path in zip(table.itertuples(index=False), files, strict=True):
        pred = predict_file(model, path)
        assert row.file == str(path) and row.windows == pred.windows
        np.testing.assert_allclose([getattr(row, e) for e in EMOTIONS], pred.emotions, atol=1e-9)
        np.testing.assert_allclose(
            [getattr(row, f) for f in MIDLEVEL_FEATURES], pred.midlevel, atol=1e-9
        )


def test_cli_predict_bad_file_is_one_line(audio_run_dir: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "noise.mp3"
    bad.write_bytes(b"not audio at all")
    assert _cli(["predict", "--run", str(audio_run_dir), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "noise.mp3" in err and "expected a readable" in err


def test_clip_audio_finds_the_cached_excerpts(audio_run, tmp_path: Path) -> None:
    import shutil

    from robustmer.data import load_cache
    from robustmer.evaluation.audio import clip_audio

    model = WaveformModel.from_run(audio_run)
    wave, first = _clip_segments(audio_run, model)
    got, got_first = clip_audio(audio_run.cache, audio_run.cache.ids, model.samples)
    np.testing.assert_array_equal(got_first, first.numpy())
    np.testing.assert_array_equal(got, wave.numpy().astype(np.float32))
    # a changed source file is refused, naming it
    copy = shutil.copytree(audio_run.cache.path, tmp_path / "cache")
    clip = audio_run.cache.ids[0]
    source = Path(audio_run.cache.manifest["sources"][f"{clip:03d}"]["file"])
    moved = tmp_path / source.name
    shutil.copy(source, moved)
    manifest = (copy / "manifest.json").read_text().replace(str(source), str(moved))
    (copy / "manifest.json").write_text(manifest)
    sf.write(moved, np.zeros(4000) + 0.1, 22050)
    with pytest.raises(RobustmerError, match=f"{moved.name}.*SHA-256"):
        clip_audio(load_cache(copy), [clip], model.samples)
