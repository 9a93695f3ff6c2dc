"""Regression metrics of the study (docs/paper.md §8), in NumPy.

All functions take ratings ``y`` and predictions ``p`` of shape ``[n_clips, n_targets]``
(emotions or mid-level features, on the training scale, i.e. ratings / 10).
"""

from __future__ import annotations

import numpy as np


def pearson_per_target(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Pearson correlation across clips, one value per target column.

    Parameters
    ----------
    y, p : np.ndarray, shape (n_clips, n_targets)

    Returns
    -------
    np.ndarray, shape (n_targets,)
        NaN for a column where ``y`` or ``p`` is constant.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    assert y.shape == p.shape and y.ndim == 2, (y.shape, p.shape)
    yc = y - y.mean(axis=0)
    pc = p - p.mean(axis=0)
    denom = np.sqrt((yc**2).sum(axis=0) * (pc**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (yc * pc).sum(axis=0) / denom, np.nan)


def average_correlation(y: np.ndarray, p: np.ndarray) -> float:
    """Mean over targets of the Pearson r across clips (the paper's "average correlation")."""
    return float(np.nanmean(pearson_per_target(y, p)))


def mae(y: np.ndarray, p: np.ndarray) -> float:
    """Mean absolute error over clips and targets."""
    return float(np.mean(np.abs(np.asarray(y, np.float64) - np.asarray(p, np.float64))))


def rmse(y: np.ndarray, p: np.ndarray) -> float:
    """Root mean squared error over clips and targets."""
    return float(np.sqrt(np.mean((np.asarray(y, np.float64) - np.asarray(p, np.float64)) ** 2)))


def r2_per_target(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Coefficient of determination per target column, ``1 - SS_res / SS_tot``."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    ss_res = ((y - p) ** 2).sum(axis=0)
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.nan)


def regression_report(y: np.ndarray, p: np.ndarray, names: tuple[str, ...]) -> dict:
    """All metrics for one set of targets as a JSON-ready dict.

    Returns ``{"avg_corr", "corr": {name: r}, "mae", "rmse", "r2": {name: r2}, "r2_mean"}``.
    """
    corr = pearson_per_target(y, p)
    r2 = r2_per_target(y, p)
    return {
        "avg_corr": float(np.nanmean(corr)),
        "corr": {n: float(c) for n, c in zip(names, corr, strict=True)},
        "mae": mae(y, p),
        "rmse": rmse(y, p),
        "r2": {n: float(v) for n, v in zip(names, r2, strict=True)},
        "r2_mean": float(np.nanmean(r2)),
    }
