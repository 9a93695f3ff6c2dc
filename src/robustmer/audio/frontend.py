"""Differentiable log-filtered spectrogram, equal to madmom's front end (docs/paper.md §3).

:class:`LogFilteredSpectrogram` reproduces madmom's ``LogarithmicFilteredSpectrogramProcessor``
(Böck et al., "madmom: a new Python audio and music signal processing library", ACM MM 2016)
as a ``torch.nn.Module``, so adversarial attacks can back-propagate to the waveform:

1. frame ``i`` covers samples ``[floor(i * hop), floor(i * hop) + frame_size)``, zero-padded
   past the end of the signal; ``ceil(T / hop)`` frames;
2. symmetric Hann window (``np.hanning(frame_size)``), magnitude of the real FFT, first
   ``frame_size // 2`` bins (Nyquist dropped);
3. triangular logarithmic filterbank (:func:`robustmer.audio.filterbank.log_filterbank`);
4. ``log10(1 + x)``.
"""

from __future__ import annotations

import logging
import math
import os

import numpy as np
import torch

from robustmer.audio.decode import load_audio
from robustmer.audio.filterbank import FrontEndConfig, log_filterbank, num_frames
from robustmer.errors import RobustmerError

__all__ = ["LogFilteredSpectrogram", "spectrogram_from_file"]

logger = logging.getLogger(__name__)

_INV_LN10 = 1.0 / math.log(10.0)


class LogFilteredSpectrogram(torch.nn.Module):
    """Waveform -> log-magnitude, log-frequency spectrogram (madmom; docs/paper.md §3).

    Parameters
    ----------
    config : FrontEndConfig
        Front-end parameters; the defaults give 149 bands at 31.3 frames per second.

    Notes
    -----
    The Hann window ``[frame_size]`` and the filterbank ``[frame_size // 2, bands]`` are
    float64 non-persistent buffers (derived from ``config``, so not in ``state_dict``).
    They are cast to the input's dtype in :meth:`forward`; keep the module in float64 (do not
    call ``.float()`` on it) for results that match madmom to ~1e-6.
    """

    window: torch.Tensor
    filterbank: torch.Tensor

    def __init__(self, config: FrontEndConfig = FrontEndConfig()) -> None:  # noqa: B008
        super().__init__()
        self.config = config
        window = torch.from_numpy(np.hanning(config.frame_size))  # [N] symmetric Hann
        bank = torch.from_numpy(log_filterbank(config))  # [N/2, bands]
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("filterbank", bank, persistent=False)

    @property
    def num_bands(self) -> int:
        """Number of filterbank bands (149 for the default configuration)."""
        return int(self.filterbank.shape[1])

    def frame_starts(self, num_samples: int, device: torch.device | None = None) -> torch.Tensor:
        """First sample of every frame, ``floor(i * hop)``; int64 ``[ceil(T / hop)]``."""
        count = num_frames(num_samples, self.config)
        index = torch.arange(count, dtype=torch.float64, device=device)  # [F]
        return torch.floor(index * self.config.hop).to(torch.int64)  # [F]

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Compute the log-filtered spectrogram.

        Parameters
        ----------
        wave : torch.Tensor
            Waveform(s), float32 or float64, ``[T]`` or ``[B, T]`` with ``T >= 1``, on any
            device. Gradients flow back to it.

        Returns
        -------
        torch.Tensor
            ``[frames, bands]`` for 1-D input or ``[B, frames, bands]``, with
            ``frames = ceil(T / hop)`` and the input's dtype and device.
        """
        if wave.ndim not in (1, 2):
            raise RobustmerError(
                f"LogFilteredSpectrogram: got a waveform of shape {tuple(wave.shape)}; "
                "expected [T] or [B, T]"
            )
        if wave.dtype not in (torch.float32, torch.float64):
            raise RobustmerError(
                f"LogFilteredSpectrogram: got dtype {wave.dtype}; expected float32 or float64"
            )
        single = wave.ndim == 1
        batch = wave.unsqueeze(0) if single else wave  # [B, T]
        length = batch.shape[1]
        if length < 1:
            raise RobustmerError("LogFilteredSpectrogram: got an empty waveform; expected T >= 1")
        size = self.config.frame_size
        starts = self.frame_starts(length, device=batch.device)  # [F]
        offsets = torch.arange(size, device=batch.device)  # [N]
        index = starts[:, None] + offsets[None, :]  # [F, N]
        last_start = math.floor((len(starts) - 1) * self.config.hop)  # == starts[-1], no sync
        pad = max(0, last_start + size - length)
        padded = torch.nn.functional.pad(batch, (0, pad))  # [B, T + pad]
        log_spec = self._log_spectrum(padded[:, index])  # [B, F, bands]
        return log_spec[0] if single else log_spec

    def excerpt(self, wave: torch.Tensor, first_frame: torch.Tensor, frames: int) -> torch.Tensor:
        """Frames ``o .. o + frames - 1`` of clips' spectrograms, from audio starting at frame o.

        Row ``b`` of ``wave`` holds a clip's samples from ``floor(o_b * hop)`` on, where
        ``o_b = first_frame[b]``; frame ``i`` of the result then covers the samples
        ``[floor((o_b + i) * hop), ... + frame_size)`` of the clip, exactly the frame grid of
        :meth:`forward` on the whole clip (the fractional hop makes that grid's phase depend on
        ``o_b``). Samples past the end of ``wave`` count as zeros, as in :meth:`forward`.

        Parameters
        ----------
        wave : torch.Tensor
            float32 or float64 ``[B, T]``; gradients flow back to it.
        first_frame : torch.Tensor
            int64 ``[B]``, each clip's first frame ``o_b >= 0``.
        frames : int
            Number of frames ``F >= 1``.

        Returns
        -------
        torch.Tensor
            ``[B, F, bands]``, the input's dtype and device; equal to
            ``forward(clip)[o_b : o_b + F]`` for each clip long enough to fill all frames.
        """
        if wave.ndim != 2 or first_frame.shape != (wave.shape[0],) or frames < 1:
            raise RobustmerError(
                f"LogFilteredSpectrogram.excerpt: got wave {tuple(wave.shape)}, first_frame "
                f"{tuple(first_frame.shape)}, frames={frames}; expected [B, T], [B] and >= 1"
            )
        hop, size = self.config.hop, self.config.frame_size
        first = first_frame.to(device=wave.device, dtype=torch.float64)[:, None]  # [B, 1]
        index = torch.arange(frames, dtype=torch.float64, device=wave.device)  # [F]
        starts = torch.floor((first + index) * hop) - torch.floor(first * hop)  # [B, F]
        offsets = torch.arange(size, device=wave.device)  # [N]
        gather = starts.to(torch.int64)[:, :, None] + offsets  # [B, F, N]
        pad = max(0, math.floor((frames - 1) * hop) + 1 + size - wave.shape[1])
        padded = torch.nn.functional.pad(wave, (0, pad))  # [B, T + pad]
        flat = torch.gather(padded, 1, gather.reshape(wave.shape[0], -1))  # [B, F * N]
        return self._log_spectrum(flat.reshape(wave.shape[0], frames, size))  # [B, F, bands]

    def _log_spectrum(self, frames: torch.Tensor) -> torch.Tensor:
        """Windowed frames ``[B, F, N]`` -> ``log10(1 + filterbank(|rfft|))`` ``[B, F, bands]``."""
        size = self.config.frame_size
        window = self.window.to(dtype=frames.dtype)  # [N]
        bank = self.filterbank.to(dtype=frames.dtype)  # [N/2, bands]
        spectrum = torch.fft.rfft(frames * window, n=size, dim=-1)  # [B, F, N/2 + 1] complex
        magnitude = spectrum[..., : self.config.num_bins].abs()  # [B, F, N/2]
        filtered = magnitude @ bank  # [B, F, bands]
        return torch.log1p(filtered) * _INV_LN10  # [B, F, bands] = log10(1 + x)

    def extra_repr(self) -> str:
        return f"config={self.config}, bands={self.num_bands}"


def spectrogram_from_file(
    path: str | os.PathLike[str],
    config: FrontEndConfig = FrontEndConfig(),  # noqa: B008
    dtype: torch.dtype = torch.float32,
    *,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Decode an audio file and compute its log-filtered spectrogram (docs/paper.md §3).

    Decoding follows :func:`robustmer.audio.decode.load_audio` (mono, resampled to
    ``config.sample_rate``, peak 1, exact zeros trimmed); the spectrogram is computed in
    float64 and cast to ``dtype`` at the end, matching madmom (Böck et al., 2016) to ~1e-6.

    Parameters
    ----------
    path : str or os.PathLike
        Audio file (wav, flac, mp3, ogg).
    config : FrontEndConfig
        Front-end parameters.
    dtype : torch.dtype
        dtype of the returned tensor.
    device : str or torch.device
        Where to compute; the result stays there.

    Returns
    -------
    torch.Tensor
        ``[frames, bands]`` log spectrogram (``[ceil(T / hop), 149]`` by default).

    Raises
    ------
    RobustmerError
        If the file is missing, does not decode, is silent or shorter than one frame.
    """
    samples = load_audio(path, config.sample_rate, min_samples=config.frame_size)  # [T]
    frontend = LogFilteredSpectrogram(config).to(device)
    with torch.no_grad():
        wave = torch.from_numpy(samples).to(device=device, dtype=torch.float64)  # [T]
        log_spec = frontend(wave)  # [F, bands]
    logger.debug("%s: %d samples -> spectrogram %s", path, len(samples), tuple(log_spec.shape))
    return log_spec.to(dtype)
