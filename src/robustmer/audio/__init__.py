"""Audio front end: madmom's log-filtered spectrogram as a differentiable torch module.

Reproduces madmom's ``LogarithmicFilteredSpectrogramProcessor`` (Böck et al., "madmom: a new
Python audio and music signal processing library", ACM MM 2016) with the parameters of
docs/paper.md §3: decode, mono, 22050 Hz, peak 1, exact zeros trimmed; 2048-sample Hann frames at
31.3 frames per second; 24 triangular bands per octave (20 Hz - 16 kHz) -> 149 bands;
``log10(1 + x)``.

Names are imported lazily (PEP 562), so ``import robustmer.audio`` does not load torch until
:class:`LogFilteredSpectrogram` or :func:`spectrogram_from_file` is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from robustmer.audio.decode import load_audio
    from robustmer.audio.filterbank import (
        FrontEndConfig,
        filterbank_center_frequencies,
        log_filterbank,
        num_frames,
    )
    from robustmer.audio.frontend import LogFilteredSpectrogram, spectrogram_from_file
    from robustmer.audio.normalization import Normalization

_EXPORTS = {
    "FrontEndConfig": "robustmer.audio.filterbank",
    "filterbank_center_frequencies": "robustmer.audio.filterbank",
    "log_filterbank": "robustmer.audio.filterbank",
    "num_frames": "robustmer.audio.filterbank",
    "load_audio": "robustmer.audio.decode",
    "LogFilteredSpectrogram": "robustmer.audio.frontend",
    "spectrogram_from_file": "robustmer.audio.frontend",
    "Normalization": "robustmer.audio.normalization",
}

__all__ = [
    "FrontEndConfig",
    "LogFilteredSpectrogram",
    "Normalization",
    "filterbank_center_frequencies",
    "load_audio",
    "log_filterbank",
    "num_frames",
    "spectrogram_from_file",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'robustmer.audio' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
