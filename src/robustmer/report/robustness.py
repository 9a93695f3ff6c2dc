"""The report's "Robustness evaluation" section (docs/robustness.md).

:func:`robustness_section` reads every attack a study ran on every finished run
(``runs/<run>/attacks/<key>/clips.parquet`` and ``summary.json``), and builds:

- robustness curves (ΔMAE, adversarial average correlation, against ε and against the SNR in
  dB), a curves table and the area under ΔMAE-vs-ε per system with paired tests;
- the worst case per clip over all attacks at the same ε, and which attack won how often;
- the transfer heat map (examples crafted on each system, evaluated on every system, where
  the runs saved examples) and the gradient-masking checks with their verdicts;
- the accuracy/robustness trade-off: one point per model, clean average correlation against
  its worst-case ΔMAE;
- a plain-language paragraph generated from those numbers.

Only untargeted spectrogram-domain attacks enter it (:func:`plain_attacks`); waveform and
targeted attacks have their own sections (:mod:`robustmer.report.targets`).

It writes its tables and figures into the report directory and returns the blocks and a
JSON-ready summary. Nothing here runs an attack; the transfer matrix and the zero-gradient
fractions load the runs' models and test clips (forward and one backward pass).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustmer._io import read_json, write_table
from robustmer.evaluation import checks as chk
from robustmer.evaluation import curves
from robustmer.report import render
from robustmer.report.figures import SYSTEM_COLORS, SYSTEM_MARKERS, _save
from robustmer.report.render import FigureBlock, Heading, Paragraph, TableBlock, fmt
from robustmer.report.tables import system_order

logger = logging.getLogger(__name__)

__all__ = [
    "RobustnessSection",
    "attack_label",
    "load_attacks",
    "plain_attacks",
    "robustness_section",
]

CURVE_ATTACKS: tuple[str, ...] = ("apgd-linf", "apgd-l2", "pgd-linf", "pgd-l2")
"""Bounded attacks in order of preference for the curves figure and the checks."""


@dataclass
class RobustnessSection:
    """What :func:`robustness_section` produced."""

    blocks: list[render.Block] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def attack_label(settings: dict[str, Any]) -> str:
    """Short attack name from its settings: ``paper``, ``apgd-linf``, ``apgd-linf-corr``, ..."""
    name = str(settings.get("attack", "attack"))
    norm = settings.get("norm")
    label = f"{name}-{norm}" if norm and not name.endswith(str(norm)) else name
    loss = settings.get("loss")
    return f"{label}-{loss}" if loss not in (None, "mse") else label


def load_attacks(study_dir: Path) -> pd.DataFrame:
    """All per-clip attack rows of the finished runs, ``attack`` replaced by its label.

    Adds ``run`` (the run directory name), ``key`` (the attack directory name),
    ``settings`` (the attack's full settings, ``summary.json`` ``attack``, as canonical JSON
    text) and ``checkpoint_sha256`` (of the checkpoint attacked, from ``summary.json``).
    """
    tables = []
    for run_dir in sorted((study_dir / "runs").glob("*")):
        if not (run_dir / "final.json").is_file():
            continue
        for attack_dir in sorted((run_dir / "attacks").glob("*")):
            parquet, summary = attack_dir / "clips.parquet", attack_dir / "summary.json"
            if not (parquet.is_file() and summary.is_file()):
                continue
            doc = read_json(summary)
            if doc.get("split", "test") != "test":
                continue
            settings = doc.get("attack") if isinstance(doc.get("attack"), dict) else {}
            df = pd.read_parquet(parquet)
            tables.append(df.assign(
                attack=attack_label(settings), run=run_dir.name, key=attack_dir.name,
                settings=json.dumps(settings, sort_keys=True),
                checkpoint_sha256=doc.get("checkpoint_sha256")))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def plain_attacks(clips: pd.DataFrame) -> pd.DataFrame:
    """The rows of untargeted spectrogram-domain attacks (:func:`load_attacks`), the ones the
    robustness evaluation compares: a waveform attack's ε is an amplitude and a targeted
    attack does not maximise the error."""
    if clips.empty:
        return clips

    def plain(text: str) -> bool:
        settings = json.loads(text)
        return settings.get("domain", "spectrogram") == "spectrogram" and (
            settings.get("target") is None
        )

    keep = {text: plain(text) for text in clips["settings"].unique()}
    return clips[clips["settings"].map(keep).astype(bool)].reset_index(drop=True)


def _curve_attack(runs: pd.DataFrame) -> str | None:
    """The bounded attack run at the most ε values (ties: :data:`CURVE_ATTACKS` order)."""
    bounded = runs[runs["epsilon"].notna() & ~runs["attack"].map(chk.is_noise)]
    counts = bounded.groupby("attack")["epsilon"].nunique()
    if counts.empty:
        return None
    order = {a: i for i, a in enumerate(CURVE_ATTACKS)}
    return min(counts.index, key=lambda a: (-counts[a], order.get(a, len(order)), a))


def _figure_curves(curve: pd.DataFrame, stem: Path, attack: str) -> dict[str, Path]:
    """ΔMAE vs ε, adversarial avg. corr vs ε, ΔMAE vs SNR; a line and 95 % band per system."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 4), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = (("epsilon", "delta_mae", "ε (normalised-input units)", "ΔMAE"),
              ("epsilon", "avg_corr_adv", "ε (normalised-input units)", "adv. avg. corr"),
              ("snr_db", "delta_mae", "SNR (dB)", "ΔMAE"))
    for ax, (xcol, ycol, xlabel, ylabel) in zip(axes, panels, strict=True):
        for system in system_order(curve["system"]):
            g = curve[curve["system"] == system].sort_values(xcol)
            color = SYSTEM_COLORS.get(system, "#777777")
            ax.plot(g[xcol], g[ycol], marker=SYSTEM_MARKERS.get(system, "o"), label=system,
                    color=color, linestyle="--" if system.startswith("a") else "-")
            lo, hi = g[f"{ycol}_lo"], g[f"{ycol}_hi"]
            if ycol == "avg_corr_adv":  # a correlation's interval ends at ±1
                lo, hi = lo.clip(-1, 1), hi.clip(-1, 1)
            ax.fill_between(g[xcol], lo, hi, color=color, alpha=0.15)
        if not np.isfinite(curve[xcol].to_numpy(np.float64)).any():
            ax.text(0.5, 0.5, "SNR not recorded", transform=ax.transAxes, ha="center")
            continue
        if xcol == "epsilon":
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[2].invert_xaxis()  # louder perturbation (lower SNR) to the right
    axes[0].legend(fontsize="small")
    fig.suptitle(f"Robustness curves ({attack}; mean over seeds, 95 % t interval)")
    return _save(fig, stem)


def _figure_transfer(mean: pd.DataFrame, stem: Path) -> dict[str, Path]:
    """Heat map of ΔMAE: rows = source (crafted on), columns = target (evaluated on)."""
    from matplotlib.figure import Figure

    order = system_order(mean.index)
    m = mean.loc[order, order].to_numpy(np.float64)
    fig = Figure(figsize=(1.6 + 1.1 * len(order), 1.2 + 1.0 * len(order)), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(m, cmap="viridis")
    ax.set_xticks(range(len(order)), order)
    ax.set_yticks(range(len(order)), order)
    ax.set_xlabel("evaluated on (target)")
    ax.set_ylabel("crafted on (source)")
    for i, j in np.ndindex(m.shape):
        ax.text(j, i, fmt(m[i, j]), ha="center", va="center", color="white", fontsize="small")
    fig.colorbar(im, ax=ax, label="ΔMAE")
    ax.set_title("Transfer: ΔMAE of examples crafted on one system")
    return _save(fig, stem)


def _figure_tradeoff(points: pd.DataFrame, stem: Path, what: str) -> dict[str, Path]:
    """Clean average correlation vs worst-case ΔMAE, one point per model."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for system in system_order(points["system"]):
        g = points[points["system"] == system]
        ax.scatter(g["avg_corr_clean"], g["robust_delta_mae"], label=system, s=30,
                   color=SYSTEM_COLORS.get(system, "#777777"),
                   marker=SYSTEM_MARKERS.get(system, "o"))
    ax.set_xlabel("clean average correlation (higher = more accurate)")
    ax.set_ylabel(f"worst-case ΔMAE, {what} (lower = more robust)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title("Accuracy vs robustness (one point per model)")
    return _save(fig, stem)


def _figure_block(files: dict[str, Path], root: Path, caption: str) -> FigureBlock:
    return FigureBlock(png=files["png"], caption=caption,
                       links=[(k.upper(), str(p.relative_to(root))) for k, p in files.items()])


def _transfer(study_dir: Path, clips: pd.DataFrame, attack: str) -> pd.DataFrame:
    """Transfer matrix per seed (runs that saved examples of ``attack`` at its largest ε)."""
    import torch

    from robustmer.training import load_run

    sel = clips[(clips["attack"] == attack) & clips["epsilon"].notna()]
    if sel.empty:
        return pd.DataFrame()
    eps = float(sel["epsilon"].max())
    sel = sel[sel["epsilon"] == eps]
    rows = []
    for seed, g in sel.groupby("seed"):
        found = {}
        for run, key in g[["run", "key"]].drop_duplicates().itertuples(index=False):
            ex = study_dir / "runs" / run / "attacks" / key / "examples.npy"
            if ex.is_file():
                found[run] = ex
        if len(found) < 2:
            continue
        loaded = {r: load_run(study_dir / "runs" / r, device="cpu") for r in found}
        x, y, _, _ = next(iter(loaded.values())).cache.arrays("test")
        models = {run.system.name: run.model for run in loaded.values()}
        examples = {loaded[r].system.name: torch.from_numpy(np.load(p)) for r, p in found.items()}
        m = chk.transfer_matrix(models, x, examples, y)
        rows.append(m.assign(seed=int(seed), epsilon=eps, attack=attack))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def _zero_gradients(study_dir: Path, runs: list[str]) -> dict[str, float]:
    """Mean fraction of exactly-zero input-gradient elements per system (test clips)."""
    from robustmer.training import load_run

    by_system: dict[str, list[float]] = {}
    for name in runs:
        run = load_run(study_dir / "runs" / name, device="cpu")
        x, y, _, _ = run.cache.arrays("test")
        by_system.setdefault(run.system.name, []).append(
            chk.zero_gradient_fraction(run.model, x, y))
    return {s: float(np.mean(v)) for s, v in by_system.items()}


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as JSON-ready dicts."""
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
            for row in df.to_dict(orient="records")]


def _tradeoff(runs: pd.DataFrame, per_clip: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """Per model: clean avg. corr and the mean worst-case ΔMAE at the largest bounded ε."""
    bounded = per_clip[per_clip["epsilon"].notna()]
    eps = float(bounded["epsilon"].max()) if len(bounded) else math.nan
    sel = per_clip[per_clip["epsilon"] == eps] if len(bounded) else per_clip
    robust = sel.groupby(["system", "seed"])["delta_mae"].mean().rename("robust_delta_mae")
    clean = runs.groupby(["system", "seed"])["avg_corr_clean"].first()
    return pd.concat([clean, robust], axis=1).dropna().reset_index(), eps


def _checks(runs: pd.DataFrame, attack: str | None, zero: dict[str, float],
            matrix: pd.DataFrame) -> list[chk.Check]:
    """All masking checks the study's outputs allow."""
    keep = (runs["attack"] == attack) | runs["attack"].map(chk.is_noise) | runs["epsilon"].isna()
    curve_runs = runs[keep]
    found = [*chk.check_monotone(curve_runs), *chk.check_noise(curve_runs),
             *chk.check_unbounded(curve_runs), *chk.check_zero_gradients(zero)]
    if not matrix.empty:
        mean = matrix.groupby(["source", "target"], as_index=False, sort=False)["delta_mae"].mean()
        found += chk.check_transfer(mean)
    return found


def _plain_language(worst: pd.DataFrame, tests: pd.DataFrame, found: list[chk.Check],
                    tradeoff: pd.DataFrame, attack: str | None) -> str:
    """One paragraph stating what the numbers say (generated, no judgement added)."""
    parts = []
    wc = worst[(worst["attack"] == "worst case") & worst["epsilon"].notna()]
    for eps, g in wc.groupby("epsilon"):
        g = g.sort_values("delta_mae")
        best, worst_row = g.iloc[0], g.iloc[-1]
        parts.append(f"At ε = {eps:g} the most robust system (smallest worst-case ΔMAE) is "
                     f"{best.system} ({fmt(best.delta_mae)}), the least robust "
                     f"{worst_row.system} ({fmt(worst_row.delta_mae)}).")
    if len(tests):
        sig = int((tests["t_p_holm"] < 0.05).sum())
        parts.append(f"Of {len(tests)} pairwise comparisons of the area under the ΔMAE-vs-ε "
                     f"curve ({attack}), {sig} are significant at 5 % after Holm correction.")
    warned = [f"{c.system}: {c.check}" for c in found if c.verdict == "warn"]
    parts.append(f"All {len(found)} gradient-masking checks passed." if not warned else
                 f"{len(warned)} of {len(found)} gradient-masking checks warned "
                 f"({'; '.join(sorted(set(warned)))}): robustness numbers of those systems may "
                 "reflect a gradient the attack cannot use rather than a stable prediction.")
    if len(tradeoff) and len(wc):
        by_sys = tradeoff.groupby("system")[["avg_corr_clean", "robust_delta_mae"]].mean()
        robust, least_acc = by_sys["robust_delta_mae"].idxmin(), by_sys["avg_corr_clean"].idxmin()
        parts.append(f"Clean average correlation ranges from {fmt(by_sys['avg_corr_clean'].min())}"
                     f" to {fmt(by_sys['avg_corr_clean'].max())}.")
        if robust == least_acc:
            parts.append(f"Caution: {robust}, the most robust system at the largest ε, is also "
                         "the least accurate on clean inputs; a model whose prediction barely "
                         "depends on its input is trivially hard to move.")
    return " ".join(parts)


def _tables_blocks(curve: pd.DataFrame, areas: pd.DataFrame, tests: pd.DataFrame,
                   worst: pd.DataFrame, found: list[chk.Check]) -> list[render.Block]:
    """The section's tables."""
    def ci(r: Any, name: str) -> str:
        lo, hi = getattr(r, name + "_lo"), getattr(r, name + "_hi")
        if name == "avg_corr_adv":  # a correlation's interval ends at ±1
            lo, hi = max(lo, -1.0), min(hi, 1.0)
        return f"{fmt(getattr(r, name))} [{fmt(lo)}, {fmt(hi)}]"

    blocks: list[render.Block] = [TableBlock(
        headers=["System", "ε", "seeds", "ΔMAE [95 % CI]", "adv. avg. corr [95 % CI]", "SNR dB"],
        rows=[[r.system, f"{r.epsilon:g}", str(r.n_seeds), ci(r, "delta_mae"),
               ci(r, "avg_corr_adv"), fmt(r.snr_db, 1)] for r in curve.itertuples()],
        caption="Robustness curves: mean over seeds of each model's ΔMAE and adversarial "
                "average correlation, 95 % t interval over seeds; SNR: median over clips.")]
    if len(areas):
        mean_auc = areas.groupby("system")["auc"].mean()
        rows = [[s, fmt(mean_auc[s], 5)] for s in system_order(mean_auc.index)]
        rows += [[f"{r.system_a} − {r.system_b}", f"{fmt(r.mean_diff, 5)} (n={r.n}, "
                  f"p={render.fmt_p(r.t_p)}, Holm p={render.fmt_p(r.t_p_holm)}, "
                  f"d_z={fmt(r.cohen_dz, 2)})"] for r in tests.itertuples()]
        blocks.append(TableBlock(headers=["System / difference", "area under ΔMAE-vs-ε"],
                                 rows=rows, caption="Per clip, trapezoids from (0, 0); "
                                 "paired t-test over clips (same seed and clip)."))
    attacks = sorted(a for a in worst["attack"].unique() if a != "worst case")
    rows = []
    for (system, eps), g in worst.groupby(["system", "epsilon"], dropna=False):
        cells = g.set_index("attack")
        rows.append([system, "unbounded" if pd.isna(eps) else f"{eps:g}", *[
            f"{fmt(cells.loc[a, 'delta_mae'])} ({int(cells.loc[a, 'wins'])})" if a in cells.index
            else "–" for a in attacks], fmt(cells.loc["worst case", "delta_mae"])])
    blocks.append(TableBlock(headers=["System", "ε", *attacks, "worst case"], rows=rows,
                             caption="Mean ΔMAE per attack (clips it won, i.e. where it did "
                                     "the most damage) and the mean worst case per clip."))
    blocks.append(TableBlock(headers=["Check", "System", "Verdict", "Numbers"],
                             rows=[[c.check, c.system, c.verdict.upper(), c.message]
                                   for c in found],
                             caption="Gradient-masking checks (docs/robustness.md)."))
    return blocks


def robustness_section(
    study_dir: str | Path,
    root: Path,
    *,
    transfer: bool = True,
    zero_gradients: bool = True,
    clips: pd.DataFrame | None = None,
) -> RobustnessSection:
    """Build the section: tables and figures into ``root``, blocks and summary returned.

    Parameters
    ----------
    study_dir : path
        The study directory.
    root : Path
        The report directory being built (``figures/`` must exist in it).
    transfer, zero_gradients : bool
        Load the models for the transfer matrix / the zero-gradient check.
    clips : pandas.DataFrame, optional
        :func:`load_attacks` of the study, when already read.

    Returns
    -------
    RobustnessSection
        Empty when no run has a bounded attack.
    """
    study_dir = Path(study_dir)
    clips = plain_attacks(load_attacks(study_dir) if clips is None else clips)
    if clips.empty or clips["epsilon"].notna().sum() == 0:
        return RobustnessSection()
    runs = curves.run_metrics(clips)
    attack = _curve_attack(runs)
    curve = curves.robustness_curves(runs[runs["attack"] == attack])
    areas = curves.curve_areas(clips[clips["attack"] == attack])
    tests = curves.area_tests(areas)
    per_clip, worst = curves.worst_case(clips)
    tradeoff, trade_eps = _tradeoff(runs, per_clip)
    matrix = _transfer(study_dir, clips, attack) if transfer and attack else pd.DataFrame()
    zero = _zero_gradients(study_dir, sorted(clips["run"].unique())) if zero_gradients else {}
    found = _checks(runs, attack, zero, matrix)
    checks_df = pd.DataFrame([c.to_dict() for c in found])
    for name, df in (("robustness_runs", runs), ("robustness_curves", curve),
                     ("robustness_areas", areas), ("robustness_area_tests", tests),
                     ("worst_case_clips", per_clip), ("worst_case", worst),
                     ("tradeoff", tradeoff), ("transfer", matrix),
                     ("checks", checks_df.drop(columns="numbers", errors="ignore"))):
        write_table(df, root / name)
    blocks: list[render.Block] = [Heading("Robustness evaluation"), Paragraph(
        _plain_language(worst, tests, found, tradeoff, attack))]
    figs = root / "figures"
    if len(curve):
        blocks.append(_figure_block(_figure_curves(curve, figs / "robustness_curves", attack),
                                    root, f"ΔMAE and adversarial average correlation vs ε, and "
                                          f"ΔMAE vs SNR ({attack})."))
    blocks += _tables_blocks(curve, areas, tests, worst, found)
    if not matrix.empty:
        mean = matrix.pivot_table(index="source", columns="target", values="delta_mae")
        blocks.append(_figure_block(_figure_transfer(mean, figs / "transfer"), root,
                                    f"Transfer ({attack}, ε = {matrix['epsilon'].iloc[0]:g}): "
                                    "mean ΔMAE over seeds; the diagonal is the white-box attack."))
    if len(tradeoff):
        what = f"ε = {trade_eps:g}"
        blocks.append(_figure_block(_figure_tradeoff(tradeoff, figs / "tradeoff", what), root,
                                    f"Accuracy/robustness trade-off: clean average correlation "
                                    f"vs mean worst-case ΔMAE at {what}, one point per model."))
    summary = {"curve_attack": attack, "checks": [c.to_dict() for c in found], **{
        name: _records(df) for name, df in (("curves", curve), ("area_tests", tests),
                                            ("worst_case", worst), ("tradeoff", tradeoff),
                                            ("transfer", matrix))}}
    return RobustnessSection(blocks, summary)
