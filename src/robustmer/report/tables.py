"""Pure table functions of the study report (docs/paper.md §8: Table 1, Figure 3, t-tests, cost).

Every function takes tidy pandas DataFrames and returns a new one; nothing here reads or
writes files, so each can be tested on hand-made numbers.

Inputs
------
``runs`` : one row per finished run, columns ``system`` (str), ``seed`` (int),
    ``test_avg_corr`` and ``test_mae`` (clean test metrics from ``final.json``, rating/10
    scale), and for :func:`cost_table` ``wall_seconds``, ``epochs``, ``forward_passes``,
    ``backward_passes``, ``train_attack_iterations``, ``attack_seconds``,
    ``attack_model_passes`` (NaN where unknown).
``clips`` : the per-clip attack tables of all runs concatenated (columns of
    ``RUN_DIR/attacks/<attack>/clips.parquet``: ``system``, ``seed``, ``clip_id``,
    ``mae_clean``, ``mae_adv``, ``true_<emotion>``, ``clean_<emotion>``, ``adv_<emotion>``, ...).

Units
-----
Ratings, predictions, MAE and ΔMAE are on the training scale (ratings / 10), the scale of the
paper's Table 1 (MAE 0.10) *and* of its Figure 3: the authors' analysis code takes ΔMAE from
attack logs whose labels lie in 0.1-0.9, and the unbounded reference attack drives
predictions far outside that range, hence medians of about 1.0-1.6. Multiply by
``RATING_SCALE`` (10) for points on the 1-9 rating scale.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from robustmer.errors import RobustmerError
from robustmer.evaluation.stats import holm, paired_t_power, paired_t_sample_size, paired_tests
from robustmer.metrics import average_correlation
from robustmer.names import EMOTIONS, SYSTEM_NAMES

logger = logging.getLogger(__name__)

__all__ = [
    "ADVERSARIAL_PAIRS",
    "ALPHA",
    "BASELINE_LABEL",
    "PAPER_ORIGINAL",
    "PAPER_TABLE1",
    "PAPER_TEST_PAIRS",
    "POWER_EFFECT",
    "STAGE_ORDER",
    "add_baseline",
    "all_pairs",
    "cost_ratios",
    "cost_table",
    "delta_mae_table",
    "power_summary",
    "significance_tests",
    "stage_table",
    "system_order",
    "table1",
]

PAPER_TABLE1: dict[str, dict[str, float]] = {
    "A2E": {
        "avg_corr": 0.73,
        "avg_corr_std": 0.02,
        "mae": 0.10,
        "mae_std": 0.01,
        "delta_mae_median": 1.6,
    },
    "A2B2E": {
        "avg_corr": 0.70,
        "avg_corr_std": 0.02,
        "mae": 0.11,
        "mae_std": 0.01,
        "delta_mae_median": 1.5,
    },
    "A2M2E": {
        "avg_corr": 0.67,
        "avg_corr_std": 0.02,
        "mae": 0.11,
        "mae_std": 0.01,
        "delta_mae_median": 1.0,
    },
    "aA2E": {
        "avg_corr": 0.67,
        "avg_corr_std": 0.03,
        "mae": 0.10,
        "mae_std": 0.00,
        "delta_mae_median": 1.0,
    },
    "aA2B2E": {
        "avg_corr": 0.66,
        "avg_corr_std": 0.03,
        "mae": 0.10,
        "mae_std": 0.00,
        "delta_mae_median": 1.0,
    },
}
"""The paper's Table 1 (mean ± std over 10 seeds, test set, rating/10 scale) and the
approximate Figure 3 medians of ΔMAE (docs/paper.md §8)."""

PAPER_ORIGINAL: dict[str, float] = {"A2E (orig.)": 0.76, "A2M2E (orig.)": 0.75}
"""Average correlation of the published models of Chowdhury et al. (paper's Table 1)."""

PAPER_TEST_PAIRS: tuple[tuple[str, str], ...] = (("A2E", "A2M2E"), ("A2B2E", "A2M2E"))
"""The paper's paired comparisons of clip-level MAE after attack (both p < 1e-20)."""

ALPHA = 0.05
"""Family-wise significance level of the report's tests (after Holm's correction)."""

POWER_EFFECT = 0.3
"""Effect size d_z whose detection power the report states (a small-to-medium effect)."""

ADVERSARIAL_PAIRS: tuple[tuple[str, str], ...] = (("aA2E", "A2E"), ("aA2B2E", "A2B2E"))
"""(adversarially trained system, its standard counterpart) for the cost ratios."""


def system_order(systems: Iterable[str]) -> list[str]:
    """The distinct systems in the paper's order (``SYSTEM_NAMES``), unknown ones after, sorted."""
    present = set(systems)
    known = [s for s in SYSTEM_NAMES if s in present]
    return known + sorted(present - set(known))


def _std(x: np.ndarray, ddof: int) -> float:
    """Standard deviation with ``ddof``; NaN when there are not more than ``ddof`` values."""
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(np.std(x, ddof=ddof)) if x.size > ddof else float("nan")


def _mean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


def _median(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(np.median(x)) if x.size else float("nan")


def _finite_median(x: np.ndarray) -> float:
    """Median over the finite values (an unperturbed clip has an infinite SNR)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else float("nan")


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise RobustmerError(f"{what}: missing column(s) {missing}; expected {list(columns)}")


def delta_mae_table(clips: pd.DataFrame) -> pd.DataFrame:
    """ΔMAE and the other attack outcomes per model (one row per system and seed).

    ΔMAE = MAE(adversarial) - MAE(clean) over the model's attacked clips (docs/paper.md §8). The
    per-clip ``mae_clean``/``mae_adv`` are means over the 8 emotions, so their mean over
    clips is the MAE over clips and emotions.

    Parameters
    ----------
    clips : pd.DataFrame
        Per-clip attack rows (see module docstring), several models concatenated.

    Returns
    -------
    pd.DataFrame
        Columns ``system, seed, n_clips, mae_clean, mae_adv, delta_mae, avg_corr_clean,
        avg_corr_adv, snr_db_median, iterations_mean, converged_rate``, rows in system order
        then by seed. The SNR median (dB) is over the clips with a finite SNR. Correlations
        are NaN where the emotion columns are absent; SNR, iterations and convergence are NaN
        where their columns are absent.
    """
    _require(clips, ["system", "seed", "clip_id", "mae_clean", "mae_adv"], "clips table")
    true_cols = [f"true_{e}" for e in EMOTIONS]
    clean_cols = [f"clean_{e}" for e in EMOTIONS]
    adv_cols = [f"adv_{e}" for e in EMOTIONS]
    has_emotions = all(c in clips.columns for c in true_cols + clean_cols + adv_cols)
    rows = []
    for system in system_order(clips["system"]):
        by_system = clips[clips["system"] == system]
        for seed in sorted(by_system["seed"].unique()):
            g = by_system[by_system["seed"] == seed]
            mae_clean = _mean(g["mae_clean"].to_numpy())
            mae_adv = _mean(g["mae_adv"].to_numpy())
            row = {
                "system": system,
                "seed": int(seed),
                "n_clips": int(len(g)),
                "mae_clean": mae_clean,
                "mae_adv": mae_adv,
                "delta_mae": mae_adv - mae_clean,
                "avg_corr_clean": float("nan"),
                "avg_corr_adv": float("nan"),
            }
            if has_emotions and len(g) > 1:
                y = g[true_cols].to_numpy(np.float64)  # [clips, 8]
                row["avg_corr_clean"] = average_correlation(y, g[clean_cols].to_numpy(np.float64))
                row["avg_corr_adv"] = average_correlation(y, g[adv_cols].to_numpy(np.float64))
            for name, column, fn in (
                ("snr_db_median", "snr_db", _finite_median),
                ("iterations_mean", "iterations", _mean),
                ("converged_rate", "converged", _mean),
            ):
                row[name] = fn(g[column].to_numpy(np.float64)) if column in g else float("nan")
            rows.append(row)
    return pd.DataFrame(
        rows,
        columns=[
            "system",
            "seed",
            "n_clips",
            "mae_clean",
            "mae_adv",
            "delta_mae",
            "avg_corr_clean",
            "avg_corr_adv",
            "snr_db_median",
            "iterations_mean",
            "converged_rate",
        ],
    )


def table1(runs: pd.DataFrame, delta: pd.DataFrame | None = None, *, ddof: int = 1) -> pd.DataFrame:
    """The paper's Table 1 for our runs, with adversarial columns and the paper's values.

    Parameters
    ----------
    runs : pd.DataFrame
        One row per finished run: ``system``, ``seed``, ``test_avg_corr``, ``test_mae``.
    delta : pd.DataFrame, optional
        Output of :func:`delta_mae_table`; without it the adversarial columns are NaN.
    ddof : int
        Delta degrees of freedom of the standard deviation over seeds. Default 1 (sample
        standard deviation); the paper's analysis code used numpy's default ``ddof=0``
        (smaller by a factor sqrt(9/10) = 0.949 for 10 seeds). With one seed and ``ddof=1``
        the std is NaN.

    Returns
    -------
    pd.DataFrame
        One row per system (paper order): ``system, kind`` ("system"), ``n_seeds,
        avg_corr_mean, avg_corr_std, mae_mean, mae_std, n_attacked, delta_mae_mean,
        delta_mae_median, delta_mae_std, adv_avg_corr_mean, adv_mae_mean`` and the paper's
        ``paper_avg_corr, paper_avg_corr_std, paper_mae, paper_mae_std,
        paper_delta_mae_median`` (NaN for a system the paper does not have). MAE and ΔMAE
        on the rating/10 scale.
    """
    _require(runs, ["system", "seed", "test_avg_corr", "test_mae"], "runs table")
    rows = []
    for system in system_order(runs["system"]):
        r = runs[runs["system"] == system]
        d = delta[delta["system"] == system] if delta is not None else None
        has_delta = d is not None and len(d) > 0
        paper = PAPER_TABLE1.get(system, {})
        nan = float("nan")
        rows.append(
            {
                "system": system,
                "kind": "system",
                "n_seeds": int(r["seed"].nunique()),
                "avg_corr_mean": _mean(r["test_avg_corr"].to_numpy()),
                "avg_corr_std": _std(r["test_avg_corr"].to_numpy(), ddof),
                "mae_mean": _mean(r["test_mae"].to_numpy()),
                "mae_std": _std(r["test_mae"].to_numpy(), ddof),
                "n_attacked": int(len(d)) if has_delta else 0,
                "delta_mae_mean": _mean(d["delta_mae"].to_numpy()) if has_delta else nan,
                "delta_mae_median": _median(d["delta_mae"].to_numpy()) if has_delta else nan,
                "delta_mae_std": _std(d["delta_mae"].to_numpy(), ddof) if has_delta else nan,
                "adv_avg_corr_mean": _mean(d["avg_corr_adv"].to_numpy()) if has_delta else nan,
                "adv_mae_mean": _mean(d["mae_adv"].to_numpy()) if has_delta else nan,
                "paper_avg_corr": paper.get("avg_corr", nan),
                "paper_avg_corr_std": paper.get("avg_corr_std", nan),
                "paper_mae": paper.get("mae", nan),
                "paper_mae_std": paper.get("mae_std", nan),
                "paper_delta_mae_median": paper.get("delta_mae_median", nan),
            }
        )
    return pd.DataFrame(rows)


def all_pairs(systems: Iterable[str]) -> list[tuple[str, str]]:
    """Every unordered pair of the distinct systems, in the paper's order (A2E before A2M2E)."""
    return list(itertools.combinations(system_order(systems), 2))


def _paired_column(clips: pd.DataFrame, column: str) -> pd.DataFrame:
    """``clips`` with ``column``; ``delta_mae`` is derived per clip as ``mae_adv - mae_clean``."""
    if column == "delta_mae" and column not in clips.columns:
        _require(clips, ["mae_clean", "mae_adv"], "clips table")
        return clips.assign(delta_mae=clips["mae_adv"] - clips["mae_clean"])
    _require(clips, [column], "clips table")
    return clips


def significance_tests(
    clips: pd.DataFrame,
    pairs: Sequence[tuple[str, str]] | None = None,
    *,
    column: str = "delta_mae",
    effect: float = POWER_EFFECT,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """Paired tests of a clip-level column between systems, pooled over seeds, Holm-corrected.

    Clips are paired by ``(seed, clip_id)``: the same test clip attacked on the models of
    both systems trained with the same seed (the paper: n = 10 seeds x 36 clips = 360).
    Clips present for only one system are left out (logged). The paired t-tests of all pairs
    form one family and the Wilcoxon tests another; each family's p-values are adjusted with
    Holm's method (:func:`robustmer.evaluation.stats.holm`).

    Parameters
    ----------
    clips : pd.DataFrame
        Per-clip attack rows of all models.
    pairs : sequence of (str, str), optional
        ``(a, b)`` system pairs; ``mean_diff`` is a - b. Default: every pair of the systems
        present (:func:`all_pairs`).
    column : str
        The clip-level quantity compared; default ``delta_mae`` (per clip ``mae_adv -
        mae_clean``, the robustness measure of Table 1 and Figure 3; the paper tested
        ``mae_adv``).
    effect, alpha : float
        Effect size d_z and level (two-sided) of the ``power`` column.

    Returns
    -------
    pd.DataFrame
        One row per pair: ``a, b, column, n_seeds`` (seeds with both systems), the entries
        of :func:`robustmer.evaluation.stats.paired_tests` (NaN when a system is missing),
        ``t_p_holm`` and ``wilcoxon_p_holm`` (Holm-adjusted within each family) and
        ``power`` (of the paired t-test at this n to detect d_z = ``effect`` at ``alpha``).
    """
    _require(clips, ["system", "seed", "clip_id"], "clips table")
    clips = _paired_column(clips, column)
    pairs = all_pairs(clips["system"]) if pairs is None else pairs
    rows = []
    for a, b in pairs:
        merged = _pair_clips(clips, a, b, column)
        res = paired_tests(merged[f"{column}_a"].to_numpy(), merged[f"{column}_b"].to_numpy())
        power = paired_t_power(int(res["n"]), effect, alpha=alpha)
        rows.append(
            {
                "a": a,
                "b": b,
                "column": column,
                "n_seeds": int(merged["seed"].nunique()),
                **res,
                "power": power,
            }
        )
    df = pd.DataFrame(rows, columns=_TEST_COLUMNS)
    df["t_p_holm"] = holm(df["t_p"].to_numpy(np.float64))
    df["wilcoxon_p_holm"] = holm(df["wilcoxon_p"].to_numpy(np.float64))
    return df


_TEST_COLUMNS: tuple[str, ...] = (
    "a", "b", "column", "n_seeds", "n", "n_dropped", "mean_a", "mean_b", "mean_diff",
    "median_diff", "t", "t_p", "wilcoxon", "wilcoxon_p", "cohen_dz", "dz_ci_low", "dz_ci_high",
    "power",
)  # fmt: skip


def _pair_clips(clips: pd.DataFrame, a: str, b: str, column: str) -> pd.DataFrame:
    """The clips of systems ``a`` and ``b`` paired by (seed, clip_id): ``seed, clip_id,
    <column>_a, <column>_b``, sorted."""
    left = clips.loc[clips["system"] == a, ["seed", "clip_id", column]]
    right = clips.loc[clips["system"] == b, ["seed", "clip_id", column]]
    merged = left.merge(right, on=["seed", "clip_id"], suffixes=("_a", "_b"), how="inner")
    merged = merged.sort_values(["seed", "clip_id"], kind="stable")
    unmatched = len(left) + len(right) - 2 * len(merged)
    if left.empty or right.empty:
        logger.info("%s vs %s: not tested, %s has no clips", a, b, a if left.empty else b)
    elif unmatched:
        logger.warning("%s vs %s: %d clip(s) without a partner left out", a, b, unmatched)
    return merged


def power_summary(
    tests: pd.DataFrame, *, effect: float = POWER_EFFECT, alpha: float = ALPHA, target: float = 0.8
) -> dict[str, float | int]:
    """What the study's n can detect: the n needed and the power achieved.

    Parameters
    ----------
    tests : pd.DataFrame
        Output of :func:`significance_tests`.
    effect, alpha, target : float
        Effect size d_z, two-sided level and wanted power.

    Returns
    -------
    dict
        ``effect, alpha, target``; ``n_needed`` (pairs for ``target`` power at ``alpha``);
        ``n`` (smallest number of pairs among the tested pairs, 0 if none); ``power`` (at
        ``n`` and ``alpha``); ``tests`` (number of pairs tested) and ``power_holm`` (at ``n``
        and ``alpha / tests``, the strictest threshold of Holm's procedure, a lower bound).
    """
    tested = tests[tests["n"] > 0] if not tests.empty else tests
    n = int(tested["n"].min()) if not tested.empty else 0
    m = max(1, len(tested))
    return {
        "effect": effect,
        "alpha": alpha,
        "target": target,
        "n_needed": paired_t_sample_size(effect, alpha=alpha, power=target),
        "n": n,
        "power": paired_t_power(n, effect, alpha=alpha),
        "tests": len(tested),
        "power_holm": paired_t_power(n, effect, alpha=alpha / m),
    }


_COST_COLUMNS: tuple[str, ...] = (
    "wall_seconds",
    "epochs",
    "forward_passes",
    "backward_passes",
    "train_attack_iterations",
    "attack_seconds",
    "attack_model_passes",
)


def cost_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean training and attack cost per system over its seeds.

    Parameters
    ----------
    runs : pd.DataFrame
        One row per finished run with ``system``, ``seed`` and the cost columns
        ``wall_seconds`` (training wall time, s), ``epochs``, ``forward_passes``,
        ``backward_passes`` (model passes over single clips during training, adversarial
        example generation included), ``train_attack_iterations``, ``attack_seconds`` and
        ``attack_model_passes`` (of the evaluation attack); missing columns count as NaN.

    Returns
    -------
    pd.DataFrame
        One row per system: ``system, n_seeds``, the mean of each cost column, and
        ``train_passes`` = mean of ``forward_passes + backward_passes``.
    """
    _require(runs, ["system", "seed"], "runs table")
    rows = []
    for system in system_order(runs["system"]):
        r = runs[runs["system"] == system]
        row: dict[str, object] = {"system": system, "n_seeds": int(r["seed"].nunique())}
        for column in _COST_COLUMNS:
            row[column] = _mean(r[column].to_numpy(np.float64)) if column in r else float("nan")
        if "forward_passes" in r and "backward_passes" in r:
            total = r["forward_passes"].to_numpy(np.float64) + r["backward_passes"].to_numpy(
                np.float64
            )
            row["train_passes"] = _mean(total)
        else:
            row["train_passes"] = float("nan")
        rows.append(row)
    return pd.DataFrame(rows, columns=["system", "n_seeds", *_COST_COLUMNS, "train_passes"])


def cost_ratios(
    cost: pd.DataFrame, pairs: Sequence[tuple[str, str]] = ADVERSARIAL_PAIRS
) -> pd.DataFrame:
    """Cost of adversarial training relative to standard training.

    Parameters
    ----------
    cost : pd.DataFrame
        Output of :func:`cost_table`.
    pairs : sequence of (str, str)
        ``(adversarial, standard)`` systems; pairs with a missing system are skipped.

    Returns
    -------
    pd.DataFrame
        One row per pair: ``adversarial, standard, pair`` ("aA2E / A2E"), ``passes_ratio``
        (mean forward+backward passes), ``wall_ratio`` (mean training wall time),
        ``passes_per_epoch_ratio`` (removes the effect of early stopping on the number of epochs).
    """
    by_system = cost.set_index("system")
    rows = []
    for adv, std in pairs:
        if adv not in by_system.index or std not in by_system.index:
            continue
        x, y = by_system.loc[adv], by_system.loc[std]
        with np.errstate(divide="ignore", invalid="ignore"):
            rows.append(
                {
                    "adversarial": adv,
                    "standard": std,
                    "pair": f"{adv} / {std}",
                    "passes_ratio": float(np.float64(x["train_passes"]) / y["train_passes"]),
                    "wall_ratio": float(np.float64(x["wall_seconds"]) / y["wall_seconds"]),
                    "passes_per_epoch_ratio": float(
                        (np.float64(x["train_passes"]) / x["epochs"])
                        / (np.float64(y["train_passes"]) / y["epochs"])
                    ),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "adversarial",
            "standard",
            "pair",
            "passes_ratio",
            "wall_ratio",
            "passes_per_epoch_ratio",
        ],
    )


BASELINE_LABEL = "ridge baseline"
"""Table 1 label of the ridge regression on per-band statistics (a baseline, not a system)."""


def add_baseline(t1: pd.DataFrame, avg_corr: float, mae: float) -> pd.DataFrame:
    """Table 1 with a baseline row appended: clean test accuracy only, no seeds, no attack.

    Parameters
    ----------
    t1 : pd.DataFrame
        Output of :func:`table1`.
    avg_corr, mae : float
        The baseline's test average correlation and MAE (rating/10 scale).

    Returns
    -------
    pd.DataFrame
        ``t1`` plus one row with ``system`` = :data:`BASELINE_LABEL`, ``kind`` = "baseline",
        ``avg_corr_mean``, ``mae_mean`` and NaN elsewhere (``n_seeds``/``n_attacked`` become
        float columns).
    """
    row = pd.DataFrame(
        [{"system": BASELINE_LABEL, "kind": "baseline", "avg_corr_mean": float(avg_corr),
          "mae_mean": float(mae)}]
    )  # fmt: skip
    return pd.concat([t1, row], ignore_index=True)


STAGE_ORDER: tuple[str, ...] = ("synthesis", "spectrograms", "training", "attacks", "report")
"""Stages of a study in the order they run (``study.json["stage_seconds"]`` keys)."""


def stage_table(stage_seconds: dict[str, float]) -> pd.DataFrame:
    """The study's wall time by stage, known stages first, with each stage's share.

    Parameters
    ----------
    stage_seconds : dict
        ``{stage: seconds}`` as recorded in ``study.json["stage_seconds"]``.

    Returns
    -------
    pd.DataFrame
        Columns ``stage, seconds, share`` (fraction of the total), one row per stage and a
        final ``total`` row.
    """
    stages = [s for s in STAGE_ORDER if s in stage_seconds]
    stages += sorted(set(stage_seconds) - set(STAGE_ORDER))
    seconds = np.array([float(stage_seconds[s]) for s in stages], dtype=np.float64)  # [S]
    total = float(seconds.sum())
    share = seconds / total if total > 0 else np.full(seconds.shape, np.nan)
    return pd.DataFrame(
        {
            "stage": [*stages, "total"],
            "seconds": [*seconds, total],
            "share": [*share, 1.0 if total > 0 else np.nan],
        }
    )
