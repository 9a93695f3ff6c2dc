"""Report sections for targeted waveform attacks and for concepts under attack.

:func:`snr_target_section`: per system, the SNR a targeted waveform attack needs to reach its
target (:mod:`robustmer.evaluation.snr_target`), from the attacks a study ran at a grid of
SNR budgets (``StudyProfile.snrs_db``). Tables ``snr_to_target`` (per system) and
``snr_to_target_clips`` (per clip).

:func:`concept_section`: for every attack on every bottleneck run (A2M2E: the mid-level
features; A2B2E / aA2B2E: the unnamed units), which concepts the attack moved and by how much
(training-set standard deviations) and each concept's share of each emotion's change
(:mod:`robustmer.evaluation.concepts`). It is computed when the report is built, from the
stored per-clip tables (their clean and adversarial bottleneck outputs) and the run's
checkpoint (the emotion head's weights) and cache (the concepts' standard deviations): one
model load per bottleneck run, and for the unnamed units one forward pass over the training
excerpts. An attack made on another checkpoint than the run's current one (the run was
trained again) is left out with a note. Table ``concepts`` (per system, attack, concept and
emotion, means over clips and seeds) and, for the report's own attack, one figure per system.

Both return the blocks and a JSON-ready summary and write their tables into the report
directory; neither runs an attack.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustmer._io import sha256_file, write_table
from robustmer.errors import RobustmerError
from robustmer.evaluation import concepts as cpt
from robustmer.evaluation.snr_target import SnrTargetSettings, attack_family, snr_to_target
from robustmer.names import EMOTIONS, MIDLEVEL_FEATURES
from robustmer.records import BEST_FILE
from robustmer.report.audio import concept_blocks
from robustmer.report.render import Block, Heading, Paragraph, TableBlock, fmt
from robustmer.report.robustness import attack_label
from robustmer.report.tables import system_order

logger = logging.getLogger(__name__)

__all__ = ["Section", "attack_title", "concept_section", "snr_target_section"]


@dataclasses.dataclass
class Section:
    """Blocks for the report and a JSON-ready summary for ``summary.json``."""

    blocks: list[Block] = dataclasses.field(default_factory=list)
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)


def attack_title(settings: dict[str, Any]) -> str:
    """A short distinct title of an attack, e.g. ``apgd-linf ε=0.1`` or
    ``pgd-linf waveform 30 dB target=sad (4 clips)``."""
    parts = [attack_label(settings)]
    if settings.get("epsilon") is not None and settings.get("domain") != "waveform":
        parts.append(f"ε={settings['epsilon']:g}")
    if settings.get("domain") == "waveform":
        parts.append("waveform")
        if settings.get("snr_db") is not None:
            parts.append(f"{settings['snr_db']:g} dB")
    if settings.get("target") is not None:
        parts.append(f"target={settings['target']}")
    if settings.get("max_clips") is not None:
        parts.append(f"({settings['max_clips']} clips)")
    return " ".join(parts)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
            for row in df.to_dict(orient="records")]


# ----------------------------------------------------------------------------- SNR to target


def _snr_text(value: float, lowest: float) -> str:
    if value == math.inf:
        return "∞ (clean)"
    if value == -math.inf:
        return f"< {lowest:g} (never)"
    return f"{value:g}"


def _grid_rows(clips: pd.DataFrame) -> pd.DataFrame:
    """The rows of targeted waveform attacks with their family, label, target and budget."""
    found = {text: attack_family(json.loads(text)) for text in clips["settings"].unique()}
    found = {text: f for text, f in found.items() if f is not None}
    rows = clips[clips["settings"].isin(list(found))].copy()
    if rows.empty:
        return rows
    rows["family"] = rows["settings"].map(lambda t: found[t][0])
    rows["label"] = rows["settings"].map(lambda t: found[t][1])
    rows["snr_budget_db"] = rows["settings"].map(lambda t: found[t][2])
    rows["target"] = rows["settings"].map(lambda t: json.loads(t)["target"])
    return rows


def snr_target_section(
    clips: pd.DataFrame, root: Path, settings: SnrTargetSettings | None = None
) -> Section:
    """The "SNR needed to reach the target" section; empty without targeted waveform attacks.

    Parameters
    ----------
    clips : pandas.DataFrame
        :func:`robustmer.report.robustness.load_attacks` of the study.
    root : Path
        The report directory being built: ``snr_to_target`` and ``snr_to_target_clips``
        (Parquet + CSV) are written there.
    settings : SnrTargetSettings, optional
        What "reached" means and the bootstrap (default :class:`SnrTargetSettings`).
    """
    settings = settings or SnrTargetSettings()
    rows = _grid_rows(clips) if not clips.empty else pd.DataFrame()
    if rows.empty:
        return Section()
    per_clip, summary = snr_to_target(rows, settings)
    write_table(summary, root / "snr_to_target")
    write_table(per_clip, root / "snr_to_target_clips")
    blocks: list[Block] = [
        Heading("SNR needed to reach the target"),
        Paragraph(
            "Targeted waveform attacks at a grid of SNR budgets. A clip's prediction reaches "
            "the target when its Pearson correlation with the target profile across the 8 "
            f"emotions is at least {settings.min_corr:g}. Per clip, the SNR needed is the "
            "highest budget of the grid at which the target was reached (∞ when the clean "
            "prediction already meets it; 'never' when no budget of the grid did); per system "
            "the lower median over the attacked clips of all seeds with a "
            f"{settings.level:.0%} percentile-bootstrap interval ({settings.resamples} "
            "resamples of the clips). The higher the SNR needed, the quieter the perturbation "
            "that suffices, so the less robust the system."
        ),
    ]
    for _, g in summary.groupby("family", sort=False):
        lowest = min(float(s) for s in g["snrs_db"].iloc[0].split(","))
        g = g.set_index("system").loc[system_order(g["system"])]
        body = [[system, f"{int(r.n_clips)} ({int(r.n_seeds)})", str(int(r.reached_clean)),
                 str(int(r.never_reached)), _snr_text(r.median_snr_db, lowest),
                 f"[{_snr_text(r.ci_low_db, lowest)}, {_snr_text(r.ci_high_db, lowest)}]"]
                for system, r in g.iterrows()]
        blocks.append(TableBlock(
            ["System", "clips (seeds)", "reached clean", "never reached",
             "median SNR needed (dB)", "95 % CI"], body,
            caption=f"{g['label'].iloc[0]}; SNR budgets tried: {g['snrs_db'].iloc[0]} dB.",
        ))
    return Section(blocks, {"settings": dataclasses.asdict(settings),
                            "table": _records(summary)})


# ----------------------------------------------------------------------------- concepts

_MID = [f"{p}_{f}" for p in ("clean_mid", "adv_mid") for f in MIDLEVEL_FEATURES]


def _run_scale(run_dir: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    """Head weight ``[8, 7]``, concept sd ``[7]``, concept names, checkpoint SHA-256."""
    from robustmer.training import load_run

    run = load_run(run_dir, device="cpu")
    names = cpt.concept_names(run.system.midlevel_loss)
    best = Path(run.path) / BEST_FILE
    std = cpt.concept_std(run, allow_constant=True)  # NaN for a constant concept
    return cpt.head_weight(run.model), std, names, sha256_file(best)


def concept_rows(study_dir: Path, clips: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """:func:`robustmer.evaluation.concepts.concept_table` of every attack on every
    bottleneck run, with ``system, seed, key, attack`` (title) columns; and notes.

    Attacks made on another checkpoint than the run's current one, and runs whose model
    cannot be loaded, are left out (a note each).
    """
    if clips.empty or not set(_MID) <= set(clips.columns):
        return pd.DataFrame(), []
    bottleneck = clips[clips[_MID].notna().all(axis=1)]
    tables, notes = [], []
    for run, g in bottleneck.groupby("run", sort=True):
        try:
            weight, std, names, sha = _run_scale(study_dir / "runs" / str(run))
        except RobustmerError as exc:  # e.g. no checkpoint: the run's numbers stay in
            notes.append(f"concepts: {run} left out: {exc}")
            continue
        if np.isnan(std).any():
            constant = ", ".join(n for n, v in zip(names, std, strict=True) if np.isnan(v))
            notes.append(f"concepts: {run}: {constant} constant on the training split; "
                         "changes in standard deviations not defined (–)")
        for key, a in g.groupby("key", sort=True):
            if a["checkpoint_sha256"].iloc[0] != sha:
                notes.append(f"concepts: {run}/{key} left out: made on another checkpoint")
                continue
            mid = a[_MID].to_numpy(np.float64)  # [n, 14]
            k = len(MIDLEVEL_FEATURES)
            table = cpt.concept_table(a["clip_id"].to_numpy(), mid[:, :k], mid[:, k:], weight,
                                      std, names)
            title = attack_title(json.loads(a["settings"].iloc[0]))
            tables.append(table.assign(system=a["system"].iloc[0], seed=int(a["seed"].iloc[0]),
                                       key=key, attack=title))
    return (pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()), notes


def _change_table(summary: pd.DataFrame, system: str) -> TableBlock:
    """Concepts (rows) × attacks (columns): mean concept change in sd."""
    s = summary[summary["system"] == system].drop_duplicates(["attack", "concept"])
    grid = s.pivot(index="concept", columns="attack", values="concept_change_std")
    concepts = list(dict.fromkeys(s["concept"]))
    attacks = list(dict.fromkeys(s["attack"]))
    rows = [[c, *(fmt(grid.loc[c, a], 2) for a in attacks)] for c in concepts]
    return TableBlock(["concept", *attacks], rows, caption=(
        f"{system}: mean concept change per attack, in training-set standard deviations "
        "(over the attacked clips of all seeds)."))


def _share_table(summary: pd.DataFrame, title: str) -> TableBlock:
    """Concepts (rows) × emotions (columns): mean share of the emotion's change."""
    grid = summary.pivot(index="concept", columns="emotion", values="share")
    concepts = list(dict.fromkeys(summary["concept"]))
    rows = [[c, *(fmt(grid.loc[c, e], 2) for e in EMOTIONS)] for c in concepts]
    return TableBlock(["concept", *EMOTIONS], rows, caption=(
        f"{title}: each concept's share of each emotion's change (contribution / sum of the "
        "absolute contributions, mean over clips; signed)."))


def concept_section(
    study_dir: Path,
    clips: pd.DataFrame,
    root: Path,
    report_key: str | None,
    order: Sequence[str] = (),
) -> Section:
    """The "Concepts under attack" section; empty without attacked bottleneck runs.

    Parameters
    ----------
    study_dir : Path
    clips : pandas.DataFrame
        :func:`robustmer.report.robustness.load_attacks` of the study.
    root : Path
        The report directory being built (``figures/`` must exist): table ``concepts``
        (Parquet + CSV) and the figures ``figures/concepts_<system>.png``.
    report_key : str or None
        Storage key of the report's attack: its figure and share table are shown per system.
    order : sequence of str
        Storage keys in the order the attacks are shown (the study's); others after them.
    """
    rows, notes = concept_rows(Path(study_dir), clips)
    if rows.empty:
        return Section(summary={"notes": notes})
    parts = [
        cpt.concept_summary(g).assign(system=system, key=key, attack=attack,
                                      seeds=g["seed"].nunique())
        for (system, key, attack), g in rows.groupby(["system", "key", "attack"], sort=False)
    ]
    summary = pd.concat(parts, ignore_index=True)
    rank = {key: i for i, key in enumerate(order)}
    summary = summary.sort_values(
        "key", key=lambda k: k.map(lambda v: rank.get(v, len(rank))), kind="stable"
    ).reset_index(drop=True)
    write_table(summary, root / "concepts")
    blocks: list[Block] = [Heading("Concepts under attack"), Paragraph(
        "A bottleneck model's emotions are linear in its seven bottleneck outputs, so each "
        "emotion change splits exactly into per-concept contributions (head weight × concept "
        "change). A2M2E's concepts are the mid-level features, A2B2E's and aA2B2E's unnamed "
        "units. Changes in standard deviations on the training split; every attack, system, "
        "concept and emotion is in the table concepts.csv.")]
    for system in system_order(summary["system"]):
        blocks.append(_change_table(summary, system))
        own = summary[(summary["system"] == system) & (summary["key"] == report_key)]
        if own.empty:
            continue
        title = f"Concepts under attack: {system}, {own['attack'].iloc[0]}"
        png = cpt.concept_figure(own, root / "figures" / f"concepts_{system}.png", title=title)
        blocks += concept_blocks(own, png, title)
        blocks.append(_share_table(own, title))
    blocks += [Paragraph(n) for n in notes]
    return Section(blocks, {"notes": notes, "table": _records(summary)})
