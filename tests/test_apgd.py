"""Tests of APGD and the uniform-noise baseline (robustmer.attacks.apgd, .noise).

References: closed forms of the worst-case MSE of a linear model (one output, L∞ and L2),
brute force over the vertices of the L∞ box (several outputs: the MSE is convex in δ, so its
maximum over the box is at a vertex), PGD with the same budget on the real architecture, and
scipy's Pearson correlation.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy.stats import pearsonr
from torch import nn

from robustmer.attacks.apgd import APGD, APGDConfig, checkpoints, negative_correlation
from robustmer.attacks.noise import Noise, NoiseConfig
from robustmer.attacks.pgd import PGD, PGDConfig
from robustmer.errors import RobustmerError


class Linear(nn.Module):
    """``f(x) = W vec(x) + b`` with ``W [8, d]``; ``rows`` outputs active, the rest constant."""

    def __init__(self, shape: tuple[int, int], rows: int = 8, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        d = shape[0] * shape[1]
        w = torch.randn(8, d, generator=g, dtype=torch.float64)
        w[rows:] = 0
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(torch.randn(8, generator=g, dtype=torch.float64) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias  # [B, 8]


def _data(b: int, shape: tuple[int, int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 1, *shape, generator=g, dtype=torch.float64)
    return x, torch.rand(b, 8, generator=g, dtype=torch.float64)


def _mse(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return (model(x) - y).pow(2).mean(dim=1)  # [B]


def test_checkpoints_follow_the_paper_schedule() -> None:
    # p: 0, .22, .41, .57, .70, .80, .87, .93, .99 (increments shrink by .03 down to .06)
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(10) == [3, 5, 6, 7, 8, 9, 10]
    assert checkpoints(1) == [1]


def test_linf_one_output_closed_form() -> None:
    """One active output: max of (r + w·δ)² over the box is at δ = ε·sign(r)·sign(w)."""
    model = Linear((3, 5), rows=1, seed=1)
    x, y = _data(4, (3, 5), seed=2)
    eps = 0.2
    res = APGD(model, APGDConfig(epsilon=eps, steps=20))(x, y)
    with torch.no_grad():
        r = model(x)[:, 0] - y[:, 0]  # [B]
    w = model.weight[0].detach().reshape(1, 1, 3, 5)
    best = x + eps * torch.sign(r).reshape(-1, 1, 1, 1) * torch.sign(w)
    expected = _mse(model, best, y)
    torch.testing.assert_close(res.loss.double(), expected, rtol=1e-3, atol=0)
    torch.testing.assert_close(_mse(model, res.x_adv.double(), y), expected, rtol=1e-3, atol=0)
    assert float((res.x_adv.double() - x).abs().max()) <= eps * (1 + 1e-6)


def test_l2_one_output_closed_form() -> None:
    """One active output under L2: δ = ε·sign(r)·w/‖w‖ (Cauchy-Schwarz)."""
    model = Linear((3, 5), rows=1, seed=3)
    x, y = _data(4, (3, 5), seed=4)
    eps = 0.5
    res = APGD(model, APGDConfig(norm="l2", epsilon=eps, steps=20))(x, y)
    with torch.no_grad():
        r = model(x)[:, 0] - y[:, 0]  # [B]
    w = model.weight[0].detach()
    delta = eps * torch.sign(r)[:, None] * (w / w.norm())[None, :]  # [B, 15]
    expected = _mse(model, x + delta.reshape(x.shape), y)
    torch.testing.assert_close(res.loss.double(), expected, rtol=1e-3, atol=0)
    assert float(res.l2.max()) <= eps * (1 + 1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_linf_several_outputs_brute_force_over_vertices(seed: int) -> None:
    """Eight outputs on a 2 x 3 input: the global maximum over all 64 vertices of the box.

    A convex function has several local maxima on a box (vertices where the gradient points
    outwards in every coordinate); a first-order ascent ends in one of them, so the global one
    needs restarts: with 8 the clips of this test all reach it (a single start leaves one clip
    at 96 % of it).
    """
    model = Linear((2, 3), rows=8, seed=5)
    x, y = _data(6, (2, 3), seed=6)
    eps = 0.3
    vertices = torch.tensor(list(itertools.product((-1.0, 1.0), repeat=6)), dtype=torch.float64)
    per_vertex = torch.stack(
        [_mse(model, x + eps * v.reshape(1, 1, 2, 3), y) for v in vertices], dim=1
    )  # [B, 64]
    expected = per_vertex.max(dim=1).values  # [B]
    res = APGD(model, APGDConfig(epsilon=eps, steps=50, restarts=8, seed=seed))(x, y)
    torch.testing.assert_close(res.loss.double(), expected, rtol=1e-3, atol=0)


def test_restarts_keep_the_per_clip_worst_case_and_are_deterministic() -> None:
    model = Linear((2, 3), rows=8, seed=7)
    x, y = _data(5, (2, 3), seed=8)
    one = APGD(model, APGDConfig(epsilon=0.3, steps=10))(x, y)
    many = APGD(model, APGDConfig(epsilon=0.3, steps=10, restarts=3, seed=4))(x, y)
    again = APGD(model, APGDConfig(epsilon=0.3, steps=10, restarts=3, seed=4))(x, y)
    assert torch.all(many.loss >= one.loss)
    torch.testing.assert_close(many.x_adv, again.x_adv, rtol=0, atol=0)
    assert torch.all(many.iterations == 30)


@pytest.mark.parametrize("loss", ["mse", "corr"])
def test_batch_independence(loss: str) -> None:
    """A clip's result does not depend on its batch-mates or its position (random restarts too)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 8)).double()
    x, y = _data(4, (3, 4), seed=9)
    cfg = APGDConfig(epsilon=0.2, steps=12, restarts=2, loss=loss)
    whole = APGD(model, cfg)(x, y)
    for i in range(4):
        part = APGD(model, cfg)(x[[i, (i + 1) % 4]], y[[i, (i + 1) % 4]])
        torch.testing.assert_close(part.x_adv[0], whole.x_adv[i], rtol=0, atol=1e-12)
        torch.testing.assert_close(part.loss[0], whole.loss[i], rtol=0, atol=1e-12)


def test_negative_correlation_matches_scipy_and_the_attack_lowers_it() -> None:
    g = torch.Generator().manual_seed(10)
    p, y = torch.randn(5, 8, generator=g, dtype=torch.float64), torch.rand(5, 8, generator=g)
    y = y.double()
    ref = torch.tensor([pearsonr(p[i].numpy(), y[i].numpy())[0] for i in range(5)])
    torch.testing.assert_close(-negative_correlation(p, y), ref, rtol=1e-9, atol=1e-9)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 8)).double()
    x, y = _data(6, (3, 4), seed=11)
    res = APGD(model, APGDConfig(epsilon=0.5, steps=30, loss="corr"))(x, y)
    r_clean = -negative_correlation(res.pred_clean.double(), y)
    r_adv = -negative_correlation(res.pred.double(), y)
    assert torch.all(r_adv < r_clean - 0.05)
    torch.testing.assert_close(res.loss.double(), -r_adv, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("eps", [0.05, 0.3])
def test_apgd_at_least_as_strong_as_pgd_on_the_real_architecture(eps: float) -> None:
    """Same budget (40 gradient steps, L∞), seeded model and data, ratings near the prediction.

    Tolerance: the mean MSE over the clips must be at least PGD's (no slack); single clips are
    not compared, both attacks being local searches (at 10 steps APGD's schedule is too short
    and PGD can win, see docs/robustness.md).
    """
    models = pytest.importorskip("robustmer.models")
    torch.manual_seed(0)
    model = models.build_model("a2e", width=0.125).eval()
    g = torch.Generator().manual_seed(12)
    x = torch.randn(4, 1, 32, 149, generator=g)
    with torch.no_grad():
        y = model(x).emotions + 0.1 * torch.randn(4, 8, generator=g)  # [4, 8]
    steps = 40
    res_apgd = APGD(model, APGDConfig(epsilon=eps, steps=steps))(x, y)
    res_pgd = PGD(model, PGDConfig(epsilon=eps, steps=steps))(x, y)
    loss_pgd = (res_pgd.pred - y).pow(2).mean(dim=1)
    assert float(res_apgd.loss.mean()) >= float(loss_pgd.mean())
    assert float(res_apgd.linf.max()) <= eps * (1 + 1e-6)


def test_noise_stays_in_the_ball_keeps_the_worst_draw_and_is_weaker_than_apgd() -> None:
    model = Linear((3, 5), rows=8, seed=13)
    x, y = _data(4, (3, 5), seed=14)
    for norm, eps in (("linf", 0.2), ("l2", 0.6)):
        one = Noise(model, NoiseConfig(norm=norm, epsilon=eps, seed=3))(x, y)
        many = Noise(model, NoiseConfig(norm=norm, epsilon=eps, restarts=8, seed=3))(x, y)
        bound = many.linf if norm == "linf" else many.l2
        assert float(bound.max()) <= eps * (1 + 1e-6)
        assert torch.all(many.loss >= one.loss)  # draw 0 is among the 8 draws
        torch.testing.assert_close(many.loss.double(), _mse(model, many.x_adv.double(), y))
        strong = APGD(model, APGDConfig(norm=norm, epsilon=eps, steps=20))(x, y)
        assert torch.all(strong.loss > many.loss)


def test_config_validation_and_round_trip() -> None:
    cfg = APGDConfig(norm="l2", epsilon=0.1, loss="corr")
    assert APGDConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.key().startswith("apgd-") and cfg.key() != cfg.replace(seed=1).key()
    assert NoiseConfig.from_dict(NoiseConfig(epsilon=0.1).to_dict()).restarts == 1
    for bad in ({"epsilon": 0.0}, {"epsilon": 0.1, "loss": "mae"}, {"epsilon": 0.1, "rho": 1.5},
                {"epsilon": 0.1, "norm": "l1"}, {"epsilon": 0.1, "steps": 0}):
        with pytest.raises(RobustmerError):
            APGDConfig(**bad)
    with pytest.raises(RobustmerError):
        APGDConfig()  # epsilon is required
    assert math.isclose(APGDConfig(epsilon=0.1).momentum, 0.75)
