"""MER models on audio: waveform -> log-filtered spectrogram -> normalisation -> model.

:class:`WaveformModel` chains the differentiable front end
(:class:`robustmer.audio.LogFilteredSpectrogram`), the data cache's global normalisation and a
trained MER model, so that a model can be fed raw audio and attacks can perturb the waveform
(see ``docs/audio-attacks.md``). It reproduces the cache path exactly: for a clip's audio
starting at the sample of the cached excerpt's first frame, the spectrogram frames are those
of the whole clip (same fractional frame grid), so the wrapper's prediction equals the model's
prediction on the cached excerpt to float precision.

:func:`predict_audio` / :func:`predict_file` rate a clip of any length: the model's excerpt
(``frames`` frames) is slid over the clip every ``hop_frames`` frames (default half an
excerpt), plus one window ending at the clip's last frame when the grid misses it, and the
window predictions are averaged with equal weights. A clip shorter than one excerpt is
looped (its audio repeated) to fill one window.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from robustmer.audio import FrontEndConfig, LogFilteredSpectrogram, Normalization, load_audio
from robustmer.errors import RobustmerError
from robustmer.models.mer import MIN_FRAMES, MEROutput
from robustmer.names import RATING_SCALE

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "AudioPrediction",
    "WaveformModel",
    "excerpt_samples",
    "predict_audio",
    "predict_file",
    "window_starts",
]


def excerpt_samples(frontend: FrontEndConfig, frames: int) -> int:
    """Samples that hold an excerpt of ``frames`` frames at any frame-grid phase.

    ``floor((frames - 1) · hop) + 1 + frame_size``: the last frame starts at most
    ``floor((frames - 1) · hop) + 1`` samples after the first (the hop is fractional).
    """
    return math.floor((frames - 1) * frontend.hop) + 1 + frontend.frame_size


class WaveformModel(nn.Module):
    """A MER model that takes audio: ``wave [B, T] -> MEROutput`` (see the module docstring).

    Parameters
    ----------
    model : torch.nn.Module
        A MER model on normalised log spectrograms ``[B, 1, frames, bands]`` returning a
        :class:`robustmer.models.MEROutput`.
    frontend : FrontEndConfig
        Front-end settings the model's data were made with.
    normalization : Normalization
        The data cache's global mean and standard deviation.
    frames : int
        Excerpt length the model sees [frames] (the cache's excerpt length).

    Notes
    -----
    The front end runs in float64 (it matches madmom to ~1e-6 there); the normalised
    spectrogram is cast to the model's parameter dtype.
    """

    def __init__(
        self,
        model: nn.Module,
        frontend: FrontEndConfig,
        normalization: Normalization,
        frames: int,
    ) -> None:
        super().__init__()
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < MIN_FRAMES:
            raise RobustmerError(
                f"waveform model frames={frames!r}: invalid; expected an integer >= {MIN_FRAMES}"
            )
        self.model = model
        self.frontend = LogFilteredSpectrogram(frontend)
        self.normalization = normalization
        self.frames = frames
        self.train(model.training)  # keep the wrapped model's mode (eval for a loaded run)

    @classmethod
    def from_run(cls, run: Any, *, frontend: FrontEndConfig | None = None) -> WaveformModel:
        """The waveform model of a trained run (``robustmer.training.load_run``).

        Front end, normalisation and excerpt length come from the run's data cache (whose
        manifest hash ``load_run`` has checked against the run's record).

        Parameters
        ----------
        run : robustmer.training.Run
            Anything with ``.model`` and ``.cache`` (``.frontend``, ``.normalization``,
            ``.frames``, ``.path``).
        frontend : FrontEndConfig, optional
            The front end the caller expects; it must equal the cache's.

        Raises
        ------
        RobustmerError
            If ``frontend`` differs from the front end the run's data were made with.
        """
        cache = run.cache
        if frontend is not None and frontend != cache.frontend:
            raise RobustmerError(
                f"{cache.path}: the run's data were made with front end "
                f"{cache.frontend.to_dict()}; expected {frontend.to_dict()}"
            )
        return cls(run.model, cache.frontend, cache.normalization, cache.frames)

    @property
    def config(self) -> FrontEndConfig:
        """The front-end settings."""
        return self.frontend.config

    @property
    def samples(self) -> int:
        """Samples of one excerpt's audio (:func:`excerpt_samples`)."""
        return excerpt_samples(self.config, self.frames)

    def spectrogram(
        self, wave: torch.Tensor, first_frame: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The normalised excerpt the model sees, ``[B, 1, frames, bands]`` in the model's dtype.

        Parameters
        ----------
        wave : torch.Tensor
            float ``[B, T]``: each clip's audio from sample ``floor(first_frame · hop)`` on
            (samples past ``T`` count as zeros).
        first_frame : torch.Tensor, optional
            int64 ``[B]``: the clip frame each row's excerpt starts at (default 0), which fixes
            the phase of the fractional frame grid.
        """
        if wave.ndim != 2 or not wave.is_floating_point():
            raise RobustmerError(
                f"waveform model input: shape {tuple(wave.shape)} dtype {wave.dtype}; "
                "expected float [batch, samples]"
            )
        if first_frame is None:
            first_frame = torch.zeros(wave.shape[0], dtype=torch.int64, device=wave.device)
        spec = self.frontend.excerpt(wave.to(torch.float64), first_frame, self.frames)
        dtype = next(self.model.parameters()).dtype
        return self.normalization.normalize(spec).to(dtype).unsqueeze(1)  # [B, 1, F, bands]

    def forward(self, wave: torch.Tensor, first_frame: torch.Tensor | None = None) -> MEROutput:
        """Predict from audio; see :meth:`spectrogram` for the inputs.

        Returns
        -------
        MEROutput
            ``emotions [B, 8]`` (training scale, ratings / 10); ``midlevel [B, 7]`` or None.
        """
        return self.model(self.spectrogram(wave, first_frame))


def window_starts(n_frames: int, frames: int, hop_frames: int) -> list[int]:
    """First frames of the sliding windows over a clip of ``n_frames`` frames.

    ``0, hop, 2·hop, ...`` while the window fits, plus ``n_frames - frames`` when the grid
    does not end there; ``[0]`` for a clip of at most one window.
    """
    if n_frames <= frames:
        return [0]
    starts = list(range(0, n_frames - frames + 1, hop_frames))
    if starts[-1] != n_frames - frames:
        starts.append(n_frames - frames)
    return starts


@dataclasses.dataclass(frozen=True)
class AudioPrediction:
    """A clip's predictions, averaged over the sliding windows.

    Attributes
    ----------
    emotions : np.ndarray, float64, shape [8]
        Emotion ratings on the 1-9 scale (``robustmer.names.EMOTIONS`` order).
    midlevel : np.ndarray, float64, shape [7], or None
        Bottleneck outputs times 10 (for A2M2E: the mid-level features on their annotation
        scale); None for models without a bottleneck.
    windows : int
        Number of windows averaged.
    seconds : float
        Clip length after decoding and trimming [s].
    """

    emotions: np.ndarray
    midlevel: np.ndarray | None
    windows: int
    seconds: float


def predict_audio(
    model: WaveformModel,
    wave: np.ndarray,
    *,
    hop_frames: int | None = None,
    batch_size: int = 8,
) -> AudioPrediction:
    """Rate a decoded clip of any length (see the module docstring for the windows).

    Parameters
    ----------
    model : WaveformModel
        On any device; put in eval mode for the prediction and restored afterwards.
    wave : np.ndarray
        float ``[T]`` mono audio at ``model.config.sample_rate`` (e.g. from
        :func:`robustmer.audio.load_audio`).
    hop_frames : int, optional
        Frames between window starts; default ``frames // 2`` (half an excerpt).
    batch_size : int
        Windows per forward pass.

    Returns
    -------
    AudioPrediction
    """
    wave = np.asarray(wave, dtype=np.float64)
    if wave.ndim != 1 or wave.size == 0:
        raise RobustmerError(f"audio of shape {wave.shape}: expected a non-empty mono signal")
    hop_frames = max(1, model.frames // 2) if hop_frames is None else hop_frames
    if isinstance(hop_frames, bool) or not isinstance(hop_frames, int) or hop_frames < 1:
        raise RobustmerError(f"hop_frames={hop_frames!r}: invalid; expected an integer >= 1")
    seconds = wave.size / model.config.sample_rate
    n_frames = math.ceil(wave.size / model.config.hop)
    if n_frames < model.frames:
        wave = np.resize(wave, model.samples)  # loop a short clip to fill one window
    starts = window_starts(max(n_frames, model.frames), model.frames, hop_frames)
    segments = np.zeros((len(starts), model.samples))  # [K, S]
    for k, start in enumerate(starts):
        piece = wave[math.floor(start * model.config.hop) :][: model.samples]
        segments[k, : piece.size] = piece
    emotions, midlevel = _predict_windows(model, segments, starts, batch_size)
    return AudioPrediction(
        emotions=emotions.mean(axis=0) * RATING_SCALE,
        midlevel=None if midlevel is None else midlevel.mean(axis=0) * RATING_SCALE,
        windows=len(starts),
        seconds=seconds,
    )


def _predict_windows(
    model: WaveformModel, segments: np.ndarray, starts: list[int], batch_size: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-window predictions ``[K, 8]`` and ``[K, 7] | None`` (training scale, float64)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    emo, mid = [], []
    try:
        with torch.no_grad():
            for lo in range(0, len(starts), batch_size):
                wave = torch.from_numpy(segments[lo : lo + batch_size]).to(device)  # [b, S]
                first = torch.tensor(starts[lo : lo + batch_size], device=device)  # [b]
                out = model(wave, first)
                emo.append(out.emotions.double().cpu().numpy())  # [b, 8]
                if out.midlevel is not None:
                    mid.append(out.midlevel.double().cpu().numpy())  # [b, 7]
    finally:
        model.train(was_training)
    return np.concatenate(emo), (np.concatenate(mid) if mid else None)


def predict_file(
    model: WaveformModel,
    path: str | os.PathLike[str] | Path,
    *,
    hop_frames: int | None = None,
    batch_size: int = 8,
) -> AudioPrediction:
    """Decode an audio file (:func:`robustmer.audio.load_audio`) and :func:`predict_audio` it.

    Raises
    ------
    RobustmerError
        Naming the file if it is missing, does not decode, is silent or shorter than a frame.
    """
    wave = load_audio(path, model.config.sample_rate, min_samples=model.config.frame_size)
    return predict_audio(model, wave, hop_frames=hop_frames, batch_size=batch_size)
