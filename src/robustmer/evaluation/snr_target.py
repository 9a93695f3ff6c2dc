"""The SNR a targeted waveform attack needs to reach its target, per clip and per system.

A targeted waveform-domain attack (``domain="waveform"``, an emotion ``target``;
docs/audio-attacks.md) is run at a grid of SNR budgets (:func:`at_snrs`, the study profile's
``snrs_db``). The louder the perturbation may be (the lower the SNR), the more often the
model's prediction reaches the target; a model whose prediction reaches it at a high SNR,
i.e. with a quieter perturbation, is the less robust one.

**Reached.** A clip's adversarial prediction *reaches* the target when its Pearson correlation
with the target profile across the 8 emotions (1-9 scale, as
:func:`robustmer.evaluation.targets.target_table`'s ``corr_adv``) is at least
:attr:`SnrTargetSettings.min_corr` (0.9 by default): the predicted profile then has the
target's shape, e.g. sad high and happy low. A clip whose *clean* prediction already meets
the criterion needs no perturbation: its SNR needed is ``+inf``.

**SNR needed, per clip** (:func:`snr_needed`): the highest SNR budget of the grid [dB] at
which the attack's prediction reached the target (whatever happened at other budgets;
attacks need not be monotone in their budget); ``-inf`` when the target was reached at no
budget of the grid ("never reached").

**Per system** (:func:`snr_to_target`): over all attacked clips of all seeds of the system,
the *lower median* of the SNR needed (the 50 % quantile of numpy's ``inverted_cdf`` method:
the smallest value with at least half of the clips at or below it, so it is always a grid
SNR, ``+inf`` or ``-inf``, never an average of two), a percentile-bootstrap interval
(clips resampled with replacement, :attr:`SnrTargetSettings.resamples` times, seeded), and
the counts of clips reached clean and never reached. The smaller the median, the more
robust the system.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from robustmer.attacks.goal import EmotionTarget, parse_target
from robustmer.errors import RobustmerError
from robustmer.names import EMOTIONS, RATING_SCALE

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "PER_CLIP_COLUMNS",
    "SUMMARY_COLUMNS",
    "SnrTargetSettings",
    "at_snrs",
    "attack_family",
    "listen_keys",
    "lower_median",
    "snr_needed",
    "snr_to_target",
]

PER_CLIP_COLUMNS: tuple[str, ...] = (
    "family", "label", "target", "system", "seed", "clip_id", "n_snrs", "corr_clean",
    "corr_best", "reached_clean", "reached", "snr_needed_db",
)  # fmt: skip
"""Columns of :func:`snr_needed` (one row per family, system, seed and clip)."""

SUMMARY_COLUMNS: tuple[str, ...] = (
    "family", "label", "target", "system", "snrs_db", "min_corr", "n_clips", "n_seeds",
    "reached_clean", "never_reached", "median_snr_db", "ci_low_db", "ci_high_db",
)  # fmt: skip
"""Columns of :func:`snr_to_target` (one row per family and system)."""


@dataclasses.dataclass(frozen=True)
class SnrTargetSettings:
    """How "reached" and the interval are defined (see the module docstring).

    Attributes
    ----------
    min_corr : float
        A prediction reaches the target when its Pearson correlation with the target
        profile across the 8 emotions is at least this.
    resamples : int
        Bootstrap resamples of the clips for the interval of the median.
    level : float
        Coverage of the interval (percentile bootstrap).
    seed : int
        Seed of the resampling.
    """

    min_corr: float = 0.9
    resamples: int = 2000
    level: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if not -1.0 <= float(self.min_corr) <= 1.0:
            raise RobustmerError(f"min_corr {self.min_corr!r}: expected a correlation in [-1, 1]")
        if not 0.0 < float(self.level) < 1.0:
            raise RobustmerError(f"level {self.level!r}: expected a coverage in (0, 1)")
        if isinstance(self.resamples, bool) or not isinstance(self.resamples, int) or (
            self.resamples < 1
        ):
            raise RobustmerError(f"resamples {self.resamples!r}: expected an integer >= 1")


def _emotion_target(config: Any) -> bool:
    return config.target is not None and isinstance(parse_target(config.target), EmotionTarget)


def at_snrs(configs: Sequence[Any], snrs: Sequence[float]) -> tuple[Any, ...]:
    """Each targeted waveform attack once per SNR budget; every other attack as it is.

    Parameters
    ----------
    configs : sequence of AttackConfig
        The attacks (e.g. a study profile's, after
        :func:`robustmer.evaluation.curves.at_epsilons`).
    snrs : sequence of float
        SNR budgets [dB]; empty: ``configs`` unchanged.

    Returns
    -------
    tuple of AttackConfig
        In the order of ``configs``, each waveform-domain attack with an emotion target
        expanded in the order of ``snrs`` (its own ``snr_db`` replaced); duplicates (same
        :meth:`AttackConfig.key`) dropped.
    """
    out: dict[str, Any] = {}
    for config in configs:
        grid = config.domain == "waveform" and _emotion_target(config) and len(snrs) > 0
        for c in [config.replace(snr_db=float(s)) for s in snrs] if grid else [config]:
            out.setdefault(c.key(), c)
    return tuple(out.values())


def listen_keys(configs: Sequence[Any]) -> set[str]:
    """Keys of the waveform attacks whose audio a study keeps for the report's listening.

    Per family of waveform-domain attacks (the same settings but for ``snr_db``), the one
    with the lowest SNR budget (the most audible perturbation; no budget counts as lowest).
    """
    lowest: dict[str, Any] = {}
    for c in configs:
        if c.domain != "waveform":
            continue
        family = _family_key(c.to_dict())
        budget = -math.inf if c.snr_db is None else c.snr_db
        held = lowest.get(family)
        if held is None or budget < (-math.inf if held.snr_db is None else held.snr_db):
            lowest[family] = c
    return {c.key() for c in lowest.values()}


def _family_key(settings: dict[str, Any]) -> str:
    rest = {k: v for k, v in settings.items() if k != "snr_db"}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"))


def attack_family(settings: dict[str, Any]) -> tuple[str, str, float] | None:
    """``(family, label, snr_db)`` of a targeted waveform attack's settings, else None.

    Parameters
    ----------
    settings : dict
        ``AttackConfig.to_dict()``.

    Returns
    -------
    tuple or None
        ``family``: the settings without ``snr_db`` as canonical JSON (the attacks of one SNR
        grid share it); ``label``: ``AttackConfig.label()`` without ``snr_db``; ``snr_db``: the
        budget [dB]. None unless the attack is in the waveform domain with an emotion target
        and an SNR budget.
    """
    if settings.get("domain") != "waveform" or settings.get("snr_db") is None:
        return None
    target = settings.get("target")
    if target is None or not isinstance(parse_target(target), EmotionTarget):
        return None
    shown = (
        f"{k}={v}" for k, v in settings.items() if k not in ("attack", "snr_db") and v is not None
    )
    label = " ".join([str(settings.get("attack")), *shown])
    return _family_key(settings), label, float(settings["snr_db"])


def _correlation(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Row-wise Pearson r of ``pred [n, 8]`` with ``target [8]`` (NaN for constant rows)."""
    pc = pred - pred.mean(axis=1, keepdims=True)
    tc = target - target.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pc @ tc) / (np.linalg.norm(pc, axis=1) * np.linalg.norm(tc))


def snr_needed(
    rows: pd.DataFrame, settings: SnrTargetSettings = SnrTargetSettings()
) -> pd.DataFrame:
    """Per clip, the highest SNR budget at which the targeted attack reached its target.

    Parameters
    ----------
    rows : pandas.DataFrame
        Per-clip attack rows (``clips.parquet``) of one or more SNR grids, with the extra
        columns ``family``, ``label``, ``target`` and ``snr_budget_db`` (the attack's
        ``snr_db``; :func:`attack_family`); ``clean_<emotion>``, ``adv_<emotion>`` on the
        training scale.
    settings : SnrTargetSettings

    Returns
    -------
    pandas.DataFrame
        :data:`PER_CLIP_COLUMNS`: ``n_snrs`` budgets tried, ``corr_clean`` and the best
        adversarial correlation ``corr_best`` with the target, ``reached_clean``,
        ``reached`` (at some budget or clean), ``snr_needed_db`` [dB] (``+inf`` reached
        clean, ``-inf`` never reached).
    """
    import pandas as pd

    if rows.empty:
        return pd.DataFrame(columns=list(PER_CLIP_COLUMNS))
    clean_cols = [f"clean_{e}" for e in EMOTIONS]
    adv_cols = [f"adv_{e}" for e in EMOTIONS]
    parts = []
    for target, g in rows.groupby("target", sort=False):
        goal = parse_target(str(target))
        t = np.asarray(goal.ratings, np.float64)  # [8], 1-9 scale
        parts.append(g.assign(
            _r_clean=_correlation(g[clean_cols].to_numpy(np.float64) * RATING_SCALE, t),
            _r_adv=_correlation(g[adv_cols].to_numpy(np.float64) * RATING_SCALE, t),
        ))
    df = pd.concat(parts)
    df["_hit"] = np.where(df["_r_adv"] >= settings.min_corr, df["snr_budget_db"], -math.inf)
    keys = ["family", "label", "target", "system", "seed", "clip_id"]
    out = df.groupby(keys, sort=False).agg(
        n_snrs=("snr_budget_db", "nunique"),
        corr_clean=("_r_clean", "first"),
        corr_best=("_r_adv", "max"),
        snr_needed_db=("_hit", "max"),
    ).reset_index()
    out["reached_clean"] = out["corr_clean"] >= settings.min_corr
    out.loc[out["reached_clean"], "snr_needed_db"] = math.inf
    out["reached"] = np.isfinite(out["snr_needed_db"]) | out["reached_clean"]
    return out[list(PER_CLIP_COLUMNS)]


def lower_median(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """The lower median (numpy quantile ``method="inverted_cdf"`` at 0.5), ±inf allowed.

    The element at 0-based index ``(n - 1) // 2`` of the sorted values along ``axis``.
    """
    v = np.sort(np.asarray(values, np.float64), axis=axis)
    return np.take(v, (v.shape[axis] - 1) // 2, axis=axis)


def _bootstrap(values: np.ndarray, settings: SnrTargetSettings) -> tuple[float, float]:
    """Percentile-bootstrap interval of :func:`lower_median` over ``values [n]``."""
    rng = np.random.default_rng(settings.seed)
    idx = rng.integers(0, values.size, size=(settings.resamples, values.size))
    medians = lower_median(values[idx], axis=1)  # [resamples]
    tail = (1.0 - settings.level) / 2.0
    lo, hi = np.quantile(medians, [tail, 1.0 - tail], method="inverted_cdf")
    return float(lo), float(hi)


def snr_to_target(
    rows: pd.DataFrame, settings: SnrTargetSettings = SnrTargetSettings()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per system and SNR grid, the median SNR needed to reach the target (module docstring).

    Parameters
    ----------
    rows : pandas.DataFrame
        As for :func:`snr_needed`.
    settings : SnrTargetSettings

    Returns
    -------
    per_clip : pandas.DataFrame
        :func:`snr_needed`.
    summary : pandas.DataFrame
        :data:`SUMMARY_COLUMNS`: ``snrs_db`` (the budgets tried, comma-separated, highest
        first), ``n_clips`` (clips of all seeds), ``reached_clean``, ``never_reached``
        (counts), ``median_snr_db`` (lower median [dB], ±inf as described) and its
        bootstrap interval ``ci_low_db``, ``ci_high_db``.
    """
    import pandas as pd

    per_clip = snr_needed(rows, settings)
    out = []
    for (family, system), g in per_clip.groupby(["family", "system"], sort=False):
        values = g["snr_needed_db"].to_numpy(np.float64)  # [n]
        grid = rows.loc[(rows["family"] == family) & (rows["system"] == system), "snr_budget_db"]
        lo, hi = _bootstrap(values, settings)
        out.append({
            "family": family, "label": g["label"].iloc[0], "target": g["target"].iloc[0],
            "system": system,
            "snrs_db": ",".join(f"{s:g}" for s in sorted(set(grid), reverse=True)),
            "min_corr": settings.min_corr, "n_clips": len(g), "n_seeds": g["seed"].nunique(),
            "reached_clean": int(g["reached_clean"].sum()),
            "never_reached": int((~g["reached"]).sum()),
            "median_snr_db": float(lower_median(values)), "ci_low_db": lo, "ci_high_db": hi,
        })  # fmt: skip
    return per_clip, pd.DataFrame(out, columns=list(SUMMARY_COLUMNS))
