"""Build the study report ``STUDY/report/`` from the finished runs (DESIGN.md §8).

Reads ``STUDY/study.json`` (optional, provenance only) and every
``STUDY/runs/<SYSTEM>-seed<SEED>/`` run directory: ``config.json``, ``final.json`` (clean
metrics and training cost; a run without it has not finished and is skipped), and the attack
outputs ``attacks/<attack>/clips.parquet`` (or ``.csv``) and ``summary.json``. Writes, atomically
(the whole directory is built beside the target and renamed):

- ``report.md`` and ``report.html`` (self-contained): the sections of
  :data:`robustmer.report.sections.SECTIONS` (a conclusion generated from the numbers,
  Table 1 with the ridge baseline row, Figures 3 and 4, the Holm-corrected paired tests of
  every pair of systems with their power, the cost comparison with the time per stage, and
  provenance);
- ``figures/fig3_delta_mae.{png,svg}``, ``figures/fig4_true_vs_pred.{png,svg}``;
- tidy tables as Parquet + CSV: ``table1``, ``delta_mae`` (one row per model), ``clips`` (all
  per-clip rows), ``tests``, ``cost``, ``cost_ratios``, ``stages`` (time per stage, from
  ``study.json["stage_seconds"]``), ``runs`` (one row per finished run);
- ``summary.json`` with every number of those tables, the specs of the tables shown
  (:mod:`robustmer.report.specs`), the conclusion, the power statement, the baseline, the
  notes and the provenance.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustmer._io import atomic_directory, atomic_open, read_json, write_json, write_table
from robustmer.attacks import (
    ATTACKS,
    AttackConfig,
    PaperConfig,
    attack_config,
    config_from_dict,
)
from robustmer.errors import RobustmerError
from robustmer.names import RATING_SCALE
from robustmer.provenance import versions
from robustmer.records import (
    CLIPS_STEM,
    FINAL_FILE,
    REPORT_DIR,
    RUNS_DIR,
    STUDY_FILE,
    SUMMARY_FILE,
    AttackSummary,
    attack_dir,
    read_clips,
)
from robustmer.report import figures, render, sections, specs
from robustmer.report.conclusion import conclusion
from robustmer.report.render import TableSpec
from robustmer.report.tables import (
    add_baseline,
    cost_ratios,
    cost_table,
    delta_mae_table,
    power_summary,
    significance_tests,
    stage_table,
    table1,
)

logger = logging.getLogger(__name__)

__all__ = [
    "STAGE_SECONDS_KEY",
    "StudyData",
    "build_report",
    "default_report_dir",
    "is_paper_attack",
    "load_study",
    "study_attacks",
]

_NAN = float("nan")


@dataclass
class StudyData:
    """Everything the report is made from.

    Attributes
    ----------
    study_dir : Path
    study : dict
        ``study.json`` (empty when absent).
    runs : pd.DataFrame
        One row per finished run: ``run, system, seed, best_epoch, test_avg_corr, test_mae,
        test_rmse, validation_avg_corr, test_midlevel_avg_corr, wall_seconds, epochs,
        forward_passes, backward_passes, train_attack_iterations, train_device,
        attacked, attack_seconds, attack_model_passes, snr_db_mean, snr_db_median``.
    clips : pd.DataFrame
        Per-clip attack rows of all attacked runs, concatenated.
    summaries : dict
        :class:`robustmer.records.AttackSummary` of each attacked run, by run name.
    attack_key : str
        Storage key of the attack whose results were read.
    notes : list of str
        Human-readable remarks for the report (skipped runs, missing outputs, ...).
    """

    study_dir: Path
    study: dict[str, Any]
    runs: pd.DataFrame
    clips: pd.DataFrame
    summaries: dict[str, AttackSummary] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    attack_key: str = ""


def _get(obj: Any, dotted: str, path: Path) -> Any:
    """``obj[k1][k2]...`` for ``dotted = "k1.k2..."``; RobustmerError naming ``path`` if absent."""
    cur = obj
    for key in dotted.split("."):
        if not isinstance(cur, dict) or key not in cur:
            raise RobustmerError(f"{path}: missing key '{dotted}'; expected it in this file")
        cur = cur[key]
    return cur


def _opt(obj: Any, dotted: str, default: Any = _NAN) -> Any:
    """Like :func:`_get` but returning ``default`` when absent or null."""
    cur = obj
    for key in dotted.split("."):
        if not isinstance(cur, dict) or cur.get(key) is None:
            return default
        cur = cur[key]
    return cur


def _number(value: Any, dotted: str, path: Path) -> float:
    """``value`` as a float; JSON null (how NaN is written) becomes NaN."""
    if value is None:
        return _NAN
    try:
        return float(value)
    except (TypeError, ValueError):
        raise RobustmerError(f"{path}: '{dotted}' is {value!r}; expected a number") from None


_IDENTITY_SOURCES: dict[str, tuple[tuple[str, str], ...]] = {
    "system": (("final", "system"), ("config", "system.name"), ("config", "train_config.system")),
    "seed": (("final", "seed"), ("config", "train_config.seed")),
}
"""Where training records a run's system name and seed, as (file, dotted key); all must agree."""

_COST_KEYS: dict[str, str] = {
    "wall_seconds": "wall_seconds",
    "epochs": "epochs_run",
    "forward_passes": "forward_clip_passes",
    "backward_passes": "backward_clip_passes",
    "train_attack_iterations": "attack_clip_iterations",
}
"""Runs-table cost column -> key of ``final.json["cost"]`` (written by robustmer.training)."""

def _summary_columns(summary: AttackSummary | None) -> dict[str, float]:
    """Runs-table attack columns from the attack's ``summary.json`` (NaN without one)."""
    if summary is None:
        return dict.fromkeys(
            ("attack_seconds", "attack_model_passes", "snr_db_mean", "snr_db_median"), _NAN
        )
    return {
        "attack_seconds": summary.cost.wall_seconds,
        "attack_model_passes": float(summary.cost.forward_clip_passes),
        "snr_db_mean": summary.snr_db_mean,
        "snr_db_median": summary.snr_db_median,
    }


def _identity(config: dict, final: dict, paths: dict[str, Path]) -> tuple[str, int]:
    """A run's system name and seed, from ``final.json`` and/or ``config.json``."""
    docs = {"final": final, "config": config}
    found: dict[str, list[tuple[Any, Path]]] = {}
    for name, sources in _IDENTITY_SOURCES.items():
        values = [
            (v, paths[f])
            for f, key in sources
            if not isinstance(v := _opt(docs[f], key, None), dict) and v is not None
        ]
        if not values:
            raise RobustmerError(
                f"{paths['config']}: missing key '{name}'; expected the run's {name} in it "
                f"(or in {paths['final'].name})"
            )
        if len({repr(v) for v, _ in values}) > 1:
            raise RobustmerError(
                f"{paths['config']}: the run's {name} is recorded inconsistently "
                f"({sorted(set(map(str, (v for v, _ in values))))}); expected one value"
            )
        found[name] = values
    system, system_path = found["system"][0]
    seed, seed_path = found["seed"][0]
    if not isinstance(system, str) or not system:
        raise RobustmerError(f"{system_path}: 'system' is {system!r}; expected a system name")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise RobustmerError(f"{seed_path}: 'seed' is {seed!r}; expected an integer")
    return system, seed


def _read_run(
    run_dir: Path, key: str
) -> tuple[dict[str, Any], pd.DataFrame | None, AttackSummary | None, list[str]]:
    """Read one finished run: its row of the runs table, clips, attack summary and notes."""
    notes: list[str] = []
    config_path, final_path = run_dir / "config.json", run_dir / "final.json"
    config, final = read_json(config_path), read_json(final_path)
    for doc, path in ((config, config_path), (final, final_path)):
        if not isinstance(doc, dict):
            raise RobustmerError(f"{path}: not a JSON object; expected a run description")
    system, seed = _identity(config, final, {"config": config_path, "final": final_path})
    test = "metrics.test.emotions"
    row: dict[str, Any] = {
        "run": run_dir.name,
        "system": system,
        "seed": seed,
        "best_epoch": _opt(final, "best_epoch"),
        "test_avg_corr": _number(
            _get(final, f"{test}.avg_corr", final_path), f"{test}.avg_corr", final_path
        ),
        "test_mae": _number(_get(final, f"{test}.mae", final_path), f"{test}.mae", final_path),
        "test_rmse": _opt(final, f"{test}.rmse"),
        "validation_avg_corr": _opt(final, "metrics.validation.emotions.avg_corr"),
        "test_midlevel_avg_corr": _opt(final, "metrics.test.midlevel.avg_corr"),
    }
    cost = final.get("cost")
    if not isinstance(cost, dict):
        notes.append(f"{run_dir.name}: final.json has no 'cost'; training cost unknown")
        cost = {}
    for column, cost_key in _COST_KEYS.items():
        row[column] = _number(cost.get(cost_key), f"cost.{cost_key}", final_path)
    row["train_device"] = str(cost.get("device", ""))

    clips, summary, attack_notes = _read_attack(run_dir, key, system, seed)
    notes += attack_notes
    row["attacked"] = clips is not None
    row.update(_summary_columns(summary))
    return row, clips, summary, notes


def _read_attack(
    run_dir: Path, key: str, system: str, seed: int
) -> tuple[pd.DataFrame | None, AttackSummary | None, list[str]]:
    """One run's per-clip table and summary of the attack stored under ``key``."""
    directory = attack_dir(run_dir, key)
    if not (directory / f"{CLIPS_STEM}.parquet").is_file() and not (
        directory / f"{CLIPS_STEM}.csv"
    ).is_file():
        note = f"{run_dir.name}: no results of attack {key}; left out of the adversarial results"
        return None, None, [note]
    clips = read_clips(directory)
    for column, expected in (("system", system), ("seed", seed)):
        if (clips[column] != expected).any():
            found = sorted(map(str, clips[column].unique()))
            raise RobustmerError(
                f"{directory}: column '{column}' holds {found}; expected {expected!r} as in "
                f"{run_dir / 'config.json'}"
            )
    if not (directory / SUMMARY_FILE).is_file():
        return clips, None, [f"{run_dir.name}: {key}/{SUMMARY_FILE} missing; attack cost unknown"]
    return clips, AttackSummary.read(directory / SUMMARY_FILE), []


def study_attacks(study: dict[str, Any]) -> list[AttackConfig]:
    """The evaluation attacks recorded in ``study.json`` (default: the paper attack)."""
    recorded = study.get("attacks")
    if not recorded:
        return [PaperConfig()]
    return [config_from_dict(d) for d in recorded]


_KEY = re.compile(r"^[A-Za-z0-9_.]+-[0-9a-f]{10}(-[a-z]+)?$")
"""A storage key (``AttackConfig.key()``), as in ``RUN/attacks/<key>/``."""


def _attack_key(study: dict[str, Any], attack: AttackConfig | str | None) -> str:
    """The storage key of the attack to report.

    None: the study's first evaluation attack. An :class:`AttackConfig`: its key. A
    registered attack name: the study's attack of that name (the attack's default settings
    if the study has none). Otherwise a storage key.
    """
    if attack is None:
        return study_attacks(study)[0].key()
    if isinstance(attack, AttackConfig):
        return attack.key()
    if attack in ATTACKS:
        same = [c.key() for c in study_attacks(study) if c.name == attack]
        if len(same) > 1:
            raise RobustmerError(
                f"attack {attack!r}: the study ran it with {len(same)} settings "
                f"({', '.join(same)}); expected their settings or one of those keys"
            )
        return same[0] if same else attack_config(attack).key()
    if not isinstance(attack, str) or not _KEY.match(attack):
        raise RobustmerError(
            f"attack {attack!r}: neither an attack name ({', '.join(ATTACKS)}) nor a storage "
            "key; expected e.g. paper or paper-1a2b3c4d5e"
        )
    return attack


def load_study(
    study_dir: str | os.PathLike[str], *, attack: AttackConfig | str | None = None
) -> StudyData:
    """Read ``study.json`` and all finished runs of a study directory.

    Parameters
    ----------
    study_dir : path
        The study directory (``runs/`` inside it).
    attack : AttackConfig or str, optional
        The attack whose results are read: its settings, or a storage key
        (``RUN_DIR/attacks/<key>/``); default the study's first evaluation attack.

    Returns
    -------
    StudyData

    Raises
    ------
    RobustmerError
        If the directory has no finished run, a file is malformed, or two runs share a system
        and seed.
    """
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise RobustmerError(f"{study_dir}: not a directory; expected a study directory")
    study_json = study_dir / STUDY_FILE
    study = read_json(study_json) if study_json.is_file() else {}
    if not isinstance(study, dict):
        raise RobustmerError(f"{study_json}: expected a JSON object")
    key = _attack_key(study, attack)
    runs_dir = study_dir / RUNS_DIR
    run_dirs = (
        sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        if runs_dir.is_dir()
        else []
    )
    rows, clip_tables, summaries, notes = [], [], {}, []
    # no progress bar: reading a study takes about a second, and run_study calls this
    # function inside its own live progress display
    for run_dir in run_dirs:
        if not (run_dir / FINAL_FILE).is_file():
            logger.warning("%s: no final.json (run not finished); skipped", run_dir)
            notes.append(f"{run_dir.name}: not finished (no final.json); skipped")
            continue
        row, clips, summary, run_notes = _read_run(run_dir, key)
        rows.append(row)
        notes += run_notes
        if clips is not None:
            clip_tables.append(clips)
        if summary is not None:
            summaries[run_dir.name] = summary
    if not rows:
        raise RobustmerError(
            f"{runs_dir}: no finished runs; expected run directories <SYSTEM>-seed<SEED>/ "
            "with config.json and final.json"
        )
    for note in notes:
        if "skipped" not in note:
            logger.warning("%s", note)
    runs = pd.DataFrame(rows)
    dup = runs[runs.duplicated(["system", "seed"], keep=False)]
    if not dup.empty:
        raise RobustmerError(
            f"{runs_dir}: runs {sorted(dup['run'])} have the same system and seed; expected one "
            "run per system and seed"
        )
    clips = (
        pd.concat(clip_tables, ignore_index=True)
        if clip_tables
        else pd.DataFrame(columns=["system", "seed", "clip_id", "mae_clean", "mae_adv"])
    )
    if clips.empty:
        present = sorted(
            {p.name for d in run_dirs for p in (d / "attacks").glob("*") if p.is_dir()}
        )
        notes.append(
            f"no run has results of attack {key}"
            + (f" (attacks found: {', '.join(present)})" if present else "")
        )
    return StudyData(study_dir, study, runs, clips, summaries, notes, key)


# ----------------------------------------------------------------------------- provenance


def _attack_settings(data: StudyData) -> tuple[dict[str, Any], list[str]]:
    """The attack settings the runs' results were made with, and remarks on them."""
    remarks = []
    distinct = {
        json.dumps(s.attack, sort_keys=True): s.attack for s in data.summaries.values()
    }
    if len(distinct) > 1:
        remarks.append(
            f"the runs used {len(distinct)} different attack settings; see each run's summary.json"
        )
    return (next(iter(distinct.values())) if distinct else {}), remarks


def provenance(data: StudyData) -> dict[str, Any]:
    """Where the numbers come from: data, profile, attack, devices, versions, date."""
    settings, remarks = _attack_settings(data)
    study = data.study
    devices = sorted({d for d in data.runs["train_device"] if d})
    return {
        "study_dir": str(data.study_dir.resolve()),
        "generated": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "profile": study.get("profile"),
        "data": study.get("data"),
        "shrunk": study.get("shrunk"),
        "attack": data.attack_key,
        "attack_settings": settings,
        "attack_remarks": remarks,
        "device": study.get("device"),
        "training_devices": devices,
        "versions": study.get("versions"),
        "report_environment": versions(),
    }


# ----------------------------------------------------------------------------- report


def _choose_figure_seed(clips: pd.DataFrame, seed: int | None) -> int | None:
    seeds = sorted(int(s) for s in clips["seed"].unique())
    if seed is not None:
        if seed not in seeds:
            raise RobustmerError(
                f"--seed {seed}: no attacked run has this seed; expected one of {seeds}"
            )
        return seed
    with_fig_systems = clips[clips["system"].isin(figures.FIG4_SYSTEMS)]["seed"]
    candidates = sorted(int(s) for s in with_fig_systems.unique())
    return candidates[0] if candidates else None


STAGE_SECONDS_KEY = "stage_seconds"
"""Key of ``study.json`` with the study's wall time per stage: ``{"synthesis": s,
"spectrograms": s, "training": s, "attacks": s, "report": s}`` (seconds; any subset, other
stage names allowed). The report's cost section shows it when present."""


def _stage_seconds(data: StudyData) -> dict[str, float]:
    """``study.json["stage_seconds"]``, validated (empty when the study did not record it)."""
    stages = data.study.get(STAGE_SECONDS_KEY)
    if stages is None:
        return {}
    path = data.study_dir / "study.json"
    if not isinstance(stages, dict):
        raise RobustmerError(f"{path}: '{STAGE_SECONDS_KEY}' is {stages!r}; expected an object")
    out = {}
    for stage, seconds in stages.items():
        value = _number(seconds, f"{STAGE_SECONDS_KEY}.{stage}", path)
        if not value >= 0:
            raise RobustmerError(
                f"{path}: '{STAGE_SECONDS_KEY}.{stage}' is {seconds!r}; expected seconds >= 0"
            )
        out[str(stage)] = value
    return out


_PAPER_ATTACK_FIELDS: tuple[str, ...] = ("attack", "mode", "steps", "step_size", "epsilon")
"""The settings that make an attack the paper's (compared with :class:`PaperConfig`)."""


def is_paper_attack(settings: dict[str, Any]) -> bool:
    """Whether attack settings (``AttackConfig.to_dict()``) are the paper's: the reference
    mode, 1000 unbounded iterations of step 0.002; only then are its ΔMAE values comparable."""
    paper = PaperConfig().to_dict()
    return bool(settings) and all(settings.get(k) == paper[k] for k in _PAPER_ATTACK_FIELDS)


def _cache_dir(data: StudyData) -> Path | None:
    """The study's cache directory: ``study.json`` records it relative to the study directory,
    or absolute; None when not recorded or absent."""
    cache = _opt(data.study, "data.cache", None)
    if not isinstance(cache, str):
        return None
    path = data.study_dir / cache  # an absolute ``cache`` replaces the study directory
    return path if path.is_dir() else None


def _ridge_baseline(data: StudyData) -> dict[str, Any] | None:
    """The ridge baseline on the study's cache (:class:`robustmer.evaluation.baseline.
    BaselineResult` as a dict: ``avg_corr``, ``mae``, ``alpha``, ``n_test``, ...), or None with
    a note when the cache or the baseline module is not available."""
    cache_dir = _cache_dir(data)
    if cache_dir is None:
        data.notes.append("ridge baseline not computed: the study's cache is not available")
        return None
    try:
        from robustmer.evaluation import baseline
    except ImportError:
        data.notes.append("ridge baseline not computed: robustmer.evaluation.baseline missing")
        return None
    return baseline.ridge_baseline(str(cache_dir)).to_dict()


def _tables(data: StudyData, baseline: dict[str, Any] | None, ddof: int) -> dict[str, Any]:
    """Every table of the report, keyed by the name its files and summary.json use."""
    delta = delta_mae_table(data.clips)
    t1 = table1(data.runs, delta, ddof=ddof)
    if baseline is not None:
        t1 = add_baseline(t1, baseline["avg_corr"], baseline["mae"])
    cost = cost_table(data.runs)
    stages = _stage_seconds(data)
    return {
        "table1": t1,
        "delta_mae": delta,
        "clips": data.clips,
        "tests": significance_tests(data.clips),
        "cost": cost,
        "cost_ratios": cost_ratios(cost),
        "stages": stage_table(stages)
        if stages
        else pd.DataFrame(columns=["stage", "seconds", "share"]),
        "runs": data.runs,
    }


def _context(
    data: StudyData, *, ddof: int, figure_seed: int | None
) -> sections.ReportContext:
    """Read the study's derived numbers into the context the sections draw from."""
    baseline = _ridge_baseline(data)
    tables = _tables(data, baseline, ddof)
    for r in tables["tests"].itertuples():
        if r.n == 0:
            data.notes.append(f"test {r.a} vs {r.b}: no paired clips (a system is missing)")
    prov = provenance(data)
    data_kind = str(_opt(data.study, "data.kind", "unknown"))
    power = power_summary(tables["tests"])
    text = conclusion(
        tables["table1"],
        tables["tests"],
        tables["cost_ratios"],
        power,
        data_kind=data_kind,
        profile=_profile_name(data.study.get("profile")),
        baseline=baseline,
    )
    return sections.ReportContext(
        data=data,
        tables=tables,
        power=power,
        conclusion=text,
        baseline=baseline,
        prov=prov,
        fig_seed=_choose_figure_seed(data.clips, figure_seed) if not data.clips.empty else None,
        ddof=ddof,
        paper_data=data_kind == "real",
        paper_attack=is_paper_attack(prov["attack_settings"] or {}),
    )


def _profile_name(profile: Any) -> str | None:
    """The profile's name from ``study.json["profile"]`` (a name or a profile dict)."""
    if isinstance(profile, dict):
        return profile.get("name")
    return None if profile is None else str(profile)


def _draw_figures(ctx: sections.ReportContext, out: Path) -> dict[str, dict[str, Path]]:
    """Figures 3 and 4 under ``out``; a figure without data is left out."""
    figs: dict[str, dict[str, Path]] = {}
    if not ctx.tables["delta_mae"].empty:
        figs["fig3"] = figures.figure_delta_mae(
            ctx.tables["delta_mae"],
            out / "fig3_delta_mae",
            show_paper=ctx.paper_data and ctx.paper_attack,
        )
    if ctx.fig_seed is not None:
        fig4 = figures.figure_true_vs_pred(ctx.data.clips, ctx.fig_seed, out / "fig4_true_vs_pred")
        if fig4 is not None:
            figs["fig4"] = fig4
    return figs


_TABLE_SPECS: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (specs.TABLE1, specs.PER_MODEL, specs.TESTS, specs.COST, specs.COST_RATIOS,
                 specs.STAGES)
}  # fmt: skip
"""The specs of the tables shown, by table name (described in summary.json)."""


def _summary(ctx: sections.ReportContext) -> dict[str, Any]:
    """``summary.json``: every table's rows, their specs, the conclusion and provenance."""
    specs_shown = dict(_TABLE_SPECS, table1=sections.table1_spec(ctx.paper_data, ctx.paper_attack))
    return {
        "units": {
            "mae": "rating/10 (training scale, as the paper's Table 1 and Figure 3)",
            "to_rating_points": RATING_SCALE,
            "std": f"numpy std over seeds with ddof={ctx.ddof}",
        },
        "attack": ctx.data.attack_key,
        "figure_seed": ctx.fig_seed,
        "conclusion": ctx.conclusion,
        "power": ctx.power,
        "baseline": ctx.baseline,
        **{name: _records(df) for name, df in ctx.tables.items() if name != "clips"},
        "table_specs": {name: render.spec_json(spec) for name, spec in specs_shown.items()},
        "notes": ctx.data.notes,
        "provenance": ctx.prov,
    }


def default_report_dir(data: StudyData) -> Path:
    """``STUDY/report`` for the study's first evaluation attack, else ``STUDY/report-<key>``."""
    if data.attack_key == study_attacks(data.study)[0].key():
        return data.study_dir / REPORT_DIR
    return data.study_dir / f"{REPORT_DIR}-{data.attack_key}"


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as JSON-ready dicts (NaN becomes null via ``write_json``)."""
    return [
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        for row in df.to_dict(orient="records")
    ]


def build_report(
    study_dir: str | os.PathLike[str],
    *,
    figure_seed: int | None = None,
    attack: AttackConfig | str | None = None,
    ddof: int = 1,
    out: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``STUDY/report/`` for a study (DESIGN.md §8), replacing it atomically.

    Parameters
    ----------
    study_dir : path
        The study directory (``study.json`` optional, ``runs/<SYSTEM>-seed<SEED>/``).
    figure_seed : int, optional
        Seed of the models shown in Figure 4; default the smallest attacked seed of the
        Figure 4 systems (A2B2E, A2M2E, aA2B2E).
    attack : AttackConfig or str, optional
        Which attack's results to report: its settings, an attack name (the study's attack
        of that name) or a storage key (``RUN_DIR/attacks/<key>/``); default the study's
        first evaluation attack.
    ddof : int
        Delta degrees of freedom of the std over seeds in Table 1 (1: sample std; the
        paper's code used 0).
    out : path, optional
        The report directory; default ``STUDY/report`` for the study's first evaluation
        attack and ``STUDY/report-<key>`` for any other, so reports of different attacks
        never overwrite each other.

    Returns
    -------
    Path
        The report directory.

    Raises
    ------
    RobustmerError
        No finished runs, malformed run files, or a ``figure_seed`` without attacked runs.
    """
    if ddof < 0:
        raise RobustmerError(f"--ddof {ddof}: negative; expected 0 or a positive integer")
    data = load_study(study_dir, attack=attack)
    ctx = _context(data, ddof=ddof, figure_seed=figure_seed)
    report_dir = Path(out) if out is not None else default_report_dir(data)
    with atomic_directory(report_dir) as tmp:
        (tmp / "figures").mkdir()
        ctx.root = tmp
        ctx.figs = _draw_figures(ctx, tmp / "figures")
        for name, df in ctx.tables.items():
            write_table(df, tmp / name)
        write_json(tmp / "summary.json", _summary(ctx))
        blocks = [block for section in sections.SECTIONS for block in section(ctx)]
        with atomic_open(tmp / "report.md") as fh:
            fh.write(render.render_markdown(blocks))
        with atomic_open(tmp / "report.html") as fh:
            fh.write(render.render_html(blocks, title=f"robustmer report: {data.study_dir.name}"))
    logger.info("report written to %s", report_dir)
    return report_dir
