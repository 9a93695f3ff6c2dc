"""The report's opening paragraph, generated from the numbers (never more than the tests say).

A pair of systems is called different in robustness only when both paired tests of its
per-clip ΔMAE (t-test and Wilcoxon) are significant after Holm's correction over all pairs;
otherwise the paragraph says there is no significant difference. Accuracy is described by the
clean test average correlation (means over seeds, not tested), adversarial training by the
cost ratios, and the power of the tests at the study's n is stated. On data that are not the
real Soundtracks set the paragraph says so first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from robustmer.report.render import fmt, fmt_p
from robustmer.report.tables import ALPHA

__all__ = ["conclusion", "significant"]


def significant(row: Any, alpha: float = ALPHA) -> bool:
    """Whether both Holm-adjusted p-values of a test row are below ``alpha``."""
    return bool(row.t_p_holm < alpha and row.wilcoxon_p_holm < alpha)


def _data_sentence(data_kind: str, profile: str | None) -> str:
    where = f" (profile {profile})" if profile else ""
    if data_kind == "real":
        return f"On the real Soundtracks data{where}:"
    return (
        f"These results come from **{data_kind}** data{where}: they show what the pipeline "
        "measures, not how models of real music behave."
    )


def _difference(row: Any) -> str:
    """'A2M2E is more robust than A2E: ...' for a significant test row (a - b differences)."""
    a_wins = row.mean_diff < 0  # lower ΔMAE is more robust
    more, less = (row.a, row.b) if a_wins else (row.b, row.a)
    sign = -1.0 if a_wins else 1.0  # differences as (less robust) - (more robust)
    low, high = sorted((sign * row.dz_ci_low, sign * row.dz_ci_high))
    return (
        f"**{more} is more robust than {less}**: ΔMAE per clip lower by "
        f"{fmt(abs(row.mean_diff))} on average (median {fmt(sign * row.median_diff)}; "
        f"d_z = {fmt(abs(row.cohen_dz), 2)}, 95 % CI {fmt(low, 2)} to {fmt(high, 2)}; "
        f"Holm-adjusted p = {fmt_p(row.t_p_holm)} t-test, {fmt_p(row.wilcoxon_p_holm)} "
        "Wilcoxon)."
    )


def _robustness_sentences(tests: pd.DataFrame, alpha: float) -> list[str]:
    tested = [r for r in tests.itertuples() if r.n > 1 and not math.isnan(r.t_p_holm)]
    if not tested:
        return ["No two systems could be compared (no paired attacked clips)."]
    sentences = [_difference(r) for r in tested if significant(r, alpha)]
    equal = [r for r in tested if not significant(r, alpha)]
    if equal:
        pairs = "; ".join(
            f"{r.a} vs {r.b} (p = {fmt_p(r.t_p_holm)} t-test, {fmt_p(r.wilcoxon_p_holm)} "
            "Wilcoxon)"
            for r in equal
        )
        sentences.append(
            f"**No significant difference** in robustness (per-clip ΔMAE, Holm-adjusted "
            f"p ≥ {alpha:g} in at least one of the two tests): {pairs}."
        )
    return sentences


def _accuracy_sentence(t1: pd.DataFrame, baseline: Mapping[str, float] | None) -> str:
    systems = t1[t1["kind"] == "system"].sort_values("avg_corr_mean", ascending=False)
    listed = ", ".join(f"{r.system} {fmt(r.avg_corr_mean)}" for r in systems.itertuples())
    text = f"Clean accuracy (test average correlation, mean over seeds; not tested): {listed}."
    if baseline is not None:
        below = [r.system for r in systems.itertuples() if r.avg_corr_mean <= baseline["avg_corr"]]
        text += (
            f" The ridge baseline on per-band statistics reaches {fmt(baseline['avg_corr'])}; "
            + (_not_beating(below) if below else "every system beats it.")
        )
    return text


_WEAK_MODELS = (
    " Robustness differences involving {them} say little about the architecture: a model that"
    " has learnt little of its input also has little to lose under attack."
)
"""Caveat after the systems that do not beat the baseline (the lower ΔMAE of a model that
barely learnt is not robustness)."""


def _not_beating(systems: list[str]) -> str:
    """``"A2E does not beat it."`` / ``"A2E and A2M2E do not beat it."``, and the caveat
    :data:`_WEAK_MODELS` naming them."""
    if len(systems) == 1:
        return f"{systems[0]} does not beat it." + _WEAK_MODELS.format(them=systems[0])
    them = f"{', '.join(systems[:-1])} and {systems[-1]}"
    return f"{them} do not beat it." + _WEAK_MODELS.format(them=them)


def _cost_sentence(ratios: pd.DataFrame) -> str:
    if ratios.empty:
        return ""
    parts = [
        f"{fmt(r.passes_ratio, 1)}× the model passes and {fmt(r.wall_ratio, 1)}× the wall time "
        f"for {r.adversarial} vs {r.standard}"
        for r in ratios.itertuples()
    ]
    return f"Adversarial training cost {'; '.join(parts)}."


def _power_sentence(power: Mapping[str, Any]) -> str:
    if power["n"] < 2:
        return ""
    enough = power["power"] >= power["target"]
    return (
        f"With n = {power['n']} paired clips per comparison the paired t-test detects an "
        f"effect d_z = {power['effect']:g} at α = {power['alpha']:g} with power "
        f"{fmt(power['power'], 2)} ({fmt(power['power_holm'], 2)} at the strictest Holm "
        f"threshold of {power['tests']} tests); {power['n_needed']} pairs give power "
        f"{power['target']:g}"
        + ("." if enough else ", so a missing significance is weak evidence of equal robustness.")
    )


def conclusion(
    t1: pd.DataFrame,
    tests: pd.DataFrame,
    ratios: pd.DataFrame,
    power: Mapping[str, Any],
    *,
    data_kind: str,
    profile: str | None = None,
    baseline: Mapping[str, float] | None = None,
    alpha: float = ALPHA,
) -> str:
    """The opening paragraph of the report.

    Parameters
    ----------
    t1 : pd.DataFrame
        Table 1 (:func:`robustmer.report.tables.table1`, optionally with a baseline row).
    tests : pd.DataFrame
        :func:`robustmer.report.tables.significance_tests` of per-clip ΔMAE.
    ratios : pd.DataFrame
        :func:`robustmer.report.tables.cost_ratios`.
    power : mapping
        :func:`robustmer.report.tables.power_summary`.
    data_kind : str
        ``study.json["data"]["kind"]`` ("real", "synthetic", ...).
    profile : str, optional
        The study profile's name.
    baseline : mapping, optional
        ``{"avg_corr": float, "mae": float}`` of the ridge baseline.
    alpha : float
        Family-wise level of the Holm-corrected tests.

    Returns
    -------
    str
        One paragraph (``**bold**`` markup only).
    """
    parts = [
        _data_sentence(data_kind, profile),
        *_robustness_sentences(tests, alpha),
        _power_sentence(power),
        _accuracy_sentence(t1, baseline),
        _cost_sentence(ratios),
    ]
    return " ".join(p for p in parts if p)
