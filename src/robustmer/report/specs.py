"""The report's tables as data: one :class:`~robustmer.report.render.TableSpec` per table.

Each spec names the DataFrame columns shown, their headers, formats and alignment; the same
spec renders the Markdown and HTML tables (:func:`~robustmer.report.render.table_block`) and
describes the table in ``summary.json`` (:func:`~robustmer.report.render.spec_json`). The
DataFrames come from :mod:`robustmer.report.tables`; all MAE/ΔMAE on the rating/10 scale.
"""

from __future__ import annotations

from robustmer.report.render import Column, TableSpec

__all__ = [
    "COST",
    "COST_RATIOS",
    "PER_MODEL",
    "STAGES",
    "TABLE1",
    "TABLE1_PAPER_ATTACK",
    "TABLE1_PAPER_DATA",
    "TESTS",
]

TABLE1 = TableSpec(
    "table1",
    (
        Column("system", "System", "text", align="left"),
        Column("n_seeds", "seeds", "int"),
        Column("avg_corr_mean", "avg. corr", "pm", other="avg_corr_std"),
        Column("mae_mean", "MAE", "pm", other="mae_std"),
        Column("n_attacked", "attacked", "int"),
        Column("delta_mae_mean", "ΔMAE mean"),
        Column("delta_mae_median", "ΔMAE median"),
        Column("adv_avg_corr_mean", "adv. avg. corr"),
    ),
)
"""Table 1: clean accuracy and robustness per system (baseline rows have no ΔMAE)."""

TABLE1_PAPER_DATA: tuple[tuple[str, Column], ...] = (
    (
        "avg_corr_mean",
        Column("paper_avg_corr", "avg. corr (paper)", "pm", 2, other="paper_avg_corr_std"),
    ),
    ("mae_mean", Column("paper_mae", "MAE (paper)", "pm", 2, other="paper_mae_std")),
)
"""Paper columns shown after the named column when the data are the paper's (real data)."""

TABLE1_PAPER_ATTACK: tuple[tuple[str, Column], ...] = (
    (
        "delta_mae_median",
        Column("paper_delta_mae_median", "ΔMAE median (paper, approx.)", digits=1),
    ),
)
"""Paper column shown when both the data and the attack are the paper's."""

PER_MODEL = TableSpec(
    "delta_mae",
    (
        Column("system", "System", "text", align="left"),
        Column("seed", "seed", "int"),
        Column("n_clips", "clips", "int"),
        Column("mae_clean", "MAE clean"),
        Column("mae_adv", "MAE adv"),
        Column("delta_mae", "ΔMAE"),
        Column("avg_corr_clean", "avg. corr clean"),
        Column("avg_corr_adv", "avg. corr adv"),
        Column("snr_db_median", "SNR median (dB)", digits=1),
        Column("iterations_mean", "iterations", digits=1),
        Column("converged_rate", "converged", digits=2),
    ),
    "Per model (system and seed): attack outcome on the test clips (rating/10 scale; "
    "iterations: mean per clip; converged: fraction of clips).",
)

TESTS = TableSpec(
    "tests",
    (
        Column("a", "A", "text", align="left"),
        Column("b", "B", "text", align="left"),
        Column("n", "n (clips)", "int"),
        Column("n_seeds", "seeds", "int"),
        Column("mean_diff", "mean A−B"),
        Column("median_diff", "median A−B"),
        Column("t", "t", digits=2),
        Column("t_p", "p (t)", "p"),
        Column("t_p_holm", "p Holm (t)", "p"),
        Column("wilcoxon", "Wilcoxon W", digits=1),
        Column("wilcoxon_p", "p (W)", "p"),
        Column("wilcoxon_p_holm", "p Holm (W)", "p"),
        Column("cohen_dz", "d_z", digits=2),
        Column("dz_ci_low", "d_z 95 % CI", "ci", 2, other="dz_ci_high"),
        Column("power", "power (d_z=0.3)", digits=2),
    ),
)
"""Paired tests of every pair of systems (caption from the study's settings)."""

COST = TableSpec(
    "cost",
    (
        Column("system", "System", "text", align="left"),
        Column("n_seeds", "seeds", "int"),
        Column("wall_seconds", "train wall (s)", digits=1),
        Column("epochs", "epochs", digits=1),
        Column("forward_passes", "forward passes", digits=0),
        Column("backward_passes", "backward passes", digits=0),
        Column("train_attack_iterations", "train attack iters", digits=0),
        Column("attack_seconds", "attack wall (s)", digits=1),
        Column("attack_model_passes", "attack passes", digits=0),
    ),
    "Means over seeds. Passes count single clips through the model; training passes include "
    "the adversarial examples of adversarial training.",
)

COST_RATIOS = TableSpec(
    "cost_ratios",
    (
        Column("pair", "adversarial / standard", "text", align="left"),
        Column("passes_ratio", "passes", digits=2),
        Column("wall_ratio", "wall time", digits=2),
        Column("passes_per_epoch_ratio", "passes per epoch", digits=2),
    ),
    "Cost of adversarial training relative to standard training (ratio of means).",
)

STAGES = TableSpec(
    "stages",
    (
        Column("stage", "stage", "text", align="left"),
        Column("seconds", "wall time (s)", digits=1),
        Column("share", "share", digits=2),
    ),
    "Wall time of the study by stage, as recorded in study.json (key stage_seconds).",
)
