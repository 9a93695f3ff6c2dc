"""Build the study report (docs/paper.md §8) from the finished runs.

Reads the study through :func:`robustmer.report.load.load_study` (``study.json``, every
finished run's ``config.json`` and ``final.json``, and the selected attack's results in
``RUN/attacks/<key>/``; runs and results of other settings are left out and listed) and
writes, atomically (the whole directory is built beside the target and renamed), to
``STUDY/report/`` for the study's first evaluation attack or ``STUDY/report-<key>/`` for
another:

- ``report.md`` and ``report.html`` (self-contained): the sections of
  :data:`robustmer.report.sections.SECTIONS` (a conclusion generated from the numbers,
  Table 1 with the ridge baseline row, Figures 3 and 4, the Holm-corrected paired tests of
  every pair of systems with their power, the cost comparison with the time per stage, and
  provenance);
- ``figures/fig3_delta_mae.{png,svg}``, ``figures/fig4_true_vs_pred.{png,svg}``;
- tidy tables as Parquet + CSV: ``table1``, ``delta_mae`` (one row per model), ``clips`` (all
  per-clip rows), ``tests``, ``cost``, ``cost_ratios``, ``stages`` (time per stage, from
  ``study.json["stage_seconds"]``), ``runs`` (one row per run reported);
- the robustness evaluation (:mod:`robustmer.report.robustness`), the SNR needed to reach
  the target of targeted waveform attacks (``snr_to_target``, ``snr_to_target_clips``) and
  the concepts under attack of the bottleneck runs (``concepts``, ``figures/concepts_*``;
  :mod:`robustmer.report.targets`), and the listening section of waveform attacks
  (:mod:`robustmer.report.audio`), each where the study ran such attacks;
- ``summary.json`` with every number of those tables, the specs of the tables shown
  (:mod:`robustmer.report.specs`), the conclusion, the power statement, the baseline, the
  exclusions, the notes and the provenance. See docs/records.md.
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
from robustmer.report import figures, render, sections, specs
from robustmer.report.audio import listening_blocks
from robustmer.report.conclusion import conclusion
from robustmer.report.load import StudyData, load_study, study_attacks
from robustmer.report.render import Heading, TableSpec
from robustmer.report.robustness import load_attacks, robustness_section
from robustmer.report.tables import (
    PAPER_TEST_PAIRS,
    add_baseline,
    all_pairs,
    cost_ratios,
    cost_table,
    delta_mae_table,
    power_summary,
    significance_tests,
    stage_table,
    table1,
)
from robustmer.report.targets import concept_section, snr_target_section

logger = logging.getLogger(__name__)

__all__ = [
    "STAGE_SECONDS_KEY",
    "StudyData",
    "build_report",
    "default_report_dir",
    "load_study",
    "paper_reference",
    "provenance",
]

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


def _significance(clips: pd.DataFrame, systems: pd.Series) -> tuple[pd.DataFrame, list[str]]:
    """The paired tests of every pair of the study's systems; a test with n = 0 between two
    attacked systems is an error (their clips do not pair), a pair with a system absent is a
    note."""
    tests = significance_tests(clips, all_pairs(systems))
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
        is_number = isinstance(seconds, int | float) and not isinstance(seconds, bool)
        value = float(seconds) if is_number else float("nan")
        if not value >= 0:
            raise RobustmerError(
                f"{path}: '{STAGE_SECONDS_KEY}.{stage}' is {seconds!r}; expected seconds >= 0"
            )
        out[str(stage)] = value
    return out


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
    from robustmer.evaluation.baseline import ridge_baseline

    return ridge_baseline(str(cache_dir)).to_dict()


def _tables(data: StudyData, baseline: dict[str, Any] | None, ddof: int) -> dict[str, Any]:
    """Every table of the report, keyed by the name its files and summary.json use."""
    delta = delta_mae_table(data.clips)
    t1 = table1(data.runs, delta, ddof=ddof)
    paper_data, paper_attack = paper_reference(data)
    for column in (() if paper_data else PAPER_COLUMNS) + (
        () if paper_attack else PAPER_ATTACK_COLUMNS
    ):
        t1[column] = np.nan  # the paper's values compare only with the paper's setting
    if baseline is not None:
        t1 = add_baseline(t1, baseline["avg_corr"], baseline["mae"])
    tests, notes = _significance(data.clips, data.runs["system"])
    data.notes.extend(notes)
    paper_tests = significance_tests(data.clips, PAPER_TEST_PAIRS, column="mae_adv")
    cost = cost_table(data.runs)
    stages = _stage_seconds(data)
    return {
        "table1": t1,
        "delta_mae": delta,
        "clips": data.clips,
        "tests": tests,
        "paper_tests": paper_tests[paper_tests["n"] > 0].reset_index(drop=True),
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
        paper_data=prov["paper_data"],
        paper_attack=prov["paper_attack"],
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
        "excluded": ctx.data.excluded,
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
    include_mismatched: bool = False,
) -> Path:
    """Write ``STUDY/report/`` for a study (docs/paper.md §8), replacing it atomically.

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
    ctx = _context(data, ddof=ddof, figure_seed=figure_seed)
    report_dir = Path(out) if out is not None else default_report_dir(data)
    with atomic_directory(report_dir) as tmp:
        (tmp / "figures").mkdir()
        ctx.root = tmp
        ctx.figs = _draw_figures(ctx, tmp / "figures")
        for name, df in ctx.tables.items():
            write_table(df, tmp / name)
        attacks = load_attacks(data.study_dir)  # every attack of every finished run
        robust = robustness_section(data.study_dir, tmp, clips=attacks)  # into tmp
        snr = snr_target_section(attacks, tmp)
        order = [c.key() for c in study_attacks(data.study)]
        concept = concept_section(data.study_dir, attacks, tmp, data.attack_key, order)
        write_json(tmp / "summary.json", {**_summary(ctx), "robustness": robust.summary,
                                          "snr_to_target": snr.summary,
                                          "concepts": concept.summary})
        blocks = [block for section in sections.SECTIONS for block in section(ctx)]
        at = next(i for i, b in enumerate(blocks) if b == Heading("Provenance"))
        # the robustness evaluation, the targeted waveform attacks and the concepts before
        # the provenance
        blocks[at:at] = robust.blocks + snr.blocks + concept.blocks
        blocks += listening_blocks(study_dir, tmp)  # waveform attacks' audio, if any
        with atomic_open(tmp / "report.md") as fh:
            fh.write(render.render_markdown(blocks))
        with atomic_open(tmp / "report.html") as fh:
            fh.write(render.render_html(blocks, title=f"robustmer report: {data.study_dir.name}"))
    logger.info("report written to %s", report_dir)
    return report_dir
