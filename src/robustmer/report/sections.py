"""The report's sections: each a small function from the report's context to blocks.

:data:`SECTIONS` lists them in reading order; the Markdown and HTML reports are the blocks of
all sections rendered (:mod:`robustmer.report.render`). A new section is a function
``section(ctx: ReportContext) -> list[Block]`` added to that list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from robustmer.report import figures, specs
from robustmer.report.render import (
    Block,
    Bullets,
    Column,
    FigureBlock,
    Heading,
    Paragraph,
    TableSpec,
    fmt,
    table_block,
)
from robustmer.report.tables import PAPER_ORIGINAL

if TYPE_CHECKING:
    from robustmer.report.build import StudyData

__all__ = ["SECTIONS", "ReportContext", "table1_spec"]


@dataclass
class ReportContext:
    """Everything the sections draw from.

    Attributes
    ----------
    data : StudyData
        The study as read (:func:`robustmer.report.build.load_study`).
    tables : dict of str to pd.DataFrame
        ``table1`` (with the baseline row, if any), ``delta_mae``, ``tests``, ``cost``,
        ``cost_ratios``, ``stages`` (empty when the study recorded no stage times).
    power : dict
        :func:`robustmer.report.tables.power_summary` of the tests.
    conclusion : str
        The opening paragraph (:func:`robustmer.report.conclusion.conclusion`).
    baseline : dict or None
        The ridge baseline's result (``avg_corr``, ``mae``, ``alpha``, ``n_test``, ...).
    prov : dict
        :func:`robustmer.report.build.provenance`.
    figs : dict
        Figure files by figure (``fig3``, ``fig4``) and extension, under ``root``.
    fig_seed : int or None
        Seed of the models in Figure 4.
    ddof : int
        Delta degrees of freedom of the std over seeds.
    root : Path
        The directory that becomes the report directory (links are relative to it).
    paper_data, paper_attack : bool
        Whether the data, and the attack, are the paper's (its reference values apply).
    """

    data: StudyData
    tables: dict[str, pd.DataFrame]
    power: dict[str, Any]
    conclusion: str
    baseline: dict[str, Any] | None
    prov: dict[str, Any]
    figs: dict[str, dict[str, Path]] = field(default_factory=dict)
    fig_seed: int | None = None
    ddof: int = 1
    root: Path = Path(".")
    paper_data: bool = False
    paper_attack: bool = False


def table1_spec(paper_data: bool, paper_attack: bool) -> TableSpec:
    """Table 1's spec with the paper's columns where its data (and attack) are the study's."""
    extra = dict(specs.TABLE1_PAPER_DATA) if paper_data else {}
    if paper_data and paper_attack:
        extra.update(specs.TABLE1_PAPER_ATTACK)
    columns: list[Column] = []
    for column in specs.TABLE1.columns:
        columns += [column, *([extra[column.key]] if column.key in extra else [])]
    return TableSpec(specs.TABLE1.name, tuple(columns), specs.TABLE1.caption)


def _links(ctx: ReportContext, name: str) -> list[tuple[str, str]]:
    return [(ext.upper(), str(p.relative_to(ctx.root))) for ext, p in ctx.figs[name].items()]


def header(ctx: ReportContext) -> list[Block]:
    data, prov = ctx.data, ctx.prov
    kind = ctx.prov.get("data", {}) or {}
    blocks: list[Block] = [
        Heading("robustmer study report", 1),
        Paragraph(
            "Reproduction of Hoedt, Flexer & Widmer, “Are Inherently Interpretable Models More "
            "Robust? A Study in Music Emotion Recognition” (SMC 2025). "
            f"Study: {data.study_dir.name}; data: **{kind.get('kind', 'unknown')}**; "
            f"attack: **{prov['attack']}**; {len(data.runs)} finished run(s), "
            f"{int(data.runs['attacked'].sum())} attacked; generated {prov['generated']}."
        ),
    ]
    if not ctx.paper_attack:
        blocks.append(
            Paragraph(
                "Note: the paper's values appear only where they compare: its clean results "
                "for the real Soundtracks/mid-level data sets, its ΔMAE for those data and "
                "its attack (reference mode, 1000 steps of 0.002)."
            )
        )
    return blocks


def conclusion(ctx: ReportContext) -> list[Block]:
    return [Heading("Conclusion"), Paragraph(ctx.conclusion)]


def notes(ctx: ReportContext) -> list[Block]:
    return [Heading("Notes"), Bullets(ctx.data.notes)] if ctx.data.notes else []


def table1(ctx: ReportContext) -> list[Block]:
    std_name = "sample std (ddof=1)" if ctx.ddof == 1 else f"std with ddof={ctx.ddof}"
    caption = (
        f"Clean test average Pearson correlation and MAE, mean ± {std_name} over seeds (the "
        "paper's code used numpy's default ddof=0). ΔMAE = MAE(adv) − MAE(clean) per model "
        "over the attacked test clips; mean and median over models. All MAE/ΔMAE on the "
        "rating/10 scale (the paper's scale; ×10 for points on the 1–9 rating scale)."
    )
    if ctx.baseline is not None:
        b = ctx.baseline
        caption += (
            " The ridge baseline is not a system: a ridge regression on the mean, std and mean "
            "absolute frame-to-frame difference of each band of the same excerpts, penalty "
            f"{b.get('alpha', float('nan')):g} chosen on the validation clips, scored on "
            f"{b.get('n_test', '–')} test clips; it is not attacked."
        )
    blocks: list[Block] = [
        Heading("Table 1: performance and robustness per system"),
        table_block(table1_spec(ctx.paper_data, ctx.paper_attack), ctx.tables["table1"],
                    caption=caption),
    ]  # fmt: skip
    if ctx.paper_data:
        original = "; ".join(f"{k} {v:.2f}" for k, v in PAPER_ORIGINAL.items())
        blocks.append(Paragraph(f"Paper, published models of Chowdhury et al.: {original}."))
    return blocks


def figure3(ctx: ReportContext) -> list[Block]:
    blocks: list[Block] = [Heading("Figure 3: ΔMAE per system")]
    if "fig3" not in ctx.figs:
        return [*blocks, Paragraph("No attacked models: Figure 3 not drawn.")]
    caption = figures.FIG3_CAPTION + " " + figures.paper_median_note(
        ctx.paper_data, ctx.paper_attack
    )
    blocks.append(FigureBlock(ctx.figs["fig3"]["png"], caption, _links(ctx, "fig3")))
    if not ctx.tables["delta_mae"].empty:
        blocks.append(table_block(specs.PER_MODEL, ctx.tables["delta_mae"]))
    return blocks


def figure4(ctx: ReportContext) -> list[Block]:
    blocks: list[Block] = [Heading("Figure 4: true vs predicted ratings")]
    if "fig4" in ctx.figs:
        caption = (
            f"True vs predicted tension and tender ratings of the test clips, seed "
            f"{ctx.fig_seed}: clean (blue ×) and adversarial (orange ○) predictions; green "
            "dashed line: identity (perfect prediction)."
        )
        return [*blocks, FigureBlock(ctx.figs["fig4"]["png"], caption, _links(ctx, "fig4"))]
    seed = "" if ctx.fig_seed is None else f" for seed {ctx.fig_seed}"
    return [
        *blocks,
        Paragraph(
            f"None of {', '.join(figures.FIG4_SYSTEMS)} has attacked clips with the "
            f"true/clean/adv columns{seed}: Figure 4 not drawn."
        ),
    ]


def significance(ctx: ReportContext) -> list[Block]:
    p = ctx.power
    caption = (
        "Per-clip ΔMAE = MAE(adv) − MAE(clean) of every pair of systems, paired by (seed, clip) "
        "and pooled over seeds (the paper tested the MAE after attack). Two-sided paired "
        "t-test (scipy.stats.ttest_rel) and Wilcoxon signed-rank test (scipy.stats.wilcoxon); "
        "p Holm: Holm-adjusted over all pairs, separately per test. d_z = mean/std of the "
        "differences, 95 % percentile bootstrap interval (10,000 resamples, seed 0). Power: of "
        f"the paired t-test at that n to detect d_z = {p['effect']:g} at α = {p['alpha']:g}. "
        "Paper (n = 360, MAE after attack): both p < 1e-20."
    )
    statement = (
        f"Power: detecting d_z = {p['effect']:g} at α = {p['alpha']:g} (two-sided paired t) "
        f"with power {p['target']:g} needs n = {p['n_needed']} pairs; this study pairs at least "
        f"n = {p['n']} clips per comparison, power {fmt(p['power'], 2)} "
        f"({fmt(p['power_holm'], 2)} at α/{max(1, p['tests'])}, the strictest Holm threshold)."
    )
    blocks: list[Block] = [
        Heading("Significance of the robustness differences"),
        table_block(specs.TESTS, ctx.tables["tests"], caption=caption),
        Paragraph(statement),
    ]
    paper = ctx.tables.get("paper_tests")
    if paper is not None and not paper.empty:
        blocks.append(
            table_block(
                specs.TESTS,
                paper,
                caption="The paper's own tests: per-clip MAE after attack (not ΔMAE), A2E vs "
                "A2M2E and A2B2E vs A2M2E, paired and pooled as above; Holm over these pairs.",
            )
        )
    return blocks


def cost(ctx: ReportContext) -> list[Block]:
    blocks: list[Block] = [
        Heading("Cost of training and attack"),
        table_block(specs.COST, ctx.tables["cost"]),
    ]
    if not ctx.tables["cost_ratios"].empty:
        blocks.append(table_block(specs.COST_RATIOS, ctx.tables["cost_ratios"]))
    if ctx.tables["stages"].empty:
        blocks.append(Paragraph("The study recorded no time per stage (study.json stage_seconds)."))
    else:
        blocks.append(table_block(specs.STAGES, ctx.tables["stages"]))
    return blocks


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


def provenance(ctx: ReportContext) -> list[Block]:
    prov = ctx.prov
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
    return [Heading("Provenance"), Bullets(items)]


SECTIONS: list[Callable[[ReportContext], list[Block]]] = [
    header,
    conclusion,
    notes,
    table1,
    figure3,
    figure4,
    significance,
    cost,
    provenance,
]
"""The report's sections in reading order (a new section: append or insert its function)."""
