"""Tests of the audio front end (docs/paper.md §3) against madmom's own outputs and closed forms.

References: madmom's ``LogarithmicFilteredSpectrogramProcessor`` outputs and filterbank in
``../shared/fixtures/logspec`` (Böck et al., 2016), a plain NumPy re-implementation, pure
tones, finite differences (gradcheck) and hand-computed frame counts.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from robustmer.audio import (
    FrontEndConfig,
    LogFilteredSpectrogram,
    Normalization,
    filterbank_center_frequencies,
    load_audio,
    log_filterbank,
    num_frames,
    spectrogram_from_file,
)
from robustmer.errors import RobustmerError

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "fixtures" / "logspec"
FLOAT_CLIPS = ["chord_5s", "noise_12s", "padded_silence_3s", "short_0p5s", "sweep_10s"]
SR = 22050


def _need_fixtures() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"madmom fixtures not found at {FIXTURES} (../shared beside the repo)")
    return FIXTURES


def _numpy_reference(x: np.ndarray) -> np.ndarray:
    """Independent NumPy front end: framing loop, np.hanning, np.fft.rfft, filterbank, log."""
    hop = SR / 31.3
    count = math.ceil(len(x) / hop)
    padded = np.concatenate([x, np.zeros(2048)])
    window = np.hanning(2048)
    bank = log_filterbank()
    rows = []
    for i in range(count):
        start = int(math.floor(i * hop))
        frame = padded[start : start + 2048] * window
        rows.append(np.abs(np.fft.rfft(frame))[:1024] @ bank)
    return np.log10(1.0 + np.stack(rows))


# --------------------------------------------------------------------------- madmom fixtures


@pytest.mark.parametrize(
    ("name", "tolerance"), [(n, 1e-4) for n in FLOAT_CLIPS] + [("stereo_4s", 1e-3)]
)
def test_spectrogram_matches_madmom(name: str, tolerance: float) -> None:
    fixtures = _need_fixtures()
    expected = np.load(fixtures / f"{name}.logspec.npy")  # [F, 149] madmom float32
    ours = spectrogram_from_file(fixtures / f"{name}.wav", dtype=torch.float64).numpy()
    assert ours.shape == expected.shape
    error = float(np.max(np.abs(ours - expected)))
    assert error < tolerance, f"{name}: max abs error {error:.3g}"
    # the default float32 output is the same values rounded
    ours32 = spectrogram_from_file(fixtures / f"{name}.wav")
    assert ours32.dtype == torch.float32
    assert float(np.max(np.abs(ours32.numpy() - expected))) < tolerance


def test_float_fixtures_match_to_float32_precision() -> None:
    # docs/paper.md §3: a plain float64 implementation matches the float files to 1e-6
    fixtures = _need_fixtures()
    for name in FLOAT_CLIPS:
        expected = np.load(fixtures / f"{name}.logspec.npy")
        ours = spectrogram_from_file(fixtures / f"{name}.wav", dtype=torch.float64).numpy()
        assert np.max(np.abs(ours - expected)) < 1e-6, name


def test_filterbank_matches_madmom() -> None:
    fixtures = _need_fixtures()
    expected = np.load(fixtures / "filterbank.npy")  # [1024, 149] float32
    bank = log_filterbank()
    assert bank.shape == (1024, 149) and bank.dtype == np.float64
    np.testing.assert_allclose(bank, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(
        filterbank_center_frequencies(), np.load(fixtures / "filterbank_center_hz.npy")
    )


def test_padded_silence_is_trimmed_like_madmom() -> None:
    # 3 s with digital silence at both ends: madmom's 63 frames only arise after trimming
    fixtures = _need_fixtures()
    raw, _ = sf.read(fixtures / "padded_silence_3s.wav", dtype="float64")
    assert raw[0] == 0.0 and raw[-1] == 0.0
    samples = load_audio(fixtures / "padded_silence_3s.wav")
    assert samples[0] != 0.0 and samples[-1] != 0.0
    assert num_frames(len(raw)) == 94 and num_frames(len(samples)) == 63


# --------------------------------------------------------------------------- filterbank


def test_filterbank_properties() -> None:
    bank = log_filterbank()
    centres = filterbank_center_frequencies()
    assert centres.shape == (149,)
    assert np.all(bank >= 0)
    np.testing.assert_allclose(bank.sum(axis=0), 1.0, rtol=1e-12)  # area 1
    assert len(np.unique(bank, axis=1).T) == 149  # no duplicate filters
    assert np.all(np.diff(centres) > 0)
    # centres lie on FFT bins (10.766 Hz apart) between fmin and the Nyquist frequency
    np.testing.assert_allclose(centres / (SR / 2048), np.round(centres / (SR / 2048)))
    assert centres[0] > 20.0 and centres[-1] < SR / 2
    # returned arrays are copies: mutating one does not change the next
    bank[:] = 0
    assert log_filterbank().sum() == pytest.approx(149.0)


def test_filterbank_quarter_tone_spacing_at_high_frequencies() -> None:
    # above ~1 kHz the bins are dense enough that successive centres are about a quarter tone
    # (2**(1/24)) apart, as 24 bands per octave demand
    centres = filterbank_center_frequencies()
    ratios = centres[1:] / centres[:-1]
    upper = ratios[centres[:-1] > 3000]
    assert np.all(np.abs(np.log2(upper) * 24 - 1) < 0.35)


@pytest.mark.parametrize("frequency", [110.0, 1000.0, 4321.0])
def test_pure_tone_peaks_in_nearest_band(frequency: float) -> None:
    t = np.arange(SR) / SR
    tone = torch.from_numpy(np.sin(2 * np.pi * frequency * t))  # [T] 1 s
    spec = LogFilteredSpectrogram()(tone)  # [F, 149]
    band = int(spec[5:-5].mean(dim=0).argmax())
    nearest = int(np.argmin(np.abs(filterbank_center_frequencies() - frequency)))
    assert band == nearest


# --------------------------------------------------------------------------- module


def test_config_hop_and_dict_round_trip() -> None:
    config = FrontEndConfig()
    assert config.hop == pytest.approx(704.4728434504792, abs=1e-12)
    assert FrontEndConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["fps"] == 31.3
    with pytest.raises(RobustmerError, match="unknown"):
        FrontEndConfig.from_dict({**config.to_dict(), "window": "hann"})
    with pytest.raises(RobustmerError, match="missing"):
        FrontEndConfig.from_dict({k: v for k, v in config.to_dict().items() if k != "fps"})
    with pytest.raises(RobustmerError, match="fmin"):
        FrontEndConfig(fmin=20000.0)


@pytest.mark.parametrize(
    ("samples", "frames"),
    # hand-computed ceil(T / 704.4728...): 10 s -> 313 frames (docs/paper.md §3)
    [(1, 1), (704, 1), (705, 2), (2048, 3), (22050, 32), (220500, 313)],
)
def test_frame_count(samples: int, frames: int) -> None:
    assert num_frames(samples) == frames
    wave = torch.zeros(samples, dtype=torch.float64)
    wave[0] = 1.0
    assert LogFilteredSpectrogram()(wave).shape == (frames, 149)


def test_module_matches_numpy_reference_and_frame_positions() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(9000)  # 13 frames, the last ones zero-padded
    ours = LogFilteredSpectrogram()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, _numpy_reference(x), rtol=0, atol=1e-12)
    starts = LogFilteredSpectrogram().frame_starts(9000).tolist()
    assert starts[:4] == [0, 704, 1408, 2113]  # floor(i * 704.4728...)


def test_batched_equals_per_clip_and_dtypes() -> None:
    generator = torch.Generator().manual_seed(1)
    waves = torch.randn(3, 5000, generator=generator, dtype=torch.float64)  # [B, T]
    frontend = LogFilteredSpectrogram()
    batched = frontend(waves)  # [3, 8, 149]
    assert batched.shape == (3, 8, 149)
    for i in range(3):
        torch.testing.assert_close(batched[i], frontend(waves[i]), rtol=0, atol=1e-12)
    batched32 = frontend(waves.float())
    assert batched32.dtype == torch.float32
    torch.testing.assert_close(batched32.double(), batched, rtol=0, atol=1e-4)


def test_rejects_bad_input() -> None:
    frontend = LogFilteredSpectrogram()
    with pytest.raises(RobustmerError, match="expected"):
        frontend(torch.zeros(1, 2, 3000))
    with pytest.raises(RobustmerError, match="float"):
        frontend(torch.zeros(3000, dtype=torch.int64))


# torch's forward-mode AD loads jit-scripted decompositions, which warn on torch >= 2.9
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_gradient_matches_finite_differences() -> None:
    generator = torch.Generator().manual_seed(2)
    wave = torch.randn(1, 1500, generator=generator, dtype=torch.float64)  # 3 frames
    wave.requires_grad_(True)
    frontend = LogFilteredSpectrogram()
    weights = torch.randn(3, 149, generator=generator, dtype=torch.float64)

    # scalar projection keeps gradcheck to one backward pass and 3000 forward passes
    def projected(w: torch.Tensor) -> torch.Tensor:
        return (frontend(w)[0] * weights).sum()

    assert torch.autograd.gradcheck(projected, (wave,), eps=1e-6, atol=1e-6, rtol=1e-4)
    # whole Jacobian columns d spec / d wave[j] (all 3 x 149 outputs): forward-mode AD vs
    # central differences
    base = wave.detach()
    for j in (1, 700, 1499):  # sample 0 only meets the Hann window zero: derivative 0
        tangent = torch.zeros_like(base)
        tangent[0, j] = 1.0
        _, column = torch.func.jvp(frontend, (base,), (tangent,))  # [1, 3, 149]
        h = 1e-6
        numeric = (frontend(base + h * tangent) - frontend(base - h * tangent)) / (2 * h)
        torch.testing.assert_close(column, numeric, rtol=1e-5, atol=1e-7)
        assert column.abs().max() > 0


def test_gradient_reaches_float32_waveform() -> None:
    wave = torch.randn(2, 3000).requires_grad_(True)  # [B, T]
    LogFilteredSpectrogram()(wave).sum().backward()
    assert wave.grad is not None and wave.grad.shape == (2, 3000)
    assert torch.all(torch.isfinite(wave.grad)) and wave.grad.abs().sum() > 0


# --------------------------------------------------------------------------- normalisation


def test_normalization_round_trip_numpy_and_torch() -> None:
    norm = Normalization(mean=0.7, std=0.25)
    x = np.linspace(0.0, 2.0, 11)
    np.testing.assert_allclose(norm.normalize(x), (x - 0.7) / 0.25)
    np.testing.assert_allclose(norm.denormalize(norm.normalize(x)), x, atol=1e-15)
    # to_magnitude inverts log10(1 + X) after denormalising
    magnitude = np.array([0.0, 1e-9, 0.5, 9.0, 99.0])
    z = norm.normalize(np.log1p(magnitude) / math.log(10.0))
    # absolute accuracy ~1e-16 in the log domain (the mean offset limits tiny magnitudes)
    np.testing.assert_allclose(norm.to_magnitude(z), magnitude, rtol=1e-12, atol=1e-15)
    assert norm.to_magnitude(norm.normalize(math.log10(2.0))) == pytest.approx(1.0)
    zt = torch.from_numpy(z).requires_grad_(True)
    mt = norm.to_magnitude(zt)
    assert isinstance(mt, torch.Tensor)
    np.testing.assert_allclose(mt.detach().numpy(), magnitude, rtol=1e-12, atol=1e-15)
    mt.sum().backward()  # d/dz 10**(z*std+mean) = ln10 * std * 10**(...)
    expected = math.log(10.0) * 0.25 * (1.0 + magnitude)
    np.testing.assert_allclose(zt.grad.numpy(), expected, rtol=1e-12)
    assert Normalization.from_dict(norm.to_dict()) == norm
    with pytest.raises(RobustmerError, match="mean"):
        Normalization.from_dict({"mean": 1.0})
    with pytest.raises(RobustmerError, match="std"):
        Normalization(mean=0.0, std=0.0)


def test_normalization_from_spectrograms_matches_concatenation() -> None:
    rng = np.random.default_rng(3)
    specs = [rng.random((n, 149)) * 2 + 5 for n in (10, 37, 1)]
    norm = Normalization.from_spectrograms(iter(specs))
    values = np.concatenate([s.ravel() for s in specs])
    assert norm.mean == pytest.approx(values.mean(), rel=1e-13)
    assert norm.std == pytest.approx(values.std(), rel=1e-12)
    with pytest.raises(RobustmerError, match="no spectrogram"):
        Normalization.from_spectrograms([])


# --------------------------------------------------------------------------- decoding


def test_load_audio_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RobustmerError, match="nothere.wav"):
        load_audio(tmp_path / "nothere.wav")


def test_load_audio_garbage(tmp_path: Path) -> None:
    path = tmp_path / "garbage.wav"
    path.write_bytes(np.random.default_rng(4).bytes(5000))
    with pytest.raises(RobustmerError, match=r"garbage\.wav: not a decodable audio file"):
        load_audio(path)


def test_load_audio_silence(tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros((SR, 2)), SR, subtype="FLOAT")
    with pytest.raises(RobustmerError, match=r"silence\.wav.*silent"):
        load_audio(path)


def test_load_audio_too_short(tmp_path: Path) -> None:
    path = tmp_path / "tiny.wav"
    sf.write(path, np.full(100, 0.5), SR, subtype="FLOAT")
    with pytest.raises(RobustmerError, match=r"tiny\.wav.*shorter than one frame"):
        load_audio(path)
    # 100 loud samples inside 5000 zeros: still too short once the zeros are stripped
    padded = tmp_path / "padded.wav"
    sf.write(padded, np.concatenate([np.zeros(2500), np.full(100, 0.5), np.zeros(2400)]), SR)
    with pytest.raises(RobustmerError, match=r"padded\.wav.*shorter than one frame"):
        load_audio(padded)
    assert len(load_audio(padded, min_samples=100)) == 100


def test_load_audio_normalises_and_trims(tmp_path: Path) -> None:
    path = tmp_path / "clip.wav"
    body = 0.25 * np.cos(2 * np.pi * 300 * np.arange(4000) / SR)
    sf.write(path, np.concatenate([np.zeros(123), body, np.zeros(45)]), SR, subtype="DOUBLE")
    samples = load_audio(path)
    assert samples.dtype == np.float64
    np.testing.assert_allclose(samples, body / np.max(np.abs(body)), atol=1e-15)


def _faded_cosine(frequency: float, seconds: float, rate: int) -> np.ndarray:
    """Unit cosine with 20 ms raised-cosine fades, so resampling adds no edge overshoot."""
    n = int(round(seconds * rate))
    fade = int(0.02 * rate)
    envelope = np.ones(n)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)
    envelope[:fade], envelope[n - fade :] = ramp, ramp[::-1]
    return envelope * np.cos(2 * np.pi * frequency * np.arange(n) / rate)


def test_decode_flac_44k_stereo(tmp_path: Path) -> None:
    path = tmp_path / "stereo.flac"
    left = 0.4 * _faded_cosine(440.0, 2.0, 44100)  # 2 s at 44.1 kHz
    sf.write(path, np.stack([left, np.zeros_like(left)], axis=1), 44100, subtype="PCM_24")
    samples = load_audio(path)
    assert abs(len(samples) - 2 * SR) <= 2
    # mono mix = 0.2 * cosine, resampled to 22050 Hz and peak-normalised back to ~1
    expected = _faded_cosine(440.0, 2.0, SR)
    expected /= np.max(np.abs(expected))
    assert np.max(np.abs(samples[:1000] - expected[:1000])) < 1e-3
    assert np.max(np.abs(samples[-1000:] - expected[len(samples) - 1000 : len(samples)])) < 1e-3
    assert np.max(np.abs(samples)) == 1.0


def test_decode_mp3(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp3"
    t = np.arange(3 * 44100) / 44100  # 3 s
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440 * t + 0.3), 44100, format="MP3")
    samples = load_audio(path)
    # MP3 encoder delay and padding add a few tens of milliseconds at most
    assert abs(len(samples) / SR - 3.0) < 0.08
    assert np.max(np.abs(samples)) == 1.0
    spec = spectrogram_from_file(path)
    assert spec.shape == (num_frames(len(samples)), 149)
    band = int(spec.mean(dim=0).argmax())
    assert band == int(np.argmin(np.abs(filterbank_center_frequencies() - 440.0)))
