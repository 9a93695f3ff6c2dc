"""A floor for Table 1: ridge regression on per-band excerpt statistics.

A network that cannot beat a linear model on summary statistics of its own input has not
learnt much. :func:`ridge_baseline` computes that floor on exactly the data a study's models see:
the excerpts and the train/validation/test split of a prepared cache.

Features (``3 × 149 = 447`` per clip, :func:`band_statistics`): for every band of the
normalised log-filtered spectrogram excerpt, its mean over frames, its standard deviation over
frames, and the mean absolute difference between consecutive frames. They are standardised with
the training clips' mean and standard deviation.

Model: ridge regression of the eight emotion targets (training scale, ratings / 10) with an
unpenalised intercept, ``β = (XᵀX + α I)⁻¹ Xᵀ y`` on the centred training features. ``α`` is
chosen from :data:`ALPHAS` by the validation average correlation (ties to the larger ``α``);
the chosen model is the one fitted on the training clips, and the test split is only used for
the reported numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from robustmer.errors import RobustmerError
from robustmer.metrics import average_correlation, mae

if TYPE_CHECKING:
    from robustmer.data import Cache

ALPHAS: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0)
"""Ridge penalties tried, on standardised features (a penalty of the order of the number of
training clips shrinks a feature's weight by about a half)."""


@dataclass(frozen=True)
class BaselineResult:
    """The ridge baseline's numbers on one cache.

    Attributes
    ----------
    avg_corr : float
        Test average correlation over the eight emotions (Table 1's measure).
    mae : float
        Test mean absolute error on the training scale (ratings / 10), as Table 1.
    alpha : float
        The penalty chosen on the validation split.
    val_avg_corr : float
        Validation average correlation at that penalty.
    n_train, n_validation, n_test : int
        Clips per split.
    frames : int
        Excerpt length the features were computed on.
    features : int
        Number of features (447 for 149 bands).
    """

    avg_corr: float
    mae: float
    alpha: float
    val_avg_corr: float
    n_train: int
    n_validation: int
    n_test: int
    frames: int
    features: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def band_statistics(excerpts: np.ndarray) -> np.ndarray:
    """Per-band mean, standard deviation and mean absolute frame-to-frame difference.

    Parameters
    ----------
    excerpts : np.ndarray, shape (n, frames, bands)
        At least two frames.

    Returns
    -------
    np.ndarray, shape (n, 3 * bands), float64
        ``[means | stds | mean |Δ|]``, each block in band order.
    """
    x = np.asarray(excerpts, dtype=np.float64)  # [n, F, bands]
    if x.ndim != 3 or x.shape[1] < 2:
        raise RobustmerError(
            f"excerpts of shape {x.shape}; expected [clips, frames >= 2, bands]"
        )
    mean = x.mean(axis=1)  # [n, bands]
    std = x.std(axis=1)  # [n, bands]
    flux = np.abs(np.diff(x, axis=1)).mean(axis=1)  # [n, bands]
    return np.concatenate([mean, std, flux], axis=1)  # [n, 3 * bands]


def ridge_fit(x: np.ndarray, y: np.ndarray, alphas: tuple[float, ...]) -> list[np.ndarray]:
    """Ridge regressions with an unpenalised intercept, one per penalty.

    Solved once through the SVD of the centred design: ``β = V diag(s / (s² + α)) Uᵀ y_c``.

    Parameters
    ----------
    x : np.ndarray, shape (n, d)
    y : np.ndarray, shape (n, k)
    alphas : tuple of float
        Penalties ``α >= 0`` (``0`` is the least-squares minimum-norm solution).

    Returns
    -------
    list of np.ndarray, each shape (d + 1, k)
        Row 0 is the intercept, rows 1.. the weights; predict with :func:`ridge_predict`.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)  # [d], [k]
    u, s, vt = np.linalg.svd(x - x_mean, full_matrices=False)  # [n, r], [r], [r, d]
    uty = u.T @ (y - y_mean)  # [r, k]
    out = []
    for alpha in alphas:
        if alpha < 0:
            raise RobustmerError(f"ridge penalty {alpha!r}; expected alpha >= 0")
        denom = s**2 + alpha  # [r]
        shrink = np.divide(s, denom, out=np.zeros_like(s), where=denom > 1e-12 * s.max())  # [r]
        beta = vt.T @ (shrink[:, None] * uty)  # [d, k]
        out.append(np.vstack([y_mean - x_mean @ beta, beta]))  # [d + 1, k]
    return out


def ridge_predict(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Predictions ``[n, k]`` of a :func:`ridge_fit` coefficient matrix ``[d + 1, k]``."""
    return coef[0] + np.asarray(x, dtype=np.float64) @ coef[1:]


def ridge_baseline(cache: Cache | str, *, alphas: tuple[float, ...] = ALPHAS) -> BaselineResult:
    """Fit the ridge baseline on a cache's training split and score it on its test split.

    Parameters
    ----------
    cache : robustmer.data.Cache or str
        A prepared cache (or its directory): the same excerpts, targets and split the study's
        models are trained and tested on.
    alphas : tuple of float
        Penalty grid; the one with the best validation average correlation is kept.

    Returns
    -------
    BaselineResult
    """
    from robustmer.data import Cache, load_cache

    cache_obj = cache if isinstance(cache, Cache) else load_cache(cache)
    feats, targets = {}, {}
    for split in ("train", "validation", "test"):
        rows = cache_obj.rows(split)
        feats[split] = band_statistics(cache_obj.excerpts[rows])  # [n, 447]
        targets[split] = cache_obj.emotions[rows].astype(np.float64)  # [n, 8]
    if len(feats["train"]) < 2 or len(feats["validation"]) < 2 or len(feats["test"]) < 2:
        raise RobustmerError(
            f"{cache_obj.path}: splits of {[len(f) for f in feats.values()]} clips; expected "
            "at least 2 clips in each of train, validation and test"
        )
    mu, sd = feats["train"].mean(axis=0), feats["train"].std(axis=0)  # [447]
    sd = np.where(sd > 0, sd, 1.0)
    z = {k: (v - mu) / sd for k, v in feats.items()}
    coefs = ridge_fit(z["train"], targets["train"], alphas)
    y_val = targets["validation"]
    val = [average_correlation(y_val, ridge_predict(c, z["validation"])) for c in coefs]
    val_clean = np.nan_to_num(np.asarray(val), nan=-np.inf)
    best = int(np.flatnonzero(val_clean == val_clean.max())[-1])  # ties: the larger penalty
    pred = ridge_predict(coefs[best], z["test"])  # [n_test, 8]
    return BaselineResult(
        avg_corr=float(average_correlation(targets["test"], pred)),
        mae=float(mae(targets["test"], pred)),
        alpha=float(alphas[best]),
        val_avg_corr=float(val[best]),
        n_train=len(z["train"]),
        n_validation=len(z["validation"]),
        n_test=len(z["test"]),
        frames=cache_obj.frames,
        features=int(z["train"].shape[1]),
    )


__all__ = [
    "ALPHAS",
    "BaselineResult",
    "band_statistics",
    "ridge_baseline",
    "ridge_fit",
    "ridge_predict",
]
