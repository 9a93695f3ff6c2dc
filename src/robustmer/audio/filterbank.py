"""Front-end configuration and madmom's logarithmic triangular filterbank (NumPy only).

The front end reproduces madmom's ``LogarithmicFilteredSpectrogramProcessor`` (Böck et al.,
"madmom: a new Python audio and music signal processing library", ACM MM 2016) with the
parameters of docs/paper.md §3: 22050 Hz, frames of 2048 samples at 31.3 frames per second,
24 triangular bands per octave between 20 Hz and 16 kHz around 440 Hz -> 149 bands.

This module deliberately imports only NumPy, so the configuration can be read and written
without loading torch.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np

from robustmer.errors import RobustmerError

__all__ = [
    "FrontEndConfig",
    "fft_bin_frequencies",
    "filterbank_center_frequencies",
    "log_filterbank",
    "log_frequencies",
    "num_frames",
]


@dataclasses.dataclass(frozen=True)
class FrontEndConfig:
    """Parameters of the log-filtered spectrogram front end (docs/paper.md §3).

    Attributes
    ----------
    sample_rate : int
        Sample rate the audio is resampled to [Hz].
    frame_size : int
        Frame (and FFT) length [samples]; the spectrum keeps ``frame_size // 2`` bins.
    fps : float
        Frames per second; the hop is ``sample_rate / fps`` samples (fractional).
    bands_per_octave : int
        Number of logarithmically spaced filter frequencies per octave.
    fmin, fmax : float
        Lowest and highest filter frequency [Hz].
    fref : float
        Reference frequency the logarithmic grid is aligned to [Hz].
    """

    sample_rate: int = 22050
    frame_size: int = 2048
    fps: float = 31.3
    bands_per_octave: int = 24
    fmin: float = 20.0
    fmax: float = 16000.0
    fref: float = 440.0

    def __post_init__(self) -> None:
        for name in ("sample_rate", "frame_size", "bands_per_octave"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
                raise RobustmerError(
                    f"FrontEndConfig.{name}: got {value!r}; expected a positive integer"
                )
        for name in ("fps", "fmin", "fmax", "fref"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float | np.number)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise RobustmerError(
                    f"FrontEndConfig.{name}: got {value!r}; expected a positive finite number"
                )
            object.__setattr__(self, name, float(value))  # 20 and 20.0 serialise alike
        for name in ("sample_rate", "frame_size", "bands_per_octave"):
            object.__setattr__(self, name, int(getattr(self, name)))
        if self.frame_size % 2 or self.frame_size < 4:
            raise RobustmerError(
                f"FrontEndConfig.frame_size: got {self.frame_size}; expected an even number >= 4"
            )
        if not self.fmin < self.fmax:
            raise RobustmerError(
                f"FrontEndConfig: fmin={self.fmin} >= fmax={self.fmax}; expected fmin < fmax"
            )

    @property
    def hop(self) -> float:
        """Hop size between frame starts [samples], ``sample_rate / fps`` (704.47... here)."""
        return self.sample_rate / self.fps

    @property
    def num_bins(self) -> int:
        """Number of FFT bins kept (the Nyquist bin is dropped): ``frame_size // 2``."""
        return self.frame_size // 2

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of all fields (for manifests)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrontEndConfig:
        """Rebuild a configuration from :meth:`to_dict` output.

        Raises
        ------
        RobustmerError
            If keys are missing or unknown, or a value is invalid.
        """
        if not isinstance(d, dict):
            raise RobustmerError(f"front-end config: got {type(d).__name__}; expected a dict")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        missing = [n for n in names if n not in d]
        if unknown or missing:
            raise RobustmerError(
                f"front-end config: unknown keys {unknown}, missing keys {missing}; "
                f"expected exactly {names}"
            )
        return cls(**{n: d[n] for n in names})


def num_frames(num_samples: int, config: FrontEndConfig = FrontEndConfig()) -> int:
    """Number of frames madmom produces for a signal: ``ceil(num_samples / hop)``.

    Parameters
    ----------
    num_samples : int
        Signal length [samples], >= 0.
    config : FrontEndConfig
        Front-end parameters (only ``hop`` is used).

    Returns
    -------
    int
        Frame count (0 for an empty signal; 313 for 10 s at 22050 Hz and 31.3 fps).
    """
    if num_samples < 0:
        raise RobustmerError(f"num_frames: got {num_samples} samples; expected >= 0")
    return math.ceil(num_samples / config.hop)


def fft_bin_frequencies(config: FrontEndConfig = FrontEndConfig()) -> np.ndarray:
    """Centre frequencies of the kept FFT bins [Hz], float64 ``[frame_size // 2]``."""
    return np.fft.fftfreq(config.frame_size, 1.0 / config.sample_rate)[: config.num_bins]


def log_frequencies(config: FrontEndConfig = FrontEndConfig()) -> np.ndarray:
    """Logarithmically spaced frequencies ``fref * 2**(k / bands_per_octave)`` in [fmin, fmax].

    Returns
    -------
    np.ndarray
        float64 ``[n]`` frequencies [Hz], ascending.
    """
    bpo = config.bands_per_octave
    k_lo = math.floor(math.log2(config.fmin / config.fref) * bpo)
    k_hi = math.ceil(math.log2(config.fmax / config.fref) * bpo)
    freqs = config.fref * 2.0 ** (np.arange(k_lo, k_hi + 1) / bpo)  # [n]
    return freqs[(freqs >= config.fmin) & (freqs <= config.fmax)]


def _nearest_bins(freqs: np.ndarray, bin_freqs: np.ndarray) -> np.ndarray:
    """Index of the nearest bin for each frequency (ties go to the upper bin), clipped."""
    upper = np.clip(np.searchsorted(bin_freqs, freqs), 1, len(bin_freqs) - 1)  # [n]
    lower_is_closer = freqs - bin_freqs[upper - 1] < bin_freqs[upper] - freqs  # [n]
    return upper - lower_is_closer.astype(np.int64)


def _triangle(start: int, centre: int, stop: int, num_bins: int) -> np.ndarray:
    """One triangular filter over bins [start, stop) with peak at ``centre``, area 1."""
    if stop - start < 2:  # too narrow for a triangle: a single-bin filter
        centre, stop = start, start + 1
    weights = np.zeros(num_bins)  # [num_bins]
    rise, fall = centre - start, stop - centre
    weights[start:centre] = np.arange(rise) / max(rise, 1)
    weights[centre:stop] = 1.0 - np.arange(fall) / fall
    return weights / weights.sum()


@functools.lru_cache(maxsize=8)
def _filterbank_cached(config: FrontEndConfig) -> np.ndarray:
    bin_freqs = fft_bin_frequencies(config)  # [num_bins]
    bins = np.unique(_nearest_bins(log_frequencies(config), bin_freqs))  # [m]
    if len(bins) < 3:
        raise RobustmerError(
            f"front-end config {config.to_dict()}: only {len(bins)} distinct FFT bins between "
            "fmin and fmax; expected at least 3 to build a triangular filter"
        )
    # consecutive (start, centre, stop) triples -> overlapping triangles
    filters = np.stack(
        [
            _triangle(int(a), int(c), int(b), config.num_bins)
            for a, c, b in zip(bins[:-2], bins[1:-1], bins[2:], strict=True)
        ],
        axis=1,
    )  # [num_bins, m - 2]
    # drop duplicate filters, keeping the first occurrence (order preserved)
    _, first = np.unique(filters, axis=1, return_index=True)
    bank = filters[:, np.sort(first)]  # [num_bins, bands]
    bank.setflags(write=False)
    return bank


def log_filterbank(config: FrontEndConfig = FrontEndConfig()) -> np.ndarray:
    """madmom's ``LogarithmicFilterbank`` as a dense matrix (Böck et al., 2016; docs/paper.md §3).

    Construction: frequencies ``fref * 2**(k / bands_per_octave)`` within [fmin, fmax] are
    mapped to the nearest FFT bin; the unique bins, taken as consecutive (start, centre, stop)
    triples, define overlapping triangular filters (a filter spanning fewer than two bins
    becomes a single bin), each normalised to area 1; duplicate filters are removed.

    Parameters
    ----------
    config : FrontEndConfig
        Front-end parameters.

    Returns
    -------
    np.ndarray
        float64 ``[frame_size // 2, bands]``; ``[1024, 149]`` for the default configuration.
        Every column is non-negative and sums to 1.
    """
    return _filterbank_cached(config).copy()


def filterbank_center_frequencies(config: FrontEndConfig = FrontEndConfig()) -> np.ndarray:
    """Centre frequency of every band of :func:`log_filterbank` [Hz], float64 ``[bands]``.

    Follows madmom's ``Filterbank.center_frequencies``: over a band's non-zero bins
    [lo, hi], a flat band (equal weights at lo and hi) is centred at ``(lo + hi) // 2``;
    otherwise the centre is the first bin of maximal weight within [lo, hi) (hi excluded,
    so a two-bin rising filter is centred at lo).
    """
    bank = _filterbank_cached(config)  # [num_bins, bands]
    bin_freqs = fft_bin_frequencies(config)  # [num_bins]
    centres = np.empty(bank.shape[1], dtype=np.int64)  # [bands]
    for band in range(bank.shape[1]):
        weights = bank[:, band]
        support = np.flatnonzero(weights)
        lo, hi = int(support[0]), int(support[-1])
        if weights[lo] == weights[hi]:
            centres[band] = (lo + hi) // 2
        else:
            centres[band] = lo + int(np.argmax(weights[lo:hi]))
    return bin_freqs[centres]
