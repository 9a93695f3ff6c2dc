"""Audio of a data cache's clips, and listening files for waveform attacks.

:func:`clip_audio` finds the audio a cache's excerpts were cut from: the cache manifest
records each clip's source file and SHA-256 (``sources``) and each excerpt's first frame
(``excerpt.offsets``). The file is decoded as by ``robustmer prepare``
(:func:`robustmer.audio.load_audio`) and cut from the sample of the excerpt's first frame,
so a :class:`robustmer.models.WaveformModel` sees exactly the cached excerpt. A clip shorter
than one excerpt had its *spectrogram* repeated by ``prepare``; its audio is looped instead
(the prediction then differs a little from the cached excerpt's at the seams).

:func:`save_audio` writes, per clip, ``<clip>_clean.flac``, ``<clip>_adv.flac`` (24-bit
FLAC at the front end's sample rate) and ``<clip>.json`` (clip, model, attack, SNR,
predictions on the 1-9 scale).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from robustmer._io import atomic_path, sha256_file, write_json
from robustmer.errors import RobustmerError
from robustmer.names import EMOTIONS, RATING_SCALE

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "AUDIO_SUBTYPE",
    "LISTENING_FORMAT",
    "ListeningRecord",
    "clip_audio",
    "domain_inputs",
    "has_listening",
    "save_audio",
    "write_listening",
]

AUDIO_SUBTYPE = "PCM_24"
"""FLAC sample format of the listening files (quantisation noise ~ -144 dBFS)."""


LISTENING_FORMAT = "robustmer-listening-1"
"""``format`` of the JSON side-cars."""


@dataclasses.dataclass(frozen=True)
class ListeningRecord:
    """The JSON side-car of one clip's clean and adversarial audio (``<clip>.json``).

    Attributes
    ----------
    clip : int
        Clip id.
    system : str
        System of the attacked run (e.g. ``"A2M2E"``).
    seed : int
        Its training seed.
    run : str
        Run directory.
    attack : dict
        The attack's settings (``AttackConfig.to_dict()``).
    label : str
        ``AttackConfig.label()``.
    snr_db : float
        SNR of the adversarial waveform against the clean one [dB].
    sample_rate : int
        [Hz].
    clean_file, adv_file : str
        FLAC file names, in the side-car's directory.
    emotions : dict of str to list of float
        ``"true"``, ``"clean"``, ``"adv"``: 8 ratings each, 1-9 scale, ``EMOTIONS`` order.
    midlevel : dict of str to list of float, or None
        ``"clean"``, ``"adv"``: the 7 bottleneck outputs × 10; None without a bottleneck.
    """

    clip: int
    system: str
    seed: int
    run: str
    attack: dict[str, Any]
    label: str
    snr_db: float
    sample_rate: int
    clean_file: str
    adv_file: str
    emotions: dict[str, list[float]]
    midlevel: dict[str, list[float]] | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with ``format``."""
        return {"format": LISTENING_FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> ListeningRecord:
        """Read a side-car (RobustmerError for another format or missing fields)."""
        from robustmer._io import read_json

        d = read_json(path)
        if not isinstance(d, dict) or d.pop("format", None) != LISTENING_FORMAT:
            raise RobustmerError(f"{path}: not a listening side-car; expected {LISTENING_FORMAT}")
        try:
            return cls(**d)
        except TypeError as exc:
            raise RobustmerError(f"{path}: {exc}; expected a {LISTENING_FORMAT} side-car") from None


def _source(manifest: dict[str, Any], clip: int, where: Path) -> Path:
    entry = manifest.get("sources", {}).get(f"{clip:03d}")
    if not entry:
        raise RobustmerError(
            f"{where}: no source audio recorded for clip {clip}; expected a cache made by "
            "`robustmer prepare`"
        )
    file = Path(entry["file"])
    if not file.is_file():
        raise RobustmerError(
            f"{file}: source audio of clip {clip} not found; expected the file the cache "
            f"{where} was prepared from"
        )
    if sha256_file(file) != entry["sha256"]:
        raise RobustmerError(
            f"{file}: differs from the audio the cache {where} was prepared from (SHA-256 "
            "mismatch); expected the original file"
        )
    return file


def clip_audio(cache: Any, ids: list[int], samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Each clip's audio from its cached excerpt's first frame on.

    Parameters
    ----------
    cache : robustmer.data.Cache
    ids : list of int
        Clip ids of the cache.
    samples : int
        Samples per clip to return (:attr:`robustmer.models.WaveformModel.samples`).

    Returns
    -------
    wave : np.ndarray, float32, shape [n, samples]
        Zero past the end of a clip.
    first_frame : np.ndarray, int64, shape [n]
        The excerpts' first frames.

    Raises
    ------
    RobustmerError
        For a clip without a recorded or existing source file, or a changed file.
    """
    from robustmer.audio import load_audio

    manifest, where = cache.manifest, Path(cache.path)
    offsets = manifest.get("excerpt", {}).get("offsets")
    if offsets is None or len(offsets) != len(cache.ids):
        raise RobustmerError(f"{where}: no excerpt offsets recorded; expected a prepared cache")
    first_of = dict(zip(cache.ids, offsets, strict=True))
    config = cache.frontend
    wave = np.zeros((len(ids), samples), dtype=np.float32)
    first = np.array([first_of[c] for c in ids], dtype=np.int64)
    for row, clip in enumerate(ids):
        audio = load_audio(_source(manifest, clip, where), config.sample_rate)  # [T]
        start = math.floor(first[row] * config.hop)
        if start + samples > audio.size and math.ceil(audio.size / config.hop) < cache.frames:
            audio = np.resize(audio, start + samples)  # loop a clip shorter than an excerpt
        piece = audio[start : start + samples]
        wave[row, : piece.size] = piece
    return wave, first


def save_audio(
    out: str | os.PathLike[str],
    clean: np.ndarray,
    adversarial: np.ndarray,
    sample_rate: int,
    records: list[ListeningRecord],
) -> list[Path]:
    """Write clean and adversarial FLAC files and a JSON side-car per clip, atomically.

    Parameters
    ----------
    out : str or PathLike
        Directory (created).
    clean, adversarial : np.ndarray, shape [n, T]
        Waveforms in [-1, 1].
    sample_rate : int
        [Hz].
    records : list of ListeningRecord
        One per clip, written as ``<clip>.json``; its ``clean_file`` / ``adv_file`` name
        the FLAC files written.

    Returns
    -------
    list of Path
        The side-car files.
    """
    import soundfile as sf

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for row, record in enumerate(records):
        for name, wave in ((record.clean_file, clean[row]), (record.adv_file, adversarial[row])):
            with atomic_path(out / name) as tmp:
                data = np.asarray(wave, np.float64)  # [T]
                sf.write(tmp, data, sample_rate, format="FLAC", subtype=AUDIO_SUBTYPE)
        write_json(out / f"{record.clip:03d}.json", record.to_dict())
        written.append(out / f"{record.clip:03d}.json")
    return written


def _spectrogram_inputs(run: Any, x: torch.Tensor, ids: list[int]) -> tuple[nn.Module, Any]:
    return run.model, x


def _waveform_inputs(run: Any, x: torch.Tensor, ids: list[int]) -> tuple[nn.Module, Any]:
    import torch

    from robustmer.models import WaveformModel

    model = WaveformModel.from_run(run)
    wave, _ = clip_audio(run.cache, ids, model.samples)  # [n, S]
    return model, torch.from_numpy(wave)


_DOMAIN_INPUTS: dict[str, Callable[..., tuple[Any, Any]]] = {
    "spectrogram": _spectrogram_inputs,
    "waveform": _waveform_inputs,
}


def domain_inputs(
    run: Any, config: Any, x: torch.Tensor, ids: list[int]
) -> tuple[nn.Module, torch.Tensor]:
    """The model and inputs an attack of ``config.domain`` works on.

    Spectrogram domain: the run's model and its cached excerpts ``x [n, 1, F, 149]``.
    Waveform domain: the run's :class:`robustmer.models.WaveformModel` and the clips' audio
    ``[n, samples]`` (:func:`clip_audio`; its frames start at the excerpt's first sample, so
    frame starts may differ by one sample from the cache's fractional frame grid).
    """
    return _DOMAIN_INPUTS[config.domain](run, x, ids)


def has_listening(out: str | os.PathLike[str], ids: list[int]) -> bool:
    """Whether ``out`` holds a listening side-car for every clip of ``ids``."""
    return all((Path(out) / f"{clip:03d}.json").is_file() for clip in ids)


def write_listening(
    out: str | os.PathLike[str],
    run: Any,
    config: Any,
    ids: list[int],
    clean: torch.Tensor,
    y: torch.Tensor,
    arrays: dict[str, np.ndarray],
) -> list[Path]:
    """Listening files of a waveform attack's clips (:func:`save_audio`).

    Parameters
    ----------
    out : str or PathLike
    run : robustmer.training.Run
    config : AttackConfig
    ids : list of int
    clean : torch.Tensor, shape [n, samples]
        The attacked waveforms.
    y : torch.Tensor, shape [n, 8]
        True ratings / 10.
    arrays : dict of str to np.ndarray
        The attack's per-clip results: ``x_adv [n, samples]``, ``pred_clean``, ``pred``,
        ``snr_db`` and, for bottleneck models, ``midlevel_clean``, ``midlevel_adv``.
    """
    def rating(values: np.ndarray) -> list[float]:
        return [float(v) * RATING_SCALE for v in values]

    mid = "midlevel_clean" in arrays
    records = [
        ListeningRecord(
            clip=int(clip),
            system=run.system.name,
            seed=int(run.config.seed),
            run=str(run.path),
            attack=config.to_dict(),
            label=config.label(),
            snr_db=float(arrays["snr_db"][row]),
            sample_rate=int(run.cache.frontend.sample_rate),
            clean_file=f"{clip:03d}_clean.flac",
            adv_file=f"{clip:03d}_adv.flac",
            emotions={
                "true": rating(y[row].numpy()),
                "clean": rating(arrays["pred_clean"][row]),
                "adv": rating(arrays["pred"][row]),
            },
            midlevel=(
                {
                    "clean": rating(arrays["midlevel_clean"][row]),
                    "adv": rating(arrays["midlevel_adv"][row]),
                }
                if mid
                else None
            ),
        )
        for row, clip in enumerate(ids)
    ]
    assert len(EMOTIONS) == len(records[0].emotions["true"])
    rate = int(run.cache.frontend.sample_rate)
    return save_audio(out, clean.numpy(), arrays["x_adv"], rate, records)
