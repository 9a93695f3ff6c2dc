"""What runs, attacks and studies write to disk: file names and typed, versioned records.

A foundation module (it imports no stage): training writes :class:`FinalMetrics`
(``final.json``), :func:`robustmer.evaluation.attack_run` writes the per-clip table
(:data:`CLIP_COLUMNS`) and an :class:`AttackSummary` (``summary.json``), and the report and
the study read them back through the same classes, so a field has one name, written in one
place. Every record file carries ``format`` and ``version``; reading a file of another
format, or of a newer version than this code knows, is a :class:`RobustmerError` naming
the file. Settings (training and attack configurations) are stored as plain dicts here
(``TrainConfig.to_dict()``, ``AttackConfig.to_dict()``); the stages that own them rebuild
the typed configs.

Layout of a run directory (file names defined here only)::

    RUN/config.json                      CONFIG_FILE: training config, data, versions
    RUN/metrics.csv                      METRICS_FILE: one row per epoch
    RUN/best.safetensors                 BEST_FILE: best checkpoint
    RUN/state.pt                         STATE_FILE: resume state
    RUN/final.json                       FINAL_FILE: FinalMetrics (presence = finished)
    RUN/attacks/<key>/clips.parquet|csv  per-clip table (CLIP_COLUMNS)
    RUN/attacks/<key>/summary.json       AttackSummary (presence = attack finished)
    RUN/attacks/<key>/examples.npy       adversarial examples (optional)
    RUN/attacks/<key>/audio/             AUDIO_DIR: listening files of a waveform attack
                                         (optional; NNN_clean.flac, NNN_adv.flac, NNN.json)

``<key>`` is the attack's storage key (``AttackConfig.key()``, e.g. ``paper-1a2b3c4d5e``),
suffixed ``-<split>`` for splits other than ``test`` (:func:`attack_dir`). See
docs/records.md.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from pathlib import Path
from typing import Any, ClassVar, Self

from robustmer._io import read_json, write_json, write_table
from robustmer.errors import RobustmerError
from robustmer.names import EMOTIONS, MIDLEVEL_FEATURES

__all__ = [
    "ATTACKS_DIR",
    "AUDIO_DIR",
    "BEST_FILE",
    "CLIPS_STEM",
    "CLIP_COLUMNS",
    "CONFIG_FILE",
    "EXAMPLES_FILE",
    "FINAL_FILE",
    "FORMAT_VERSION",
    "METRICS_FILE",
    "REPORT_DIR",
    "RUNS_DIR",
    "STATE_FILE",
    "STUDY_FILE",
    "SUMMARY_FILE",
    "AttackSummary",
    "Cost",
    "FinalMetrics",
    "attack_dir",
    "clip_columns",
    "read_clips",
    "write_clips",
]

FORMAT_VERSION = 2
"""Version of every record written by this code (1: the unversioned files before records)."""

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
BEST_FILE = "best.safetensors"
STATE_FILE = "state.pt"
FINAL_FILE = "final.json"
ATTACKS_DIR = "attacks"
CLIPS_STEM = "clips"
SUMMARY_FILE = "summary.json"
EXAMPLES_FILE = "examples.npy"
AUDIO_DIR = "audio"
STUDY_FILE = "study.json"
RUNS_DIR = "runs"
REPORT_DIR = "report"


def attack_dir(run_dir: str | os.PathLike[str], key: str, split: str = "test") -> Path:
    """``RUN/attacks/<key>`` (``<key>-<split>`` for a split other than ``test``)."""
    return Path(run_dir) / ATTACKS_DIR / (key if split == "test" else f"{key}-{split}")


# ----------------------------------------------------------------------------- records


def _plain(value: Any) -> Any:
    if isinstance(value, _Fields):
        return value.to_dict()
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclasses.dataclass(frozen=True)
class _Fields:
    """A frozen dataclass with a dict round trip; nested records become nested dicts."""

    def to_dict(self) -> dict[str, Any]:
        """Field values as a JSON-ready dict (NaN is written as null by ``write_json``)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: Any, *, where: str = "record") -> Self:
        """Rebuild from :meth:`to_dict`; ``where`` names the source in errors.

        Raises
        ------
        RobustmerError
            For a non-mapping, unknown or missing fields.
        """
        if not isinstance(d, dict):
            raise RobustmerError(f"{where}: got {type(d).__name__}; expected a JSON object")
        hints = typing.get_type_hints(cls)
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(known) - {"format", "version"})
        if unknown:
            raise RobustmerError(
                f"{where}: unknown field(s) {', '.join(unknown)}; expected some of "
                f"{', '.join(known)}"
            )
        values = {}
        for name, f in known.items():
            if name not in d:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise RobustmerError(f"{where}: missing field '{name}'; expected it")
                continue
            kinds = typing.get_args(hints[name]) or (hints[name],)
            record = [k for k in kinds if isinstance(k, type) and issubclass(k, _Fields)]
            value = d[name]
            if record and value is not None:
                value = record[0].from_dict(value, where=f"{where} '{name}'")
            elif value is None and float in kinds:
                value = math.nan  # JSON null is how NaN is written
            values[name] = value
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class _File(_Fields):
    """A record stored as one JSON file with ``format`` and ``version``."""

    FORMAT: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """``{"format", "version", field: value, ...}``."""
        return {"format": self.FORMAT, "version": FORMAT_VERSION, **super().to_dict()}

    @classmethod
    def from_dict(cls, d: Any, *, where: str = "record") -> Self:
        """Rebuild from :meth:`to_dict`, checking ``format`` and ``version``."""
        if not isinstance(d, dict):
            raise RobustmerError(f"{where}: got {type(d).__name__}; expected a JSON object")
        fmt, version = d.get("format"), d.get("version")
        if fmt != cls.FORMAT:
            raise RobustmerError(f"{where}: format {fmt!r}; expected {cls.FORMAT!r}")
        if not isinstance(version, int) or not 2 <= version <= FORMAT_VERSION:
            raise RobustmerError(
                f"{where}: version {version!r}; expected 2..{FORMAT_VERSION} (a file from "
                "another robustmer version: redo it with this one)"
            )
        return super().from_dict(d, where=where)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Self:
        """Read and check one file (RobustmerError naming it when it is not valid)."""
        return cls.from_dict(read_json(path), where=str(path))

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write atomically as JSON."""
        write_json(path, self.to_dict())


@dataclasses.dataclass(frozen=True)
class Cost(_Fields):
    """Compute spent by a training run or an attack.

    Attributes
    ----------
    wall_seconds : float
        Wall-clock time of the work (training: epochs and final evaluation; attack: the
        attack calls).
    forward_clip_passes : int
        Clips through the model's forward pass (one clip once = 1).
    backward_clip_passes : int
        Clips through a backward pass (training steps, and one per attack clip-iteration).
    attack_clip_iterations : int
        Sum over attacked clips of the attack's iterations.
    device : str
        ``cpu``, ``cuda:0``, ...
    device_name : str
        GPU model or CPU name.
    torch : str
        torch version.
    epochs_run, adversarial_epochs, validation_clip_passes, optimizer_steps,
    adversarial_steps, attack_calls : int
        Training only (0 for an attack).
    execution : str
        Attack only: how it was computed (``robustmer.attacks.execution.Execution.label``),
        e.g. ``eager`` or ``stacked x10, compiled (default)``; a stacked attack's wall time
        and passes are its run's equal share of the batch's.
    """

    wall_seconds: float
    forward_clip_passes: int
    backward_clip_passes: int
    attack_clip_iterations: int
    device: str
    device_name: str
    torch: str
    epochs_run: int = 0
    adversarial_epochs: int = 0
    validation_clip_passes: int = 0
    optimizer_steps: int = 0
    adversarial_steps: int = 0
    attack_calls: int = 0
    execution: str = "eager"


@dataclasses.dataclass(frozen=True)
class FinalMetrics(_File):
    """``final.json``: the finished run's best checkpoint on every split, and its cost.

    Attributes
    ----------
    system : str
    seed : int
    arch : str
    width : float
    monitor : str
        Early-stopping rule.
    best_epoch : int
    best_score : float
        Monitored validation score of the best epoch.
    epochs_run : int
    stopped_early : bool
    metrics : dict
        Per split (``train``, ``validation``, ``test``): ``clips``, ``emotions`` (a
        ``robustmer.metrics.regression_report``: ``avg_corr``, ``corr``, ``mae``, ``rmse``,
        ``r2``, ``r2_mean``) and ``midlevel`` (the same, or None without a bottleneck);
        bottleneck models also ``bottleneck_std`` (the sample sd of each of the 7 bottleneck
        outputs on the split, training scale; the concepts' scale of
        ``robustmer.evaluation.concepts``; absent in runs trained before it existed).
    cost : Cost or None
        None where the training cost is unknown (e.g. runs imported from published logs).
    """

    FORMAT: ClassVar[str] = "robustmer-final"

    system: str
    seed: int
    arch: str
    width: float
    monitor: str
    best_epoch: int
    best_score: float
    epochs_run: int
    stopped_early: bool
    metrics: dict[str, Any]
    cost: Cost | None


@dataclasses.dataclass(frozen=True)
class AttackSummary(_File):
    """``summary.json`` of one attack on one run's split.

    Attributes
    ----------
    run : str
        Run directory.
    system : str
    seed : int
    attack : dict
        The attack's full settings (``AttackConfig.to_dict()``: ``{"attack": name, ...}``).
    key : str
        Storage key of those settings (``AttackConfig.key()``).
    split : str
    n_clips : int
    checkpoint_sha256 : str or None
        SHA-256 of the attacked checkpoint.
    cache_manifest_sha256 : str or None
        Hash of the data cache's manifest.
    mae_clean, mae_adv, delta_mae : float
        MAE over clips and emotions before/after the attack (rating/10 scale) and the
        difference.
    mae_adv_of_x_adv : float
        MAE of ``f(x_adv)`` (differs from ``mae_adv`` in the paper attack's reference mode).
    avg_corr_clean, avg_corr_adv : float
        Average Pearson correlation over emotions (``robustmer.metrics``).
    snr_db_mean, snr_db_median : float
        Over clips with a finite SNR (NaN when none).
    snr_db_finite_clips : int
    iterations_mean : float
    converged_fraction : float
    l2_mean, linf_max : float
        Perturbation norms (normalised-input units).
    zero_gradient_clips : list of int
        Clips whose input gradient of the MSE was exactly zero at the start.
    cost : Cost
    """

    FORMAT: ClassVar[str] = "robustmer-attack"

    run: str
    system: str
    seed: int
    attack: dict[str, Any]
    key: str
    split: str
    n_clips: int
    checkpoint_sha256: str | None
    cache_manifest_sha256: str | None
    mae_clean: float
    mae_adv: float
    delta_mae: float
    mae_adv_of_x_adv: float
    avg_corr_clean: float
    avg_corr_adv: float
    snr_db_mean: float
    snr_db_median: float
    snr_db_finite_clips: int
    iterations_mean: float
    converged_fraction: float
    l2_mean: float
    linf_max: float
    zero_gradient_clips: tuple[int, ...]
    cost: Cost

    def identity(self) -> dict[str, Any]:
        """What makes two attack results the same: settings, split, checkpoint and data."""
        return {
            "attack": self.attack,
            "split": self.split,
            "n_clips": self.n_clips,
            "checkpoint_sha256": self.checkpoint_sha256,
            "cache_manifest_sha256": self.cache_manifest_sha256,
        }

    @classmethod
    def from_dict(cls, d: Any, *, where: str = "record") -> Self:
        """Rebuild from :meth:`to_dict` (the clip list as a tuple)."""
        out = super().from_dict(d, where=where)
        return dataclasses.replace(out, zero_gradient_clips=tuple(out.zero_gradient_clips))


# ----------------------------------------------------------------------------- clips

CLIP_COLUMNS: tuple[str, ...] = (
    "clip_id",
    "system",
    "seed",
    "attack",
    "attack_key",
    "epsilon",
    "iterations",
    "converged",
    "threshold",
    "l2",
    "linf",
    "snr_db",
    "zero_gradient",
    "mae_clean",
    "mae_adv",
    *(f"{prefix}_{e}" for prefix in ("true", "clean", "adv") for e in EMOTIONS),
)
"""Columns of the per-clip table ``clips.parquet`` / ``clips.csv``, in order.

``clip_id`` (int, Set-1 number), ``system``, ``seed``; ``attack`` (name) and
``attack_key`` (storage key of the full settings, in ``summary.json``); ``epsilon`` (the
threat model's radius, NaN for an unbounded attack); ``iterations`` (per clip), ``converged``
(bool), ``threshold`` (the paper attack's final τ, NaN otherwise); ``l2``, ``linf`` (norms of
the returned perturbation, normalised-input units); ``snr_db`` (float, +inf for an
unperturbed clip); ``zero_gradient`` (bool: the MSE's input gradient was exactly zero at the
start); ``mae_clean``, ``mae_adv`` (per clip, mean over the 8 emotions); ``true_<emotion>``,
``clean_<emotion>``, ``adv_<emotion>`` (ratings / 10). Bottleneck models add
:data:`MIDLEVEL_CLIP_COLUMNS`."""

MIDLEVEL_CLIP_COLUMNS: tuple[str, ...] = tuple(
    f"{prefix}_{f}" for prefix in ("clean_mid", "adv_mid") for f in MIDLEVEL_FEATURES
)
"""``clean_mid_<feature>``, ``adv_mid_<feature>`` for the 7 mid-level features."""


def clip_columns(bottleneck: bool) -> list[str]:
    """The per-clip table's columns for a model with or without the 7-d bottleneck."""
    return [*CLIP_COLUMNS, *(MIDLEVEL_CLIP_COLUMNS if bottleneck else ())]


def _check_columns(df: Any, path: Path) -> None:
    bottleneck = MIDLEVEL_CLIP_COLUMNS[0] in df.columns
    expected = clip_columns(bottleneck)
    if list(df.columns[: len(expected)]) != expected:
        missing = [c for c in expected if c not in df.columns]
        raise RobustmerError(
            f"{path}: columns differ from the per-clip table (missing {missing}, order "
            f"{list(df.columns[:4])}...); expected {', '.join(expected[:6])}, ... first "
            "(docs/records.md)"
        )
    if df.empty:
        raise RobustmerError(f"{path}: no rows; expected one row per attacked clip")


def write_clips(df: Any, directory: str | os.PathLike[str]) -> None:
    """Write a per-clip table as ``clips.parquet`` and ``clips.csv`` (atomically).

    Raises
    ------
    RobustmerError
        If the table does not start with the columns of :func:`clip_columns` in order, or
        has no rows.
    """
    directory = Path(directory)
    _check_columns(df, directory / f"{CLIPS_STEM}.parquet")
    directory.mkdir(parents=True, exist_ok=True)
    write_table(df, directory / CLIPS_STEM)


def read_clips(directory: str | os.PathLike[str]) -> Any:
    """Read ``clips.parquet`` (or ``clips.csv``) of an attack directory and check it.

    Returns
    -------
    pandas.DataFrame
        One row per clip, the columns of :func:`clip_columns` in order first (a source may
        add its own columns after them, e.g. imported logs).

    Raises
    ------
    RobustmerError
        A missing table, missing or extra columns, or no rows.
    """
    import pandas as pd

    directory = Path(directory)
    parquet, csv = directory / f"{CLIPS_STEM}.parquet", directory / f"{CLIPS_STEM}.csv"
    if parquet.is_file():
        path, df = parquet, pd.read_parquet(parquet)
    elif csv.is_file():
        path, df = csv, pd.read_csv(csv)
    else:
        raise RobustmerError(f"{parquet}: file not found; expected the per-clip attack table")
    _check_columns(df, path)
    return df
