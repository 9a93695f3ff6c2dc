"""Build the study report ``STUDY/report/`` from the finished runs (DESIGN.md §8).

Reads ``STUDY/study.json`` (optional, provenance only) and every
``STUDY/runs/<SYSTEM>-seed<SEED>/`` run directory: ``config.json``, ``final.json`` (clean
metrics and training cost; a run without it has not finished and is skipped), and the attack
outputs ``attacks/<attack>/clips.parquet`` (or ``.csv``) and ``summary.json``. Writes, atomically
(the whole directory is built beside the target and renamed):

- ``report.md`` and ``report.html`` (self-contained) with Table 1, Figures 3 and 4, the paired
  tests, the cost comparison and provenance;
- ``figures/fig3_delta_mae.{png,svg}``, ``figures/fig4_true_vs_pred.{png,svg}``;
- tidy tables as Parquet + CSV: ``table1``, ``delta_mae`` (one row per model), ``clips`` (all
  per-clip rows), ``tests``, ``cost``, ``cost_ratios``, ``runs`` (one row per finished run);
- ``summary.json`` with every number of those tables, the notes and the provenance.
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
from robustmer.report import figures, render
from robustmer.report.audio import listening_blocks
from robustmer.report.render import (
    Bullets,
    FigureBlock,
    Heading,
    Paragraph,
    TableBlock,
    fmt,
    fmt_p,
    fmt_pm,
)
from robustmer.report.tables import (
    PAPER_ORIGINAL,
    cost_ratios,
    cost_table,
    delta_mae_table,
    significance_tests,
    table1,
)

logger = logging.getLogger(__name__)

__all__ = ["StudyData", "build_report", "default_report_dir", "load_study", "study_attacks"]

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


def _kv(d: Any) -> str:
    """A compact ``key=value, ...`` rendering of a dict (nested dicts in parentheses)."""
    if isinstance(d, dict):
        if not d:
            return "–"
        return ", ".join(
            f"{k}=({_kv(v)})" if isinstance(v, dict) else f"{k}={_kv(v)}" for k, v in d.items()
        )
    return "–" if d is None else str(d)


def _shrunk(d: Any) -> str:
    """What a profile shrank: ``name used (paper: x)`` for ``{name: {"paper", "used"}}``."""
    if not isinstance(d, dict) or not d:
        return "nothing recorded" if d is None else _kv(d)
    parts = []
    for name, v in d.items():
        if isinstance(v, dict) and {"paper", "used"} <= set(v):
            parts.append(f"{name} {v['used']} (paper: {v['paper']})")
        else:
            parts.append(f"{name}={v}" if not isinstance(v, dict) else f"{name}=({_kv(v)})")
    return ", ".join(parts)


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


def _blocks(
    data: StudyData,
    t1: pd.DataFrame,
    delta: pd.DataFrame,
    tests: pd.DataFrame,
    cost: pd.DataFrame,
    ratios: pd.DataFrame,
    prov: dict[str, Any],
    figs: dict[str, dict[str, Path]],
    fig_seed: int | None,
    ddof: int,
    root: Path,
) -> list[render.Block]:
    """The report's content as renderable blocks (shared by Markdown and HTML).

    ``figs`` holds the figure files under ``root``, the directory that becomes the report
    directory; links are relative to it.
    """
    data_kind = _opt(data.study, "data.kind", "unknown")
    blocks: list[render.Block] = [
        Heading("robustmer study report", 1),
        Paragraph(
            "Reproduction of Hoedt, Flexer & Widmer, “Are Inherently Interpretable Models More "
            "Robust? A Study in Music Emotion Recognition” (SMC 2025). "
            f"Study: {data.study_dir.name}; data: **{data_kind}**; "
            f"attack: **{prov['attack']}**; {len(data.runs)} finished run(s), "
            f"{int(data.runs['attacked'].sum())} attacked; generated {prov['generated']}."
        ),
    ]
    if data_kind != "real":
        blocks.append(
            Paragraph(
                "Note: unless the data are the real Soundtracks/mid-level data sets, the numbers "
                "below are not comparable with the paper's; the paper's values are shown for "
                "orientation only."
            )
        )
    if data.notes:
        blocks += [Heading("Notes"), Bullets(data.notes)]

    std_name = "sample std (ddof=1)" if ddof == 1 else f"std with ddof={ddof}"
    blocks += [
        Heading("Table 1: performance and robustness per system"),
        TableBlock(
            headers=[
                "System",
                "seeds",
                "avg. corr",
                "avg. corr (paper)",
                "MAE",
                "MAE (paper)",
                "attacked",
                "ΔMAE mean",
                "ΔMAE median",
                "ΔMAE median (paper, approx.)",
                "adv. avg. corr",
            ],
            rows=[
                [
                    r.system,
                    fmt(int(r.n_seeds)),
                    fmt_pm(r.avg_corr_mean, r.avg_corr_std),
                    fmt_pm(r.paper_avg_corr, r.paper_avg_corr_std, 2),
                    fmt_pm(r.mae_mean, r.mae_std),
                    fmt_pm(r.paper_mae, r.paper_mae_std, 2),
                    fmt(int(r.n_attacked)),
                    fmt(r.delta_mae_mean),
                    fmt(r.delta_mae_median),
                    fmt(r.paper_delta_mae_median, 1),
                    fmt(r.adv_avg_corr_mean),
                ]
                for r in t1.itertuples()
            ],
            caption=(
                f"Clean test average Pearson correlation and MAE, mean ± {std_name} over "
                "seeds (the paper's code used numpy's default ddof=0). ΔMAE = MAE(adv) − "
                "MAE(clean) per model over the attacked test clips; mean and median over "
                "models. All MAE/ΔMAE on the rating/10 scale (the paper's scale; ×10 "
                "for points on the 1–9 rating scale)."
            ),
        ),
        Paragraph(
            "Paper, published models of Chowdhury et al.: "
            + "; ".join(f"{k} {v:.2f}" for k, v in PAPER_ORIGINAL.items())
            + "."
        ),
    ]

    blocks.append(Heading("Figure 3: ΔMAE per system"))
    if "fig3" in figs:
        blocks.append(
            FigureBlock(
                figs["fig3"]["png"],
                "ΔMAE per model (one point per seed)"
                + (
                    "; red diamonds: the paper's approximate medians."
                    if _opt(data.study, "data.kind", "unknown") == "real"
                    else " (the paper's medians, 1.0-1.6, are drawn for real data only)."
                ),
                [(ext.upper(), str(p.relative_to(root))) for ext, p in figs["fig3"].items()],
            )
        )
    else:
        blocks.append(Paragraph("No attacked models: Figure 3 not drawn."))
    if not delta.empty:
        blocks.append(
            TableBlock(
                headers=[
                    "System",
                    "seed",
                    "clips",
                    "MAE clean",
                    "MAE adv",
                    "ΔMAE",
                    "avg. corr clean",
                    "avg. corr adv",
                    "SNR median (dB)",
                    "iterations",
                    "converged",
                ],
                rows=[
                    [
                        r.system,
                        fmt(int(r.seed)),
                        fmt(int(r.n_clips)),
                        fmt(r.mae_clean),
                        fmt(r.mae_adv),
                        fmt(r.delta_mae),
                        fmt(r.avg_corr_clean),
                        fmt(r.avg_corr_adv),
                        fmt(r.snr_db_median, 1),
                        fmt(r.iterations_mean, 1),
                        fmt(r.converged_rate, 2),
                    ]
                    for r in delta.itertuples()
                ],
                caption="Per model (system and seed): attack outcome on the test clips (rating/10 "
                "scale; iterations: mean per clip; converged: fraction of clips).",
            )
        )

    blocks.append(Heading("Figure 4: true vs predicted ratings"))
    if "fig4" in figs:
        blocks.append(
            FigureBlock(
                figs["fig4"]["png"],
                f"True vs predicted tension and tender ratings of the test clips, seed {fig_seed}: "
                "clean (×) and adversarial (○) predictions, dashed identity line.",
                [(ext.upper(), str(p.relative_to(root))) for ext, p in figs["fig4"].items()],
            )
        )
    else:
        blocks.append(
            Paragraph(
                f"None of {', '.join(figures.FIG4_SYSTEMS)} has attacked clips with the "
                f"true/clean/adv columns{'' if fig_seed is None else f' for seed {fig_seed}'}: "
                "Figure 4 not drawn."
            )
        )

    blocks += [
        Heading("Significance of the robustness differences"),
        TableBlock(
            headers=[
                "A",
                "B",
                "n (clips)",
                "seeds",
                "mean MAE A",
                "mean MAE B",
                "mean A−B",
                "t",
                "p (t-test)",
                "Wilcoxon W",
                "p (Wilcoxon)",
                "Cohen's d_z",
            ],
            numeric=[False, False] + [True] * 10,
            rows=[
                [
                    r.a,
                    r.b,
                    fmt(int(r.n)),
                    fmt(int(r.n_seeds)),
                    fmt(r.mean_a),
                    fmt(r.mean_b),
                    fmt(r.mean_diff),
                    fmt(r.t, 2),
                    fmt_p(r.t_p),
                    fmt(r.wilcoxon, 1),
                    fmt_p(r.wilcoxon_p),
                    fmt(r.cohen_dz, 2),
                ]
                for r in tests.itertuples()
            ],
            caption="Clip-level MAE after attack, paired by (seed, clip), pooled over seeds: "
            "paired t-test (scipy.stats.ttest_rel) and Wilcoxon signed-rank test "
            "(scipy.stats.wilcoxon), two-sided. Paper (n = 360): both p < 1e-20.",
        ),
    ]

    blocks += [
        Heading("Cost of training and attack"),
        TableBlock(
            headers=[
                "System",
                "seeds",
                "train wall (s)",
                "epochs",
                "forward passes",
                "backward passes",
                "train attack iters",
                "attack wall (s)",
                "attack passes",
            ],
            rows=[
                [
                    r.system,
                    fmt(int(r.n_seeds)),
                    fmt(r.wall_seconds, 1),
                    fmt(r.epochs, 1),
                    fmt(r.forward_passes, 0),
                    fmt(r.backward_passes, 0),
                    fmt(r.train_attack_iterations, 0),
                    fmt(r.attack_seconds, 1),
                    fmt(r.attack_model_passes, 0),
                ]
                for r in cost.itertuples()
            ],
            caption="Means over seeds. Passes count single clips through the model; training "
            "passes include the adversarial examples of adversarial training.",
        ),
    ]
    if not ratios.empty:
        blocks.append(
            TableBlock(
                headers=["adversarial / standard", "passes", "wall time", "passes per epoch"],
                rows=[
                    [
                        f"{r.adversarial} / {r.standard}",
                        fmt(r.passes_ratio, 2),
                        fmt(r.wall_ratio, 2),
                        fmt(r.passes_per_epoch_ratio, 2),
                    ]
                    for r in ratios.itertuples()
                ],
                caption="Cost of adversarial training relative to standard training (ratio of "
                "means).",
            )
        )

    versions = prov["versions"] if prov["versions"] else "not recorded in study.json"
    items = [
        f"data: {_kv(prov['data'])}",
        f"profile: {_kv(prov['profile'])}",
        f"shrunk by the profile (vs the paper): {_shrunk(prov['shrunk'])}",
        f"attack '{prov['attack']}' settings: {_kv(prov['attack_settings'])}",
        *[f"attack: {r}" for r in prov["attack_remarks"]],
        f"device (study): {_kv(prov['device'])}; training devices: "
        f"{', '.join(prov['training_devices']) or '–'}",
        f"versions (study): {_kv(versions)}",
        f"report built with: {_kv(prov['report_environment'])}",
        f"generated: {prov['generated']}",
    ]
    blocks += [Heading("Provenance"), Bullets(items)]
    return blocks


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
    delta = delta_mae_table(data.clips)
    t1 = table1(data.runs, delta, ddof=ddof)
    tests = significance_tests(data.clips)
    cost = cost_table(data.runs)
    ratios = cost_ratios(cost)
    prov = provenance(data)
    fig_seed = _choose_figure_seed(data.clips, figure_seed) if not data.clips.empty else None
    for r in tests.itertuples():
        if r.n == 0:
            data.notes.append(f"test {r.a} vs {r.b}: no paired clips (a system is missing)")

    report_dir = Path(out) if out is not None else default_report_dir(data)
    with atomic_directory(report_dir) as tmp:
        (tmp / "figures").mkdir()
        figs: dict[str, dict[str, Path]] = {}
        if not delta.empty:
            figs["fig3"] = figures.figure_delta_mae(
                delta,
                tmp / "figures" / "fig3_delta_mae",
                show_paper=_opt(data.study, "data.kind", "unknown") == "real",
            )
        if fig_seed is not None:
            fig4 = figures.figure_true_vs_pred(
                data.clips, fig_seed, tmp / "figures" / "fig4_true_vs_pred"
            )
            if fig4 is not None:
                figs["fig4"] = fig4
        for name, df in (
            ("table1", t1),
            ("delta_mae", delta),
            ("clips", data.clips),
            ("tests", tests),
            ("cost", cost),
            ("cost_ratios", ratios),
            ("runs", data.runs),
        ):
            write_table(df, tmp / name)
        write_json(
            tmp / "summary.json",
            {
                "units": {
                    "mae": "rating/10 (training scale, as the paper's Table 1 and Figure 3)",
                    "to_rating_points": RATING_SCALE,
                    "std": f"numpy std over seeds with ddof={ddof}",
                },
                "attack": data.attack_key,
                "figure_seed": fig_seed,
                "table1": _records(t1),
                "delta_mae": _records(delta),
                "tests": _records(tests),
                "cost": _records(cost),
                "cost_ratios": _records(ratios),
                "runs": _records(data.runs),
                "notes": data.notes,
                "provenance": prov,
            },
        )
        blocks = _blocks(data, t1, delta, tests, cost, ratios, prov, figs, fig_seed, ddof, tmp)
        blocks += listening_blocks(study_dir, tmp)  # waveform attacks' audio, if any
        with atomic_open(tmp / "report.md") as fh:
            fh.write(render.render_markdown(blocks))
        with atomic_open(tmp / "report.html") as fh:
            fh.write(render.render_html(blocks, title=f"robustmer report: {data.study_dir.name}"))
    logger.info("report written to %s", report_dir)
    return report_dir
