"""Audio decoding: mono, resampled, peak-normalised, silence-trimmed (docs/paper.md §3, step 1).

Mirrors what madmom (Böck et al., "madmom: a new Python audio and music signal processing
library", ACM MM 2016) does before framing: ``Signal(..., num_channels=1, sample_rate=22050,
norm=True)``, followed by stripping leading and trailing exact zeros. Decoding uses
libsndfile through ``soundfile`` (wav, flac, mp3, ogg, ...), resampling uses ``soxr``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from robustmer.errors import RobustmerError

__all__ = ["load_audio", "quiet_native_stderr"]

logger = logging.getLogger(__name__)

_EXPECTED_FORMATS = "a readable wav, flac, mp3 or ogg file"


_TERMINALS: list[tuple[int, TextIO]] = []
"""Streams on duplicates of fd 2's earlier targets, kept open for the process's life (a
thread may still hold one after a block ends; closing it could fail that thread's write)."""


def _stream_to_current_fd2() -> TextIO:
    """A text stream writing where fd 2 points now (reused while that target is the same)."""
    for fd, stream in _TERMINALS:
        if os.path.sameopenfile(fd, 2):
            return stream
    fd = os.dup(2)
    stream = os.fdopen(fd, "w", buffering=1, errors="backslashreplace", closefd=False)
    _TERMINALS.append((fd, stream))
    return stream


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[list[str]]:
    """Keep what C libraries write to file descriptor 2 off the terminal.

    libsndfile's mp3 decoder (mpg123) prints "Note: ..." lines on fd 2 for damaged or
    foreign data. Inside the block fd 2 goes to a temporary file; Python's own
    ``sys.stderr`` (log records, progress bars) is pointed at fd 2's previous target for
    the duration, so it still reaches the terminal. The captured lines are yielded (the
    list is filled when the block ends).
    """
    captured: list[str] = []
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2: nothing can reach a terminal
        yield captured
        return
    try:
        swap = sys.stderr is not None and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # e.g. a capturing stream
        swap = False
    old_stderr = sys.stderr
    with tempfile.TemporaryFile() as sink:
        if swap:
            old_stderr.flush()
            sys.stderr = _stream_to_current_fd2()
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            if swap:
                sys.stderr.flush()
                sys.stderr = old_stderr
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", errors="replace")
            captured.extend(line.strip() for line in text.splitlines() if line.strip())


_MISLEADING = ("does not exist", "possibly a pipe")
"""Parts of libsndfile messages that are wrong for an existing file it cannot parse."""


def _reason(exc: Exception, path: Path, notes: list[str]) -> str:
    """A short reason for a decoding failure, without repeating the path."""
    text = str(getattr(exc, "error_string", "") or exc).strip()
    if not text or str(path) in text or any(m in text for m in _MISLEADING):
        text = ""
    if not text and notes:
        text = "decoder: " + notes[0].removeprefix("Note:").strip()
    return text or "format not recognised"


def load_audio(
    path: str | os.PathLike[str],
    sample_rate: int = 22050,
    *,
    min_samples: int = 2048,
) -> np.ndarray:
    """Decode an audio file to a mono, peak-normalised float64 signal (docs/paper.md §3).

    Steps: decode (any sample rate and channel count), down-mix to mono (mean of the
    channels), resample with soxr to ``sample_rate`` if needed, divide by the peak absolute
    value (madmom's ``norm=True``; Böck et al., 2016), strip leading and trailing exact zeros.

    Parameters
    ----------
    path : str or os.PathLike
        Audio file.
    sample_rate : int
        Output sample rate [Hz].
    min_samples : int
        Minimum length after trimming [samples]; the default is one 2048-sample frame.

    Returns
    -------
    np.ndarray
        float64 ``[T]`` with ``max |x| == 1``, ``x[0] != 0``, ``x[-1] != 0``,
        ``T >= min_samples``.

    Raises
    ------
    RobustmerError
        Naming the file, if it is missing, does not decode, contains non-finite samples,
        is silent, or is shorter than ``min_samples`` after trimming.
    """
    import soundfile as sf

    path = Path(path)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise RobustmerError(f"{path}: sample_rate={sample_rate!r}; expected a positive integer")
    if not path.is_file():
        raise RobustmerError(f"{path}: audio file not found; expected {_EXPECTED_FORMATS}")
    try:
        with quiet_native_stderr() as notes:
            data, source_rate = sf.read(path, dtype="float64", always_2d=True)  # [T, C]
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as exc:
        logger.debug("%s: decoder output: %s", path, notes)
        raise RobustmerError(
            f"{path}: not a decodable audio file ({_reason(exc, path, notes)}); expected "
            f"{_EXPECTED_FORMATS}"
        ) from None
    if notes:
        logger.debug("%s: decoder output: %s", path, notes)
    if data.size == 0:
        raise RobustmerError(f"{path}: audio contains no samples; expected non-empty audio")
    if not np.all(np.isfinite(data)):
        raise RobustmerError(f"{path}: audio contains NaN or infinite samples; expected finite")
    mono = data.mean(axis=1)  # [T] down-mix
    if not np.any(mono):
        raise RobustmerError(f"{path}: audio is silent (all samples are zero); expected sound")
    if source_rate != sample_rate:
        import soxr

        mono = soxr.resample(mono, source_rate, sample_rate)  # [T'] float64
    peak = float(np.max(np.abs(mono)))
    if peak == 0.0:
        raise RobustmerError(f"{path}: audio is silent after resampling; expected sound")
    mono = np.trim_zeros(mono / peak)  # [T''] peak 1, exact zeros stripped at both ends
    if len(mono) < min_samples:
        raise RobustmerError(
            f"{path}: audio is shorter than one frame ({len(mono)} samples at {sample_rate} Hz "
            f"after trimming silence); expected at least {min_samples} samples"
        )
    logger.debug(
        "%s: %d Hz x %d channels -> %d samples at %d Hz",
        path,
        source_rate,
        data.shape[1],
        len(mono),
        sample_rate,
    )
    return mono
