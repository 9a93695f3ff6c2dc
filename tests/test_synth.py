"""Tests of the synthetic data set generator (robustmer.data.synth; docs/paper.md §2)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from robustmer.data import synth as S
from robustmer.errors import RobustmerError
from robustmer.names import EMOTIONS, MIDLEVEL_FEATURES

SR = 22050
NATURAL_MINOR = {0, 2, 3, 5, 7, 8, 10}
MAJOR = {0, 2, 4, 5, 7, 9, 11}
LABELS = {
    "HAPPY", "SAD", "TENDER", "FEAR", "ANGER", "HIGH VALENCE", "LOW VALENCE",
    "HIGH ENERGY", "LOW ENERGY", "HIGH TENSION", "LOW TENSION",
}  # fmt: skip


def latents(**values: float) -> np.ndarray:
    """All eleven latents at 0.5 except those given by name."""
    z = np.full(len(S.LATENTS), 0.5)
    for name, v in values.items():
        z[S.LATENTS.index(name)] = v
    return z


def compose(z: np.ndarray, seed: int, seconds: float = 8.0) -> S.Score:
    return S.compose(z, seconds, np.random.default_rng([seed, 99]))


def render(z: np.ndarray, seed: int, seconds: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng([seed, 99])
    return S.render(S.compose(z, seconds, rng), SR, rng)


def power_spectrogram(y: np.ndarray, n: int = 2048, hop: int = 512) -> np.ndarray:
    frames = np.lib.stride_tricks.sliding_window_view(y, n)[::hop] * np.hanning(n)
    return np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-12  # [frames, bins]


def spectral_flatness(y: np.ndarray) -> float:
    """Mean over frames of geometric / arithmetic mean of the power spectrum (no DC)."""
    p = power_spectrogram(y)[:, 1:]
    return float(np.mean(np.exp(np.mean(np.log(p), axis=1)) / np.mean(p, axis=1)))


def chroma(y: np.ndarray) -> np.ndarray:
    """Energy per pitch class (0 = C) between 80 Hz and 2 kHz, summing to 1."""
    p = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(y.size, 1.0 / SR)
    sel = (f > 80) & (f < 2000)
    pc = np.round(12 * np.log2(f[sel] / 440.0) + 69).astype(int) % 12
    c = np.bincount(pc, p[sel], 12)
    return c / c.sum()


def score_pitch_classes(score: S.Score) -> list[set[int]]:
    """Pitch classes relative to each bar's key, for melody, chords and bass together."""
    bar_seconds = 16 * 60.0 / score.bpm / 4
    out = [set() for _ in score.bar_key]
    for voice in score.voices.values():
        for onset, row in zip(voice.onset, voice.pitch, strict=True):
            bar = min(int((onset + 1e-6) // bar_seconds), len(out) - 1)
            for p in row[~np.isnan(row)]:
                out[bar].add(int(round(p)) % 12)
    return [{(pc - int(k)) % 12 for pc in pcs} for pcs, k in zip(out, score.bar_key, strict=True)]


# --------------------------------------------------------------------------------------------
# the files on disk
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "data"
    summary = S.generate_synthetic(out, clips=6, seconds=3.0, seed=0)
    return out, summary


def test_summary_and_layout(dataset):
    out, summary = dataset
    assert summary["clips"] == 6 and summary["seconds_of_audio"] == pytest.approx(18.0)
    assert Path(summary["ratings_csv"]) == out / "soundtracks" / "mean_ratings_set1.csv"
    assert Path(summary["metadata_csv"]) == out / "midlevel" / "metadata.csv"
    assert Path(summary["annotations_csv"]) == out / "midlevel" / "annotations.csv"
    names = sorted(p.name for p in (out / "soundtracks" / "Set1").iterdir())
    assert names == [f"{k:03d}.mp3" for k in range(1, 7)]
    # no temporary files left behind by the atomic writes
    assert not [p for p in out.rglob(".*") if p.is_file()]


def test_ratings_csv_format(dataset):
    out, _ = dataset
    lines = (out / "soundtracks" / "mean_ratings_set1.csv").read_text().splitlines()
    assert lines[0] == "number,valence,energy,tension,anger,fear,happy,sad,tender,TARGET"
    assert len(lines) == 7
    for k, line in enumerate(lines[1:], start=1):
        fields = line.split(",")
        assert len(fields) == 10
        assert fields[0] == f"{k:03d}"
        for v in fields[1:9]:
            assert re.fullmatch(r"\d\.\d\d", v), v
            assert 1.0 <= float(v) <= 9.0
        assert fields[9] in LABELS


def test_ratings_follow_documented_formula(dataset):
    """Hand-evaluate 5 + 4 tanh(b + W (z - 0.5) + 0.2 noise) for every clip."""
    out, _ = dataset
    w = np.array(S.EMOTION_COEFFICIENTS)
    b = np.array(S.EMOTION_BIAS)
    with open(out / "soundtracks" / "mean_ratings_set1.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6
    for row in rows:
        k = int(row["number"])
        z = S.draw_latents(0, k)
        noise = np.random.default_rng([0, k, 1]).standard_normal(8)
        expected = [
            5 + 4 * np.tanh(b[e] + sum(w[e, j] * (z[j] - 0.5) for j in range(11)) + 0.2 * noise[e])
            for e in range(8)
        ]
        got = [float(row[e]) for e in EMOTIONS]
        np.testing.assert_allclose(got, expected, atol=0.005 + 1e-9)


def test_midlevel_csv_format(dataset):
    out, _ = dataset
    meta_lines = (out / "midlevel" / "metadata.csv").read_text().splitlines()
    assert meta_lines[0] == "song id;Source;ID at file source;Title;Genre;Duration"
    meta = [line.split(";") for line in meta_lines[1:]]
    assert all(len(r) == 6 for r in meta)
    assert len(meta) == 6 + len(S.OTHER_SOURCES)
    st = {int(r[2]): int(r[0]) for r in meta if r[1] == "soundtracks"}
    assert sorted(st) == [1, 2, 3, 4, 5, 6]
    assert any(sid != k for k, sid in st.items())  # alignment must go through the metadata
    assert {r[1] for r in meta} >= {"soundtracks", "jamendo", "magnatagatune"}
    # another source reuses ID 1, so a loader must filter by Source
    assert any(r[1] != "soundtracks" and r[2] == "1" for r in meta)

    ann_lines = (out / "midlevel" / "annotations.csv").read_text().splitlines()
    assert ann_lines[0] == (
        "song_id,melodiousness,articulation,rhythm_complexity,rhythm_stability,"
        "dissonance,tonal_stability,minorness"
    )
    ann = {int(line.split(",")[0]): line.split(",")[1:] for line in ann_lines[1:]}
    assert set(ann) == {int(r[0]) for r in meta}
    for values in ann.values():
        assert len(values) == 7
        for v in values:
            assert re.fullmatch(r"\d\.\d{3}", v), v
            assert 1.0 <= float(v) <= 9.0
    # annotations = 1 + 8 z + 0.5 noise, clipped to [1, 9]
    for k, sid in st.items():
        z = S.draw_latents(0, k)[:7]
        noise = np.random.default_rng([0, k, 2]).standard_normal(7)
        expected = np.clip(1 + 8 * z + 0.5 * noise, 1, 9)
        np.testing.assert_allclose([float(v) for v in ann[sid]], expected, atol=5e-4 + 1e-9)


def test_loader_reads_generated_files(dataset):
    from robustmer.data.loader import load_soundtracks, read_midlevel

    out, _ = dataset
    st = load_soundtracks(out / "soundtracks")
    assert st.ids == [1, 2, 3, 4, 5, 6]
    assert st.ratings.shape == (6, 8)
    mid = read_midlevel(out / "midlevel", st.ids)
    assert sorted(mid) == [1, 2, 3, 4, 5, 6]
    for k in st.ids:  # the Soundtracks row, not the colliding jamendo row with ID 1
        noise = np.random.default_rng([0, k, 2]).standard_normal(7)
        expected = np.clip(1 + 8 * S.draw_latents(0, k)[:7] + 0.5 * noise, 1, 9)
        np.testing.assert_allclose(mid[k], expected, atol=5e-4 + 1e-9)


def test_mp3_clips_decode(dataset):
    out, _ = dataset
    y, sr = sf.read(out / "soundtracks" / "Set1" / "003.mp3")
    assert sr == SR and y.ndim == 1
    assert abs(y.size - 3 * SR) < 0.05 * SR  # encoder padding only
    peak_db = 20 * np.log10(np.max(np.abs(y)))
    assert -2.0 < peak_db < 0.0  # peak-normalised to -1 dBFS (mp3 ringing: +-1 dB)


def test_deterministic_and_seed_dependent(tmp_path):
    def gen(name: str, seed: int, clips: int = 3, fmt: str = "wav") -> Path:
        S.generate_synthetic(tmp_path / name, clips=clips, seconds=2.0, seed=seed, audio_format=fmt)
        return tmp_path / name

    a, b, c = gen("a", 5), gen("b", 5), gen("c", 6)
    files = [
        "soundtracks/mean_ratings_set1.csv",
        "midlevel/metadata.csv",
        "midlevel/annotations.csv",
        "soundtracks/Set1/001.wav",
        "soundtracks/Set1/003.wav",
    ]
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
        assert (a / f).read_bytes() != (c / f).read_bytes(), f
    # clip n does not depend on how many clips are generated
    d = gen("d", 5, clips=2)
    assert (d / "soundtracks/Set1/001.wav").read_bytes() == (a / files[3]).read_bytes()
    # mp3: the decoded samples are identical, too
    e, f = gen("e", 5, 1, "mp3"), gen("f", 5, 1, "mp3")
    ya, _ = sf.read(e / "soundtracks/Set1/001.mp3")
    yb, _ = sf.read(f / "soundtracks/Set1/001.mp3")
    np.testing.assert_array_equal(ya, yb)
    # the thread count changes nothing
    S.generate_synthetic(
        tmp_path / "g", clips=3, seconds=2.0, seed=5, audio_format="wav", workers=1
    )
    assert (tmp_path / "g" / files[4]).read_bytes() == (a / files[4]).read_bytes()


def test_wav_matches_render(tmp_path):
    S.generate_synthetic(tmp_path, clips=2, seconds=2.0, seed=3, audio_format="flac")
    y, sr = sf.read(tmp_path / "soundtracks" / "Set1" / "002.flac")
    ref = S.synthesize_clip(3, 2, 2.0, SR)
    assert sr == SR and y.shape == ref.shape == (2 * SR,)
    np.testing.assert_allclose(y, ref, atol=1.0 / 2**15)  # 16-bit quantisation
    assert np.max(np.abs(ref)) == pytest.approx(10 ** (-1 / 20), rel=1e-6)


def test_stale_clips_removed(tmp_path):
    S.generate_synthetic(tmp_path, clips=3, seconds=2.0, seed=0, audio_format="wav")
    (tmp_path / "soundtracks" / "Set1" / "notes.txt").write_text("keep me")
    S.generate_synthetic(tmp_path, clips=2, seconds=2.0, seed=0, audio_format="flac")
    names = sorted(p.name for p in (tmp_path / "soundtracks" / "Set1").iterdir())
    assert names == ["001.flac", "002.flac", "notes.txt"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"clips": 0},
        {"clips": 1000},
        {"clips": 2.5},
        {"seconds": 1.0},
        {"seconds": float("nan")},
        {"seed": -1},
        {"audio_format": "ogg"},
        {"audio_format": "mp3", "sample_rate": 44000},
        {"workers": 0},
    ],
)
def test_invalid_arguments(tmp_path, kwargs):
    with pytest.raises(RobustmerError, match=r"expected"):
        S.generate_synthetic(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------------------------
# ratings and labels (pure functions)
# --------------------------------------------------------------------------------------------


def test_target_label_hand_cases():
    r = np.full(8, 5.0)
    r[EMOTIONS.index("sad")] = 8.0
    r[EMOTIONS.index("valence")] = 2.5  # |2.5| < 3: sad wins
    assert S.target_label(r) == "SAD"
    r[EMOTIONS.index("valence")] = 1.5  # |3.5| > 3: low valence wins
    assert S.target_label(r) == "LOW VALENCE"
    r = np.full(8, 5.0)
    r[EMOTIONS.index("happy")] = 1.2  # discrete emotions count only upwards
    r[EMOTIONS.index("energy")] = 6.0
    assert S.target_label(r) == "HIGH ENERGY"


def test_ratings_recover_documented_coefficients():
    """Over 200 draws, regress atanh((r - 5) / 4) on the latents: the slopes are W, the
    intercepts b + 0.5 W 1 ... i.e. recover the documented matrix within sampling error."""
    rng = np.random.default_rng(123)
    z = rng.random((200, 11))
    ratings = S.emotion_ratings(z, rng.standard_normal((200, 8)))
    assert ratings.shape == (200, 8) and np.all((ratings > 1) & (ratings < 9))
    arg = np.arctanh((ratings - 5.0) / 4.0)  # [200, 8]
    x = np.c_[np.ones(200), z - 0.5]
    coef = np.linalg.lstsq(x, arg, rcond=None)[0]  # [12, 8]
    w = np.array(S.EMOTION_COEFFICIENTS)
    np.testing.assert_allclose(coef[1:].T, w, atol=0.2)  # SE about 0.05
    np.testing.assert_allclose(coef[0], S.EMOTION_BIAS, atol=0.08)
    # the residual has the documented noise level
    resid = arg - x @ coef
    assert np.std(resid) == pytest.approx(S.EMOTION_NOISE_STD, rel=0.15)


def test_ratings_correlate_with_drivers():
    rng = np.random.default_rng(7)
    z = rng.random((200, 11))
    r = S.emotion_ratings(z, rng.standard_normal((200, 8)))
    w = np.array(S.EMOTION_COEFFICIENTS)

    def corr(a, b):
        return float(np.corrcoef(a, b)[0, 1])

    for e in range(8):
        j = int(np.argmax(np.abs(w[e])))  # the strongest driver
        c = corr(r[:, e], z[:, j])
        assert np.sign(c) == np.sign(w[e, j]) and abs(c) > 0.3, (EMOTIONS[e], S.LATENTS[j], c)
    col = {e: r[:, i] for i, e in enumerate(EMOTIONS)}
    minor = z[:, S.LATENTS.index("minorness")]
    tempo = z[:, S.LATENTS.index("tempo")]
    assert corr(col["valence"], minor) < -0.4
    assert corr(col["energy"], tempo) > 0.4
    # plausible inter-emotion structure, as in the real set
    assert corr(col["valence"], col["sad"]) < -0.3
    assert corr(col["tension"], col["tender"]) < -0.5
    assert corr(col["valence"], col["happy"]) > 0.6
    assert corr(col["anger"], col["fear"]) > 0.3


def test_midlevel_explains_part_not_all():
    """Linear R^2 of energy from the mid-level latents alone is well below that from all."""
    z = np.stack([S.draw_latents(1, k) for k in range(1, 401)])
    r = S.emotion_ratings(z)[:, EMOTIONS.index("energy")]

    def r2(x):
        x1 = np.c_[np.ones(len(x)), x]
        p = x1 @ np.linalg.lstsq(x1, r, rcond=None)[0]
        return 1 - np.sum((r - p) ** 2) / np.sum((r - r.mean()) ** 2)

    assert r2(z[:, :7]) < 0.6 < 0.9 < r2(z)


def test_latent_draws():
    z = np.stack([S.draw_latents(0, k) for k in range(1, 801)])
    assert np.all((z >= 0) & (z <= 1))
    np.testing.assert_allclose(z.mean(axis=0), 0.5, atol=0.04)  # uniform marginals
    np.testing.assert_allclose(z.std(axis=0), np.sqrt(1 / 12), atol=0.03)
    c = np.corrcoef(z.T)
    i, j = MIDLEVEL_FEATURES.index("dissonance"), MIDLEVEL_FEATURES.index("tonal_stability")
    assert -0.55 < c[i, j] < -0.25  # copula correlation -0.4 (slightly less on uniforms)
    assert abs(c[S.LATENTS.index("tempo"), S.LATENTS.index("register")]) < 0.1


def test_annotate_midlevel():
    z = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 0.1, 0.9])
    np.testing.assert_allclose(S.annotate_midlevel(z), [1, 3, 5, 7, 9, 1.8, 8.2])
    noisy = S.annotate_midlevel(z, np.full(7, 2.0))  # +1 on the scale, then clipped
    np.testing.assert_allclose(noisy, [2, 4, 6, 8, 9, 2.8, 9])


def test_docs_table_matches_constants():
    doc = Path(__file__).resolve().parents[1] / "docs" / "synthetic.md"
    text = doc.read_text()
    w = np.array(S.EMOTION_COEFFICIENTS)
    for e, name in enumerate(EMOTIONS):
        m = re.search(rf"^\|\s*{name}\s*\|(.*)\|\s*$", text, re.MULTILINE)
        assert m, name
        cells = [c.strip() for c in m.group(1).split("|")]
        values = [float(c.replace("−", "-")) for c in cells]
        np.testing.assert_allclose(values, [*w[e], S.EMOTION_BIAS[e]], err_msg=name)


# --------------------------------------------------------------------------------------------
# the audio is music, and each latent is audible
# --------------------------------------------------------------------------------------------


def test_clip_is_music_not_noise():
    y = S.synthesize_clip(0, 1, 4.0, SR)
    noise = np.random.default_rng(0).standard_normal(y.size)
    assert spectral_flatness(noise) > 0.5
    assert spectral_flatness(y) < 0.05
    # strong harmonic peaks: the 1 % strongest bins hold most of the energy
    p = power_spectrogram(y).mean(axis=0)
    top = np.sort(p)[::-1][: p.size // 100]
    assert top.sum() / p.sum() > 0.5


def test_minorness_sets_the_mode_of_all_notes():
    for seed in range(5):
        for minor, scale in ((1.0, NATURAL_MINOR), (0.0, MAJOR)):
            score = compose(latents(minorness=minor, tonal_stability=1.0, dissonance=0.0), seed)
            assert np.all(score.bar_key == score.bar_key[0])  # no modulation when stable
            assert np.all(score.bar_minor == bool(minor))
            for pcs in score_pitch_classes(score):
                assert pcs <= scale, (seed, minor, pcs)


def test_minorness_audible_in_chroma():
    ratios = {}
    for minor in (0.0, 1.0):
        c = np.zeros(12)
        for seed in range(4):
            z = latents(minorness=minor, tonal_stability=1.0, dissonance=0.0)
            rng = np.random.default_rng([seed, 99])
            score = S.compose(z, 4.0, rng)
            c += np.roll(chroma(S.render(score, SR, rng)), -int(score.bar_key[0]))
        ratios[minor] = c[3] / c[4]  # minor third over major third above the tonic
    assert ratios[1.0] > 3.0 and ratios[0.0] < 1 / 3.0, ratios


def test_tonal_instability_adds_chromatic_notes_and_modulations():
    out_of_key = modulations = 0
    for seed in range(6):
        score = compose(latents(tonal_stability=0.0, minorness=0.0, dissonance=0.0), seed, 12.0)
        out_of_key += sum(len(pcs - MAJOR) for pcs in score_pitch_classes(score))
        modulations += int(np.sum(score.bar_key[1:] != score.bar_key[:-1]))
        frac = score.melody_chromatic.mean()
        assert 0.05 < frac < 0.6  # expected 0.3
    assert out_of_key > 10 and modulations >= 3


def test_articulation_sets_the_gate():
    """Melody gate = max((1.05 - 0.85 a) x inter-onset interval, 30 ms) (notes < 1 bar)."""
    for art in (0.0, 1.0):
        score = compose(latents(articulation=art, rhythm_stability=1.0), 0)
        mel = score.voices["melody"]
        ioi = np.diff(mel.onset)
        ok = ioi < 1.0
        assert ok.sum() > 10
        expected = np.maximum((1.05 - 0.85 * art) * ioi[ok], 0.03)
        np.testing.assert_allclose(mel.gate[:-1][ok], expected, rtol=1e-9)


def test_rhythm_stability_and_tempo():
    tempo = 0.3  # 90 bpm
    sixteenth = 60.0 / 90.0 / 4
    stable = compose(latents(tempo=tempo, rhythm_stability=1.0), 1)
    assert stable.bpm == pytest.approx(90.0)
    onsets = stable.drums[0] / sixteenth
    np.testing.assert_allclose(onsets, np.round(onsets), atol=1e-6)  # exactly on the grid
    loose = compose(latents(tempo=tempo, rhythm_stability=0.0), 1)
    dev = loose.drums[0] - np.round(loose.drums[0] / sixteenth) * sixteenth
    assert np.std(dev) > 0.015  # jitter (30 ms) and tempo drift


def test_rhythm_complexity_syncopates():
    def positions(rcx: float) -> np.ndarray:
        pos = []
        for seed in range(4):
            score = compose(latents(rhythm_complexity=rcx, rhythm_stability=1.0), seed)
            pos.append(np.round(score.voices["melody"].onset / (60.0 / score.bpm / 4)))
        return np.concatenate(pos).astype(int)  # sixteenth-grid positions of melody onsets

    simple, complex_ = positions(0.0), positions(1.0)
    assert np.all(simple % 2 == 0)  # only beats and eighth off-beats: no sixteenths
    assert np.mean(complex_ % 2 == 1) > 0.25
    assert np.mean(simple % 4 != 0) < 0.4 < 0.6 < np.mean(complex_ % 4 != 0)


def test_melodiousness_controls_leaps():
    def mean_interval(mel: float) -> float:
        steps = []
        for seed in range(5):
            p = compose(latents(melodiousness=mel, tonal_stability=1.0), seed).voices["melody"]
            steps.append(np.abs(np.diff(p.pitch[:, 0])))
        return float(np.mean(np.concatenate(steps)))

    assert mean_interval(1.0) < 3.0 < 5.0 < mean_interval(0.0)


def test_dissonance_adds_tensions_and_detuning():
    def stats(dis: float) -> tuple[float, float]:
        widths, detune = [], []
        for seed in range(5):
            ch = compose(latents(dissonance=dis), seed).voices["chords"].pitch
            widths.append(np.mean(np.sum(~np.isnan(ch), axis=1)))
            v = ch[~np.isnan(ch)]
            detune.append(np.mean(np.abs(v - np.round(v))))
        return float(np.mean(widths)), float(np.mean(detune))

    (w0, d0), (w1, d1) = stats(0.0), stats(1.0)
    assert d0 == 0.0 and d1 > 0.1  # up to a quarter tone of detuning
    assert w0 == pytest.approx(3.0) and w1 > 4.0  # triads vs 7ths, 9ths and clusters


def test_cues_are_audible():
    def rms_db(y):
        return 10 * np.log10(np.mean(y.astype(np.float64) ** 2))

    def centroid(y):
        p = np.abs(np.fft.rfft(y)) ** 2
        return float(np.sum(p * np.fft.rfftfreq(y.size, 1 / SR)) / np.sum(p))

    # same composition, only the cue differs
    assert rms_db(render(latents(loudness=1.0), 2)) > rms_db(render(latents(loudness=0.0), 2)) + 3
    assert centroid(render(latents(brightness=1.0), 2)) > 1.2 * centroid(
        render(latents(brightness=0.0), 2)
    )
    low = np.median(compose(latents(register=0.0), 2).voices["melody"].pitch)
    high = np.median(compose(latents(register=1.0), 2).voices["melody"].pitch)
    assert high - low > 18  # two octaves apart in the latent's range
    assert compose(latents(tempo=1.0), 2).bpm == pytest.approx(160.0)
    assert compose(latents(tempo=0.0), 2).bpm == pytest.approx(60.0)
