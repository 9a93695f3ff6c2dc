"""Paired significance tests on clip-level errors, their correction and power (docs/paper.md §8).

The paper compares the clip-level MAE after attack of two systems with a paired t-test,
pooling the test clips of all seeds (n = 10 seeds x 36 clips = 360 pairs), for A2E vs A2M2E
and A2B2E vs A2M2E. :func:`paired_tests` computes that test together with the Wilcoxon
signed-rank test (which does not assume normally distributed differences), Cohen's effect
size d_z for paired samples and a seeded percentile-bootstrap interval of d_z
(:func:`bootstrap_ci`). Comparing every pair of systems makes a family of tests:
:func:`holm` adjusts each family's p-values (Holm's step-down method, which controls the
family-wise error rate). :func:`paired_t_power` and :func:`paired_t_sample_size` give the
power of the two-sided paired t-test from the noncentral t distribution.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from robustmer.errors import RobustmerError

logger = logging.getLogger(__name__)

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "bootstrap_ci",
    "holm",
    "paired_t_power",
    "paired_t_sample_size",
    "paired_tests",
]

BOOTSTRAP_RESAMPLES = 10_000
"""Resamples of the bootstrap interval of d_z in :func:`paired_tests`."""

_CHUNK_VALUES = 4_000_000
"""Resampled values held in memory at once by :func:`bootstrap_ci` (32 MB of float64)."""


def bootstrap_ci(
    x: Any,
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over a sample (vectorised, seeded).

    Parameters
    ----------
    x : array-like of float, shape (n,)
        The sample, e.g. paired differences; resampled with replacement.
    statistic : callable
        Maps resamples of shape ``(B, n)`` to their statistics, shape ``(B,)`` (reduce over
        axis 1).
    resamples : int
        Number of resamples ``B``; drawn in chunks of at most ``_CHUNK_VALUES`` values, which
        gives the same numbers as one draw.
    level : float
        Coverage of the interval, in (0, 1).
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    (float, float)
        The ``(1 - level) / 2`` and ``(1 + level) / 2`` empirical quantiles of the resampled
        statistic (resamples whose statistic is NaN, e.g. 0/0, are left out; a bound can be
        infinite for a tiny sample); NaN for an empty sample.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise RobustmerError(f"bootstrap_ci: got an array of shape {x.shape}; expected 1-d")
    if not 0.0 < level < 1.0:
        raise RobustmerError(f"bootstrap_ci: level {level}; expected a value in (0, 1)")
    if x.size == 0 or resamples < 1:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CHUNK_VALUES // x.size)
    values = []
    for start in range(0, resamples, per_chunk):
        rows = min(per_chunk, resamples - start)
        index = rng.integers(0, x.size, size=(rows, x.size))  # [B_chunk, n]
        with np.errstate(divide="ignore", invalid="ignore"):
            values.append(np.asarray(statistic(x[index]), dtype=np.float64))  # [B_chunk]
    stat = np.concatenate(values)  # [B]
    stat = stat[~np.isnan(stat)]
    if stat.size == 0:
        return math.nan, math.nan
    # the empirical quantiles themselves (no interpolation, which would turn two infinite
    # statistics, e.g. d_z of a resample of equal values, into NaN)
    low, high = np.quantile(
        stat, [(1.0 - level) / 2.0, (1.0 + level) / 2.0], method="inverted_cdf"
    )
    return float(low), float(high)


def _cohen_dz(d: np.ndarray) -> np.ndarray:
    """Cohen's d_z = mean / std(ddof=1) along the last axis; d: [..., n] -> [...].

    Two-pass (centred) variance, computed in place in one scratch array.
    """
    mean = d.mean(axis=-1)  # [...]
    centred = d - mean[..., None]  # [..., n]
    np.square(centred, out=centred)
    return mean / np.sqrt(centred.sum(axis=-1) / (d.shape[-1] - 1))


def holm(p: Any) -> np.ndarray:
    """Holm-adjusted p-values of one family of tests (NaN entries are not counted).

    With the m finite p-values sorted ascending, ``p_(1) <= ... <= p_(m)``, the adjusted
    value of the i-th is ``max_{j <= i} min(1, (m - j + 1) p_(j))``; rejecting where the
    adjusted p is below alpha is Holm's step-down procedure, which keeps the probability of
    any false rejection in the family at most alpha.

    Parameters
    ----------
    p : array-like of float, shape (k,)
        The family's p-values; NaN for tests that could not be computed.

    Returns
    -------
    np.ndarray, shape (k,)
        Adjusted p-values in the input order; NaN where the input is NaN.
    """
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]  # [m]
    scaled = (m - np.arange(m)) * p[order]  # [m]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def paired_t_power(n: int, effect: float, *, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test with ``n`` pairs at effect size d_z = ``effect``.

    The statistic follows a noncentral t distribution with ``n - 1`` degrees of freedom and
    noncentrality ``effect * sqrt(n)``; power is its probability beyond the two-sided
    critical values ``±t_{1 - alpha/2, n - 1}``. NaN for ``n < 2``.
    """
    from scipy import stats

    if n < 2:
        return math.nan
    df = n - 1
    nc = abs(effect) * math.sqrt(n)
    crit = stats.t.ppf(1.0 - alpha / 2.0, df)
    upper = float(stats.nct.sf(crit, df, nc))
    # the opposite tail is far below 1e-15 wherever scipy's noncentral t cdf returns NaN there
    lower = float(np.nan_to_num(stats.nct.cdf(-crit, df, nc), nan=0.0))
    return upper + lower


def paired_t_sample_size(effect: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """The smallest number of pairs at which the two-sided paired t-test reaches ``power``.

    For d_z = 0.3, alpha = 0.05 and power 0.8 this is 90 (as G*Power tabulates).
    """
    if effect == 0 or not 0.0 < power < 1.0:
        raise RobustmerError(
            f"paired_t_sample_size: effect {effect}, power {power}; expected a nonzero effect "
            "and a power in (0, 1)"
        )
    from scipy import stats

    # start from the normal approximation, which never overestimates n
    z = stats.norm.ppf(1.0 - alpha / 2.0) + stats.norm.ppf(power)
    n = max(2, int((z / abs(effect)) ** 2))
    while paired_t_power(n, effect, alpha=alpha) < power:
        n += 1
    return n


def paired_tests(
    a: Any, b: Any, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> dict[str, float | int]:
    """Paired t-test, Wilcoxon signed-rank test and Cohen's d_z (with CI) of ``a`` against ``b``.

    Pairs in which either value is NaN are dropped (NaN-safe); the tests use the remaining
    differences ``d = a - b``.

    Parameters
    ----------
    a, b : array-like of float, shape (n,)
        Paired measurements, e.g. the MAE after attack of the same clips (same seed and
        clip id) for two systems.
    resamples : int
        Bootstrap resamples of the paired differences for the interval of d_z.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    dict
        ``n`` (int, pairs used), ``n_dropped`` (int, pairs with a NaN), ``mean_a``, ``mean_b``,
        ``mean_diff`` (mean of ``a - b``), ``median_diff`` (median of ``a - b``), ``t`` and
        ``t_p`` (``scipy.stats.ttest_rel``, two-sided; ``t = mean(d) / (std(d, ddof=1) /
        sqrt(n))``), ``wilcoxon`` and ``wilcoxon_p`` (``scipy.stats.wilcoxon`` with its
        defaults: two-sided, zero differences dropped, statistic = the smaller of the positive
        and negative rank sums), ``cohen_dz`` (``mean(d) / std(d, ddof=1)``), ``dz_ci_low`` and
        ``dz_ci_high`` (95 % percentile bootstrap interval of d_z, :func:`bootstrap_ci`). A
        value that cannot be computed (fewer than two pairs, all differences zero) is NaN.

    Raises
    ------
    RobustmerError
        If ``a`` and ``b`` are not one-dimensional or differ in length.
    """
    from scipy import stats

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1:
        raise RobustmerError(
            f"paired_tests: got arrays of shapes {a.shape} and {b.shape}; expected two 1-d arrays"
        )
    if a.shape != b.shape:
        raise RobustmerError(
            f"paired_tests: the samples differ in length ({a.size} vs {b.size}); "
            "expected paired samples of equal length"
        )
    keep = ~(np.isnan(a) | np.isnan(b))  # [n]
    a, b = a[keep], b[keep]
    d = a - b  # [n]
    n = int(d.size)
    nan = math.nan
    out: dict[str, float | int] = {
        "n": n,
        "n_dropped": int((~keep).sum()),
        "mean_a": float(a.mean()) if n else nan,
        "mean_b": float(b.mean()) if n else nan,
        "mean_diff": float(d.mean()) if n else nan,
        "median_diff": float(np.median(d)) if n else nan,
        "t": nan,
        "t_p": nan,
        "wilcoxon": nan,
        "wilcoxon_p": nan,
        "cohen_dz": nan,
        "dz_ci_low": nan,
        "dz_ci_high": nan,
    }
    if n < 2:
        if n == 1:  # no pairs at all is the caller's to report
            logger.warning("paired_tests: 1 usable pair; the tests need at least 2")
        return out
    sd = float(d.std(ddof=1))
    if sd > 0:
        out["cohen_dz"] = float(d.mean() / sd)
        out["dz_ci_low"], out["dz_ci_high"] = bootstrap_ci(
            d, _cohen_dz, resamples=resamples, seed=seed
        )
        res = stats.ttest_rel(a, b)
        out["t"], out["t_p"] = float(res.statistic), float(res.pvalue)
    if np.any(d != 0):
        with warnings.catch_warnings():
            # scipy warns when it must fall back from the exact to the normal approximation
            warnings.simplefilter("ignore", UserWarning)
            res = stats.wilcoxon(a, b)
        out["wilcoxon"], out["wilcoxon_p"] = float(res.statistic), float(res.pvalue)
    else:
        logger.warning("paired_tests: all %d differences are zero; tests undefined", n)
    return out
