"""Import the authors' published per-clip attack logs as robustmer runs (docs/paper-logs.md).

Hoedt, Flexer & Widmer published the per-clip logs of their attack on all 50 models (5
systems x 10 seeds) in their repository, folder ``runs/adversaries/``, one folder per model::

    <seed>_<run hash>_<date>_<time>_<clip_eps>_<conv method>_<lr>_test/
        hparams.yaml   flat ``key: value`` attack settings (``architecture``, ``lr``, ...)
        log.csv        one row per test clip (columns :data:`LOG_COLUMNS`)

:func:`read_paper_log` turns one folder into a :class:`PaperLog` whose ``clips`` table has
the columns of robustmer's own per-clip attack table (:func:`robustmer.evaluation.clip_columns`)
plus :data:`PAPER_DB_COLUMN`; :func:`import_paper_logs` writes a study directory of such runs
that ``robustmer report`` reads like a study of its own.

Mapping of the log's columns (all ratings on the rating/10 scale, emotions in
:data:`robustmer.names.EMOTIONS` order):

==============  ===============================================================
``file``        ``['NNN.mp3.spec']`` -> ``clip_id`` NNN
``epoch``       ``iterations``
``converged``   ``converged``
``adv-target``  ``threshold`` (final τ)
``norm``        ``l2`` (L2 norm of the perturbation of the normalised input)
``db``          :data:`PAPER_DB_COLUMN`; robustmer's ``snr_db`` stays NaN, as the
                authors' estimate is not the project's SNR definition
``true-label``  ``true_<emotion>``
``orig-pred``   ``clean_<emotion>``
``new-pred``    ``adv_<emotion>`` (the last iteration's prediction, as in reference mode)
==============  ===============================================================

``linf`` is not logged (NaN); the logs hold no mid-level outputs.

The architecture in ``hparams.yaml`` does not tell A2E from aA2E or A2B2E from aA2B2E; the
system of each published run comes from :data:`PAPER_RUNS` (the authors' own list, by
``<seed>_<run hash>``), or is given by the caller for other logs.
"""

from __future__ import annotations

import csv
import logging
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustmer.errors import RobustmerError
from robustmer.names import EMOTIONS

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from robustmer.attacks import AttackConfig
    from robustmer.records import AttackSummary, FinalMetrics

__all__ = [
    "LOG_COLUMNS",
    "PAPER_DB_COLUMN",
    "PAPER_RUNS",
    "PaperLog",
    "find_paper_logs",
    "import_paper_logs",
    "paper_attack_config",
    "read_hparams",
    "read_log_csv",
    "read_paper_log",
]

logger = logging.getLogger(__name__)

_PAPER_RUN_TABLE: dict[str, str] = {
    "A2E": "6_7470d 21_b0d56 42_12d4e 796_f8e40 950_02287 2025_a54ca 3100_c4478 2451_d2ddf "
    "2324_dac90 7192_92d91",
    "A2B2E": "6_9b0af 21_0a029 42_12710 796_345ee 950_8272f 2025_22be4 3100_7095a 2451_ce8e5 "
    "2324_26122 7192_11a77",
    "A2M2E": "6_ce53b 21_71ec2 42_141c4 796_68db8 950_450ba 2025_7378d 3100_3454f 2451_ca4de "
    "2324_d8a0a 7192_30f3a",
    "aA2E": "6_ae6fe 21_cd16a 42_01445 796_f1ba3 950_c7521 2025_b9d49 3100_8350a 2451_2d3e9 "
    "2324_f02c8 7192_69ba9",
    "aA2B2E": "6_85f53 21_065d8 42_30506 796_7524d 950_e4580 2025_35cf7 3100_46a3a 2451_555af "
    "2324_52036 7192_a8c1f",
}

PAPER_RUNS: dict[str, str] = {
    run: system for system, runs in _PAPER_RUN_TABLE.items() for run in runs.split()
}
"""System of each of the 50 published runs, by ``<seed>_<run hash>`` (the authors' list)."""

LOG_COLUMNS: tuple[str, ...] = (
    "file",
    "epoch",
    "db",
    "norm",
    "converged",
    "true-label",
    "orig-pred",
    "new-pred",
    "adv-target",
)
"""Columns every ``log.csv`` must have (others are ignored)."""

PAPER_DB_COLUMN = "paper_db"
"""Per-clip column holding the authors' SNR estimate (``db``), not comparable with ``snr_db``."""

_FOLDER = re.compile(r"^(?P<seed>\d+)_(?P<hash>[0-9a-fA-F]+)_")
_FILE = re.compile(r"^\[\s*'(?P<id>\d+)\.[^'\]]*'\s*\]$")
_KEY_VALUE = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_\-]*):(?:[ \t]+(?P<value>.*?))?[ \t]*$")
_INT = re.compile(r"^[-+]?\d+$")
_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_SCALARS: dict[str, Any] = {
    "null": None,
    "~": None,
    "": None,
    "true": True,
    "True": True,
    "false": False,
    "False": False,
}
_PAPER_ATTACK: dict[str, Any] = {
    "mode": "untargeted",
    "conv_method": "corr",
    "optimiser": "Adam",
    "sign": True,
}
"""hparams of the paper's attack; a log whose hparams differ used another attack."""


@dataclass(frozen=True)
class PaperLog:
    """One published attack log, read.

    Attributes
    ----------
    path : Path
        The log folder (holding ``log.csv`` and ``hparams.yaml``).
    run_id : str
        ``<seed>_<run hash>``, the key of :data:`PAPER_RUNS`.
    system : str
        One of :data:`robustmer.names.SYSTEM_NAMES`.
    seed : int
        The model's training seed.
    hparams : dict
        ``hparams.yaml``.
    attack : AttackConfig
        The attack's settings in robustmer's terms (:func:`paper_attack_config`).
    clips : pd.DataFrame
        One row per clip, robustmer's per-clip columns plus :data:`PAPER_DB_COLUMN`.
    """

    path: Path
    run_id: str
    system: str
    seed: int
    hparams: dict[str, Any]
    attack: AttackConfig
    clips: pd.DataFrame


# ----------------------------------------------------------------------------- hparams.yaml


def _scalar(text: str) -> Any:
    """One YAML scalar of the flat files the authors wrote: null, bool, int, float or string."""
    if text in _SCALARS:
        return _SCALARS[text]
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def read_hparams(path: str | Path) -> dict[str, Any]:
    """Read a flat ``key: value`` ``hparams.yaml`` (no nesting, lists or multi-line values).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict
        Values as None, bool, int, float or str.

    Raises
    ------
    RobustmerError
        Missing file, or a line that is not ``key: scalar`` (naming the file and line), or a
        key given twice.
    """
    path = Path(path)
    if not path.is_file():
        raise RobustmerError(f"{path}: file not found; expected the log's attack settings")
    out: dict[str, Any] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#") or line.strip() == "---":
            continue
        match = _KEY_VALUE.match(line)
        value = (match.group("value") or "") if match else ""
        if match is None or value[:1] in ("[", "{", "|", ">", "&", "*", "!"):
            raise RobustmerError(
                f"{path} line {number}: {line.strip()!r}; expected a flat 'key: value' line "
                "(no indentation, lists or nested values)"
            )
        key = match.group("key")
        if key in out:
            raise RobustmerError(f"{path} line {number}: key {key!r} given twice")
        out[key] = _scalar(value)
    return out


# ----------------------------------------------------------------------------- log.csv


def _float(text: str, where: str, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise RobustmerError(f"{where}: {column} {text!r}; expected a number") from None


def _vector(text: str, where: str, column: str) -> np.ndarray:
    """``[[a b c ...]]`` (numpy's print of a [1, 8] array) -> float64 [8]."""
    import numpy as np

    inner = text.strip()
    if not (inner.startswith("[[") and inner.endswith("]]")):
        raise RobustmerError(f"{where}: {column} {text!r}; expected '[[r1 r2 ... r8]]'")
    parts = inner[2:-2].split()
    try:
        values = np.array([float(p) for p in parts], dtype=np.float64)  # [8]
    except ValueError:
        raise RobustmerError(f"{where}: {column} {text!r}; expected 8 numbers") from None
    if values.shape != (len(EMOTIONS),) or not np.isfinite(values).all():
        raise RobustmerError(
            f"{where}: {column} has {len(parts)} value(s) {text!r}; expected "
            f"{len(EMOTIONS)} finite ratings ({', '.join(EMOTIONS)})"
        )
    return values


def _row(row: dict[str, str], where: str) -> dict[str, Any]:
    """One ``log.csv`` row -> ``clip_id, iterations, converged, threshold, l2, paper_db,
    true [8], clean [8], adv [8]``."""
    match = _FILE.match(row["file"].strip())
    if match is None:
        raise RobustmerError(f"{where}: file {row['file']!r}; expected ['NNN.mp3.spec']")
    epoch = row["epoch"].strip()
    if not epoch.isdigit():
        raise RobustmerError(f"{where}: epoch {epoch!r}; expected an integer >= 0")
    converged = {"True": True, "False": False}.get(row["converged"].strip())
    if converged is None:
        raise RobustmerError(f"{where}: converged {row['converged']!r}; expected True or False")
    l2 = _float(row["norm"], where, "norm")
    if not (math.isfinite(l2) and l2 >= 0):
        raise RobustmerError(f"{where}: norm {row['norm']!r}; expected a finite number >= 0")
    target = row["adv-target"].strip()
    return {
        "clip_id": int(match.group("id")),
        "iterations": int(epoch),
        "converged": converged,
        "threshold": math.nan if target in ("", "None") else _float(target, where, "adv-target"),
        "l2": l2,
        PAPER_DB_COLUMN: _float(row["db"], where, "db"),
        "true": _vector(row["true-label"], where, "true-label"),
        "clean": _vector(row["orig-pred"], where, "orig-pred"),
        "adv": _vector(row["new-pred"], where, "new-pred"),
    }


def read_log_csv(path: str | Path) -> list[dict[str, Any]]:
    """Read and check an attack ``log.csv``.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    list of dict
        One per clip, in file order: ``clip_id`` (int), ``iterations`` (int),
        ``converged`` (bool), ``threshold`` (final τ, NaN if not logged), ``l2``,
        ``paper_db`` (floats), ``true``, ``clean``, ``adv`` (float64 arrays [8], rating/10).

    Raises
    ------
    RobustmerError
        Missing file or columns, no rows, a malformed value or a clip logged twice; the
        message names the file, the data row (1-based) and its line.
    """
    path = Path(path)
    if not path.is_file():
        raise RobustmerError(f"{path}: file not found; expected the per-clip attack log")
    records: list[dict[str, Any]] = []
    seen: dict[int, int] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in LOG_COLUMNS if c not in header]
        if missing:
            raise RobustmerError(
                f"{path}: missing column(s) {missing}; expected {', '.join(LOG_COLUMNS)}"
            )
        line, number = reader.line_num + 1, 0
        for fields in reader:
            start, line = line, reader.line_num + 1
            if not fields:  # a blank line
                continue
            number += 1
            where = f"{path} row {number} (line {start})"
            if len(fields) != len(header):
                raise RobustmerError(
                    f"{where}: {len(fields)} field(s); expected {len(header)}, one per column"
                )
            record = _row(dict(zip(header, fields, strict=True)), where)
            if record["clip_id"] in seen:
                raise RobustmerError(
                    f"{where}: clip {record['clip_id']} already logged in row "
                    f"{seen[record['clip_id']]}; expected one row per clip"
                )
            seen[record["clip_id"]] = number
            records.append(record)
    if not records:
        raise RobustmerError(f"{path}: no rows; expected one row per attacked clip")
    return records


# ----------------------------------------------------------------------------- one log


def paper_attack_config(hparams: dict[str, Any], where: Path) -> AttackConfig:
    """The robustmer paper-attack settings a log's ``hparams.yaml`` describes.

    The published attack is robustmer's paper attack in ``reference`` mode (its intended
    clipping to ``clip_eps`` was a no-op, so ``epsilon`` is None), with ``step_size`` the
    log's ``lr`` and ``steps`` its ``max_iters`` (default 1000).

    Raises
    ------
    RobustmerError
        ``lr`` missing or not a number > 0, ``max_iters`` not an integer >= 1, or hparams of
        another attack (``mode``, ``conv_method``, ``optimiser``, ``sign``); ``where`` names
        the file.
    """
    from robustmer.attacks import attack_config

    for key, expected in _PAPER_ATTACK.items():
        if key in hparams and hparams[key] != expected:
            raise RobustmerError(
                f"{where}: {key} is {hparams[key]!r}; expected {expected!r} (the paper's "
                "attack; other attacks cannot be imported)"
            )
    lr, max_iters = hparams.get("lr"), hparams.get("max_iters", 1000)
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not (
        math.isfinite(lr) and lr > 0
    ):
        raise RobustmerError(f"{where}: lr is {lr!r}; expected a number > 0")
    if isinstance(max_iters, bool) or not isinstance(max_iters, int) or max_iters < 1:
        raise RobustmerError(f"{where}: max_iters is {max_iters!r}; expected an integer >= 1")
    return attack_config("paper", mode="reference", steps=max_iters, step_size=float(lr))


def clips_table(
    records: list[dict[str, Any]], *, system: str, seed: int, attack: AttackConfig
) -> pd.DataFrame:
    """robustmer's per-clip attack table from :func:`read_log_csv` records.

    Returns
    -------
    pd.DataFrame
        Columns ``robustmer.records.clip_columns(bottleneck=False)`` then
        :data:`PAPER_DB_COLUMN`, one row per record; ``mae_clean``/``mae_adv`` are the
        per-clip means over the 8 emotions of ``|true - clean|`` and ``|true - adv|``;
        ``linf`` and ``snr_db`` are NaN; ``zero_gradient`` is True only for a clip whose
        clean prediction equals its true ratings (the only zero gradient a log can show).
    """
    import numpy as np
    import pandas as pd

    from robustmer.records import clip_columns

    n = len(records)
    true, clean, adv = (np.stack([r[k] for r in records]) for k in ("true", "clean", "adv"))
    table: dict[str, Any] = {
        "clip_id": np.array([r["clip_id"] for r in records], dtype=np.int64),
        "system": [system] * n,
        "seed": np.full(n, seed, dtype=np.int64),
        "attack": [attack.name] * n,
        "attack_key": [attack.key()] * n,
        "epsilon": np.full(n, np.nan),
        "iterations": np.array([r["iterations"] for r in records], dtype=np.int64),
        "converged": np.array([r["converged"] for r in records], dtype=bool),
        "threshold": np.array([r["threshold"] for r in records], dtype=np.float64),
        "l2": np.array([r["l2"] for r in records], dtype=np.float64),
        "linf": np.full(n, np.nan),
        "snr_db": np.full(n, np.nan),
        "zero_gradient": (true == clean).all(axis=1),  # [n]
        "mae_clean": np.abs(true - clean).mean(axis=1),  # [n]
        "mae_adv": np.abs(true - adv).mean(axis=1),  # [n]
        PAPER_DB_COLUMN: np.array([r[PAPER_DB_COLUMN] for r in records], dtype=np.float64),
    }
    for prefix, values in (("true", true), ("clean", clean), ("adv", adv)):  # [n, 8] each
        for j, emotion in enumerate(EMOTIONS):
            table[f"{prefix}_{emotion}"] = values[:, j]
    return pd.DataFrame(table, columns=[*clip_columns(False), PAPER_DB_COLUMN])


def _run_id(log_dir: Path) -> tuple[str, int]:
    """``(<seed>_<run hash>, seed)`` from a log folder's name."""
    match = _FOLDER.match(log_dir.name)
    if match is None:
        raise RobustmerError(
            f"{log_dir}: folder name {log_dir.name!r}; expected "
            "'<seed>_<run hash>_<date>_<time>_..._test' as in the authors' runs/adversaries"
        )
    return f"{int(match.group('seed'))}_{match.group('hash').lower()}", int(match.group("seed"))


def _system(run_id: str, system: str | None, arch: Any, log_dir: Path) -> str:
    """The log's system: from :data:`PAPER_RUNS`, else ``system``; checked against ``arch``."""
    from robustmer.training.config import SYSTEMS

    known = PAPER_RUNS.get(run_id)
    if known is not None and system is not None and system != known:
        raise RobustmerError(
            f"{log_dir}: run {run_id} is {known} in the authors' list; the system given "
            f"was {system!r}"
        )
    chosen = known or system
    if chosen is None:
        raise RobustmerError(
            f"{log_dir}: run {run_id} is not one of the 50 published runs; expected its "
            "system to be given"
        )
    if chosen not in SYSTEMS:
        raise RobustmerError(f"system {chosen!r}: unknown; expected one of {', '.join(SYSTEMS)}")
    if SYSTEMS[chosen].arch != arch:
        raise RobustmerError(
            f"{log_dir / 'hparams.yaml'}: architecture is {arch!r}; expected "
            f"{SYSTEMS[chosen].arch!r} for system {chosen}"
        )
    return chosen


def read_paper_log(log_dir: str | Path, *, system: str | None = None) -> PaperLog:
    """Read one published log folder (``log.csv`` + ``hparams.yaml``).

    Parameters
    ----------
    log_dir : str or Path
        ``<seed>_<run hash>_..._test/``.
    system : str, optional
        The model's system, for a log not in :data:`PAPER_RUNS` (for a listed one it must
        agree with the list).

    Raises
    ------
    RobustmerError
        Malformed folder name, files or rows; an unlisted log without ``system``; a system
        whose architecture is not the log's; clips logged with more iterations than
        ``max_iters``.
    """
    log_dir = Path(log_dir)
    run_id, seed = _run_id(log_dir)
    hparams_path = log_dir / "hparams.yaml"
    hparams = read_hparams(hparams_path)
    chosen = _system(run_id, system, hparams.get("architecture"), log_dir)
    attack = paper_attack_config(hparams, hparams_path)
    records = read_log_csv(log_dir / "log.csv")
    over = [r["clip_id"] for r in records if r["iterations"] > attack.steps]
    if over:
        raise RobustmerError(
            f"{log_dir / 'log.csv'}: clip(s) {over} logged more iterations than max_iters "
            f"{attack.steps} of {hparams_path.name}; expected at most that many"
        )
    clips = clips_table(records, system=chosen, seed=seed, attack=attack)
    return PaperLog(log_dir, run_id, chosen, seed, hparams, attack, clips)


def find_paper_logs(log_dir: str | Path) -> list[Path]:
    """The log folders under ``log_dir``: itself if it holds ``log.csv``, else its
    sub-folders that do (sorted by name).

    Raises
    ------
    RobustmerError
        ``log_dir`` is not a directory or holds no log.
    """
    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        raise RobustmerError(f"{log_dir}: not a directory; expected runs/adversaries or a log")
    if (log_dir / "log.csv").is_file():
        return [log_dir]
    found = sorted(p for p in log_dir.iterdir() if p.is_dir() and (p / "log.csv").is_file())
    if not found:
        raise RobustmerError(
            f"{log_dir}: no log.csv in it or its sub-folders; expected the authors' "
            "runs/adversaries folder or one of its <seed>_<hash>_..._test folders"
        )
    return found


# ----------------------------------------------------------------------------- writing a study

IMPORTED_RUN_FORMAT = "robustmer-imported-run"
"""``format`` of an imported run's ``config.json`` (no checkpoint; not trainable/attackable)."""

IMPORTED_STUDY_FORMAT = "robustmer-imported-study"
"""``format`` of an imported study's ``study.json``."""

SOURCE_DIR = "paper_log"
"""Sub-folder of an imported run holding unchanged copies of ``log.csv`` and ``hparams.yaml``."""

SOURCE = (
    "Hoedt, Flexer & Widmer's published attack logs "
    "(CPJKU/robustness_mer_bottleneck, runs/adversaries)"
)


def _source(log: PaperLog) -> dict[str, Any]:
    from robustmer._io import sha256_file

    return {
        "source": SOURCE,
        "log_dir": str(log.path.resolve()),
        "run_id": log.run_id,
        "log_csv_sha256": sha256_file(log.path / "log.csv"),
        "hparams_sha256": sha256_file(log.path / "hparams.yaml"),
        "hparams": log.hparams,
    }


def _config_record(log: PaperLog) -> dict[str, Any]:
    """``config.json`` of an imported run: the paper's training settings, no checkpoint.

    ``train_config`` is robustmer's description of the paper's training (the
    :class:`~robustmer.training.TrainConfig` defaults with the paper's early-stopping rule),
    which is what the authors' models were trained with; the logs themselves do not record it.
    """
    from robustmer.training.config import SYSTEMS, TrainConfig

    spec = SYSTEMS[log.system]
    return {
        "format": IMPORTED_RUN_FORMAT,
        "version": 1,
        "imported": _source(log),
        "train_config": TrainConfig(log.system, log.seed, monitor="paper").to_dict(),
        "system": spec.to_dict(),
        "model": {"arch": spec.arch, "width": 1.0},
        "cache": None,
        "checkpoint": None,
    }


def _final_record(log: PaperLog, y: np.ndarray, clean: np.ndarray) -> FinalMetrics:
    """``final.json``: clean test metrics from the log; what the log cannot tell is None."""
    from robustmer import metrics
    from robustmer.records import FinalMetrics
    from robustmer.training.config import SYSTEMS

    return FinalMetrics(
        system=log.system,
        seed=log.seed,
        arch=SYSTEMS[log.system].arch,
        width=1.0,
        monitor="paper",
        best_epoch=None,  # unknown (no training record in the logs), as the next three
        best_score=math.nan,
        epochs_run=None,
        stopped_early=None,
        metrics={
            "test": {"clips": len(y), "emotions": metrics.regression_report(y, clean, EMOTIONS)}
        },
        cost=None,
    )


def _summary_record(
    log: PaperLog, run: Path, y: np.ndarray, clean: np.ndarray, adv: np.ndarray
) -> AttackSummary:
    """``summary.json`` of the imported attack results.

    Its cost holds the model passes the logged iterations imply (one forward pass per clip
    for the clean prediction, one forward and one backward pass per iteration); the wall
    time and device are unknown (NaN, ``"unknown"``).
    """

    from robustmer import metrics
    from robustmer.records import AttackSummary, Cost

    df, n = log.clips, len(log.clips)
    iterations = int(df["iterations"].sum())
    mae_clean, mae_adv = metrics.mae(y, clean), metrics.mae(y, adv)
    return AttackSummary(
        run=str(run),
        system=log.system,
        seed=log.seed,
        attack=log.attack.to_dict(),
        key=log.attack.key(),
        split="test",
        n_clips=n,
        checkpoint_sha256=None,
        cache_manifest_sha256=None,
        mae_clean=mae_clean,
        mae_adv=mae_adv,
        delta_mae=mae_adv - mae_clean,
        mae_adv_of_x_adv=math.nan,  # the logs hold no prediction of the returned example
        avg_corr_clean=metrics.average_correlation(y, clean),
        avg_corr_adv=metrics.average_correlation(y, adv),
        snr_db_mean=math.nan,
        snr_db_median=math.nan,
        snr_db_finite_clips=0,
        iterations_mean=float(df["iterations"].mean()),
        converged_fraction=float(df["converged"].mean()),
        l2_mean=float(df["l2"].mean()),
        linf_max=math.nan,
        zero_gradient_clips=tuple(int(c) for c in df.loc[df["zero_gradient"], "clip_id"]),
        cost=Cost(
            wall_seconds=math.nan,
            forward_clip_passes=n + iterations,
            backward_clip_passes=iterations,
            attack_clip_iterations=iterations,
            device="unknown",
            device_name="unknown",
            torch="unknown",
        ),
    )


def _write_run(log: PaperLog, run_dir: Path) -> None:
    """One imported run directory, replaced atomically."""
    import numpy as np

    from robustmer._io import atomic_directory, write_json
    from robustmer.records import CONFIG_FILE, FINAL_FILE, SUMMARY_FILE, attack_dir, write_clips

    y, clean, adv = (  # [n, 8] each
        log.clips[[f"{p}_{e}" for e in EMOTIONS]].to_numpy(np.float64)
        for p in ("true", "clean", "adv")
    )
    with atomic_directory(run_dir) as tmp:
        write_json(tmp / CONFIG_FILE, _config_record(log))
        _final_record(log, y, clean).write(tmp / FINAL_FILE)
        results = attack_dir(tmp, log.attack.key())
        write_clips(log.clips, results)  # robustmer's columns, then paper_db
        _summary_record(log, run_dir, y, clean, adv).write(results / SUMMARY_FILE)
        (tmp / SOURCE_DIR).mkdir()
        for source in ("log.csv", "hparams.yaml"):
            shutil.copyfile(log.path / source, tmp / SOURCE_DIR / source)


def _check_out(out: Path, names: dict[str, Path]) -> None:
    """Refuse to write into a study or runs that were not imported."""
    from robustmer._io import read_json
    from robustmer.records import CONFIG_FILE, RUNS_DIR, STUDY_FILE

    study = out / STUDY_FILE
    if study.is_file() and read_json(study).get("format") != IMPORTED_STUDY_FORMAT:
        raise RobustmerError(
            f"{study}: a study that was not imported; expected a new directory or an imported "
            "study (imported runs are not pooled with trained ones)"
        )
    for name in names:
        run, config = out / RUNS_DIR / name, out / RUNS_DIR / name / CONFIG_FILE
        if run.exists() and (
            not config.is_file() or read_json(config).get("format") != IMPORTED_RUN_FORMAT
        ):
            raise RobustmerError(
                f"{run}: exists and was not imported; expected a new directory or an imported "
                "study"
            )


def import_paper_logs(
    log_dir: str | Path, out: str | Path, *, system: str | None = None
) -> list[Path]:
    """Import published attack logs as runs of the study directory ``out``.

    Writes ``out/runs/<SYSTEM>-seed<SEED>/`` per log with ``config.json`` (format
    :data:`IMPORTED_RUN_FORMAT`: the paper's training settings, system, architecture, source;
    no checkpoint), ``final.json`` (a :class:`~robustmer.records.FinalMetrics` with the clean
    test metrics computed from the log and no cost), ``attacks/<key>/`` (the per-clip table
    and an :class:`~robustmer.records.AttackSummary`; ``<key>`` of
    :func:`paper_attack_config`) and unchanged copies of the log's two files in
    :data:`SOURCE_DIR`; and ``out/study.json`` (data: the paper's real data; attacks: the
    logs' settings). Every log is read and checked before anything is written; each run
    directory is replaced atomically, so importing again is idempotent.

    Parameters
    ----------
    log_dir : str or Path
        The authors' ``runs/adversaries`` folder or one log folder in it.
    out : str or Path
        A new directory or an earlier import.
    system : str, optional
        System of logs not in :data:`PAPER_RUNS`.

    Returns
    -------
    list of Path
        The run directories written.

    Raises
    ------
    RobustmerError
        ``out`` not writable, malformed logs (see :func:`read_paper_log`), two logs of the
        same system and seed, or ``out`` holding a study or run that was not imported.
    """
    from robustmer._io import check_writable, write_json
    from robustmer.provenance import versions
    from robustmer.records import RUNS_DIR, STUDY_FILE

    out = check_writable(out, "study directory")
    names: dict[str, Path] = {}
    logs = []
    for folder in find_paper_logs(log_dir):
        log = read_paper_log(folder, system=system)
        name = f"{log.system}-seed{log.seed}"
        if name in names:
            raise RobustmerError(
                f"{folder}: {name} is also the model of {names[name]}; expected one log per "
                "system and seed"
            )
        names[name] = folder
        logs.append(log)
    _check_out(out, names)
    written = []
    for log, name in zip(logs, names, strict=True):
        _write_run(log, out / RUNS_DIR / name)
        written.append(out / RUNS_DIR / name)
        logger.info("%s: imported %s (%d clips)", written[-1], log.path.name, len(log.clips))
    write_json(
        out / STUDY_FILE,
        {
            "format": IMPORTED_STUDY_FORMAT,
            "version": 1,
            "data": {"kind": "real", "source": SOURCE},
            "attacks": list({log.attack.key(): log.attack.to_dict() for log in logs}.values()),
            "versions": versions(),
        },
    )
    return written
