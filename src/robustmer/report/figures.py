"""Figures 3 and 4 of the paper for a study (docs/paper.md §8), drawn with matplotlib.

Figures are built on :class:`matplotlib.figure.Figure` objects with the Agg canvas, without
``pyplot``, so nothing global (backend, open figures) changes; matplotlib is imported inside the
functions. Each figure is written as PNG (for the HTML report) and SVG (for papers), atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustmer._io import atomic_path
from robustmer.errors import RobustmerError
from robustmer.report.tables import PAPER_TABLE1, system_order

logger = logging.getLogger(__name__)

__all__ = [
    "COLOR_GROUPS",
    "FIG3_CAPTION",
    "FIG4_EMOTIONS",
    "FIG4_SYSTEMS",
    "SYSTEM_COLORS",
    "SYSTEM_MARKERS",
    "figure_delta_mae",
    "figure_true_vs_pred",
    "paper_median_note",
]

SYSTEM_COLORS: dict[str, str] = {
    "A2E": "#d2691e",  # black box: chocolate, as in the paper's Figure 3
    "A2B2E": "#d2691e",
    "A2M2E": "#3cb371",  # interpretable: mediumseagreen
    "aA2E": "#6495ed",  # adversarially trained: cornflowerblue
    "aA2B2E": "#6495ed",
}
"""Box colour per system; unknown systems are grey."""

SYSTEM_MARKERS: dict[str, str] = {
    "A2E": "o",
    "A2B2E": "s",
    "A2M2E": "D",
    "aA2E": "^",
    "aA2B2E": "v",
}
"""Marker per system, so systems that share a colour (their kind) stay apart in line and
scatter plots; unknown systems get a circle."""

COLOR_GROUPS: dict[str, str] = {
    "#d2691e": "not interpretable",
    "#3cb371": "interpretable (mid-level bottleneck)",
    "#6495ed": "adversarially trained",
    "#bbbbbb": "other",
}
"""Legend label of each box colour."""

FIG3_CAPTION = (
    "ΔMAE = MAE(adv) − MAE(clean) per model (black dots: one model per seed; boxes: quartiles "
    "over seeds, black line: median; box colour: the kind of system, see the legend). "
    "The y axis starts at 0 (rating/10 scale)."
)
"""Caption of Figure 3 (completed by :func:`paper_median_note`)."""


def paper_median_note(paper_data: bool, paper_attack: bool) -> str:
    """What Figure 3 says about the paper's medians (drawn only where they are comparable)."""
    if paper_data and paper_attack:
        return (
            "Red diamonds: the paper's approximate medians (1.0–1.6), read from its Figure 3; "
            "same data, same unbounded 1000-iteration attack, same rating/10 scale."
        )
    why = [
        *([] if paper_data else ["the data are not the real Soundtracks set"]),
        *([] if paper_attack else ["the attack is not the paper's unbounded 1000-iteration one"]),
    ]
    return (
        "The paper's medians (about 1.0–1.6 on the rating/10 scale, after its unbounded "
        f"1000-iteration attack) are not drawn: {' and '.join(why)}, so they are not comparable."
    )

FIG4_SYSTEMS: tuple[str, ...] = ("A2B2E", "A2M2E", "aA2B2E")
"""Systems of the paper's Figure 4 (columns)."""

FIG4_EMOTIONS: tuple[str, ...] = ("tension", "tender")
"""Emotions of the paper's Figure 4 (rows)."""

_DPI = 150


def _save(fig: Any, stem: Path) -> dict[str, Path]:
    """Write ``fig`` to ``stem.png`` and ``stem.svg`` (deterministic SVG ids, no date)."""
    import matplotlib

    out = {}
    with matplotlib.rc_context({"svg.hashsalt": "robustmer"}):
        for ext, metadata in (("png", {"Software": None}), ("svg", {"Date": None})):
            path = stem.with_suffix(f".{ext}")
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=ext, dpi=_DPI, metadata=metadata)
            out[ext] = path
    return out


def _limits(values: np.ndarray, pad: float) -> tuple[float, float]:
    """Axis limits around the finite ``values`` with a relative margin ``pad``."""
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    margin = pad * (hi - lo) if hi > lo else 0.5
    return lo - margin, hi + margin


def figure_delta_mae(
    delta: pd.DataFrame, stem: Path, *, show_paper: bool = True
) -> dict[str, Path]:
    """Figure 3: box plots of ΔMAE per system, one point per model (seed).

    Parameters
    ----------
    delta : pd.DataFrame
        Output of :func:`robustmer.report.tables.delta_mae_table` (``system``,
        ``delta_mae`` on the rating/10 scale).
    stem : Path
        Output path without suffix; ``.png`` and ``.svg`` are written.
    show_paper : bool
        Mark the paper's approximate medians (comparable only for the real data and the
        paper's unbounded 1000-iteration attack: elsewhere they only squash the scale).

    Returns
    -------
    dict
        ``{"png": Path, "svg": Path}``.
    """
    from matplotlib.figure import Figure

    systems = system_order(delta["system"])
    if not systems:
        raise RobustmerError("figure_delta_mae: no models; expected at least one ΔMAE row")
    fig = Figure(figsize=(max(6.0, 1.5 + 1.3 * len(systems)), 5.0), layout="constrained")
    ax = fig.add_subplot()
    values = [delta.loc[delta["system"] == s, "delta_mae"].dropna().to_numpy() for s in systems]
    positions = np.arange(len(systems))  # [S]
    boxes = ax.boxplot(
        values,
        positions=positions,
        widths=0.6,
        patch_artist=True,
        showfliers=False,
        medianprops={"color": "black", "linewidth": 2},
    )
    ax.set_xticks(positions, systems)
    for patch, system in zip(boxes["boxes"], systems, strict=True):
        patch.set_facecolor(SYSTEM_COLORS.get(system, "#bbbbbb"))
        patch.set_alpha(0.75)
    for x, v in zip(positions, values, strict=True):
        # deterministic horizontal spread so that points of equal value stay visible
        offsets = np.linspace(-0.15, 0.15, v.size) if v.size > 1 else np.zeros(v.size)
        ax.scatter(
            x + offsets, v, s=18, color="black", zorder=3, label="model (seed)" if x == 0 else None
        )
    paper = _paper_medians(ax, systems) if show_paper else np.zeros(0)  # [S]
    ax.set_ylabel("ΔMAE = MAE(adv) − MAE(clean)\n(rating/10 scale)")
    ax.set_title("Figure 3: difference in MAE after attack (test clips)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_ylim(*_from_zero(np.concatenate([*values, paper])))
    handles = ax.get_legend_handles_labels()[0] + _colour_handles(systems)
    # below the plot, so that it never covers a box
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize="small")
    return _save(fig, stem)


def _paper_medians(ax: Any, systems: Sequence[str]) -> np.ndarray:
    """Draw the paper's approximate ΔMAE medians (red diamonds); return the values drawn."""
    drawn = [(x, PAPER_TABLE1[s]["delta_mae_median"]) for x, s in enumerate(systems)
             if s in PAPER_TABLE1]  # fmt: skip
    if not drawn:
        return np.zeros(0)
    x, y = (np.array(v, dtype=np.float64) for v in zip(*drawn, strict=True))  # [P], [P]
    ax.scatter(
        x,
        y,
        marker="D",
        s=40,
        facecolors="none",
        edgecolors="crimson",
        linewidths=1.5,
        zorder=4,
        label="paper median (approx.; 1000-iteration unbounded attack)",
    )
    return y


def _from_zero(values: np.ndarray) -> tuple[float, float]:
    """y limits from 0 (or the lowest value, if negative) to just above the highest value."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return 0.0, 1.0
    bottom, top = min(0.0, float(finite.min())), float(finite.max())
    return bottom, top + 0.08 * (top - bottom) if top > bottom else bottom + 1.0


def _colour_handles(systems: Sequence[str]) -> list[Any]:
    """One legend patch per box colour in use: ``<group>: <systems>``."""
    from matplotlib.patches import Patch

    colours = dict.fromkeys(SYSTEM_COLORS.get(s, "#bbbbbb") for s in systems)
    return [
        Patch(
            facecolor=colour,
            alpha=0.75,
            label=COLOR_GROUPS[colour]
            + ": "
            + ", ".join(s for s in systems if SYSTEM_COLORS.get(s, "#bbbbbb") == colour),
        )
        for colour in colours
    ]


def figure_true_vs_pred(
    clips: pd.DataFrame,
    seed: int,
    stem: Path,
    *,
    systems: Sequence[str] = FIG4_SYSTEMS,
    emotions: Sequence[str] = FIG4_EMOTIONS,
) -> dict[str, Path] | None:
    """Figure 4: true vs predicted rating, clean and adversarial, for one seed.

    Parameters
    ----------
    clips : pd.DataFrame
        Per-clip attack rows with ``system``, ``seed``, ``true_<e>``, ``clean_<e>``,
        ``adv_<e>`` for the emotions drawn (rating/10 scale).
    seed : int
        The training seed whose models are shown.
    stem : Path
        Output path without suffix; ``.png`` and ``.svg`` are written.
    systems, emotions : sequence of str
        Grid columns (those present for ``seed`` are drawn) and rows.

    Returns
    -------
    dict or None
        ``{"png": Path, "svg": Path}``; None when none of ``systems`` has clips for ``seed``.
    """
    from matplotlib.figure import Figure

    needed = [f"{kind}_{e}" for kind in ("true", "clean", "adv") for e in emotions]
    missing = [c for c in needed if c not in clips.columns]
    if missing:
        logger.warning("Figure 4 not drawn: the clip tables lack %s", missing)
        return None
    chosen = clips[clips["seed"] == seed]
    present = [s for s in systems if (chosen["system"] == s).any()]
    if not present:
        return None
    fig = Figure(
        figsize=(max(5.0, 0.6 + 3.2 * len(present)), 0.6 + 3.0 * len(emotions)),
        layout="constrained",
    )
    axes = fig.subplots(len(emotions), len(present), sharex=True, sharey=True, squeeze=False)
    subset = chosen[chosen["system"].isin(present)]
    true = subset[[f"true_{e}" for e in emotions]].to_numpy(np.float64).ravel()  # [clips * E]
    pred = (
        subset[[f"{k}_{e}" for k in ("clean", "adv") for e in emotions]]
        .to_numpy(np.float64)
        .ravel()
    )  # [clips * 2E]
    # x: the range of the true ratings; y: every prediction (adversarial ones may lie far
    # outside the rating range, as with the paper's unbounded attack)
    x_lo, x_hi = _limits(true, pad=0.05)
    y_lo, y_hi = _limits(np.concatenate([true, pred]), pad=0.05)
    for j, system in enumerate(present):
        g = chosen[chosen["system"] == system]
        for i, emotion in enumerate(emotions):
            _true_vs_pred_panel(axes[i, j], g, emotion, (x_lo, x_hi))
            axes[i, j].set_title(f"{system}: {emotion}")
    axes[0, 0].set_xlim(x_lo, x_hi)
    axes[0, 0].set_ylim(y_lo, y_hi)
    axes[0, -1].legend(loc="best", fontsize="small")
    fig.supxlabel("true rating (rating/10 scale)")
    fig.supylabel("predicted rating (rating/10 scale)")
    fig.suptitle(f"Figure 4: true vs predicted ratings (seed {seed})")
    return _save(fig, stem)


def _true_vs_pred_panel(
    ax: Any, g: pd.DataFrame, emotion: str, x_range: tuple[float, float]
) -> None:
    """One panel of Figure 4: identity line, clean (x) and adversarial (o) predictions."""
    y = g[f"true_{emotion}"].to_numpy(np.float64)  # [clips]
    ax.plot(x_range, x_range, color="#3cb371", linestyle="--", linewidth=1, label="identity")
    ax.scatter(
        y, g[f"clean_{emotion}"].to_numpy(np.float64), marker="x", s=30, color="#6495ed",
        label="clean",
    )  # fmt: skip
    ax.scatter(
        y,
        g[f"adv_{emotion}"].to_numpy(np.float64),
        marker="o",
        s=30,
        facecolors="none",
        edgecolors="#d2691e",
        label="adversarial",
    )
    ax.grid(alpha=0.3)
