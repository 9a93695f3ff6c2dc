"""Paired significance tests on clip-level errors (DESIGN.md §8).

The paper compares the clip-level MAE after attack of two systems with a paired t-test,
pooling the test clips of all seeds (n = 10 seeds x 36 clips = 360 pairs), for A2E vs A2M2E
and A2B2E vs A2M2E. :func:`paired_tests` computes that test together with the Wilcoxon
signed-rank test (which does not assume normally distributed differences) and Cohen's
effect size d_z for paired samples.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np

from robustmer.errors import RobustmerError

logger = logging.getLogger(__name__)

__all__ = ["paired_tests"]


def paired_tests(a: Any, b: Any) -> dict[str, float | int]:
    """Paired t-test, Wilcoxon signed-rank test and Cohen's d_z of ``a`` against ``b``.

    Pairs in which either value is NaN are dropped (NaN-safe); the tests use the remaining
    differences ``d = a - b``.

    Parameters
    ----------
    a, b : array-like of float, shape (n,)
        Paired measurements, e.g. the MAE after attack of the same clips (same seed and
        clip id) for two systems.

    Returns
    -------
    dict
        ``n`` (int, pairs used), ``n_dropped`` (int, pairs with a NaN), ``mean_a``, ``mean_b``,
        ``mean_diff`` (mean of ``a - b``), ``t`` and ``t_p`` (``scipy.stats.ttest_rel``,
        two-sided; ``t = mean(d) / (std(d, ddof=1) / sqrt(n))``), ``wilcoxon`` and
        ``wilcoxon_p`` (``scipy.stats.wilcoxon`` with its defaults: two-sided, zero
        differences dropped, statistic = the smaller of the positive and negative rank
        sums), ``cohen_dz`` (``mean(d) / std(d, ddof=1)``). A value that cannot be computed
        (fewer than two pairs, all differences zero) is NaN.

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
        "t": nan,
        "t_p": nan,
        "wilcoxon": nan,
        "wilcoxon_p": nan,
        "cohen_dz": nan,
    }
    if n < 2:
        if n == 1:  # no pairs at all is the caller's to report
            logger.warning("paired_tests: 1 usable pair; the tests need at least 2")
        return out
    sd = float(d.std(ddof=1))
    if sd > 0:
        out["cohen_dz"] = float(d.mean() / sd)
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
