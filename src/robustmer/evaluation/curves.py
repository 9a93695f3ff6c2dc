"""Robustness curves and the worst case per clip, from the per-clip attack tables.

Every function is pure: it takes the concatenated ``clips.parquet`` tables of
:func:`robustmer.evaluation.attack_run` (columns ``system, seed, clip_id, attack, epsilon,
mae_clean, mae_adv, snr_db, true_<emotion>, clean_<emotion>, adv_<emotion>``; ratings / 10)
and returns tidy DataFrames:

- :func:`run_metrics`: one row per model, attack and ε (ΔMAE, average correlations, SNR);
- :func:`robustness_curves`: per system, attack and ε the mean over seeds with a 95 % t
  interval (seeds are the independent replicates);
- :func:`curve_areas` / :func:`area_tests`: the area under each clip's ΔMAE-vs-ε curve and
  paired tests between systems (pairs: same seed and clip, as in the paper's test), Holm
  corrected;
- :func:`worst_case`: per clip and ε the largest ΔMAE over the attacks run on it (the
  "robust" ΔMAE) and which attack achieved it.

An unbounded attack has ``epsilon`` NaN; it forms its own group and is left out of curves.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from robustmer import metrics
from robustmer.errors import RobustmerError
from robustmer.names import EMOTIONS

__all__ = [
    "area_tests",
    "at_epsilons",
    "transfer_keys",
    "clip_correlations",
    "curve_areas",
    "holm",
    "robustness_curves",
    "run_metrics",
    "worst_case",
]

RUN_KEYS = ["system", "seed", "attack", "epsilon"]
"""The columns that identify one attack of one model."""


def at_epsilons(configs: Sequence[Any], epsilons: Sequence[float]) -> tuple[Any, ...]:
    """Each bounded attack setting once per ε; unbounded ones (ε None) as they are.

    Waveform-domain attacks are kept as they are: their ``epsilon`` is an amplitude, not a
    radius in normalised-input units (their budget grid is the SNR,
    :func:`robustmer.evaluation.snr_target.at_snrs`).

    Parameters
    ----------
    configs : sequence of AttackConfig
        The attacks (e.g. a study profile's); a bounded one has a non-None ``epsilon``.
    epsilons : sequence of float
        The radii; empty: ``configs`` unchanged.

    Returns
    -------
    tuple of AttackConfig
        In the order of ``configs``, each bounded one expanded in the order of ``epsilons``;
        duplicates (same :meth:`AttackConfig.key`) dropped.
    """
    out: dict[str, Any] = {}
    for config in configs:
        bounded = getattr(config, "epsilon", None) is not None and len(epsilons) > 0
        bounded = bounded and getattr(config, "domain", "spectrogram") == "spectrogram"
        for c in [config.replace(epsilon=float(e)) for e in epsilons] if bounded else [config]:
            out.setdefault(c.key(), c)
    return tuple(out.values())


def transfer_keys(configs: Sequence[Any]) -> set[str]:
    """Keys of the attacks whose examples the transfer matrix uses.

    Per bounded, untargeted spectrogram-domain gradient attack (same name, norm and loss;
    not ``noise``), the one with the largest ε.
    """
    largest: dict[tuple[Any, ...], Any] = {}
    for c in configs:
        eps = getattr(c, "epsilon", None)
        plain = getattr(c, "domain", "spectrogram") == "spectrogram" and c.target is None
        if eps is None or c.name == "noise" or not plain:
            continue
        group = (c.name, getattr(c, "norm", None), getattr(c, "loss", None))
        if group not in largest or eps > largest[group].epsilon:
            largest[group] = c
    return {c.key() for c in largest.values()}


def _require(clips: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in clips.columns]
    if missing:
        raise RobustmerError(f"{what}: per-clip table lacks column(s) {', '.join(missing)}")


def clip_correlations(clips: pd.DataFrame, prefix: str = "adv") -> np.ndarray:
    """Per-row Pearson r of ``<prefix>_<emotion>`` with ``true_<emotion>`` (NaN if constant)."""
    _require(clips, [f"{p}_{e}" for p in ("true", prefix) for e in EMOTIONS], "correlations")
    y = clips[[f"true_{e}" for e in EMOTIONS]].to_numpy(np.float64)  # [n, 8]
    p = clips[[f"{prefix}_{e}" for e in EMOTIONS]].to_numpy(np.float64)  # [n, 8]
    yc, pc = y - y.mean(axis=1, keepdims=True), p - p.mean(axis=1, keepdims=True)
    denom = np.sqrt((yc**2).sum(axis=1) * (pc**2).sum(axis=1))  # [n]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip(np.where(denom > 0, (yc * pc).sum(axis=1) / denom, np.nan), -1, 1)


def run_metrics(clips: pd.DataFrame) -> pd.DataFrame:
    """One row per (system, seed, attack, epsilon) with the attack's effect on that model.

    Returns
    -------
    pd.DataFrame
        ``system, seed, attack, epsilon, n_clips, mae_clean, mae_adv, delta_mae,
        avg_corr_clean, avg_corr_adv`` (the paper's average correlation: per emotion across
        clips, then averaged), ``clip_corr_adv`` (mean per-clip correlation) and
        ``snr_db`` (median over clips with a finite SNR).
    """
    _require(clips, [*RUN_KEYS, "clip_id", "mae_clean", "mae_adv", "snr_db"], "run_metrics")
    true_cols = [f"true_{e}" for e in EMOTIONS]
    rows = []
    for key, g in clips.assign(_r=clip_correlations(clips)).groupby(RUN_KEYS, dropna=False):
        y = g[true_cols].to_numpy(np.float64)
        snr = g["snr_db"].to_numpy(np.float64)
        finite = snr[np.isfinite(snr)]
        rows.append({
            **dict(zip(RUN_KEYS, key, strict=True)),
            "n_clips": len(g),
            "mae_clean": float(g["mae_clean"].mean()),
            "mae_adv": float(g["mae_adv"].mean()),
            "delta_mae": float((g["mae_adv"] - g["mae_clean"]).mean()),
            "avg_corr_clean": metrics.average_correlation(
                y, g[[f"clean_{e}" for e in EMOTIONS]].to_numpy(np.float64)),
            "avg_corr_adv": metrics.average_correlation(
                y, g[[f"adv_{e}" for e in EMOTIONS]].to_numpy(np.float64)),
            "clip_corr_adv": float(np.nanmean(g["_r"])) if g["_r"].notna().any() else math.nan,
            "snr_db": float(np.median(finite)) if finite.size else math.nan,
        })
    return pd.DataFrame(rows)


def _t_interval(values: np.ndarray, level: float) -> tuple[float, float, float]:
    """Mean and two-sided t interval over replicates (NaN bounds with fewer than two)."""
    from scipy import stats

    v = values[np.isfinite(values)]
    if v.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if v.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return mean, mean - half, mean + half


def robustness_curves(runs: pd.DataFrame, *, level: float = 0.95) -> pd.DataFrame:
    """Mean over seeds with a t interval, per (system, attack, epsilon), bounded attacks only.

    Parameters
    ----------
    runs : pd.DataFrame
        :func:`run_metrics`.
    level : float
        Coverage of the interval.

    Returns
    -------
    pd.DataFrame
        ``system, attack, epsilon, n_seeds`` and for each of ``delta_mae, avg_corr_adv,
        snr_db`` the columns ``<name>``, ``<name>_lo``, ``<name>_hi``; sorted by system,
        attack and ε.
    """
    rows = []
    bounded = runs[runs["epsilon"].notna()]
    for (system, attack, eps), g in bounded.groupby(["system", "attack", "epsilon"]):
        row = {"system": system, "attack": attack, "epsilon": float(eps), "n_seeds": len(g)}
        for name in ("delta_mae", "avg_corr_adv", "snr_db"):
            mean, lo, hi = _t_interval(g[name].to_numpy(np.float64), level)
            row.update({name: mean, f"{name}_lo": lo, f"{name}_hi": hi})
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["system", "attack", "epsilon"], ignore_index=True)


def curve_areas(clips: pd.DataFrame) -> pd.DataFrame:
    """Per clip and bounded attack: the area under ΔMAE vs ε (trapezoids from (0, 0)).

    Returns
    -------
    pd.DataFrame
        ``system, seed, clip_id, attack, n_epsilons, auc`` (units: ΔMAE × ε); clips attacked
        at fewer ε than their attack's largest ε grid are NaN so areas stay comparable.
    """
    _require(clips, [*RUN_KEYS, "clip_id", "mae_clean", "mae_adv"], "curve_areas")
    df = clips[clips["epsilon"].notna()].assign(delta=clips["mae_adv"] - clips["mae_clean"])
    rows = []
    for (system, seed, clip, attack), g in df.groupby(["system", "seed", "clip_id", "attack"]):
        g = g.sort_values("epsilon")
        eps = np.concatenate([[0.0], g["epsilon"].to_numpy(np.float64)])
        delta = np.concatenate([[0.0], g["delta"].to_numpy(np.float64)])
        rows.append({"system": system, "seed": seed, "clip_id": clip, "attack": attack,
                     "n_epsilons": len(g), "auc": float(np.trapezoid(delta, eps))})
    out = pd.DataFrame(rows)
    if len(out):
        full = out.groupby("attack")["n_epsilons"].transform("max")
        out.loc[out["n_epsilons"] < full, "auc"] = math.nan
    return out


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and does not count)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full_like(p, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    order = idx[np.argsort(p[idx])]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        out[i] = running
    return out


def area_tests(areas: pd.DataFrame) -> pd.DataFrame:
    """Paired tests of the ΔMAE-vs-ε areas between every two systems, per attack.

    Pairs are clips with the same seed and clip id (the paper's pairing). Uses
    :func:`robustmer.evaluation.stats.paired_tests`; ``t_p_holm`` is Holm-corrected over
    all comparisons of the table.

    Returns
    -------
    pd.DataFrame
        ``attack, system_a, system_b, n, mean_a, mean_b, mean_diff, t, t_p, wilcoxon_p,
        cohen_dz, t_p_holm``.
    """
    from robustmer.evaluation.stats import paired_tests

    rows = []
    for attack, g in areas.groupby("attack"):
        wide = g.pivot_table(index=["seed", "clip_id"], columns="system", values="auc")
        for a, b in itertools.combinations(sorted(wide.columns), 2):
            res = paired_tests(wide[a].to_numpy(), wide[b].to_numpy())
            rows.append({"attack": attack, "system_a": a, "system_b": b, **res})
    out = pd.DataFrame(rows)
    if len(out):
        out["t_p_holm"] = holm(out["t_p"].to_numpy())
    return out


def worst_case(clips: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The largest ΔMAE over all attacks run on each clip at the same ε ("robust ΔMAE").

    Unbounded attacks (ε NaN) are compared among themselves.

    Returns
    -------
    per_clip : pd.DataFrame
        ``system, seed, clip_id, epsilon, n_attacks, mae_clean, mae_adv, delta_mae,
        winner`` (the attack with the largest ΔMAE; ties go to the first in attack order).
    summary : pd.DataFrame
        Per ``system, epsilon``: ``attack`` (each attack and ``"worst case"``),
        ``delta_mae`` (mean over clips and seeds), ``wins`` (clips it won) and ``n_clips``.
    """
    _require(clips, [*RUN_KEYS, "clip_id", "mae_clean", "mae_adv"], "worst_case")
    df = clips.assign(delta_mae=clips["mae_adv"] - clips["mae_clean"])
    df = df.sort_values(["attack"], kind="stable").reset_index(drop=True)  # unique labels
    keys = ["system", "seed", "clip_id", "epsilon"]
    idx = df.groupby(keys, dropna=False)["delta_mae"].idxmax()
    per_clip = df.loc[idx, [*keys, "mae_clean", "mae_adv", "delta_mae", "attack"]]
    per_clip = per_clip.rename(columns={"attack": "winner"}).reset_index(drop=True)
    per_clip.insert(4, "n_attacks", df.groupby(keys, dropna=False).size().to_numpy())
    rows = []
    for (system, eps), g in df.groupby(["system", "epsilon"], dropna=False):
        w = per_clip[(per_clip["system"] == system) & _same_eps(per_clip["epsilon"], eps)]
        for attack, ga in g.groupby("attack"):
            rows.append({"system": system, "epsilon": eps, "attack": attack,
                         "delta_mae": float(ga["delta_mae"].mean()),
                         "wins": int((w["winner"] == attack).sum()), "n_clips": len(ga)})
        rows.append({"system": system, "epsilon": eps, "attack": "worst case",
                     "delta_mae": float(w["delta_mae"].mean()), "wins": len(w),
                     "n_clips": len(w)})
    return per_clip, pd.DataFrame(rows)


def _same_eps(column: pd.Series, eps: float) -> pd.Series:
    return column.isna() if pd.isna(eps) else column == eps
