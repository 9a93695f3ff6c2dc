"""Read a study directory for the report: runs, the selected attack's results, provenance.

:func:`load_study` reads ``STUDY/study.json`` and every finished run of ``STUDY/runs/``
through the typed records of :mod:`robustmer.records`, and **refuses to mix**: a run whose
training settings (other than seed and device) or data differ from the study's is left out,
and so are attack results made with other attack settings, on another split, for another
checkpoint (the run was retrained after the attack) or on other data. Each one left out is
listed in the notes and in :attr:`StudyData.excluded`, with one logged warning;
``include_mismatched=True`` keeps them (and says so).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robustmer._io import read_json, sha256_file
from robustmer.attacks import ATTACKS, AttackConfig, PaperConfig, attack_config, config_from_dict
from robustmer.errors import RobustmerError
from robustmer.records import (
    BEST_FILE,
    CLIPS_STEM,
    CONFIG_FILE,
    FINAL_FILE,
    RUNS_DIR,
    STUDY_FILE,
    SUMMARY_FILE,
    AttackSummary,
    FinalMetrics,
    attack_dir,
    read_clips,
)
from robustmer.training import SYSTEMS, TrainConfig

logger = logging.getLogger(__name__)

__all__ = ["StudyData", "load_study", "study_attacks", "training_settings"]

_NAN = float("nan")

_KEY = re.compile(r"^[A-Za-z0-9_.]+-[0-9a-f]{10}(-[a-z]+)?$")
"""A storage key (``AttackConfig.key()``), as in ``RUN/attacks/<key>/``."""


@dataclass
class StudyData:
    """Everything the report is made from.

    Attributes
    ----------
    study_dir : Path
    study : dict
        ``study.json`` (empty when absent).
    runs : pd.DataFrame
        One row per finished run included: ``run, system, seed, best_epoch, test_avg_corr,
        test_mae, test_rmse, validation_avg_corr, test_midlevel_avg_corr, wall_seconds,
        epochs, forward_passes, backward_passes, train_attack_iterations, train_device,
        attacked, attack_seconds, attack_model_passes, snr_db_mean, snr_db_median``.
    clips : pd.DataFrame
        Per-clip rows of the selected attack on the included runs, concatenated.
    summaries : dict
        :class:`robustmer.records.AttackSummary` of each included attacked run, by run name.
    notes : list of str
        Human-readable remarks for the report (skipped, excluded runs, missing outputs).
    attack_key : str
        Storage key of the attack whose results were read.
    attack_settings : dict or None
        The settings that key stands for (None when only the key is known).
    excluded : list of dict
        ``{"run", "what", "reason", "included"}`` for each run (``what="run"``) or attack
        result (``what="attack"``) whose settings differ from the study's.
    train_settings : list of dict
        The training settings of the included runs (``TrainConfig.identity()`` without
        system and seed), one entry per distinct setting.
    """

    study_dir: Path
    study: dict[str, Any]
    runs: pd.DataFrame
    clips: pd.DataFrame
    summaries: dict[str, AttackSummary] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    attack_key: str = ""
    attack_settings: dict[str, Any] | None = None
    excluded: list[dict[str, Any]] = field(default_factory=list)
    train_settings: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Run:
    """One finished run as read from disk."""

    path: Path
    system: str
    seed: int
    final: FinalMetrics
    train: dict[str, Any]  # TrainConfig.identity() of config.json
    cache_hash: str | None
    clips: pd.DataFrame | None = None
    summary: AttackSummary | None = None

    @property
    def name(self) -> str:
        return self.path.name


# ----------------------------------------------------------------------------- selection


def study_attacks(study: dict[str, Any]) -> list[AttackConfig]:
    """The evaluation attacks recorded in ``study.json`` (default: the paper attack)."""
    recorded = study.get("attacks")
    if not recorded:
        return [PaperConfig()]
    return [config_from_dict(d) for d in recorded]


def _select_attack(
    study: dict[str, Any], attack: AttackConfig | str | None
) -> tuple[str, dict[str, Any] | None]:
    """The storage key to report and the settings it stands for (None if unknown).

    None: the study's first evaluation attack. An :class:`AttackConfig`: its key. A
    registered attack name: the study's attack of that name (the attack's default settings
    if the study has none). Otherwise a storage key.
    """
    known = {c.key(): c for c in study_attacks(study)}
    if attack is None:
        config = next(iter(known.values()))
    elif isinstance(attack, AttackConfig):
        config = attack
    elif attack in ATTACKS:
        same = [c for c in known.values() if c.name == attack]
        if len(same) > 1:
            raise RobustmerError(
                f"attack {attack!r}: the study ran it with {len(same)} settings "
                f"({', '.join(c.key() for c in same)}); expected their settings or a key"
            )
        config = same[0] if same else attack_config(attack)
    elif isinstance(attack, str) and _KEY.match(attack):
        return attack, known[attack].to_dict() if attack in known else None
    else:
        raise RobustmerError(
            f"attack {attack!r}: neither an attack name ({', '.join(ATTACKS)}) nor a storage "
            "key; expected e.g. paper or paper-1a2b3c4d5e"
        )
    return config.key(), config.to_dict()


def _study_reference(study: dict[str, Any]) -> dict[str, Any] | None:
    """What every run of the study was trained with: ``{"train", "manifest_hash"}``.

    ``train`` are the profile's :class:`TrainConfig` overrides recorded in ``study.json``
    (``settings.profile.train``); None for a directory without them (nothing to compare).
    """
    profile = (study.get("settings") or {}).get("profile")
    if not isinstance(profile, dict) or not isinstance(profile.get("train"), dict):
        return None
    data = study.get("data") if isinstance(study.get("data"), dict) else {}
    return {"train": profile["train"], "manifest_hash": data.get("manifest_hash")}


# ----------------------------------------------------------------------------- reading


def _read_config(path: Path) -> tuple[dict[str, Any], str | None]:
    """``TrainConfig.identity()`` and the data cache's manifest hash of ``config.json``."""
    record = read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("train_config"), dict):
        raise RobustmerError(f"{path}: no 'train_config'; expected a robustmer run description")
    try:
        identity = TrainConfig.from_dict(record["train_config"]).identity()
    except RobustmerError as exc:
        raise RobustmerError(f"{path}: {exc}") from None
    cache = record.get("cache") if isinstance(record.get("cache"), dict) else {}
    return identity, cache.get("manifest_hash")


def _read_run(run_dir: Path) -> _Run:
    """A finished run's final metrics and training settings (RobustmerError naming the file)."""
    final_path = run_dir / FINAL_FILE
    final = FinalMetrics.read(final_path)
    train, cache_hash = _read_config(run_dir / CONFIG_FILE)
    if (train["system"], train["seed"]) != (final.system, final.seed):
        raise RobustmerError(
            f"{run_dir / CONFIG_FILE}: system/seed {train['system']}/{train['seed']} differ from "
            f"{final_path.name} ({final.system}/{final.seed}); expected one run"
        )
    if final.system not in SYSTEMS:
        raise RobustmerError(
            f"{final_path}: system {final.system!r}: unknown; expected one of {', '.join(SYSTEMS)}"
        )
    test = (final.metrics.get("test") or {}).get("emotions") or {}
    for key in ("avg_corr", "mae"):
        if not isinstance(test.get(key), float | int):
            raise RobustmerError(
                f"{final_path}: missing key 'metrics.test.emotions.{key}'; expected a number"
            )
    train = {k: v for k, v in train.items() if k not in ("system", "seed")}
    return _Run(run_dir, final.system, final.seed, final, train, cache_hash)


def _read_attack(run: _Run, key: str) -> None:
    """Attach the run's per-clip table and summary of the attack stored under ``key``."""
    directory = attack_dir(run.path, key)
    if not any((directory / f"{CLIPS_STEM}.{ext}").is_file() for ext in ("parquet", "csv")):
        return
    clips = read_clips(directory)
    for column, expected in (("system", run.system), ("seed", run.seed)):
        if (clips[column] != expected).any():
            found = sorted(map(str, clips[column].unique()))
            raise RobustmerError(
                f"{directory}: column '{column}' holds {found}; expected {expected!r} as in "
                f"{run.path / CONFIG_FILE}"
            )
    run.clips = clips
    if (directory / SUMMARY_FILE).is_file():
        run.summary = AttackSummary.read(directory / SUMMARY_FILE)


def _finished_runs(study_dir: Path) -> tuple[list[Path], list[str]]:
    """Run directories with a ``final.json``, and a note for each unfinished one."""
    runs_dir = study_dir / RUNS_DIR
    dirs = sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []
    done, notes = [], []
    for run_dir in (p for p in dirs if p.is_dir() and not p.name.startswith(".")):
        if (run_dir / FINAL_FILE).is_file():
            done.append(run_dir)
        else:
            logger.info("%s: no %s (run not finished); skipped", run_dir, FINAL_FILE)
            notes.append(f"{run_dir.name}: not finished (no {FINAL_FILE}); skipped")
    if not done:
        raise RobustmerError(
            f"{runs_dir}: no finished runs; expected run directories <SYSTEM>-seed<SEED>/ "
            f"with {CONFIG_FILE} and {FINAL_FILE}"
        )
    return done, notes


# ----------------------------------------------------------------------------- checks


def _differences(used: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    return [
        f"{k} {used.get(k)!r} (study: {expected.get(k)!r})"
        for k in sorted(set(used) | set(expected))
        if used.get(k) != expected.get(k)
    ]


def _training_mismatch(run: _Run, reference: dict[str, Any] | None) -> str | None:
    """Why ``run`` was not trained like the study's runs (None if it was)."""
    if reference is None:
        return None
    try:
        config = TrainConfig.from_dict({**reference["train"], "system": run.system, "seed": 0})
    except RobustmerError as exc:
        raise RobustmerError(f"{STUDY_FILE} settings.profile.train: {exc}") from None
    expected = {k: v for k, v in config.identity().items() if k not in ("system", "seed")}
    diffs = _differences(run.train, expected)
    study_hash = reference["manifest_hash"]
    if study_hash and run.cache_hash and run.cache_hash != study_hash:
        diffs.append(f"data cache {run.cache_hash[:12]} (study: {study_hash[:12]})")
    return f"trained with other settings than the study: {'; '.join(diffs)}" if diffs else None


def _attack_mismatch(run: _Run, settings: dict[str, Any] | None) -> str | None:
    """Why ``run``'s attack results are not those the report is asked for (None if they are)."""
    summary = run.summary
    if summary is None:
        return None
    diffs = []
    if settings is not None and summary.attack != settings:
        diffs += _differences(summary.attack, settings)
    if summary.split != "test":
        diffs.append(f"split {summary.split!r} (expected 'test')")
    best = run.path / BEST_FILE
    checked = summary.checkpoint_sha256 and best.is_file()
    if checked and sha256_file(best) != summary.checkpoint_sha256:
        diffs.append("made for another checkpoint (the run was trained again afterwards)")
    cache = summary.cache_manifest_sha256, run.cache_hash
    if all(cache) and cache[0] != cache[1]:
        diffs.append("made on another data cache than the run's")
    return f"attack results with other settings: {'; '.join(diffs)}" if diffs else None


def _exclude(
    runs: list[_Run],
    reference: dict[str, Any] | None,
    settings: dict[str, Any] | None,
    include_mismatched: bool,
) -> tuple[list[_Run], list[dict[str, Any]]]:
    """Drop runs (or their attack results) whose settings differ; return what was left out."""
    kept, excluded = [], []
    for run in runs:
        reason = _training_mismatch(run, reference)
        if reason is not None:
            excluded.append({"run": run.name, "what": "run", "reason": reason})
            if not include_mismatched:
                continue
        reason = _attack_mismatch(run, settings)
        if reason is not None:
            excluded.append({"run": run.name, "what": "attack", "reason": reason})
            if not include_mismatched:
                run.clips, run.summary = None, None
        kept.append(run)
    for entry in excluded:
        entry["included"] = include_mismatched
    return kept, excluded


def _exclusion_notes(excluded: list[dict[str, Any]], include_mismatched: bool) -> list[str]:
    """One note per excluded run or result, and one logged warning for all of them."""
    if not excluded:
        return []
    verb = "included although" if include_mismatched else "left out:"
    notes = [
        f"{e['run']}: {'run' if e['what'] == 'run' else 'attack results'} {verb} "
        f"{e['reason']}"
        for e in excluded
    ]
    logger.warning(
        "%d run(s) or attack result(s) with settings other than the study's %s: %s%s",
        len(excluded),
        "included" if include_mismatched else "left out of the report",
        "; ".join(f"{e['run']} ({e['reason']})" for e in excluded),
        "" if include_mismatched else " (include_mismatched=True includes them)",
    )
    return notes


# ----------------------------------------------------------------------------- tables


def _run_row(run: _Run) -> dict[str, Any]:
    """The run's row of the runs table."""
    test, metrics = run.final.metrics["test"], run.final.metrics
    cost = run.final.cost
    summary = run.summary
    return {
        "run": run.name,
        "system": run.system,
        "seed": run.seed,
        "best_epoch": run.final.best_epoch,
        "test_avg_corr": float(test["emotions"]["avg_corr"]),
        "test_mae": float(test["emotions"]["mae"]),
        "test_rmse": _num(test["emotions"].get("rmse")),
        "validation_avg_corr": _num(
            ((metrics.get("validation") or {}).get("emotions") or {}).get("avg_corr")
        ),
        "test_midlevel_avg_corr": _num((test.get("midlevel") or {}).get("avg_corr")),
        "wall_seconds": _NAN if cost is None else cost.wall_seconds,
        "epochs": _NAN if cost is None else float(cost.epochs_run),
        "forward_passes": _NAN if cost is None else float(cost.forward_clip_passes),
        "backward_passes": _NAN if cost is None else float(cost.backward_clip_passes),
        "train_attack_iterations": _NAN if cost is None else float(cost.attack_clip_iterations),
        "train_device": "" if cost is None else cost.device,
        "attacked": run.clips is not None,
        "attack_seconds": _NAN if summary is None else summary.cost.wall_seconds,
        "attack_model_passes": (
            _NAN if summary is None else float(summary.cost.forward_clip_passes)
        ),
        "snr_db_mean": _NAN if summary is None else summary.snr_db_mean,
        "snr_db_median": _NAN if summary is None else summary.snr_db_median,
    }


def _num(value: Any) -> float:
    return _NAN if value is None else float(value)


def _missing_notes(runs: list[_Run], key: str, run_dirs: list[Path]) -> list[str]:
    """One note per kind of missing output, naming the runs."""
    notes = []
    kinds = (
        ([r.name for r in runs if r.final.cost is None], "training cost unknown"),
        (
            [r.name for r in runs if r.clips is None],
            f"no results of attack {key}; left out of the adversarial results",
        ),
        (
            [r.name for r in runs if r.clips is not None and r.summary is None],
            f"{SUMMARY_FILE} of attack {key} missing; attack cost unknown",
        ),
    )
    for names, what in kinds:
        if names:
            notes.append(f"{what}: {', '.join(names)} ({len(names)} run(s))")
    if all(r.clips is None for r in runs):
        present = sorted(
            {p.name for d in run_dirs for p in (d / "attacks").glob("*") if p.is_dir()}
        )
        notes.append(
            f"no run has results of attack {key}"
            + (f" (attack results found: {', '.join(present)})" if present else "")
        )
    return notes


def training_settings(runs: list[_Run]) -> list[dict[str, Any]]:
    """The distinct training settings of ``runs`` (identity without system and seed)."""
    distinct = {json.dumps(r.train, sort_keys=True): r.train for r in runs}
    return list(distinct.values())


def _check_unique(runs: list[_Run], runs_dir: Path) -> None:
    seen: dict[tuple[str, int], str] = {}
    for run in runs:
        other = seen.setdefault((run.system, run.seed), run.name)
        if other != run.name:
            raise RobustmerError(
                f"{runs_dir}: runs {sorted([other, run.name])} have the same system and seed; "
                "expected one run per system and seed"
            )


def _clips_table(runs: list[_Run]) -> pd.DataFrame:
    tables = [r.clips for r in runs if r.clips is not None]
    if not tables:
        return pd.DataFrame(columns=["system", "seed", "clip_id", "mae_clean", "mae_adv"])
    return pd.concat(tables, ignore_index=True)


# ----------------------------------------------------------------------------- entry point


def load_study(
    study_dir: str | os.PathLike[str],
    *,
    attack: AttackConfig | str | None = None,
    include_mismatched: bool = False,
) -> StudyData:
    """Read ``study.json`` and all finished runs of a study directory.

    Parameters
    ----------
    study_dir : path
        The study directory (``runs/`` inside it).
    attack : AttackConfig or str, optional
        The attack whose results are read: its settings, an attack name (the study's
        attack of that name) or a storage key (``RUN_DIR/attacks/<key>/``); default the
        study's first evaluation attack.
    include_mismatched : bool
        Keep runs and attack results whose settings differ from the study's (they are
        left out by default); either way they are listed.

    Returns
    -------
    StudyData

    Raises
    ------
    RobustmerError
        No finished run, a malformed or unknown-version file, an unknown system, or two
        runs with the same system and seed.
    """
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise RobustmerError(f"{study_dir}: not a directory; expected a study directory")
    study = read_json(study_dir / STUDY_FILE) if (study_dir / STUDY_FILE).is_file() else {}
    if not isinstance(study, dict):
        raise RobustmerError(f"{study_dir / STUDY_FILE}: expected a JSON object")
    key, settings = _select_attack(study, attack)
    run_dirs, notes = _finished_runs(study_dir)
    runs = [_read_run(d) for d in run_dirs]
    _check_unique(runs, study_dir / RUNS_DIR)
    for run in runs:
        _read_attack(run, key)
    kept, excluded = _exclude(runs, _study_reference(study), settings, include_mismatched)
    notes += _exclusion_notes(excluded, include_mismatched)
    if not kept:
        raise RobustmerError(
            f"{study_dir / RUNS_DIR}: every finished run was trained with other settings than "
            f"the study ({'; '.join(notes[-len(excluded):])}); expected at least one run of the "
            "study's settings (or include the mismatched runs explicitly)"
        )
    notes += _missing_notes(kept, key, run_dirs)
    if settings is None and kept and any(r.summary for r in kept):
        settings = next(r.summary.attack for r in kept if r.summary is not None)
    return StudyData(
        study_dir=study_dir,
        study=study,
        runs=pd.DataFrame([_run_row(r) for r in kept]),
        clips=_clips_table(kept),
        summaries={r.name: r.summary for r in kept if r.summary is not None},
        notes=notes,
        attack_key=key,
        attack_settings=settings,
        excluded=excluded,
        train_settings=training_settings(kept),
    )

