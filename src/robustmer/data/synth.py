"""The built-in synthetic data set: music clips with known emotion and mid-level ground truth.

Neither Soundtracks Set 1 (Eerola & Vuoskoski 2011) nor the mid-level feature data set
(Aljanaki & Soleymani 2018) can be downloaded on the project's machines, so this module writes a
stand-in *in exactly their on-disk formats* (docs/paper.md §2; Hoedt, Flexer & Widmer, SMC 2025,
arXiv 2508.03780, Sect. 3):

* ``OUT/soundtracks/mean_ratings_set1.csv`` and ``OUT/soundtracks/Set1/NNN.mp3``;
* ``OUT/midlevel/metadata.csv`` (``;``-separated) and ``OUT/midlevel/annotations.csv``.

Each clip is rendered music (chord progression, melody, bass and drums with ADSR envelopes and a
few additive/FM timbres). Per clip, seven mid-level latents in [0, 1] each drive an audible
musical parameter, and four further cues (tempo, loudness, brightness, register) shape the sound
outside the mid-level vocabulary. The eight emotion ratings are a documented noisy function of all
eleven latents (:data:`EMOTION_COEFFICIENTS`), so mid-level features explain a good part of them
but not all. The generative model is described in ``docs/synthetic.md``.

Everything is a deterministic function of ``seed`` and the clip number: clip ``n`` of a data set
is identical whatever the total number of clips.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robustmer._io import atomic_open, atomic_path
from robustmer.errors import RobustmerError
from robustmer.names import EMOTIONS, MIDLEVEL_FEATURES
from robustmer.progress import progress_bar

log = logging.getLogger(__name__)

SYNTH_VERSION = 1
"""Version of the generative model; bumped whenever the same seed would give other data."""

CUES: tuple[str, ...] = ("tempo", "loudness", "brightness", "register")
"""Latent cues outside the mid-level vocabulary (each in [0, 1])."""

LATENTS: tuple[str, ...] = (*MIDLEVEL_FEATURES, *CUES)
"""All eleven per-clip latents: the seven mid-level features, then the four cues."""

# Rows: emotions (robustmer.names.EMOTIONS order); columns: LATENTS order, i.e.
# melodiousness articulation rhythm_complexity rhythm_stability dissonance tonal_stability
# minorness | tempo loudness brightness register. Applied to the centred latents (z - 0.5).
EMOTION_COEFFICIENTS: tuple[tuple[float, ...], ...] = (
    # mel   art   rcx   rst   dis   ton   min | tempo loud bright  reg
    (+0.6, +0.0, +0.0, +0.2, -0.7, +0.4, -1.1, +0.4, +0.0, +0.4, +0.3),  # valence
    (+0.0, +0.7, +0.6, +0.0, +0.2, +0.0, +0.0, +1.0, +0.8, +0.4, +0.1),  # energy
    (-0.4, +0.2, +0.3, -0.4, +1.0, -0.7, +0.4, +0.3, +0.4, +0.0, -0.3),  # tension
    (-0.4, +0.4, +0.4, +0.0, +0.8, -0.3, +0.3, +0.4, +0.8, +0.2, -0.4),  # anger
    (-0.5, +0.0, +0.2, -0.5, +0.7, -0.7, +0.6, +0.0, -0.1, -0.4, -0.4),  # fear
    (+0.4, +0.4, +0.2, +0.3, -0.6, +0.4, -1.1, +0.7, +0.2, +0.4, +0.4),  # happy
    (+0.2, -0.6, -0.3, +0.0, +0.2, -0.1, +1.0, -0.8, -0.4, -0.4, -0.1),  # sad
    (+0.7, -0.6, -0.4, +0.3, -0.8, +0.4, +0.0, -0.6, -0.7, +0.1, +0.2),  # tender
)
"""Emotion coefficient matrix W, shape [8 emotions, 11 latents] (see :func:`emotion_ratings`)."""

EMOTION_BIAS: tuple[float, ...] = (0.0, 0.0, 0.0, -0.3, 0.0, -0.1, 0.0, 0.0)
"""Emotion bias b, shape [8]; anger and happy sit a little lower, as in the real set."""

EMOTION_NOISE_STD = 0.2
"""Standard deviation of the Gaussian rating noise, in units of the tanh argument."""

MIDLEVEL_NOISE_STD = 0.5
"""Standard deviation of the annotator noise on the 1-9 mid-level scale."""

MIDLEVEL_CORRELATIONS: tuple[tuple[str, str, float], ...] = (
    ("melodiousness", "dissonance", -0.35),
    ("melodiousness", "tonal_stability", 0.35),
    ("dissonance", "tonal_stability", -0.4),
    ("rhythm_complexity", "rhythm_stability", -0.3),
    ("articulation", "rhythm_complexity", 0.2),
)
"""Pairwise correlations of the Gaussian copula the mid-level latents are drawn from."""

OTHER_SOURCES: tuple[tuple[str, str], ...] = (
    ("jamendo", "Electronic"),
    ("jamendo", "Rock"),
    ("jamendo", "Pop"),
    ("jamendo", "Jazz"),
    ("magnatagatune", "Classical"),
    ("magnatagatune", "Ambient"),
    ("magnatagatune", "Rock"),
    ("magnatagatune", "Folk"),
)
"""Non-Soundtracks rows added to the mid-level files (source, genre) to exercise filtering."""

RATINGS_HEADER = "number,valence,energy,tension,anger,fear,happy,sad,tender,TARGET"
METADATA_HEADER = "song id;Source;ID at file source;Title;Genre;Duration"
ANNOTATIONS_HEADER = "song_id," + ",".join(MIDLEVEL_FEATURES)
FIRST_SONG_ID = 1001
"""Mid-level ``song id`` of the first metadata row (ids run on from here in shuffled order)."""

AUDIO_FORMATS: dict[str, tuple[str, str]] = {
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
}
"""``audio_format`` -> (soundfile format, subtype)."""

MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
PEAK_DBFS = -1.0
"""Every clip is peak-normalised to this level."""

# Random streams of one clip: np.random.default_rng([seed, number, stream]).
_STREAM_LATENTS, _STREAM_RATINGS, _STREAM_ANNOTATION, _STREAM_AUDIO = 0, 1, 2, 3
_STREAM_OTHERS = 4  # used with number 0 (no clip has number 0)

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)  # natural minor (Aeolian)
_CHROMATIC_ROOTS = {False: (1, 3, 6, 8, 10), True: (1, 4, 6, 9, 11)}
"""Roots (semitones above the key) of out-of-key major triads, for major / minor bars."""

PROGRESSIONS: tuple[tuple[int, ...], ...] = (
    (0, 4, 5, 3),
    (0, 3, 4, 0),
    (0, 5, 3, 4),
    (0, 3, 0, 4),
    (5, 3, 0, 4),
    (0, 4, 5, 2, 3, 0, 3, 4),
)
"""Chord progressions as 0-based scale degrees; read in the bar's mode (I-V-vi-IV / i-v-VI-iv)."""

_TABLE = 4096  # wavetable length (power of two: phase wraps with a bit mask)
_HARMONIC_LEVELS = (1, 2, 3, 4, 6, 8, 12, 16, 24)
_SINE = np.sin(2.0 * np.pi * np.arange(_TABLE) / _TABLE).astype(np.float32)  # [_TABLE]
_SIXTEENTHS_PER_BAR = 16


# --------------------------------------------------------------------------------------------
# Latents, ratings and annotations (pure functions, no audio)
# --------------------------------------------------------------------------------------------


def _coefficients() -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(EMOTION_COEFFICIENTS, dtype=np.float64)  # [8, 11]
    b = np.asarray(EMOTION_BIAS, dtype=np.float64)  # [8]
    assert w.shape == (len(EMOTIONS), len(LATENTS)) and b.shape == (len(EMOTIONS),)
    return w, b


def _copula_factor() -> np.ndarray:
    """Cholesky factor of the mid-level latent correlation matrix, shape [7, 7]."""
    corr = np.eye(len(MIDLEVEL_FEATURES))
    for a, b, r in MIDLEVEL_CORRELATIONS:
        i, j = MIDLEVEL_FEATURES.index(a), MIDLEVEL_FEATURES.index(b)
        corr[i, j] = corr[j, i] = r
    return np.linalg.cholesky(corr)


def draw_latents(seed: int, number: int) -> np.ndarray:
    """Draw the eleven latents of one clip.

    Mid-level latents come from a Gaussian copula with the correlations of
    :data:`MIDLEVEL_CORRELATIONS` (uniform marginals on [0, 1]); the four cues are independent
    uniforms.

    Parameters
    ----------
    seed : int
        Data set seed (>= 0).
    number : int
        Set-1 clip number (1-999).

    Returns
    -------
    np.ndarray, shape (11,), float64
        Latents in [0, 1], in :data:`LATENTS` order.
    """
    rng = np.random.default_rng([seed, number, _STREAM_LATENTS])
    g = rng.standard_normal(len(LATENTS))  # [11]
    g[: len(MIDLEVEL_FEATURES)] = _copula_factor() @ g[: len(MIDLEVEL_FEATURES)]
    z = np.array([0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in g])  # [11], uniform
    assert z.shape == (len(LATENTS),) and np.all((z >= 0) & (z <= 1))
    return z


def emotion_ratings(latents: np.ndarray, noise: np.ndarray | None = None) -> np.ndarray:
    """Emotion ratings of clips from their latents (the synthetic ground truth).

    ``rating = 5 + 4 * tanh(b + W (z - 0.5) + EMOTION_NOISE_STD * noise)`` with ``W`` =
    :data:`EMOTION_COEFFICIENTS` and ``b`` = :data:`EMOTION_BIAS`, so ratings lie strictly
    inside the 1-9 scale of Soundtracks Set 1.

    Parameters
    ----------
    latents : np.ndarray, shape (n, 11) or (11,)
        Latents in [0, 1], :data:`LATENTS` order.
    noise : np.ndarray, shape (n, 8) or (8,), optional
        Standard-normal draws; ``None`` gives the noiseless ratings.

    Returns
    -------
    np.ndarray, shape (n, 8) or (8,), float64
        Ratings on the 1-9 scale, :data:`robustmer.names.EMOTIONS` order.
    """
    z = np.asarray(latents, dtype=np.float64)
    single = z.ndim == 1
    z = np.atleast_2d(z)  # [n, 11]
    if z.shape[1] != len(LATENTS):
        raise ValueError(f"latents: shape {z.shape}; expected (n, {len(LATENTS)})")
    w, b = _coefficients()
    arg = b + (z - 0.5) @ w.T  # [n, 8]
    if noise is not None:
        arg = arg + EMOTION_NOISE_STD * np.atleast_2d(np.asarray(noise, dtype=np.float64))
    ratings = 5.0 + 4.0 * np.tanh(arg)  # [n, 8]
    return ratings[0] if single else ratings


def annotate_midlevel(latents: np.ndarray, noise: np.ndarray | None = None) -> np.ndarray:
    """Annotated mid-level ratings: ``clip(1 + 8 z + MIDLEVEL_NOISE_STD * noise, 1, 9)``.

    Parameters
    ----------
    latents : np.ndarray, shape (..., 11) or (..., 7)
        Latents in [0, 1]; only the first seven (mid-level) are used.
    noise : np.ndarray, shape (..., 7), optional
        Standard-normal draws (annotator noise); ``None`` gives the noiseless values.

    Returns
    -------
    np.ndarray, shape (..., 7), float64
        Values on the 1-9 scale, :data:`robustmer.names.MIDLEVEL_FEATURES` order.
    """
    z = np.asarray(latents, dtype=np.float64)[..., : len(MIDLEVEL_FEATURES)]
    value = 1.0 + 8.0 * z
    if noise is not None:
        value = value + MIDLEVEL_NOISE_STD * np.asarray(noise, dtype=np.float64)
    return np.clip(value, 1.0, 9.0)


_DIMENSIONS = ("valence", "energy", "tension")


def target_label(ratings: np.ndarray) -> str:
    """TARGET label of a clip: its most extreme emotion, worded as in Soundtracks Set 1.

    The three dimensions count by their distance from the scale midpoint 5 in either direction
    (``HIGH VALENCE`` / ``LOW VALENCE`` ...); the five discrete emotions count only upwards
    (``HAPPY`` when happy is far above 5). Ties go to the first in EMOTIONS order.

    Parameters
    ----------
    ratings : np.ndarray, shape (8,)
        Ratings on the 1-9 scale.

    Returns
    -------
    str
    """
    r = np.asarray(ratings, dtype=np.float64)
    assert r.shape == (len(EMOTIONS),), r.shape
    scores = [
        abs(v - 5.0) if e in _DIMENSIONS else v - 5.0 for e, v in zip(EMOTIONS, r, strict=True)
    ]
    k = int(np.argmax(scores))
    name = EMOTIONS[k]
    if name in _DIMENSIONS:
        return f"{'HIGH' if r[k] >= 5.0 else 'LOW'} {name.upper()}"
    return name.upper()


# --------------------------------------------------------------------------------------------
# Composition: latents -> note events
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timbre:
    """A synthesiser voice.

    Attributes
    ----------
    name : str
    harmonics : callable
        ``harmonics(k, tilt)`` -> amplitudes of harmonics ``k`` (1-based int array).
    attack, decay, sustain, release : float
        ADSR (seconds, seconds, level 0-1, release time constant in seconds).
    decay_tau : float or None
        Exponential decay time constant of a struck/plucked tone (seconds), or None.
    fm : bool
        Render by two-operator FM (ratio 1:1) instead of the wavetable.
    """

    name: str
    harmonics: Callable[[np.ndarray, float], np.ndarray]
    attack: float
    decay: float
    sustain: float
    release: float
    decay_tau: float | None = None
    fm: bool = False


TIMBRES: dict[str, Timbre] = {
    "strings": Timbre(
        "strings", lambda k, tilt: k**-tilt, attack=0.08, decay=0.2, sustain=0.85, release=0.15
    ),
    "organ": Timbre(
        "organ",
        lambda k, tilt: np.where(np.isin(k, (1, 2, 3, 4, 6, 8)), 1.0, 0.15) * k**-tilt,
        attack=0.01,
        decay=0.05,
        sustain=0.95,
        release=0.05,
    ),
    "clarinet": Timbre(
        "clarinet",
        lambda k, tilt: np.where(k % 2 == 1, 1.0, 0.08) * k**-tilt,  # mostly odd harmonics
        attack=0.03,
        decay=0.1,
        sustain=0.8,
        release=0.08,
    ),
    "piano": Timbre(
        "piano",
        lambda k, tilt: k ** -(tilt + 0.4),
        attack=0.004,
        decay=0.1,
        sustain=0.7,
        release=0.12,
        decay_tau=0.9,
    ),
    "epiano": Timbre(
        "epiano",
        lambda k, tilt: k**-tilt,
        attack=0.003,
        decay=0.2,
        sustain=0.6,
        release=0.15,
        decay_tau=1.4,
        fm=True,
    ),
    "bass": Timbre(
        "bass", lambda k, tilt: k**-2.5, attack=0.01, decay=0.1, sustain=0.8, release=0.08
    ),
}
"""The voices, by name."""

MELODY_TIMBRES = ("piano", "epiano", "clarinet", "strings")
CHORD_TIMBRES = ("strings", "organ", "piano", "epiano")


@dataclass
class Voice:
    """Note events of one instrument part.

    Attributes
    ----------
    timbre : str
        Key of :data:`TIMBRES`.
    onset : np.ndarray, shape (n,)
        Onset times in seconds.
    gate : np.ndarray, shape (n,)
        Time until release, seconds.
    pitch : np.ndarray, shape (n, v)
        MIDI pitches (fractional: detuning), NaN-padded for events with fewer than v notes.
    velocity : np.ndarray, shape (n,)
        Linear amplitudes.
    gain : float
        Part level in the mix.
    """

    timbre: str
    onset: np.ndarray
    gate: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    gain: float


@dataclass
class Score:
    """A composed clip: parts, drum hits and the per-bar harmony.

    Attributes
    ----------
    seconds : float
        Clip length.
    bpm : float
        Nominal tempo, beats per minute.
    voices : dict of str to Voice
        ``melody``, ``chords``, ``bass``.
    drums : tuple of np.ndarray
        ``(onset [m] seconds, kind [m] 0 kick / 1 snare / 2 hat, velocity [m])``.
    bar_key : np.ndarray, shape (bars,)
        Key (tonic pitch class 0-11) of each bar.
    bar_minor : np.ndarray, shape (bars,)
        Whether each bar is in the minor mode.
    bar_chromatic : np.ndarray, shape (bars,)
        Whether each bar's chord is an out-of-key triad.
    melody_chromatic : np.ndarray, shape (n,)
        Whether each melody note was pushed out of the key.
    tilt : float
        Spectral tilt of the harmonic voices (amplitude of harmonic k is k ** -tilt).
    drive : float
        Saturation drive (loudness cue).
    drum_gain : float
        Drum level relative to the band (loudness cue).
    params : dict of str to float
        The latents the score was composed from, by name.
    """

    seconds: float
    bpm: float
    voices: dict[str, Voice]
    drums: tuple[np.ndarray, np.ndarray, np.ndarray]
    bar_key: np.ndarray
    bar_minor: np.ndarray
    bar_chromatic: np.ndarray
    melody_chromatic: np.ndarray
    tilt: float
    drive: float
    drum_gain: float
    params: dict[str, float] = field(default_factory=dict)


def _grid_times(n16: int, bpm: float, stability: float, rng: np.random.Generator) -> np.ndarray:
    """Onset time (s) of each sixteenth-note grid position, shape [n16 + 1].

    Tempo drifts smoothly by up to ``0.15 (1 - rhythm_stability)`` of the nominal tempo.
    """
    base = 60.0 / bpm / 4.0  # seconds per sixteenth
    k = np.arange(n16)
    drift = np.zeros(n16)
    for _ in range(3):  # three slow sinusoids with random periods (2-8 bars) and phases
        period = rng.uniform(2.0, 8.0) * _SIXTEENTHS_PER_BAR
        drift += np.sin(2.0 * np.pi * k / period + rng.uniform(0.0, 2.0 * np.pi))
    drift /= 3.0
    steps = base * (1.0 + 0.15 * (1.0 - stability) * drift)  # [n16]
    return np.concatenate([[0.0], np.cumsum(steps)])


def _pitch(key_midi: int, scale: tuple[int, ...], degree: int) -> int:
    """MIDI pitch of a (possibly negative or > 6) scale degree above ``key_midi``."""
    octave, step = divmod(degree, 7)
    return key_midi + 12 * octave + scale[step]


def _near(pc: int, centre: float) -> int:
    """MIDI pitch with pitch class ``pc`` closest to ``centre``."""
    return int(pc + 12 * round((centre - pc) / 12.0))


def _gates(onsets: np.ndarray, end: float, fraction: float, minimum: float) -> np.ndarray:
    """Gate lengths (s), shape [n]: ``fraction`` of the inter-onset interval, at least
    ``minimum``; the last note's interval runs until ``end``."""
    nxt = np.append(onsets[1:], end) if onsets.size else onsets
    return np.maximum((nxt - onsets) * fraction, minimum)


@dataclass
class _Onsets:
    """Onset times of sixteenth-note grid positions, with the clip's timing jitter.

    Attributes
    ----------
    grid : np.ndarray, shape (n16 + 1,)
        Onset time (s) of every grid position (:func:`_grid_times`).
    jitter_std : float
        Standard deviation (s) of the Gaussian jitter added to every onset.
    bpm : float
        Nominal tempo.
    rng : np.random.Generator
    """

    grid: np.ndarray
    jitter_std: float
    bpm: float
    rng: np.random.Generator

    @property
    def end(self) -> float:
        """Time (s) of the grid's last position."""
        return float(self.grid[-1])

    def __call__(self, pos: np.ndarray) -> np.ndarray:
        """Jittered onset times (s) of grid positions ``pos`` (clipped to the grid)."""
        pos = np.asarray(pos, dtype=np.int64)
        n16 = len(self.grid) - 1
        return self.grid[np.clip(pos, 0, n16)] + self.rng.normal(0.0, self.jitter_std, pos.shape)


def _gate_fraction(z: dict[str, float]) -> float:
    """Gate as a fraction of the inter-onset interval: legato (overlapping) .. staccato."""
    return 1.05 - 0.85 * z["articulation"]


@dataclass
class _Harmony:
    """The per-bar harmony of a clip (internal to :func:`compose`).

    Attributes
    ----------
    key, minor, chromatic : np.ndarray, shape (bars,)
        Tonic pitch class, minor mode and out-of-key triad of each bar.
    chords : list of list of float
        Chord pitches per bar (MIDI, detuned).
    degrees : list of tuple of int
        Scale degrees of each bar's chord tones (empty: chromatic chord).
    bass_roots : list of int
        Bass root per bar (MIDI).
    """

    key: np.ndarray
    minor: np.ndarray
    chromatic: np.ndarray
    chords: list[list[float]]
    degrees: list[tuple[int, ...]]
    bass_roots: list[int]


def _chord(
    z: dict[str, float],
    degree: int,
    key: int,
    minor: bool,
    chromatic: bool,
    rng: np.random.Generator,
) -> tuple[list[int], tuple[int, ...], int]:
    """Pitch classes, scale degrees (empty when chromatic) and root of one bar's chord."""
    if chromatic:
        root = key + int(rng.choice(_CHROMATIC_ROOTS[minor]))
        return [root, root + 4, root + 7], (), root
    scale = MINOR_SCALE if minor else MAJOR_SCALE
    degrees = (degree, degree + 2, degree + 4)
    if rng.random() < z["dissonance"]:
        degrees += (degree + 6,)  # seventh
    if rng.random() < 0.7 * z["dissonance"]:
        degrees += (degree + 8,)  # ninth
    pcs = [key + scale[g % 7] for g in degrees]
    return pcs, degrees, pcs[0]


def _harmony(z: dict[str, float], bars: int, rng: np.random.Generator) -> _Harmony:
    """Key, mode and chord of every bar (minorness, tonal stability, dissonance, register)."""
    ton, dis = z["tonal_stability"], z["dissonance"]
    p_minor = float(np.clip((z["minorness"] - 0.2) / 0.6, 0.0, 1.0))
    p_modulate = 0.3 * (1.0 - ton) ** 1.5
    p_chromatic_chord = 0.35 * (1.0 - ton)
    progression = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
    chord_centre = 55.0 + 24.0 * z["register"] - 10.0
    bass_centre = 36.0 + 10.0 * z["register"]
    key = int(rng.integers(12))
    h = _Harmony(
        np.empty(bars, dtype=np.int64),
        rng.random(bars) < p_minor,
        np.zeros(bars, dtype=bool),
        [],
        [],
        [],
    )
    for b in range(bars):
        if b > 0 and rng.random() < p_modulate:
            key = (key + int(rng.integers(1, 12))) % 12
        h.key[b] = key
        h.chromatic[b] = rng.random() < p_chromatic_chord
        pcs, degrees, root = _chord(
            z, progression[b % len(progression)], key, bool(h.minor[b]), bool(h.chromatic[b]), rng
        )
        if rng.random() < 0.8 * max(0.0, 2.0 * dis - 1.0):  # semitone cluster
            pcs.append(pcs[int(rng.integers(len(pcs)))] + 1)
        pitches = sorted(_near(pc % 12, chord_centre) for pc in pcs)
        detune = rng.normal(0.0, 0.25 * dis, len(pitches))  # semitones (up to ~25 cents)
        h.chords.append([p + c for p, c in zip(pitches, detune, strict=True)])
        h.degrees.append(degrees)
        h.bass_roots.append(_near(root % 12, bass_centre))
    return h


def _melody_rhythm(
    z: dict[str, float], bars: int, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Onset mask [16] and scale-degree steps [onsets] of every bar's melody (melodiousness,
    rhythm complexity)."""
    mel, rcx = z["melodiousness"], z["rhythm_complexity"]
    density = 0.45 + 0.5 * mel
    p_pos = np.array([0.95 - 0.45 * rcx, 0.5 * rcx, 0.35 + 0.4 * rcx, 0.5 * rcx]) * density
    p_step = 0.3 + 0.65 * mel
    masks: list[np.ndarray] = []
    steps: list[np.ndarray] = []
    for b in range(bars):
        if b >= 2 and rng.random() < 0.6 * mel:  # repeat the motif of two bars before
            masks.append(masks[b - 2])
            steps.append(steps[b - 2])
            continue
        mask = rng.random(_SIXTEENTHS_PER_BAR) < np.tile(p_pos, 4)
        if b % 2 == 1 and rng.random() < 0.8 * mel:  # phrase breath: rest on the last beat
            mask[12:] = False
        if b == 0:
            mask[0] = True
        n = int(mask.sum())
        small = rng.choice(np.array([-1, 1, -2, 2, 0]), n, p=[0.35, 0.35, 0.1, 0.1, 0.1])
        leap = rng.integers(3, 10, n) * rng.choice(np.array([-1, 1]), n)
        masks.append(mask)
        steps.append(np.where(rng.random(n) < p_step, small, leap))
    return masks, steps


def _melody_notes(
    z: dict[str, float], harmony: _Harmony, rhythm: tuple[list, list], rng: np.random.Generator
) -> tuple[list[int], list[int], list[float], list[bool]]:
    """Grid position, MIDI pitch, velocity and out-of-key flag of every melody note
    (melodiousness, dissonance, tonal stability, rhythm complexity, register)."""
    rcx, dis, ton = z["rhythm_complexity"], z["dissonance"], z["tonal_stability"]
    accents = np.array([1.0, 0.7 + 0.25 * rcx, 0.85 + 0.1 * rcx, 0.7 + 0.25 * rcx])
    span = 7 + round(5 * (1.0 - z["melodiousness"]))  # scale degrees either side of the centre
    register = 55.0 + 24.0 * z["register"]  # melody centre, MIDI
    positions, pitches, velocities, chromatic_flags = [], [], [], []
    degree = 0
    for b, (mask, steps) in enumerate(zip(*rhythm, strict=True)):
        scale = MINOR_SCALE if harmony.minor[b] else MAJOR_SCALE
        key_midi = _near(int(harmony.key[b]), register - 5.0)
        for pos, step in zip(np.flatnonzero(mask), steps, strict=True):
            degree += int(step)
            if abs(degree) > span:  # reflect back into range
                degree = int(np.sign(degree)) * (2 * span - abs(degree))
            if pos % 4 == 0 and harmony.degrees[b] and rng.random() < 0.85 * (1.0 - 0.7 * dis):
                tones = np.array(harmony.degrees[b][:3])  # snap to the nearest chord tone
                cand = tones[:, None] + 7 * np.arange(-3, 4)[None, :]
                degree = int(cand.flat[np.argmin(np.abs(cand - degree))])
            pitch = _pitch(key_midi, scale, degree)
            chromatic = rng.random() < 0.3 * (1.0 - ton)
            if chromatic:  # push out of the key by a semitone
                in_key = {(int(harmony.key[b]) + s) % 12 for s in scale}
                pitch += 1 if (pitch + 1) % 12 not in in_key else -1
            positions.append(b * _SIXTEENTHS_PER_BAR + pos)
            pitches.append(pitch)
            velocities.append(
                (accents[pos % 4] + (0.1 if pos == 0 else 0.0)) * rng.uniform(0.9, 1.1)
            )
            chromatic_flags.append(chromatic)
    return positions, pitches, velocities, chromatic_flags


def _melody(
    z: dict[str, float], harmony: _Harmony, onsets: _Onsets, rng: np.random.Generator
) -> tuple[Voice, np.ndarray]:
    """The melody voice and, per note in time order, whether it is out of the key."""
    rhythm = _melody_rhythm(z, len(harmony.key), rng)
    positions, pitches, velocities, chromatic = _melody_notes(z, harmony, rhythm, rng)
    on = onsets(np.array(positions))
    order = np.argsort(on, kind="stable")
    on = on[order]
    pitch = np.array(pitches, dtype=np.float64)[order]
    pitch += rng.normal(0.0, 0.12 * z["dissonance"])  # melody slightly out of tune with the band
    four_bars = 4 * _SIXTEENTHS_PER_BAR * 60.0 / onsets.bpm / 4  # seconds
    gate = np.minimum(_gates(on, onsets.end, _gate_fraction(z), 0.03), four_bars)
    timbre = str(rng.choice(MELODY_TIMBRES))
    voice = Voice(
        timbre, np.maximum(on, 0.0), gate, pitch[:, None], np.array(velocities)[order], 0.5
    )
    return voice, np.array(chromatic, dtype=bool)[order]


def _accompaniment_events(
    z: dict[str, float], bars: int, rng: np.random.Generator
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(grid position, bar) of every chord and bass event, sorted (articulation, rhythm
    complexity: repeated stabs, off-beat comping, anticipated chord changes)."""
    art, rcx = z["articulation"], z["rhythm_complexity"]
    comp_p = np.zeros(_SIXTEENTHS_PER_BAR)
    comp_p[[4, 8, 12]] = 0.15 + 0.7 * art
    comp_p[[2, 6, 10, 14]] = 0.55 * rcx
    comp_p[1::2] = 0.3 * rcx**2
    bass_p = np.zeros(_SIXTEENTHS_PER_BAR)
    bass_p[8] = 0.8
    bass_p[[4, 12]] = 0.3 + 0.4 * art
    bass_p[[3, 6, 10, 14]] = 0.45 * rcx
    chord_events: list[tuple[int, int]] = []
    bass_events: list[tuple[int, int]] = []
    for b in range(bars):
        start = b * _SIXTEENTHS_PER_BAR
        anticipate = b > 0 and rng.random() < 0.5 * rcx  # syncopated chord change on "4 and"
        chord_events.append((start - 2 if anticipate else start, b))
        bass_events.append((start - 2 if anticipate else start, b))
        for pos in np.flatnonzero(rng.random(_SIXTEENTHS_PER_BAR) < comp_p):
            chord_events.append((start + int(pos), b))
        for pos in np.flatnonzero(rng.random(_SIXTEENTHS_PER_BAR) < bass_p):
            bass_events.append((start + int(pos), b))
    return sorted(chord_events), sorted(bass_events)


def _accompaniment(
    z: dict[str, float], harmony: _Harmony, onsets: _Onsets, rng: np.random.Generator
) -> tuple[Voice, Voice]:
    """The chord (comping) and bass voices."""
    chord_events, bass_events = _accompaniment_events(z, len(harmony.key), rng)
    width = max(len(c) for c in harmony.chords)
    chord_pitch = np.full((len(chord_events), width), np.nan)  # [events, notes]
    for i, (_, b) in enumerate(chord_events):
        chord_pitch[i, : len(harmony.chords[b])] = harmony.chords[b]
    ch_on = np.maximum(onsets(np.array([p for p, _ in chord_events])), 0.0)
    ch_gate = _gates(ch_on, onsets.end, _gate_fraction(z), 0.04)
    timbre = str(rng.choice(CHORD_TIMBRES))
    chords = Voice(
        timbre, ch_on, ch_gate, chord_pitch, rng.uniform(0.8, 1.0, len(chord_events)), 0.35
    )
    bass_offsets = rng.choice(np.array([0, 7, 12]), len(bass_events), p=[0.6, 0.25, 0.15])
    bass_pitch = np.array([harmony.bass_roots[b] for _, b in bass_events], dtype=np.float64)
    bass_pitch += np.where(np.array([p % 16 for p, _ in bass_events]) == 0, 0, bass_offsets)
    bs_on = np.maximum(onsets(np.array([p for p, _ in bass_events])), 0.0)
    bs_gate = _gates(bs_on, onsets.end, min(_gate_fraction(z), 0.95), 0.05)
    bass = Voice(
        "bass", bs_on, bs_gate, bass_pitch[:, None], rng.uniform(0.85, 1.0, len(bass_events)), 0.45
    )
    return chords, bass


def _drums(
    z: dict[str, float], bars: int, onsets: _Onsets, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drum hits ``(onset [m] s, kind [m] 0 kick / 1 snare / 2 hat, velocity [m])``: the
    backbeat plus rhythm-complexity extras (syncopated kicks, ghost notes, sixteenth hats)."""
    rcx = z["rhythm_complexity"]
    kick_p = np.zeros(_SIXTEENTHS_PER_BAR)
    kick_p[[0, 8]] = 1.0
    kick_p[[3, 6, 10, 11, 14]] = 0.4 * rcx
    snare_p = np.zeros(_SIXTEENTHS_PER_BAR)
    snare_p[[4, 12]] = 0.95
    snare_p[1::2] = 0.2 * rcx
    hat_p = np.where(np.arange(_SIXTEENTHS_PER_BAR) % 2 == 0, 0.9, 0.9 * rcx)
    hits = []
    for kind, p in enumerate((kick_p, snare_p, hat_p)):
        fire = rng.random((bars, _SIXTEENTHS_PER_BAR)) < p  # [bars, 16]
        pos = np.flatnonzero(fire.ravel())
        vel = np.where(pos % 4 == 0, 1.0, 0.65) * rng.uniform(0.85, 1.0, pos.size)
        if kind == 1:  # ghost notes off the backbeat
            vel = np.where(np.isin(pos % 16, (4, 12)), vel, 0.3 * vel)
        hits.append((np.maximum(onsets(pos), 0.0), np.full(pos.size, kind), vel))
    return tuple(np.concatenate([h[i] for h in hits]) for i in range(3))


def compose(latents: np.ndarray, seconds: float, rng: np.random.Generator) -> Score:
    """Turn the eleven latents of a clip into note events (see docs/synthetic.md).

    Parameters
    ----------
    latents : np.ndarray, shape (11,)
        In [0, 1], :data:`LATENTS` order.
    seconds : float
        Clip length.
    rng : np.random.Generator
        Source of all musical choices.

    Returns
    -------
    Score
    """
    z = dict(zip(LATENTS, np.asarray(latents, dtype=np.float64).tolist(), strict=True))
    bpm = 60.0 + 100.0 * z["tempo"]
    n16_clip = int(math.ceil(seconds / (60.0 / bpm / 4.0 * 0.85))) + 1  # covers the slowest drift
    bars = int(math.ceil(n16_clip / _SIXTEENTHS_PER_BAR)) + 1
    grid = _grid_times(bars * _SIXTEENTHS_PER_BAR, bpm, z["rhythm_stability"], rng)  # [n16 + 1]
    onsets = _Onsets(grid, 0.03 * (1.0 - z["rhythm_stability"]), bpm, rng)
    harmony = _harmony(z, bars, rng)
    melody, melody_chromatic = _melody(z, harmony, onsets, rng)
    chords, bass = _accompaniment(z, harmony, onsets, rng)
    score = Score(
        seconds=seconds,
        bpm=bpm,
        voices={"melody": melody, "chords": chords, "bass": bass},
        drums=_drums(z, bars, onsets, rng),
        bar_key=harmony.key,
        bar_minor=harmony.minor,
        bar_chromatic=harmony.chromatic,
        melody_chromatic=melody_chromatic,
        tilt=2.2 - 1.6 * z["brightness"],
        drive=0.5 + 2.5 * z["loudness"],
        drum_gain=0.25 + 0.3 * z["loudness"],
        params=z,
    )
    assert melody.onset.size > 0 and chords.onset.size >= bars - 1
    return score


# --------------------------------------------------------------------------------------------
# Rendering: note events -> samples
# --------------------------------------------------------------------------------------------


def _wavetables(timbre: Timbre, tilt: float) -> np.ndarray:
    """One period of the timbre for each harmonic limit, shape [levels, _TABLE], peak 1."""
    tables = np.empty((len(_HARMONIC_LEVELS), _TABLE))
    for i, h in enumerate(_HARMONIC_LEVELS):
        k = np.arange(1, h + 1)
        spectrum = np.zeros(_TABLE // 2 + 1, dtype=np.complex128)
        spectrum[1 : h + 1] = -0.5j * _TABLE * timbre.harmonics(k, tilt)  # sine phase
        table = np.fft.irfft(spectrum, _TABLE)  # [_TABLE]
        tables[i] = table / np.max(np.abs(table))
    return tables


def _envelope(n: int, gate: float, timbre: Timbre, art: float, sr: int) -> np.ndarray:
    """ADSR envelope of one note (times an exponential decay for struck timbres).

    Parameters
    ----------
    n : int
        Length in samples (gate plus release tail).
    gate : float
        Seconds until the release starts.
    timbre : Timbre
    art : float
        Articulation latent in [0, 1]: staccato (1) shortens attack and release.
    sr : int
        Sample rate, Hz.

    Returns
    -------
    np.ndarray, shape (n,), float64
    """
    t = np.arange(n) / sr  # [n] seconds
    attack = timbre.attack * (0.4 + 0.6 * (1.0 - art))
    xp = (0.0, attack, attack + timbre.decay)
    env = np.interp(np.minimum(t, gate), xp, (0.0, 1.0, timbre.sustain))  # [n]
    env *= np.exp(-np.maximum(t - gate, 0.0) / _release_tau(timbre, art))
    if timbre.decay_tau is not None:
        env *= np.exp(-t / timbre.decay_tau)
    return env


def _release_tau(timbre: Timbre, art: float) -> float:
    """Release time constant (s): shorter for staccato."""
    return timbre.release * (0.4 + 0.6 * (1.0 - art))


def _segments(pitch: np.ndarray) -> np.ndarray:
    """Boundaries of runs of consecutive events with the same pitches, shape [runs + 1]."""
    same = np.all(
        (pitch[1:] == pitch[:-1]) | (np.isnan(pitch[1:]) & np.isnan(pitch[:-1])), axis=1
    )  # [n - 1]
    return np.concatenate([[0], np.flatnonzero(~same) + 1, [len(pitch)]])


def _render_voice(
    buf: np.ndarray, voice: Voice, tilt: float, art: float, sr: int, rng: np.random.Generator
) -> None:
    """Add a part into ``buf`` (float64, shape [samples]).

    Consecutive events with the same pitches (a repeated chord, a repeated note) share one run
    of oscillators; their ADSR envelopes are summed into one amplitude curve. Harmonic timbres
    are read from band-limited wavetables (no harmonic above 0.45 ``sr``), ``epiano`` is
    two-operator FM whose index decays after every onset.
    """
    timbre = TIMBRES[voice.timbre]
    tables = None if timbre.fm else _wavetables(timbre, tilt).astype(np.float32)
    levels = np.array(_HARMONIC_LEVELS)
    tail = 4.0 * _release_tau(timbre, art)  # seconds rendered after the gate
    fm_index = 0.5 + 3.0 * float(np.clip((2.2 - tilt) / 1.6, 0.0, 1.0))  # brighter: larger
    total = buf.size
    bounds = _segments(voice.pitch)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        onset, gate, vel = voice.onset[a:b], voice.gate[a:b], voice.velocity[a:b]
        pitches = voice.pitch[a][~np.isnan(voice.pitch[a])]  # [v] MIDI
        s0 = int(round(float(onset.min()) * sr))
        s1 = min(total, int(math.ceil(float(np.max(onset + gate) + tail) * sr)))
        if s1 <= s0 or pitches.size == 0:
            continue
        n = s1 - s0
        env = np.zeros(n)  # [n] summed envelopes of the run's events
        index = np.zeros(n) if timbre.fm else None  # [n] FM index envelope
        for o, g, v in zip(onset, gate, vel, strict=True):
            e0 = int(round(o * sr)) - s0
            m = min(n - e0, int((g + tail) * sr))
            if m <= 0:
                continue
            env[e0 : e0 + m] += v * _envelope(m, float(g), timbre, art, sr)
            if index is not None:
                index[e0 : e0 + m] += np.exp(-np.arange(m) / (0.35 * sr))
        freqs = 440.0 * 2.0 ** ((pitches - 69.0) / 12.0)  # [v] Hz
        idx = np.arange(n)  # [n]
        inc = freqs * (_TABLE / sr)  # [v] table steps per sample
        start = rng.uniform(0.0, _TABLE, pitches.size)  # [v]
        tone = np.zeros(n, dtype=np.float32)  # [n]
        if index is not None:
            # sin(phi + I sin(phi)), with phi in table steps and both sines read from a table
            modulation = (fm_index * _TABLE / (2.0 * np.pi)) * np.minimum(index, 1.0)  # [n]
            for k in range(pitches.size):
                phase = idx * inc[k] + start[k]  # [n] table steps
                mod = _SINE[phase.astype(np.int64) & (_TABLE - 1)]  # [n]
                tone += _SINE[(phase + modulation * mod).astype(np.int64) & (_TABLE - 1)]
        else:
            limit = np.maximum(1, (0.45 * sr / freqs).astype(np.int64))  # [v] harmonics allowed
            level = np.searchsorted(levels, limit, side="right") - 1  # [v]
            for k in range(pitches.size):
                ix = (idx * inc[k] + start[k]).astype(np.int64) & (_TABLE - 1)  # [n]
                tone += tables[level[k]][ix]
        buf[s0:s1] += (voice.gain / math.sqrt(pitches.size)) * env * tone


def _drum_samples(sr: int, tilt: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Synthesised kick, snare and hi-hat hits, each 1-D float64."""
    t = np.arange(int(0.35 * sr)) / sr
    f = 45.0 + 75.0 * np.exp(-t / 0.04)  # pitch sweep, Hz
    kick = np.sin(2.0 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.12)
    t = np.arange(int(0.25 * sr)) / sr
    noise = rng.standard_normal(t.size)
    noise = np.convolve(noise, np.array([0.5, 0.0, -0.5]), mode="same")  # band-pass-ish
    body = np.sin(2.0 * np.pi * 185.0 * t) * np.exp(-t / 0.05)  # 185 Hz drum-head tone
    snare = 0.6 * noise * np.exp(-t / 0.06) + 0.6 * body
    t = np.arange(int(0.08 * sr)) / sr
    noise = np.diff(rng.standard_normal(t.size + 1))  # high-pass
    hat = 0.25 * (1.2 - 0.25 * tilt) * noise * np.exp(-t / 0.02)
    return [kick, snare, hat]


def render(score: Score, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Render a composed clip to samples.

    Parameters
    ----------
    score : Score
    sample_rate : int
        Hz.
    rng : np.random.Generator
        Oscillator start phases and drum noise.

    Returns
    -------
    np.ndarray, shape (round(seconds * sample_rate),), float32
        Peak-normalised to :data:`PEAK_DBFS`.
    """
    total = int(round(score.seconds * sample_rate))
    art = score.params["articulation"]
    buf = np.zeros(total)  # [samples]
    for voice in score.voices.values():
        _render_voice(buf, voice, score.tilt, art, sample_rate, rng)
    drums = np.zeros(total)
    samples = _drum_samples(sample_rate, score.tilt, rng)
    for onset, kind, vel in zip(*score.drums, strict=True):
        s0 = int(round(onset * sample_rate))
        if s0 >= total:
            continue
        hit = samples[int(kind)][: total - s0]
        drums[s0 : s0 + hit.size] += vel * hit
    mix = buf / max(np.max(np.abs(buf)), 1e-9) + score.drum_gain * drums / max(
        np.max(np.abs(drums)), 1e-9
    )
    mix = np.tanh(score.drive * mix / np.max(np.abs(mix)))  # loudness: saturation drive
    fade = min(int(0.01 * sample_rate), total // 4)
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False)
    mix[:fade] *= ramp
    mix[total - fade :] *= ramp[::-1]
    peak = np.max(np.abs(mix))
    assert peak > 0
    out = (mix * (10.0 ** (PEAK_DBFS / 20.0) / peak)).astype(np.float32)  # [samples]
    assert out.shape == (total,) and np.all(np.isfinite(out))
    return out


def synthesize_clip(
    seed: int, number: int, seconds: float, sample_rate: int, latents: np.ndarray | None = None
) -> np.ndarray:
    """Compose and render clip ``number`` of the data set with ``seed``.

    Parameters
    ----------
    seed, number : int
    seconds : float
    sample_rate : int
    latents : np.ndarray, shape (11,), optional
        Override the clip's drawn latents (for tests and listening experiments).

    Returns
    -------
    np.ndarray, shape (samples,), float32
    """
    z = draw_latents(seed, number) if latents is None else np.asarray(latents, dtype=np.float64)
    rng = np.random.default_rng([seed, number, _STREAM_AUDIO])
    return render(compose(z, seconds, rng), sample_rate, rng)


# --------------------------------------------------------------------------------------------
# The data set on disk
# --------------------------------------------------------------------------------------------


def _validate(clips: int, seconds: float, seed: int, sample_rate: int, audio_format: str) -> None:
    if isinstance(clips, bool) or not isinstance(clips, int) or not 1 <= clips <= 999:
        raise RobustmerError(f"clips = {clips!r}; expected a whole number from 1 to 999")
    if (
        not isinstance(seconds, (int, float))
        or not math.isfinite(seconds)
        or not (1.0 < seconds <= 600.0)
    ):
        raise RobustmerError(f"seconds = {seconds!r}; expected more than 1 and at most 600")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise RobustmerError(f"seed = {seed!r}; expected a whole number >= 0")
    if audio_format not in AUDIO_FORMATS:
        raise RobustmerError(
            f"audio_format = {audio_format!r}; expected one of {', '.join(AUDIO_FORMATS)}"
        )
    if (
        isinstance(sample_rate, bool)
        or not isinstance(sample_rate, int)
        or not (8000 <= sample_rate <= 96000)
    ):
        raise RobustmerError(f"sample_rate = {sample_rate!r}; expected 8000-96000 Hz")
    if audio_format == "mp3" and sample_rate not in MP3_SAMPLE_RATES:
        raise RobustmerError(
            f"sample_rate = {sample_rate} for mp3; expected one of "
            f"{', '.join(map(str, MP3_SAMPLE_RATES))} Hz"
        )


def _write_tables(root: Path, numbers: list[int], latents: np.ndarray, seed: int, seconds: float):
    """Write the three CSV files; returns their paths."""
    n = len(numbers)
    noise = np.stack(
        [np.random.default_rng([seed, k, _STREAM_RATINGS]).standard_normal(8) for k in numbers]
    )  # [n, 8]
    ratings = np.clip(np.round(emotion_ratings(latents, noise), 2), 1.0, 9.0)  # [n, 8]
    ann_noise = np.stack(
        [np.random.default_rng([seed, k, _STREAM_ANNOTATION]).standard_normal(7) for k in numbers]
    )  # [n, 7]
    annotations = annotate_midlevel(latents, ann_noise)  # [n, 7]

    ratings_csv = root / "soundtracks" / "mean_ratings_set1.csv"
    with atomic_open(ratings_csv) as fh:
        fh.write(RATINGS_HEADER + "\n")
        for k, r in zip(numbers, ratings, strict=True):
            values = ",".join(f"{v:.2f}" for v in r)
            fh.write(f"{k:03d},{values},{target_label(r)}\n")

    # Mid-level metadata: the Soundtracks clips plus a few rows of other sources, in shuffled
    # order with running song ids, so that alignment must go through "ID at file source".
    rng = np.random.default_rng([seed, 0, _STREAM_OTHERS])
    rows: list[tuple[str, int, str, str, float, np.ndarray]] = []
    for k, a in zip(numbers, annotations, strict=True):
        rows.append(("soundtracks", k, f"Soundtrack cue {k:03d}", "Soundtrack", seconds, a))
    for i, (source, genre) in enumerate(OTHER_SOURCES):
        # The first one collides with Soundtracks clip 1 on purpose: a loader that forgets to
        # filter by Source pairs the wrong annotation with it.
        sid = 1 if i == 0 else int(rng.integers(1, 1000 if source == "jamendo" else 60000))
        duration = float(np.round(rng.uniform(20.0, 45.0), 1))
        values = annotate_midlevel(rng.random(7), rng.standard_normal(7))
        rows.append((source, sid, f"{genre} track {sid}", genre, duration, values))
    order = rng.permutation(len(rows))
    metadata_csv = root / "midlevel" / "metadata.csv"
    annotations_csv = root / "midlevel" / "annotations.csv"
    with atomic_open(metadata_csv) as meta, atomic_open(annotations_csv) as ann:
        meta.write(METADATA_HEADER + "\n")
        ann.write(ANNOTATIONS_HEADER + "\n")
        for song_id, i in enumerate(order, start=FIRST_SONG_ID):
            source, sid, title, genre, duration, values = rows[i]
            meta.write(f"{song_id};{source};{sid};{title};{genre};{duration:.1f}\n")
            ann.write(f"{song_id}," + ",".join(f"{v:.3f}" for v in values) + "\n")
    assert n == len(ratings)
    return ratings_csv, metadata_csv, annotations_csv


_CLIP_FILE = re.compile(r"^\d{3}\.(mp3|wav|flac|ogg)$", re.IGNORECASE)


def _write_clips(
    audio_dir: Path,
    latents: np.ndarray,
    seed: int,
    seconds: float,
    sample_rate: int,
    audio_format: str,
    workers: int,
) -> set[str]:
    """Render and encode clips 1..N (``latents`` [N, 11]) into ``audio_dir``, atomically.

    Clips are independent (own random streams), so the thread count changes nothing but the
    speed; NumPy and libsndfile's encoder release the GIL for most of the work. Returns the
    file names written.
    """
    import soundfile as sf

    fmt, subtype = AUDIO_FORMATS[audio_format]

    def write_clip(k: int) -> str:
        audio = synthesize_clip(seed, k, seconds, sample_rate, latents[k - 1])  # [samples]
        path = audio_dir / f"{k:03d}.{audio_format}"
        with atomic_path(path) as tmp:
            sf.write(tmp, audio, sample_rate, format=fmt, subtype=subtype)
        return path.name

    written: set[str] = set()
    with progress_bar() as bar, ThreadPoolExecutor(max_workers=workers) as pool:
        task = bar.add_task("synthesising clips", total=len(latents))
        for name in pool.map(write_clip, range(1, len(latents) + 1)):
            written.add(name)
            bar.advance(task)
    return written


def _remove_stale(audio_dir: Path, written: set[str]) -> None:
    """Delete clip files (``NNN.<audio ext>``) in ``audio_dir`` that are not in ``written``:
    left from an earlier, larger or other-format data set, the loader would pick them up."""
    stale = [p for p in audio_dir.iterdir() if _CLIP_FILE.match(p.name) and p.name not in written]
    for p in stale:
        p.unlink()
    if stale:
        log.warning("removed %d stale clip file(s) from %s", len(stale), audio_dir)


def generate_synthetic(
    out: str | Path,
    *,
    clips: int = 360,
    seconds: float = 15.0,
    seed: int = 0,
    sample_rate: int = 22050,
    audio_format: str = "mp3",
    workers: int | None = None,
) -> dict[str, Any]:
    """Write a synthetic Soundtracks Set 1 + mid-level data set (docs/paper.md §2).

    Layout: ``out/soundtracks/mean_ratings_set1.csv``, ``out/soundtracks/Set1/NNN.<ext>``,
    ``out/midlevel/metadata.csv``, ``out/midlevel/annotations.csv``; every file is written
    atomically. Clip files named ``NNN.<audio ext>`` in ``Set1/`` that this call did not write
    (left over from an earlier, larger or other-format data set) are removed, because the loader
    would otherwise pick them up. The generative model is documented in ``docs/synthetic.md``.

    Parameters
    ----------
    out : str or Path
        Output directory (created).
    clips : int
        Number of clips, 1-999 (the real Set 1 has 360); numbered 001 onwards.
    seconds : float
        Length of each clip, > 1 s.
    seed : int
        Everything is a deterministic function of the seed (clip n is the same for any
        ``clips`` >= n).
    sample_rate : int
        Hz.
    audio_format : str
        ``"mp3"`` (as the real data set), ``"wav"`` or ``"flac"`` (16-bit PCM).
    workers : int, optional
        Threads rendering and encoding clips (default: the CPU count, at most 8). The output
        does not depend on it.

    Returns
    -------
    dict
        ``root``, ``ratings_csv``, ``audio_dir``, ``metadata_csv``, ``annotations_csv``
        (str paths), ``clips``, ``seconds_per_clip``, ``seconds_of_audio``, ``sample_rate``,
        ``audio_format``, ``seed``, ``synth_version``.

    Raises
    ------
    RobustmerError
        For arguments out of range.
    """
    _validate(clips, seconds, seed, sample_rate, audio_format)
    if workers is None:
        workers = min(os.cpu_count() or 1, 8)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise RobustmerError(f"workers = {workers!r}; expected a whole number >= 1")
    seconds = float(seconds)
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise RobustmerError(f"{root}: exists and is not a directory; expected an output directory")
    audio_dir = root / "soundtracks" / "Set1"
    audio_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    numbers = list(range(1, clips + 1))
    latents = np.stack([draw_latents(seed, k) for k in numbers])  # [clips, 11]
    ratings_csv, metadata_csv, annotations_csv = _write_tables(
        root, numbers, latents, seed, seconds
    )
    written = _write_clips(audio_dir, latents, seed, seconds, sample_rate, audio_format, workers)
    _remove_stale(audio_dir, written)
    elapsed = time.perf_counter() - started
    log.info(
        "wrote %d synthetic clips (%.0f s of audio) to %s in %.1f s",
        clips,
        clips * seconds,
        root,
        elapsed,
    )
    return {
        "root": str(root),
        "ratings_csv": str(ratings_csv),
        "audio_dir": str(audio_dir),
        "metadata_csv": str(metadata_csv),
        "annotations_csv": str(annotations_csv),
        "clips": clips,
        "seconds_per_clip": seconds,
        "seconds_of_audio": clips * seconds,
        "sample_rate": sample_rate,
        "audio_format": audio_format,
        "seed": seed,
        "synth_version": SYNTH_VERSION,
    }


# --------------------------------------------------------------------------------------------
# The shared store: synthesise and prepare once, reuse in every later study
# --------------------------------------------------------------------------------------------

STORE_ENV = "ROBUSTMER_CACHE"
"""Environment variable naming the store's directory (default ``$XDG_CACHE_HOME/robustmer``,
i.e. ``~/.cache/robustmer``)."""

_STORE_DONE = "complete.json"


@dataclass(frozen=True)
class StoredSynthetic:
    """A synthetic data set and its prepared cache in the shared store.

    Attributes
    ----------
    root : Path
        ``<store>/synth-<key>``.
    data : Path
        The data set (``soundtracks/``, ``midlevel/``) as :func:`generate_synthetic` wrote it.
    cache : Path
        The prepared model inputs (:func:`robustmer.data.prepare`).
    key : str
        16 hex digits of the SHA-256 of :attr:`settings`.
    settings : dict
        Everything the data and the cache depend on (generator version and arguments, front
        end, excerpt length, cache format version).
    reused : bool
        Whether this call found the store complete (nothing synthesised or prepared).
    seconds : dict
        Wall time of this call's ``synthesis`` and ``spectrograms`` steps (0 when reused).
    """

    root: Path
    data: Path
    cache: Path
    key: str
    settings: dict[str, Any]
    reused: bool
    seconds: dict[str, float] = field(
        default_factory=lambda: {"synthesis": 0.0, "spectrograms": 0.0}
    )


def store_dir() -> Path:
    """The shared store's directory: ``$ROBUSTMER_CACHE``, else ``$XDG_CACHE_HOME/robustmer``,
    else ``~/.cache/robustmer``."""
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "robustmer"


def stored_synthetic(
    *,
    clips: int,
    seconds: float,
    seed: int,
    frames: int,
    audio_format: str = "flac",
    sample_rate: int = 22050,
) -> StoredSynthetic:
    """Synthesise and prepare a data set once; later calls with the same settings reuse it.

    The entry ``<store>/synth-<key>`` (:func:`store_dir`) is keyed by a hash of every setting
    the files depend on, :data:`SYNTH_VERSION` and the cache format version included, so a
    changed generator or front end never reuses stale files. Every file is written atomically
    and ``complete.json`` (the settings) is written last: an entry without it (an interrupted
    build) is rebuilt in place, and two processes building the same entry write the same
    bytes.

    Parameters
    ----------
    clips, seconds, seed, sample_rate, audio_format
        As :func:`generate_synthetic`.
    frames : int
        Excerpt length of the prepared cache (default front end, split, excerpt and
        normalisation settings of :func:`robustmer.data.prepare`).

    Returns
    -------
    StoredSynthetic
    """
    import hashlib
    import json

    from robustmer._io import read_json, write_json
    from robustmer.audio import FrontEndConfig
    from robustmer.data.cache import CACHE_VERSION
    from robustmer.data.prepare import prepare

    _validate(clips, seconds, seed, sample_rate, audio_format)
    settings = {
        "synth_version": SYNTH_VERSION,
        "clips": clips,
        "seconds": float(seconds),
        "seed": seed,
        "sample_rate": sample_rate,
        "audio_format": audio_format,
        "frames": frames,
        "frontend": FrontEndConfig().to_dict(),
        "cache_version": CACHE_VERSION,
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    root = store_dir() / f"synth-{key}"
    entry = StoredSynthetic(root, root / "data", root / "cache", key, settings, reused=True)
    done = root / _STORE_DONE
    if done.is_file() and read_json(done) == settings and (entry.cache / "manifest.json").is_file():
        log.info("synthetic data reused from %s", root)
        return entry
    log.info("synthesising and preparing data into the shared store %s", root)
    t0 = time.perf_counter()
    generate_synthetic(
        entry.data,
        clips=clips,
        seconds=seconds,
        seed=seed,
        sample_rate=sample_rate,
        audio_format=audio_format,
    )
    t1 = time.perf_counter()
    prepare(
        entry.data / "soundtracks",
        entry.data / "midlevel",
        entry.cache,
        frames=frames,
        progress=False,
    )
    write_json(done, settings)
    seconds = {"synthesis": t1 - t0, "spectrograms": time.perf_counter() - t1}
    return StoredSynthetic(root, entry.data, entry.cache, key, settings, False, seconds)
