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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustmer._io import atomic_directory, atomic_open, write_json, write_table
from robustmer.attacks import AttackConfig, PaperConfig
from robustmer.errors import RobustmerError
from robustmer.names import RATING_SCALE
from robustmer.provenance import versions
from robustmer.records import REPORT_DIR
from robustmer.report import figures, render
from robustmer.report.load import StudyData, load_study, study_attacks
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

__all__ = ["StudyData", "build_report", "default_report_dir", "load_study", "provenance"]

PAPER_COLUMNS: tuple[str, ...] = (
    "paper_avg_corr",
    "paper_avg_corr_std",
    "paper_mae",
    "paper_mae_std",
)
"""Table 1's columns of the paper's clean results (shown for the paper's data only)."""

PAPER_ATTACK_COLUMNS: tuple[str, ...] = ("paper_delta_mae_median",)
"""Table 1's columns of the paper's attack results (the paper's data and attack only)."""


def _opt(obj: Any, dotted: str, default: Any = None) -> Any:
    """``obj[k1][k2]...`` for ``dotted = "k1.k2..."``, or ``default`` when absent or null."""
    cur = obj
    for key in dotted.split("."):
        if not isinstance(cur, dict) or cur.get(key) is None:
            return default
        cur = cur[key]
    return cur


def paper_reference(data: StudyData) -> tuple[bool, bool]:
    """Whether the paper's values apply: (the data are the paper's, and so is the attack).

    The paper's clean numbers compare with runs on the real data sets; its ΔMAE medians
    only with the paper's attack (reference mode, 1000 steps of 0.002) on them.
    """
    paper_data = _opt(data.study, "data.kind", "unknown") == "real"
    return paper_data, paper_data and data.attack_settings == PaperConfig().to_dict()


def _attack_settings(data: StudyData) -> tuple[dict[str, Any], list[str]]:
    """The attack settings the runs' results were made with, and remarks on them.

    Only the settings count (``summary.attack``), not the checkpoint or data hashes that
    naturally differ between runs.
    """
    remarks = []
    distinct = {
        json.dumps(s.attack, sort_keys=True): s.attack for s in data.summaries.values()
    }
    if len(distinct) > 1:
        remarks.append(
            f"the runs used {len(distinct)} different attack settings; see each run's summary.json"
        )
    settings = data.attack_settings or (next(iter(distinct.values())) if distinct else {})
    return settings, remarks


def provenance(data: StudyData) -> dict[str, Any]:
    """Where the numbers come from: data, profile, the settings used, devices, versions."""
    settings, remarks = _attack_settings(data)
    study = data.study
    devices = sorted({d for d in data.runs["train_device"] if d})
    paper_data, paper_attack = paper_reference(data)
    return {
        "study_dir": str(data.study_dir.resolve()),
        "generated": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "profile": study.get("profile"),
        "data": study.get("data"),
        "shrunk": study.get("shrunk"),
        "train_settings": data.train_settings,
        "attack": data.attack_key,
        "attack_settings": settings,
        "attack_remarks": remarks,
        "excluded": data.excluded,
        "paper_data": paper_data,
        "paper_attack": paper_attack,
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
    if not prov["paper_attack"]:
        blocks.append(
            Paragraph(
                "Note: the paper's values appear only where they compare: its clean results "
                "for the real Soundtracks/mid-level data sets, its ΔMAE for those data and "
                "its attack (reference mode, 1000 steps of 0.002)."
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
                    if prov["paper_attack"]
                    else " (the paper's medians, 1.0-1.6, are drawn only for its data and attack)."
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
        *[f"training settings used: {_kv(t)}" for t in prov["train_settings"]],
        f"attack '{prov['attack']}' settings used: {_kv(prov['attack_settings'])}",
        *[f"attack: {r}" for r in prov["attack_remarks"]],
        f"device (study): {_kv(prov['device'])}; training devices: "
        f"{', '.join(prov['training_devices']) or '–'}",
        f"versions (study): {_kv(versions)}",
        f"report built with: {_kv(prov['report_environment'])}",
        f"generated: {prov['generated']}",
    ]
    blocks += [Heading("Provenance"), Bullets(items)]
    return blocks


def _significance(clips: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The paired tests of the systems present; a test with n = 0 between two attacked
    systems is an error (their clips do not pair), a pair with a system absent is a note."""
    tests = significance_tests(clips)
    attacked = set(clips["system"])
    absent = tests["n"] == 0
    for r in tests[absent].itertuples():
        if {r.a, r.b} <= attacked:
            raise RobustmerError(
                f"significance test {r.a} vs {r.b}: no clips pair up by (seed, clip_id) "
                "although both systems were attacked; expected the same seeds and test clips"
            )
    notes = [
        f"test {r.a} vs {r.b} not computed: no attacked runs of "
        f"{', '.join(s for s in (r.a, r.b) if s not in attacked)}"
        for r in tests[absent].itertuples()
    ]
    return tests[~absent].reset_index(drop=True), notes


def _tables(data: StudyData, ddof: int) -> dict[str, pd.DataFrame]:
    """Every table of the report, in the order they are written."""
    delta = delta_mae_table(data.clips)
    t1 = table1(data.runs, delta, ddof=ddof)
    paper_data, paper_attack = paper_reference(data)
    for column in (() if paper_data else PAPER_COLUMNS) + (
        () if paper_attack else PAPER_ATTACK_COLUMNS
    ):
        t1[column] = np.nan  # the paper's values compare only with the paper's setting
    tests, notes = _significance(data.clips)
    data.notes.extend(notes)
    cost = cost_table(data.runs)
    return {
        "table1": t1,
        "delta_mae": delta,
        "clips": data.clips,
        "tests": tests,
        "cost": cost,
        "cost_ratios": cost_ratios(cost),
        "runs": data.runs,
    }


def _figures(
    data: StudyData,
    delta: pd.DataFrame,
    fig_seed: int | None,
    prov: dict[str, Any],
    root: Path,
) -> dict[str, dict[str, Path]]:
    """Draw Figures 3 and 4 under ``root/figures``; return their files by name."""
    (root / "figures").mkdir()
    figs: dict[str, dict[str, Path]] = {}
    if not delta.empty:
        figs["fig3"] = figures.figure_delta_mae(
            delta, root / "figures" / "fig3_delta_mae", show_paper=prov["paper_attack"]
        )
    if fig_seed is not None:
        fig4 = figures.figure_true_vs_pred(
            data.clips, fig_seed, root / "figures" / "fig4_true_vs_pred"
        )
        if fig4 is not None:
            figs["fig4"] = fig4
    return figs


def _summary(
    data: StudyData,
    tables: dict[str, pd.DataFrame],
    prov: dict[str, Any],
    fig_seed: int | None,
    ddof: int,
) -> dict[str, Any]:
    """The content of the report's ``summary.json``."""
    return {
        "units": {
            "mae": "rating/10 (training scale, as the paper's Table 1 and Figure 3)",
            "to_rating_points": RATING_SCALE,
            "std": f"numpy std over seeds with ddof={ddof}",
        },
        "attack": data.attack_key,
        "figure_seed": fig_seed,
        **{name: _records(df) for name, df in tables.items() if name != "clips"},
        "excluded": data.excluded,
        "notes": data.notes,
        "provenance": prov,
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
    include_mismatched: bool = False,
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
    include_mismatched : bool
        Also report runs trained with other settings than the study's, and attack results
        made with other settings (left out by default; listed either way).

    Returns
    -------
    Path
        The report directory.

    Raises
    ------
    RobustmerError
        No finished runs, malformed run files, a ``figure_seed`` without attacked runs, or
        a significance test of two attacked systems without paired clips.
    """
    if ddof < 0:
        raise RobustmerError(f"ddof {ddof}: negative; expected 0 or a positive integer")
    data = load_study(study_dir, attack=attack, include_mismatched=include_mismatched)
    tables = _tables(data, ddof)
    prov = provenance(data)
    fig_seed = _choose_figure_seed(data.clips, figure_seed) if not data.clips.empty else None
    report_dir = Path(out) if out is not None else default_report_dir(data)
    with atomic_directory(report_dir) as tmp:
        figs = _figures(data, tables["delta_mae"], fig_seed, prov, tmp)
        for name, df in tables.items():
            write_table(df, tmp / name)
        write_json(tmp / "summary.json", _summary(data, tables, prov, fig_seed, ddof))
        blocks = _blocks(
            data,
            tables["table1"],
            tables["delta_mae"],
            tables["tests"],
            tables["cost"],
            tables["cost_ratios"],
            prov,
            figs,
            fig_seed,
            ddof,
            tmp,
        )
        with atomic_open(tmp / "report.md") as fh:
            fh.write(render.render_markdown(blocks))
        with atomic_open(tmp / "report.html") as fh:
            fh.write(render.render_html(blocks, title=f"robustmer report: {data.study_dir.name}"))
    logger.info("report written to %s", report_dir)
    return report_dir
