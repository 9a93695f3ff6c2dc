"""The ridge baseline: features by brute force, ridge against closed forms, a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from robustmer.audio import FrontEndConfig, Normalization
from robustmer.data import load_cache, write_cache
from robustmer.errors import RobustmerError
from robustmer.evaluation.baseline import (
    ALPHAS,
    band_statistics,
    ridge_baseline,
    ridge_fit,
    ridge_predict,
)
from robustmer.metrics import average_correlation


def test_band_statistics_by_brute_force():
    x = np.random.default_rng(0).standard_normal((3, 5, 4))  # [clips, frames, bands]
    got = band_statistics(x)
    assert got.shape == (3, 12)
    for n in range(3):
        for b in range(4):
            col = list(x[n, :, b])
            mean = sum(col) / 5
            std = (sum((v - mean) ** 2 for v in col) / 5) ** 0.5
            flux = sum(abs(col[t + 1] - col[t]) for t in range(4)) / 4
            assert got[n, b] == pytest.approx(mean)
            assert got[n, 4 + b] == pytest.approx(std)
            assert got[n, 8 + b] == pytest.approx(flux)
    with pytest.raises(RobustmerError, match="frames >= 2"):
        band_statistics(x[:, :1])


def test_ridge_equals_the_closed_form_with_intercept():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((7, 3)), rng.standard_normal((7, 2))
    for alpha, coef in zip((0.0, 0.5, 20.0), ridge_fit(x, y, (0.0, 0.5, 20.0)), strict=True):
        xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
        beta = np.linalg.solve(xc.T @ xc + alpha * np.eye(3), xc.T @ yc)  # [3, 2]
        np.testing.assert_allclose(coef[1:], beta, atol=1e-12)
        np.testing.assert_allclose(coef[0], y.mean(axis=0) - x.mean(axis=0) @ beta, atol=1e-12)
        np.testing.assert_allclose(ridge_predict(coef, x), x @ beta + coef[0], atol=1e-12)


def test_ridge_recovers_exact_linear_targets():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((50, 6))
    w, b = rng.standard_normal((6, 3)), np.array([0.3, -1.0, 2.0])
    (coef,) = ridge_fit(x, x @ w + b, (0.0,))
    np.testing.assert_allclose(coef[1:], w, atol=1e-10)
    np.testing.assert_allclose(coef[0], b, atol=1e-10)


def _cache(path, emotions_from_loudness: bool):
    """60 clips of random excerpts, each clip's excerpt scaled by its own factor; emotions
    linear in that factor (which every band's std and flux carry), or pure noise."""
    rng = np.random.default_rng(3)
    scale = rng.uniform(0.5, 2.0, 60)  # [clips]
    x = rng.standard_normal((60, 8, 149)) * scale[:, None, None]  # [clips, frames, bands]
    x = x.astype(np.float32)
    if emotions_from_loudness:
        emotions = 0.5 + 0.1 * np.outer(scale - 1.25, np.linspace(-1.0, 1.0, 8) + 0.05)
    else:
        emotions = rng.uniform(0.1, 0.9, (60, 8))
    ids = list(range(1, 61))
    return write_cache(
        path,
        ids=ids,
        excerpts=x,
        emotions=emotions.astype(np.float32),
        midlevel=np.full((60, 7), 0.5, np.float32),
        split={"train": ids[:40], "validation": ids[40:50], "test": ids[50:]},
        normalization=Normalization(0.0, 1.0),
        frontend=FrontEndConfig(),
    )


def test_baseline_on_a_cache_with_a_known_answer(tmp_path):
    # A signal shared by 298 of the 447 features is found; noise is not.
    signal = ridge_baseline(_cache(tmp_path / "signal", True))
    noise = ridge_baseline(load_cache(_cache(tmp_path / "noise", False)))
    assert (signal.n_train, signal.n_validation, signal.n_test) == (40, 10, 10)
    assert signal.frames == 8 and signal.features == 447
    assert signal.alpha in ALPHAS and noise.alpha in ALPHAS
    assert signal.avg_corr > 0.95 and abs(noise.avg_corr) < 0.5
    # The reported numbers are those of the chosen penalty, refitted by hand.
    cache = load_cache(tmp_path / "signal")
    feats = {s: band_statistics(cache.excerpts[cache.rows(s)]) for s in cache.split}
    mu, sd = feats["train"].mean(axis=0), feats["train"].std(axis=0)
    y_train = cache.emotions[cache.rows("train")]
    (coef,) = ridge_fit((feats["train"] - mu) / sd, y_train, (signal.alpha,))
    pred = ridge_predict(coef, (feats["test"] - mu) / sd)
    y = cache.emotions[cache.rows("test")]
    assert signal.avg_corr == pytest.approx(average_correlation(y, pred), abs=1e-12)
    assert signal.mae == pytest.approx(np.abs(pred - y).mean(), abs=1e-12)
    assert ridge_baseline(cache) == signal  # deterministic
