"""Tests of the robustness curves, the worst case and the gradient-masking checks.

References: hand-computed means, t intervals (scipy), trapezoid areas and Holm adjustments on
small tables; a linear model (smooth, informative gradient) that must pass every masking check
and the same model behind a quantising step (``torch.round``: zero gradient almost everywhere)
that must trigger them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from torch import nn

from robustmer.attacks.apgd import APGD, APGDConfig
from robustmer.attacks.noise import NoiseConfig
from robustmer.evaluation.checks import (
    check_transfer,
    masking_checks,
    result_table,
    transfer_matrix,
    zero_gradient_fraction,
)
from robustmer.evaluation.curves import (
    area_tests,
    at_epsilons,
    curve_areas,
    holm,
    robustness_curves,
    run_metrics,
    worst_case,
)
from robustmer.names import EMOTIONS


class Linear(nn.Module):
    """Smooth: ``f(x) = W vec(x) + b`` (24 inputs, so any prediction is reachable)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(8, 24, generator=g) * 0.5)
        self.bias = nn.Parameter(torch.randn(8, generator=g) * 0.1 + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias  # [B, 8]


class Quantised(Linear):
    """The same model on its input rounded to steps of 0.25: the gradient is exactly zero."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.round(x * 4) / 4)


def _data(n: int = 6, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 4, 6, generator=g), 0.2 + 0.6 * torch.rand(n, 8, generator=g)


# ----------------------------------------------------------------------------- masking
def test_smooth_linear_model_passes_every_masking_check() -> None:
    x, y = _data()
    checks = masking_checks(Linear(), x, y, system="linear", epsilons=(0.03, 0.1, 0.3))
    assert {c.check for c in checks} == {"monotone", "noise", "unbounded", "zero_gradients"}
    assert len([c for c in checks if c.check == "noise"]) == 3
    assert [c for c in checks if c.verdict != "pass"] == []
    unbounded = next(c for c in checks if c.check == "unbounded")
    assert unbounded.numbers["clip_corr_adv"] < -0.99  # 24 inputs reach any prediction
    assert next(c for c in checks if c.check == "zero_gradients").numbers["zero_fraction"] == 0


def test_quantised_model_triggers_the_masking_warnings() -> None:
    x, y = _data()
    model = Quantised()
    assert zero_gradient_fraction(model, x, y) == 1.0
    checks = masking_checks(model, x, y, system="quantised", epsilons=(0.03, 0.1, 0.3))
    verdicts = {c.check: c.verdict for c in checks if c.check != "noise"}
    assert verdicts == {"monotone": "warn", "unbounded": "warn", "zero_gradients": "warn"}
    noise = [c for c in checks if c.check == "noise"]
    # noise crosses rounding steps while the attack cannot move at all
    assert [c.verdict for c in noise] == ["warn", "warn", "warn"]
    assert all(c.numbers["attack_delta_mae"] == 0 for c in noise)


def test_transfer_matrix_flags_the_masked_model() -> None:
    x, y = _data()
    models = {"smooth": Linear(), "masked": Quantised()}
    cfg = APGDConfig(epsilon=0.3, steps=20)
    examples = {name: APGD(m, cfg)(x, y).x_adv for name, m in models.items()}
    matrix = transfer_matrix(models, x, examples, y, batch_size=4)
    assert len(matrix) == 4 and matrix["white_box"].sum() == 2
    # the diagonal equals the white-box attack's own ΔMAE
    res = APGD(models["smooth"], cfg)(x, y)
    own = result_table(res, y, system="smooth", attack="apgd", epsilon=0.3)
    diag = matrix[(matrix["source"] == "smooth") & (matrix["target"] == "smooth")]
    assert float(diag["delta_mae"].iloc[0]) == pytest.approx(
        float((own["mae_adv"] - own["mae_clean"]).mean()), rel=1e-9)
    verdict = {c.system: c.verdict for c in check_transfer(matrix)}
    assert verdict == {"smooth": "pass", "masked": "warn"}


# ----------------------------------------------------------------------------- curves
def _table(rows: list[tuple[str, int, int, str, float, float, float]]) -> pd.DataFrame:
    """Per-clip rows (system, seed, clip, attack, eps, mae_clean, mae_adv); ratings fixed."""
    out = []
    for i, (system, seed, clip, attack, eps, clean, adv) in enumerate(rows):
        row = {"system": system, "seed": seed, "clip_id": clip, "attack": attack,
               "epsilon": eps, "mae_clean": clean, "mae_adv": adv, "snr_db": 20.0 + i}
        for j, e in enumerate(EMOTIONS):
            row[f"true_{e}"] = 0.1 * j + 0.01 * ((i * (j + 1)) % 7)
            row[f"clean_{e}"] = 0.1 * j + 0.01 * ((i + j) % 3)
            row[f"adv_{e}"] = 0.7 - 0.1 * j + 0.02 * ((i * j) % 5)
        out.append(row)
    return pd.DataFrame(out)


def test_curves_areas_and_tests_by_hand() -> None:
    rows = []
    deltas = {"A": [0.01, 0.03], "B": [0.02, 0.07]}  # ΔMAE at ε = 0.1, 0.3 (seed 0)
    for system, (d1, d3) in deltas.items():
        for seed, bump in ((0, 0.0), (1, 0.01), (2, 0.03)):
            for clip, c_off in ((0, 0.0), (1, 0.002 if system == "A" else 0.006)):
                rows.append((system, seed, clip, "apgd", 0.1, 0.1, 0.1 + d1 + bump + c_off))
                rows.append((system, seed, clip, "apgd", 0.3, 0.1, 0.1 + d3 + bump + c_off))
    clips = _table(rows)
    runs = run_metrics(clips)
    assert len(runs) == 2 * 3 * 2
    curves = robustness_curves(runs)
    a3 = curves[(curves["system"] == "A") & (curves["epsilon"] == 0.3)].iloc[0]
    per_seed = np.array([0.03, 0.04, 0.06]) + 0.001  # mean over the two clips
    half = stats.t.ppf(0.975, 2) * per_seed.std(ddof=1) / math.sqrt(3)
    assert a3["n_seeds"] == 3 and a3["delta_mae"] == pytest.approx(per_seed.mean())
    assert a3["delta_mae_lo"] == pytest.approx(per_seed.mean() - half)
    assert a3["delta_mae_hi"] == pytest.approx(per_seed.mean() + half)
    areas = curve_areas(clips)
    # trapezoids from (0, 0): 0.1 * d1 / 2 + 0.2 * (d1 + d3) / 2 for system A, seed 0, clip 0
    first = areas[(areas["system"] == "A") & (areas["seed"] == 0) & (areas["clip_id"] == 0)]
    assert float(first["auc"].iloc[0]) == pytest.approx(0.1 * 0.01 / 2 + 0.2 * 0.04 / 2)
    tests = area_tests(areas)
    assert len(tests) == 1 and tests["n"].iloc[0] == 6
    # A - B: the base curves differ by 0.1 * 0.01 / 2 + 0.2 * 0.05 / 2, clip 1 by another
    # (0.1 / 2 + 0.2) * (0.002 - 0.006), averaged over the two clips
    diff = -(0.1 * 0.01 / 2 + 0.2 * 0.05 / 2) + 0.25 * (0.002 - 0.006) / 2
    assert tests["mean_diff"].iloc[0] == pytest.approx(diff)
    assert tests["t_p_holm"].iloc[0] == pytest.approx(tests["t_p"].iloc[0])


def test_holm_by_hand() -> None:
    adj = holm([0.01, 0.04, math.nan, 0.03])
    np.testing.assert_allclose(adj, [0.03, 0.06, math.nan, 0.06])


def test_worst_case_takes_the_largest_delta_per_clip() -> None:
    clips = _table([
        ("A", 0, 0, "apgd", 0.1, 0.1, 0.15), ("A", 0, 0, "pgd", 0.1, 0.1, 0.18),
        ("A", 0, 1, "apgd", 0.1, 0.2, 0.30), ("A", 0, 1, "pgd", 0.1, 0.2, 0.25),
        ("A", 0, 0, "paper", math.nan, 0.1, 0.40), ("A", 0, 1, "paper", math.nan, 0.2, 0.21),
    ])
    per_clip, summary = worst_case(clips)
    bounded = per_clip[per_clip["epsilon"] == 0.1].set_index("clip_id")
    assert bounded.loc[0, "winner"] == "pgd" and bounded.loc[1, "winner"] == "apgd"
    assert bounded["delta_mae"].tolist() == pytest.approx([0.08, 0.10])
    assert (per_clip["n_attacks"] == 2).sum() == 2 and per_clip["epsilon"].isna().sum() == 2
    s = summary[summary["epsilon"] == 0.1].set_index("attack")
    assert s.loc["worst case", "delta_mae"] == pytest.approx(0.09)
    assert s.loc["apgd", "delta_mae"] == pytest.approx(0.075)
    assert s.loc["apgd", "wins"] == 1 and s.loc["pgd", "wins"] == 1
    unb = summary[summary["epsilon"].isna()].set_index("attack")
    assert unb.loc["worst case", "delta_mae"] == pytest.approx((0.3 + 0.01) / 2)


def test_at_epsilons_expands_only_bounded_attacks() -> None:
    class Unbounded:  # any settings object without a radius
        epsilon = None

        def key(self) -> str:
            return "unbounded"

    apgd, noise, free = APGDConfig(epsilon=0.1), NoiseConfig(epsilon=0.1), Unbounded()
    out = at_epsilons([free, apgd, noise], [0.03, 0.1, 0.03])
    assert out[0] is free
    assert [(c.name, c.epsilon) for c in out[1:]] == [
        ("apgd", 0.03), ("apgd", 0.1), ("noise", 0.03), ("noise", 0.1)]
    assert at_epsilons([apgd], []) == (apgd,)
