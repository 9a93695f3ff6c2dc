"""The prepared-data cache: normalised 10-second excerpts, targets, split and provenance.

Layout of a cache directory (no pickle; every file written atomically, the whole directory
replaced only when complete)::

    manifest.json          format, version, ids, split (clip ids), ratings, mid-level
                           targets, normalisation, front-end parameters, excerpt offsets,
                           source hashes, and ``sha256``: the SHA-256 of each array file
                           and of the targets (ids, split, ratings, mid-level targets,
                           normalisation, front end), checked on every load, and of each
                           spectrogram file, checked before ``prepare`` re-uses it
    excerpts.npy           float32 [N, frames, 149], normalised log-filtered spectrogram
    emotions.npy           float32 [N, 8], ratings / 10
    midlevel.npy           float32 [N, 7], mid-level ratings / 10
    spectrograms/NNN.npy   float32 [T, 149], full unnormalised spectrogram of clip NNN
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from robustmer._io import (
    atomic_directory,
    read_json,
    sha256_bytes,
    sha256_file,
    to_jsonable,
    write_json,
)
from robustmer.errors import RobustmerError
from robustmer.names import EMOTIONS, MIDLEVEL_FEATURES

if TYPE_CHECKING:
    import torch

    from robustmer.audio import FrontEndConfig, Normalization

CACHE_FORMAT = "robustmer-cache"
CACHE_VERSION = 2
SPLITS = ("train", "validation", "test")
ARRAY_FILES = ("excerpts.npy", "emotions.npy", "midlevel.npy")
TARGET_KEYS = ("ids", "split", "emotions", "midlevel", "normalization", "frontend")
"""Manifest entries covered by the ``targets`` hash: what a model is trained towards."""


def targets_hash(manifest: dict[str, Any]) -> str:
    """SHA-256 of the manifest's :data:`TARGET_KEYS` entries (canonical JSON)."""
    part = json.loads(json.dumps(to_jsonable({k: manifest.get(k) for k in TARGET_KEYS})))
    return sha256_bytes(json.dumps(part, sort_keys=True, separators=(",", ":")).encode())


def _check_hashes(path: Path, manifest: dict[str, Any]) -> None:
    """Raise if an array file or the manifest's targets changed since the cache was written."""
    recorded = manifest.get("sha256") or {}
    manifest_path = path / "manifest.json"
    if recorded.get("targets") != targets_hash(manifest):
        raise RobustmerError(
            f"{manifest_path}: its ratings, mid-level targets, split or normalisation differ "
            "from what was written (the recorded SHA-256 does not match; edited by hand?); "
            "expected an unmodified cache: run `robustmer prepare` again"
        )
    for name in ARRAY_FILES:
        if recorded.get(name) != sha256_file(path / name):
            raise RobustmerError(
                f"{path / name}: content differs from what was written (SHA-256 recorded in "
                f"{manifest_path.name} does not match); expected an unmodified cache: run "
                "`robustmer prepare` again"
            )


@dataclass
class Cache:
    """A loaded cache (see the module docstring for the layout).

    Attributes
    ----------
    path : Path
    ids : list of int
        Set-1 numbers, in the order of the arrays' first axis.
    excerpts : np.ndarray, float32, shape (N, frames, 149)
    emotions : np.ndarray, float32, shape (N, 8)
        Ratings / 10.
    midlevel : np.ndarray, float32, shape (N, 7)
        Mid-level ratings / 10.
    split : dict of str to list of int
        Clip ids of ``"train"``, ``"validation"``, ``"test"``.
    normalization : robustmer.audio.Normalization
    frontend : robustmer.audio.FrontEndConfig
    manifest : dict
    manifest_hash : str
        SHA-256 of ``manifest.json``; identifies the data a model was trained on.
    """

    path: Path
    ids: list[int]
    excerpts: np.ndarray
    emotions: np.ndarray
    midlevel: np.ndarray
    split: dict[str, list[int]]
    normalization: Normalization
    frontend: FrontEndConfig
    manifest: dict[str, Any]
    manifest_hash: str
    _row: dict[int, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._row = {n: i for i, n in enumerate(self.ids)}

    @property
    def frames(self) -> int:
        """Excerpt length in frames."""
        return int(self.excerpts.shape[1])

    def rows(self, split: str) -> np.ndarray:
        """Array row indices of a split's clips, in split order."""
        if split not in self.split:
            raise RobustmerError(
                f"{self.path}: unknown split {split!r}; expected one of {', '.join(self.split)}"
            )
        return np.array([self._row[n] for n in self.split[split]], dtype=np.int64)

    def arrays(self, split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
        """The split as float32 tensors.

        Returns
        -------
        x : torch.Tensor, shape (n, 1, frames, 149)
        emotions : torch.Tensor, shape (n, 8)
        midlevel : torch.Tensor, shape (n, 7)
        ids : list of int
        """
        import torch

        rows = self.rows(split)
        x = torch.from_numpy(np.ascontiguousarray(self.excerpts[rows])).unsqueeze(1)
        emo = torch.from_numpy(np.ascontiguousarray(self.emotions[rows]))
        mid = torch.from_numpy(np.ascontiguousarray(self.midlevel[rows]))
        return x, emo, mid, list(self.split[split])


def _check_contents(
    ids: list[int],
    excerpts: np.ndarray,
    emotions: np.ndarray,
    midlevel: np.ndarray,
    split: dict[str, list[int]],
) -> None:
    """Raise :class:`RobustmerError` unless the arrays have one row per clip id (excerpts
    [N, frames, bands], emotions [N, 8], mid-level [N, 7]) and every split exists and names
    only known clip ids."""
    n = len(ids)
    expected = {
        "excerpts": (excerpts, (n, *excerpts.shape[1:]) if excerpts.ndim == 3 else (n, -1, -1)),
        "emotions": (emotions, (n, len(EMOTIONS))),
        "midlevel": (midlevel, (n, len(MIDLEVEL_FEATURES))),
    }
    for name, (array, shape) in expected.items():
        if array.shape != shape:
            raise RobustmerError(
                f"cache {name}: shape {array.shape}; expected {shape} for {n} clip ids"
            )
    known = set(ids)
    for name in SPLITS:
        if name not in split:
            raise RobustmerError(f"split has no {name!r} part; expected {', '.join(SPLITS)}")
        unknown = [i for i in split[name] if i not in known]
        if unknown:
            raise RobustmerError(f"split {name!r} names unknown clip ids {unknown[:5]}")


def write_cache(
    out: str | Path,
    *,
    ids: list[int],
    excerpts: np.ndarray,
    emotions: np.ndarray,
    midlevel: np.ndarray,
    split: dict[str, list[int]],
    normalization: Normalization,
    frontend: FrontEndConfig,
    spectrograms: dict[int, np.ndarray] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a cache directory atomically (replacing ``out`` only when complete).

    Parameters
    ----------
    out : str or Path
    ids : list of int
        Set-1 numbers, one per row of the arrays.
    excerpts : np.ndarray, shape (N, frames, 149)
        Normalised excerpts.
    emotions : np.ndarray, shape (N, 8)
        Ratings / 10.
    midlevel : np.ndarray, shape (N, 7)
        Mid-level ratings / 10.
    split : dict of str to list of int
        Clip ids per split (``train``, ``validation``, ``test``).
    normalization, frontend
        Normalisation statistics and front-end parameters the excerpts were made with.
    spectrograms : dict of int to np.ndarray, optional
        Full unnormalised spectrograms to keep for re-use by a later ``prepare``.
    extra : dict, optional
        More manifest entries (sources, excerpt offsets, ...).

    Returns
    -------
    Path
        ``out``.
    """
    out = Path(out)
    n = len(ids)
    excerpts = np.asarray(excerpts, dtype=np.float32)
    emotions = np.asarray(emotions, dtype=np.float32)
    midlevel = np.asarray(midlevel, dtype=np.float32)
    _check_contents(ids, excerpts, emotions, midlevel, split)
    manifest: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "clips": n,
        "frames": int(excerpts.shape[1]),
        "bands": int(excerpts.shape[2]),
        "ids": [int(i) for i in ids],
        "split": {k: [int(i) for i in split[k]] for k in SPLITS},
        "emotion_names": list(EMOTIONS),
        "midlevel_names": list(MIDLEVEL_FEATURES),
        "emotions": emotions.tolist(),
        "midlevel": midlevel.tolist(),
        "normalization": normalization.to_dict(),
        "frontend": frontend.to_dict(),
        **(extra or {}),
    }
    with atomic_directory(out) as tmp:
        for name, array in zip(ARRAY_FILES, (excerpts, emotions, midlevel), strict=True):
            np.save(tmp / name, array)
        if spectrograms:
            (tmp / "spectrograms").mkdir()
            for i, spec in spectrograms.items():
                np.save(tmp / "spectrograms" / f"{i:03d}.npy", np.asarray(spec, np.float32))
        manifest["sha256"] = {
            **{name: sha256_file(tmp / name) for name in ARRAY_FILES},
            "targets": targets_hash(manifest),
        }
        if spectrograms:  # checked by prepare before it re-uses one
            manifest["sha256"]["spectrograms"] = {
                f"{i:03d}": sha256_file(tmp / "spectrograms" / f"{i:03d}.npy") for i in spectrograms
            }
        write_json(tmp / "manifest.json", manifest)
    return out


def load_cache(path: str | Path, *, frontend: FrontEndConfig | None = None) -> Cache:
    """Load a cache written by :func:`write_cache` / :func:`robustmer.data.prepare`.

    Parameters
    ----------
    path : str or Path
    frontend : FrontEndConfig, optional
        If given, the cache must have been made with exactly these front-end parameters.

    Raises
    ------
    RobustmerError
        Missing cache, a cache of another format or version, another front end, arrays
        that do not match the manifest, or array files or targets (ratings, mid-level
        targets, split, normalisation) that differ from their recorded SHA-256.
    """
    from robustmer.audio import FrontEndConfig, Normalization

    path = Path(path)
    if not path.is_dir():
        raise RobustmerError(
            f"{path}: data cache not found; expected a directory made by `robustmer prepare`"
        )
    manifest_path = path / "manifest.json"
    manifest = read_json(manifest_path)
    if manifest.get("format") != CACHE_FORMAT or manifest.get("version") != CACHE_VERSION:
        raise RobustmerError(
            f"{manifest_path}: cache format {manifest.get('format')!r} version "
            f"{manifest.get('version')!r} was made by another robustmer; expected "
            f"{CACHE_FORMAT!r} version {CACHE_VERSION}: run `robustmer prepare` again"
        )
    cached_frontend = FrontEndConfig.from_dict(manifest["frontend"])
    if frontend is not None and cached_frontend != frontend:
        raise RobustmerError(
            f"{manifest_path}: made with front end {cached_frontend.to_dict()}, expected "
            f"{frontend.to_dict()}: run `robustmer prepare` again"
        )
    for name in ARRAY_FILES:
        if not (path / name).is_file():
            raise RobustmerError(
                f"{path / name}: missing from the cache; run `robustmer prepare` again"
            )
    _check_hashes(path, manifest)
    arrays = {n.removesuffix(".npy"): np.load(path / n, allow_pickle=False) for n in ARRAY_FILES}
    ids = [int(i) for i in manifest["ids"]]
    expected = (len(ids), manifest["frames"], manifest["bands"])
    if arrays["excerpts"].shape != expected:
        raise RobustmerError(
            f"{path / 'excerpts.npy'}: shape {arrays['excerpts'].shape}, expected {expected}"
        )
    return Cache(
        path=path,
        ids=ids,
        excerpts=arrays["excerpts"],
        emotions=arrays["emotions"],
        midlevel=arrays["midlevel"],
        split={k: [int(i) for i in v] for k, v in manifest["split"].items()},
        normalization=Normalization.from_dict(manifest["normalization"]),
        frontend=cached_frontend,
        manifest=manifest,
        manifest_hash=sha256_file(manifest_path),
    )
