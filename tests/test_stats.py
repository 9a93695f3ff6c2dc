"""Known-answer tests of the statistics behind the report (robustmer.evaluation.stats).

Holm's correction against a hand-computed example and its step-down definition, the bootstrap
interval against the normal-theory interval of a known distribution, the power of the paired
t-test against G*Power's table value and a simulation, and the tests against scipy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from robustmer.errors import RobustmerError
from robustmer.evaluation import stats as rstats
from robustmer.evaluation.stats import (
    bootstrap_ci,
    holm,
    paired_t_power,
    paired_t_sample_size,
    paired_tests,
)


def test_holm_hand_computed() -> None:
    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> the
    # running maximum keeps 0.06)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    got = holm([0.01, np.nan, 0.04])  # NaN is not a test: m = 2
    assert got[0] == pytest.approx(0.02) and math.isnan(got[1]) and got[2] == pytest.approx(0.04)
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]).shape == (0,)


def test_holm_matches_the_step_down_procedure() -> None:
    """Adjusted p < alpha exactly where Holm's sequential procedure rejects."""
    rng = np.random.default_rng(3)
    for _ in range(200):
        p = rng.uniform(0, 0.2, size=rng.integers(1, 9)) ** 2
        adjusted = holm(p)
        order = np.argsort(p)
        m = p.size
        for alpha in (0.01, 0.05, 0.1):
            rejected = np.zeros(m, dtype=bool)
            for rank, i in enumerate(order):  # stop at the first test not rejected
                if p[i] > alpha / (m - rank):
                    break
                rejected[i] = True
            np.testing.assert_array_equal(adjusted <= alpha, rejected)


def test_bootstrap_ci_of_a_known_distribution() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    x = rng.normal(0.5, 1.0, size=n)
    low, high = bootstrap_ci(x, lambda r: r.mean(axis=1), seed=1)
    half = 1.959964 * x.std(ddof=1) / math.sqrt(n)  # normal-theory 95 % interval of the mean
    assert low == pytest.approx(x.mean() - half, abs=0.1 * half)
    assert high == pytest.approx(x.mean() + half, abs=0.1 * half)
    # d_z = mean / sd: asymptotic standard error sqrt((1 + d_z^2 / 2) / n)
    dz = x.mean() / x.std(ddof=1)
    low, high = bootstrap_ci(x, rstats._cohen_dz, seed=1)
    half = 1.959964 * math.sqrt((1 + dz**2 / 2) / n)
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)
    assert (low + high) / 2 == pytest.approx(dz, abs=0.1 * half)
    assert bootstrap_ci(np.full(5, 2.0), lambda r: r.mean(axis=1)) == (2.0, 2.0)
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([]), lambda r: r.mean(axis=1)))
    with pytest.raises(RobustmerError, match="level"):
        bootstrap_ci(x, lambda r: r.mean(axis=1), level=95)


def test_bootstrap_ci_seeded_and_chunking_invariant(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(5).normal(size=37)
    whole = bootstrap_ci(x, rstats._cohen_dz, resamples=1000, seed=7)
    assert bootstrap_ci(x, rstats._cohen_dz, resamples=1000, seed=7) == whole
    assert bootstrap_ci(x, rstats._cohen_dz, resamples=1000, seed=8) != whole
    monkeypatch.setattr(rstats, "_CHUNK_VALUES", 37 * 64 + 5)  # 64 resamples per chunk
    assert bootstrap_ci(x, rstats._cohen_dz, resamples=1000, seed=7) == whole


def test_paired_tests_against_scipy_on_tiny_inputs() -> None:
    rng = np.random.default_rng(11)
    for n in (3, 5, 8):
        a, b = rng.normal(size=n), rng.normal(size=n)
        res = paired_tests(a, b, resamples=500)
        t = stats.ttest_rel(a, b)
        w = stats.wilcoxon(a, b)
        assert res["t"] == pytest.approx(t.statistic) and res["t_p"] == pytest.approx(t.pvalue)
        assert res["wilcoxon"] == pytest.approx(w.statistic)
        assert res["wilcoxon_p"] == pytest.approx(w.pvalue)
        assert res["median_diff"] == pytest.approx(np.median(a - b))
        assert res["dz_ci_low"] <= res["dz_ci_high"]


def test_power_of_the_paired_t_test() -> None:
    # G*Power (t tests, matched pairs, two-tailed, d_z 0.3, alpha 0.05, power 0.8): n = 90
    assert paired_t_sample_size(0.3) == 90
    assert paired_t_power(89, 0.3) < 0.8 <= paired_t_power(90, 0.3)
    assert paired_t_power(1, 0.3) != paired_t_power(1, 0.3)  # NaN
    # simulation: 20,000 studies of 90 normal differences with d_z = 0.3
    rng = np.random.default_rng(0)
    d = rng.normal(0.3, 1.0, size=(20_000, 90))  # [studies, pairs]
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(90))
    rejected = 2 * stats.t.sf(np.abs(t), df=89) < 0.05
    assert rejected.mean() == pytest.approx(paired_t_power(90, 0.3), abs=0.012)  # 4 s.e.
    # large n at a Holm threshold: finite (scipy's far lower tail is NaN there) and increasing
    powers = [paired_t_power(n, 0.3, alpha=0.005) for n in (100, 300, 600, 1000)]
    assert all(np.isfinite(powers)) and powers == sorted(powers) and powers[-1] <= 1.0
    with pytest.raises(RobustmerError, match="nonzero effect"):
        paired_t_sample_size(0.0)
