"""Tests of the attacks (docs/paper.md §7): the paper attack, PGD, their results and helpers.

References used: ``torch.optim.Adam`` (the Adam update), a literal per-clip re-implementation
of the paper's attack loop with ``torch.optim.Adam`` and ``scipy.stats.pearsonr`` (as in the
reference code), closed forms on a linear model, a scripted model whose per-iteration
correlation is chosen by the test, hand-computed SNR values and ART's PGD.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr
from torch import nn

from robustmer.attacks import (
    ATTACKS,
    PGD,
    AttackResult,
    PaperAttack,
    PaperConfig,
    PGDConfig,
    adam_step,
    attack_config,
    build_attack,
    clip_pearson,
    config_from_dict,
    snr_db,
    update_threshold,
)
from robustmer.errors import RobustmerError

LR = 0.002


def paper_attack(model, x, y, *, normalization=None, callback=None, **fields) -> AttackResult:
    """The paper attack with settings ``fields`` (:class:`PaperConfig`) on one batch."""
    attack = PaperAttack(model, PaperConfig(**fields), normalization=normalization)
    return attack(x, y, callback=callback)


def pgd(model, x, y, *, normalization=None, **fields) -> AttackResult:
    """PGD with settings ``fields`` (:class:`PGDConfig`) on one batch."""
    return PGD(model, PGDConfig(**fields), normalization=normalization)(x, y)


# ----------------------------------------------------------------------------- test models
class LinearModel(nn.Module):
    """``f(x) = W vec(x) + b``, a plain ``[B, 8]`` tensor output."""

    def __init__(self, shape: tuple[int, int], seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        d = shape[0] * shape[1]
        self.fc = nn.Linear(d, 8)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(8, d, generator=g) * 0.3)
            self.fc.bias.copy_(torch.randn(8, generator=g) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class Out:
    """A ``MEROutput``-like object."""

    def __init__(self, emotions: torch.Tensor, midlevel: torch.Tensor | None) -> None:
        self.emotions = emotions
        self.midlevel = midlevel


class SmallConvNet(nn.Module):
    """Conv + BatchNorm (non-trivial running statistics) + dropout + a 7-d bottleneck."""

    def __init__(self, seed: int = 0, bottleneck: bool = True) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.drop = nn.Dropout2d(0.3)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.fc1 = nn.Linear(8, 7)
        self.fc2 = nn.Linear(7, 8)
        self.bottleneck = bottleneck
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x: torch.Tensor) -> Out | torch.Tensor:
        h = self.drop(torch.relu(self.bn(self.conv(x))))
        h = torch.relu(self.conv2(h)).mean(dim=(2, 3))  # [B, 8]
        mid = self.fc1(h)  # [B, 7]
        emo = self.fc2(mid)  # [B, 8]
        return Out(emo, mid) if self.bottleneck else emo


def _y_exact() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ratings ``y = 0.5 + yc`` and a centred direction ``zc ⟂ yc`` of the same norm.

    ``Σ yc² = 0.25`` so the norms are exact and ``p = 0.5 - yc`` has correlation exactly -1.
    """
    yc = torch.tensor([0.25, -0.25, 0.25, -0.25, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    zc = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.25, -0.25, 0.25, -0.25], dtype=torch.float64)
    return 0.5 + yc, yc, zc


def _with_correlation(r: float) -> torch.Tensor:
    """A prediction ``[8]`` (float32) whose Pearson correlation with :func:`_y_exact` is ``r``."""
    _, yc, zc = _y_exact()
    return (0.5 + r * yc + math.sqrt(max(0.0, 1 - r * r)) * zc).float()


class ScriptedModel(nn.Module):
    """A model whose prediction at each attack iteration is chosen by the test.

    Clip ``c`` is the constant input ``10·c``. The loss gradient is positive everywhere, so
    each ascent step of the attack adds (almost exactly) ``lr`` to every element of δ; the
    model reads the number of steps taken, ``k = round(mean(δ) / lr)``, from its input and
    returns ``script[c, k]`` exactly, while its gradient stays informative.
    """

    def __init__(self, script: torch.Tensor, y: torch.Tensor, lr: float = LR) -> None:
        super().__init__()
        self.script = script  # [C, K, 8]
        self.y = y.float()  # [8]
        self.lr = lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.detach().double().mean(dim=(1, 2, 3))  # [A]
        clip = torch.round(m / 10).long()  # [A]
        k = torch.round((m - 10 * clip) / self.lr).long().clamp(0, self.script.shape[1] - 1)
        p = self.script[clip, k]  # [A, 8]
        zero = (x - x.detach()).flatten(1).mean(dim=1, keepdim=True)  # [A, 1], value 0
        return p + zero * (p - self.y)  # value p exactly; dMSE/dx > 0


def reference_schedule(rs: list[float], *, reinit_at_zero: bool) -> tuple[int, bool, float, int]:
    """The reference code's threshold loop in plain Python floats.

    Returns (iterations, converged, final τ, iteration whose δ is the best δ).
    """
    tau: float | None = None
    best, it, conv = 1, 0, False
    for it, r in enumerate(rs, start=1):
        if (not tau) if reinit_at_zero else (tau is None):
            tau = math.ceil(r * 10) / 10
        if r <= tau:
            best = it
            if tau >= -0.9:
                tau -= 0.1
            else:
                conv = True
                break
    assert tau is not None
    return it, conv, tau, best


def reference_attack(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, max_iters: int, lr: float = LR
) -> dict:
    """A literal per-clip loop like the paper's code (torch.optim.Adam, scipy pearsonr)."""
    model.eval()
    delta = torch.zeros_like(x, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    best = delta.detach().clone()
    tau, conv, iterations, pred = None, False, 0, None
    for it in range(1, max_iters + 1):
        iterations = it
        out = model(x + delta)
        pred = out.emotions if isinstance(out, Out) or hasattr(out, "emotions") else out
        r = pearsonr(
            y.squeeze().numpy().astype(np.float64),
            pred.detach().squeeze().numpy().astype(np.float64),
        )[0]
        if not tau:
            tau = math.ceil(r * 10) / 10
        if r <= tau:
            best = delta.detach().clone()
            if tau >= -0.9:
                tau -= 0.1
            else:
                conv = True
                break
        opt.zero_grad()
        loss = nn.functional.mse_loss(pred, y)
        loss.backward()
        delta.grad = -torch.sign(delta.grad)
        opt.step()
    return {
        "x_adv": x + best,
        "iterations": iterations,
        "converged": conv,
        "threshold": tau,
        "pred": pred.detach(),
    }


# ----------------------------------------------------------------------------- Adam
def test_adam_step_matches_torch_optim_adam() -> None:
    g = torch.Generator().manual_seed(1)
    p0 = torch.randn(2, 1, 5, 4, generator=g)
    grads = [torch.randn(2, 1, 5, 4, generator=g) for _ in range(25)]
    grads[3] = grads[3].sign()  # sign gradients as in the attack, zeros included
    grads[4] = torch.zeros_like(grads[4])

    ref = p0.clone().requires_grad_(True)
    opt = torch.optim.Adam([ref], lr=0.002)
    mine, m, v = p0.clone(), torch.zeros_like(p0), torch.zeros_like(p0)
    for step, grad in enumerate(grads, start=1):
        ref.grad = grad.clone()
        opt.step()
        adam_step(mine, grad, m, v, step, lr=0.002)
        torch.testing.assert_close(mine, ref.detach(), rtol=0, atol=1e-7)
    assert torch.equal(mine, ref.detach())  # identical operations: bit for bit


def test_first_step_closed_form_on_linear_model() -> None:
    """Step 1 moves every element by lr·sign(∂MSE/∂x)·|g|/(|g| + 1e-8), g = ±1."""
    shape = (6, 5)
    model = LinearModel(shape)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 1, *shape, generator=g)
    y = torch.rand(3, 8, generator=g)
    res = paper_attack(model, x, y, steps=2)
    w = model.fc.weight.detach().double()  # [8, D]
    b = model.fc.bias.detach().double()
    xf = x.flatten(1).double()  # [3, D]
    residual = xf @ w.T + b - y.double()  # [3, 8]
    grad = 2.0 / 8.0 * residual @ w  # [3, D], analytic ∂MSE/∂x per clip
    step = LR * grad.sign() * (1.0 / (1.0 + 1e-8))  # ascent: along +sign(grad)
    # reference mode reports the last (2nd) forward pass, i.e. f(x + δ₁)
    expected = (xf + step) @ w.T + b  # [3, 8]
    torch.testing.assert_close(res.pred.double(), expected, rtol=0, atol=2e-5)
    torch.testing.assert_close(res.pred_clean.double(), xf @ w.T + b, rtol=0, atol=1e-5)
    assert torch.all(res.iterations == 2)
    assert res.model_passes == 3 + 2 * 3 + 3  # clean + 2 iterations + final, per clip


# ----------------------------------------------------------------------------- threshold
def test_update_threshold_hand_computed_sequence() -> None:
    rs = [0.45, 0.41, 0.39, 0.30, 0.25]
    tau = torch.tensor([math.nan], dtype=torch.float64)
    got_tau, got_reached = [], []
    for r in rs:
        tau, reached, conv = update_threshold(torch.tensor([r], dtype=torch.float64), tau)
        got_tau.append(tau.item())
        got_reached.append(bool(reached))
        assert not bool(conv)
    # ceil(4.5)/10 = 0.5; then Python-float decrements: 0.4 - 0.1 = 0.30000000000000004,
    # so r = 0.30 still counts as reached
    assert got_reached == [True, False, True, True, False]
    assert got_tau == [0.4, 0.4, 0.30000000000000004, 0.20000000000000004, 0.20000000000000004]


def test_update_threshold_convergence_and_zero_quirk() -> None:
    f64 = torch.float64
    # converge: from -0.85, τ = -0.8 -> -0.9 -> -1.0; only r ≤ -1.0 stops
    tau = torch.tensor([math.nan], dtype=f64)
    seq = [
        (-0.85, True, False, -0.9),
        (-0.95, True, False, -1.0),
        (-0.99, False, False, -1.0),
        (-1.0, True, True, -1.0),
    ]
    for r, reached_exp, conv_exp, tau_exp in seq:
        tau, reached, conv = update_threshold(torch.tensor([r], dtype=f64), tau)
        assert (bool(reached), bool(conv), tau.item()) == (reached_exp, conv_exp, tau_exp)
    # τ = 0.2 - 0.1 - 0.1 == 0.0 exactly: the reference re-initialises it (if not τ)
    for reinit, expected in ((True, [True, True, True, True]), (False, [True, True, False, False])):
        tau = torch.tensor([math.nan], dtype=f64)
        reached_seq = []
        for r in (0.15, 0.05, 0.08, 0.5):
            tau, reached, _ = update_threshold(
                torch.tensor([r], dtype=f64), tau, reinit_at_zero=reinit
            )
            reached_seq.append(bool(reached))
        assert reached_seq == expected
    # NaN correlation: never reached, τ stays unset
    tau, reached, conv = update_threshold(
        torch.tensor([math.nan], dtype=f64), torch.tensor([math.nan], dtype=f64)
    )
    assert math.isnan(tau.item()) and not bool(reached) and not bool(conv)


def test_update_threshold_matches_python_reference_on_random_sequences() -> None:
    rng = np.random.default_rng(3)
    for reinit in (True, False):
        seqs = [
            np.cumsum(rng.normal(-0.04, 0.08, 60)).clip(-1, 1) + rng.uniform(-0.2, 0.9)
            for _ in range(40)
        ]
        seqs = [s.clip(-1.0, 1.0) for s in seqs]
        rs = torch.tensor(np.stack(seqs), dtype=torch.float64)  # [40, 60]
        tau = torch.full((40,), math.nan, dtype=torch.float64)
        done = torch.zeros(40, dtype=torch.bool)
        iters = torch.zeros(40, dtype=torch.int64)
        final_tau = torch.zeros(40, dtype=torch.float64)
        for it in range(60):
            tau, _, conv = update_threshold(rs[:, it], tau, reinit_at_zero=reinit)
            active = ~done
            iters[active] = it + 1
            final_tau[active] = tau[active]
            done |= conv
        for i, s in enumerate(seqs):
            it, conv, t, _ = reference_schedule(list(s), reinit_at_zero=reinit)
            assert (int(iters[i]), bool(done[i]), float(final_tau[i])) == (it, conv, t)


def _scripted(rows: list[list[float]]) -> tuple[ScriptedModel, torch.Tensor, torch.Tensor]:
    y, _, _ = _y_exact()
    script = torch.stack([torch.stack([_with_correlation(r) for r in row]) for row in rows])
    model = ScriptedModel(script, y)
    x = torch.stack([torch.full((1, 4, 3), 10.0 * c) for c in range(len(rows))])  # [C,1,4,3]
    return model, x, y.float().expand(len(rows), 8)


SCRIPT = [
    # clip 0 converges: reaches -1 exactly at iteration 5, then walks τ down to -1
    [0.45, 0.41, 0.35, 0.25] + [-1.0] * 16,
    # clip 1 never converges: best δ from iteration 3, last prediction from iteration 20
    [0.45, 0.41, 0.35, 0.38, 0.42] + [0.44] * 15,
    # clip 2: τ hits exactly 0.0 (0.2 - 0.1 - 0.1); the reference re-initialises it
    [0.15, 0.05, 0.08, 0.55, 0.47, 0.52] + [0.6] * 14,
]


@pytest.mark.parametrize("mode", ["reference", "bounded"])
def test_threshold_schedule_through_the_attack(mode: str) -> None:
    model, x, y = _scripted(SCRIPT)
    eps = None if mode == "reference" else 1.0  # large: the projection never binds
    seen: list[tuple[int, int]] = []
    res = paper_attack(
        model,
        x,
        y,
        steps=20,
        mode=mode,
        epsilon=eps,
        callback=lambda it, n, r: seen.append((it, n)),
    )
    reinit = mode == "reference"
    for c in range(len(SCRIPT)):
        preds = model.script[c]  # [K, 8]
        rs = [pearsonr(p.double().numpy(), y[c].double().numpy())[0] for p in preds]
        it, conv, tau, best = reference_schedule(rs, reinit_at_zero=reinit)
        assert int(res.iterations[c]) == it
        assert bool(res.converged[c]) == conv
        assert float(res.threshold[c]) == tau  # float64, bit for bit
        delta = res.x_adv[c] - x[c]
        torch.testing.assert_close(
            delta, torch.full_like(delta, LR * (best - 1)), rtol=0, atol=1e-5
        )
        assert torch.equal(res.pred_of_x_adv[c], preds[best - 1])
        expected_pred = preds[it - 1] if mode == "reference" else preds[best - 1]
        assert torch.equal(res.pred[c], expected_pred)
    # concrete expectations for this script
    assert res.converged.tolist() == [True, False, False]
    # τ: 0.5, 0.4, 0.3 (+4e-17), 0.2 (+4e-17) after iteration 4; r = -1 from iteration 5
    # lowers it to 0.1, 0.0 (+3e-17), -0.1, ..., -0.9 (iteration 15), -1.0 (16); stop at 17
    assert int(res.iterations[0]) == 17
    assert float(res.threshold[1]) == 0.30000000000000004
    # quirk (b): the reference logs the last forward pass, not f(x_adv)
    if mode == "reference":
        assert not torch.allclose(res.pred[1], res.pred_of_x_adv[1])
        # τ == 0.0 after iteration 2; re-initialised to 0.1 (r = 0.08) and to 0.6 (r = 0.55),
        # lowered to 0.5 and 0.4 (r = 0.47)
        assert float(res.threshold[2]) == 0.4
    else:
        assert float(res.threshold[2]) == 0.0
    # the converged clip left the batch: 3 active clips for 17 iterations, then 2
    assert seen[16] == (17, 3) and seen[17] == (18, 2) and len(seen) == 20
    assert res.model_passes == 3 + (17 * 3 + 3 * 2) + 3


# ----------------------------------------------------------------------------- equivalences
@pytest.mark.parametrize("bottleneck", [True, False])
def test_paper_attack_matches_literal_reference_loop(bottleneck: bool) -> None:
    model = SmallConvNet(seed=4, bottleneck=bottleneck)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 1, 12, 10, generator=g)
    y = torch.rand(3, 8, generator=g)
    lr = 0.05  # larger than the paper's 0.002 so that this tiny model's r drops in 40 steps
    res = paper_attack(model, x, y, steps=40, step_size=lr)
    for c in range(3):
        ref = reference_attack(model, x[c : c + 1], y[c : c + 1], max_iters=40, lr=lr)
        assert int(res.iterations[c]) == ref["iterations"]
        assert bool(res.converged[c]) == ref["converged"]
        assert float(res.threshold[c]) == ref["threshold"]
        torch.testing.assert_close(res.x_adv[c : c + 1], ref["x_adv"], rtol=0, atol=1e-6)
        torch.testing.assert_close(res.pred[c : c + 1], ref["pred"], rtol=1e-5, atol=1e-6)
    assert (res.l2 > 0).any(), "the attack should have moved some clip"
    assert (res.midlevel_adv is not None) == bottleneck


def test_batch_independence() -> None:
    model = SmallConvNet(seed=6)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(4, 1, 12, 10, generator=g)
    y = torch.rand(4, 8, generator=g)
    batched = paper_attack(model, x, y, steps=30, step_size=0.05)
    assert (batched.l2 > 0).any()
    for c in range(4):
        single = paper_attack(model, x[c : c + 1], y[c : c + 1], steps=30, step_size=0.05)
        assert int(single.iterations[0]) == int(batched.iterations[c])
        assert float(single.threshold[0]) == float(batched.threshold[c])
        torch.testing.assert_close(single.x_adv[0], batched.x_adv[c], rtol=0, atol=1e-6)
        torch.testing.assert_close(single.pred[0], batched.pred[c], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(
            single.midlevel_adv[0], batched.midlevel_adv[c], rtol=1e-5, atol=1e-6
        )


def test_real_architecture_small_width() -> None:
    models = pytest.importorskip("robustmer.models")
    g = torch.Generator().manual_seed(8)
    x = torch.randn(2, 1, 16, 149, generator=g)
    y = torch.rand(2, 8, generator=g)
    for arch, has_mid in (("a2b2e", True), ("a2e", False)):
        torch.manual_seed(0)
        model = models.build_model(arch, width=0.0625)
        res = paper_attack(model, x, y, steps=6)
        assert res.x_adv.shape == x.shape and res.pred.shape == (2, 8)
        assert (res.midlevel_clean is not None) == has_mid
        if has_mid:
            assert res.midlevel_clean.shape == (2, 7) and res.midlevel_adv.shape == (2, 7)
        ref = reference_attack(model, x[:1], y[:1], max_iters=6)
        assert int(res.iterations[0]) == ref["iterations"]
        torch.testing.assert_close(res.pred[:1], ref["pred"], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(res.x_adv[:1], ref["x_adv"], rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- modes, state
def test_bounded_mode_never_exceeds_epsilon() -> None:
    model = SmallConvNet(seed=4)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 1, 12, 10, generator=g)
    y = torch.rand(3, 8, generator=g)
    eps, lr = 0.5, 0.05  # about 10 Adam steps
    res = paper_attack(model, x, y, steps=40, step_size=lr, mode="bounded", epsilon=eps)
    assert float(res.linf.max()) <= eps
    assert float(res.linf.max()) > 0  # some clip's best δ moved
    assert float((res.x_adv - x).abs().max()) <= eps + 1e-6
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(res.pred, model(res.x_adv).emotions)  # pred = f(x_adv)
    assert torch.equal(res.pred, res.pred_of_x_adv)
    unbounded = paper_attack(model, x, y, steps=40, step_size=lr)
    assert float(unbounded.linf.max()) > eps  # the bound did bind


def test_model_state_restored_also_on_error() -> None:
    model = SmallConvNet(seed=11)
    model.train()
    model.conv.weight.requires_grad_(False)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    seen_modes = []
    model.register_forward_pre_hook(lambda m, a: seen_modes.append(m.training))
    x, y = torch.randn(2, 1, 12, 10), torch.rand(2, 8)
    paper_attack(model, x, y, steps=3)
    assert seen_modes and not any(seen_modes)  # eval during the attack
    assert model.training and model.bn.training
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())

    class Failing(SmallConvNet):
        calls = 0

        def forward(self, x: torch.Tensor) -> Out | torch.Tensor:
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("boom")
            return super().forward(x)

    failing = Failing(seed=12)
    failing.train()
    failing.bn.eval()  # mixed per-module modes are restored per module
    with pytest.raises(RuntimeError, match="boom"):
        paper_attack(failing, x, y, steps=5)
    assert failing.training and not failing.bn.training and failing.conv.training
    assert all(p.requires_grad for p in failing.parameters())


def test_input_and_setting_validation() -> None:
    model = SmallConvNet()
    x, y = torch.randn(2, 1, 12, 10), torch.rand(2, 8)
    bad_x = x.clone()
    bad_x[0, 0, 0, 0] = math.nan
    bad_y = y.clone()
    bad_y[1, 3] = math.nan
    cases = [
        (bad_x, y),
        (x, bad_y),
        (x[:0], y[:0]),
        (x[:, 0], y),
        (x, y[:, :7]),
        (x, y[:1]),
        (x.numpy(), y),
    ]
    for cx, cy in cases:
        with pytest.raises(RobustmerError):
            paper_attack(model, cx, cy, steps=2)
    for kwargs in (
        {"mode": "bounded"},
        {"mode": "bounded", "epsilon": 0.0},
        {"mode": "bounded", "epsilon": -1.0},
        {"epsilon": 0.1},
        {"mode": "nope"},
        {"steps": 0},
        {"steps": 2.5},
        {"step_size": -1.0},
        {"precision": "fp8"},
        {"early_stop": "no"},
    ):
        with pytest.raises(RobustmerError):
            PaperConfig(**kwargs)
    for kwargs in (
        {},
        {"epsilon": 0.0},
        {"epsilon": 0.1, "norm": "l1"},
        {"epsilon": 0.1, "steps": 0},
        {"epsilon": 0.1, "restarts": 0},
        {"epsilon": 0.1, "step_size": math.nan},
    ):
        with pytest.raises(RobustmerError):
            PGDConfig(**kwargs)
    with pytest.raises(RobustmerError, match="unknown"):
        attack_config("fgsm")
    with pytest.raises(RobustmerError, match="unknown setting"):
        attack_config("paper", iters=3)
    with pytest.raises(RobustmerError, match="expected PaperConfig"):
        PaperAttack(model, PGDConfig(epsilon=0.1))


def test_bf16_precision_runs_close_to_fp32() -> None:
    model = SmallConvNet(seed=13)
    g = torch.Generator().manual_seed(14)
    x, y = torch.randn(2, 1, 12, 10, generator=g), torch.rand(2, 8, generator=g)
    res16 = paper_attack(model, x, y, steps=5, precision="bf16")
    res32 = paper_attack(model, x, y, steps=5)
    assert res16.pred.dtype == torch.float32 and torch.isfinite(res16.pred).all()
    torch.testing.assert_close(res16.pred_clean, res32.pred_clean, rtol=0.05, atol=0.02)


# ----------------------------------------------------------------------------- helpers
def test_clip_pearson_matches_scipy() -> None:
    g = torch.Generator().manual_seed(15)
    p, y = torch.randn(5, 8, generator=g), torch.rand(5, 8, generator=g)
    r = clip_pearson(p, y)
    for i in range(5):
        assert r[i].item() == pytest.approx(
            pearsonr(p[i].double().numpy(), y[i].double().numpy())[0], abs=1e-12
        )
    assert math.isnan(clip_pearson(torch.ones(1, 8), y[:1]).item())


def test_snr_hand_computed() -> None:
    audio = pytest.importorskip("robustmer.audio")
    norm = audio.Normalization(mean=1.0, std=2.0)
    x = torch.tensor([[[[0.0, 0.5]]], [[[0.0, 0.5]]]])  # [2, 1, 1, 2]
    x_adv = torch.tensor([[[[0.1, 0.5]]], [[[0.0, 0.5]]]])
    # X = 10^(2x + 1) - 1 = [9, 99]; X' = [10^1.2 - 1, 99] = [14.848931924611133, 99]
    # SNR = 10 log10((81 + 9801) / 5.848931924611133²) = 24.60691716225895 dB; clip 2: inf
    snr = snr_db(x, x_adv, norm)
    assert snr[0].item() == pytest.approx(24.60691716225895, abs=1e-4)
    assert snr[1].item() == math.inf
    assert torch.isnan(snr_db(x, x_adv, None)).all()
    # through an attack: the result's SNR is that of its x_adv
    model = SmallConvNet(seed=16)
    xs, ys = torch.randn(2, 1, 12, 10) * 0.3, torch.rand(2, 8)
    res = pgd(model, xs, ys, epsilon=0.05, steps=3, normalization=norm)
    manual = []
    for c in range(2):
        mag = 10 ** (xs[c].double() * 2 + 1) - 1
        mag_adv = 10 ** (res.x_adv[c].double() * 2 + 1) - 1
        manual.append(10 * math.log10(float((mag**2).sum() / ((mag_adv - mag) ** 2).sum())))
    torch.testing.assert_close(
        res.snr_db, torch.tensor(manual, dtype=torch.float64), rtol=1e-6, atol=1e-6
    )


# ----------------------------------------------------------------------------- PGD
def test_pgd_l2_norm_bound_and_restarts() -> None:
    model = SmallConvNet(seed=17, bottleneck=False)
    g = torch.Generator().manual_seed(18)
    x, y = torch.randn(3, 1, 12, 10, generator=g), torch.rand(3, 8, generator=g)
    eps = 0.5
    res = pgd(model, x, y, norm="l2", epsilon=eps, steps=12, restarts=2, random_start=True)
    norms = (res.x_adv - x).flatten(1).norm(dim=1)
    assert float(res.l2.max()) <= eps * (1 + 1e-6)
    assert float(norms.max()) <= eps * (1 + 1e-5)
    torch.testing.assert_close(res.l2, torch.full((3,), eps), rtol=1e-4, atol=0)  # binding
    loss_adv = ((res.pred - y) ** 2).mean(1)
    loss_clean = ((res.pred_clean - y) ** 2).mean(1)
    assert torch.all(loss_adv > loss_clean)
    assert torch.all(res.iterations == 24) and not res.converged.any()
    assert torch.isnan(res.threshold).all()
    assert res.model_passes == 3 + 2 * (12 + 1) * 3
    # keeping the best restart: never worse than a single run with the same first start
    single = pgd(model, x, y, norm="l2", epsilon=eps, steps=12, random_start=True)
    assert torch.all(loss_adv >= ((single.pred - y) ** 2).mean(1) - 1e-7)


def test_attack_registry_and_configs() -> None:
    model = SmallConvNet()
    assert set(ATTACKS) == {"paper", "pgd", "apgd", "noise"}
    for name, attack_class in ATTACKS.items():
        assert attack_class.config_class.name == name
    paper = attack_config("paper", steps=3)
    assert paper == PaperConfig(steps=3) and isinstance(build_attack(paper, model), PaperAttack)
    a = build_attack(attack_config("pgd", norm="l2", epsilon=0.1, steps=4), model)
    assert isinstance(a, PGD) and a.config.norm == "l2"
    assert a.config.alpha == pytest.approx(2.5 * 0.1 / 4)  # the default step-size rule
    res = build_attack(paper, model)(torch.randn(1, 1, 12, 10), torch.rand(1, 8))
    assert isinstance(res, AttackResult) and len(res) == 1
    # JSON round trip, storage keys from the full settings, one name per idea
    for config in (paper, PGDConfig(epsilon=0.1, norm="l2", restarts=2, random_start=True)):
        assert config_from_dict(config.to_dict()) == config
        assert config.key().startswith(config.name + "-") and len(config.key()) == len(
            config.name
        ) + 11
    assert PaperConfig().key() != paper.key() and PaperConfig(steps=3).key() == paper.key()
    assert PGDConfig(epsilon=1).key() == PGDConfig(epsilon=1.0).key()  # 1 and 1.0: one key
    assert PaperConfig.parse(["steps=7", "mode=bounded", "epsilon=0.5"]) == PaperConfig(
        steps=7, mode="bounded", epsilon=0.5
    )
    assert PGDConfig.parse(["epsilon=0.1", "random_start=true", "step_size=none"]) == PGDConfig(
        epsilon=0.1, random_start=True
    )
    for bad, match in (
        (["iters=3"], "unknown setting 'iters'"),
        (["steps=three"], "expected int"),
        (["steps"], "expected key=value"),
        (["steps=1", "steps=2"], "given twice"),
    ):
        with pytest.raises(RobustmerError, match=match):
            PaperConfig.parse(bad)


def test_bounded_linf_attacks_stay_inside_epsilon_exactly() -> None:
    """ε = 0.3 rounds up in float32; the stored ‖δ‖∞ must still be ≤ ε (not float32(ε))."""
    model = SmallConvNet(seed=4)
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(3, 1, 12, 10, generator=g), torch.rand(3, 8, generator=g)
    eps = 0.3
    assert float(torch.tensor(eps, dtype=torch.float32)) > eps  # the rounding that bit
    for res in (
        paper_attack(model, x, y, steps=40, step_size=0.05, mode="bounded", epsilon=eps),
        pgd(model, x, y, epsilon=eps, steps=5),
    ):
        assert float(res.linf.max()) <= eps
        assert float(res.linf.max()) == pytest.approx(eps, rel=1e-6)  # the bound binds


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_matches_art(norm: str) -> None:
    """ART's ProjectedGradientDescentPyTorch with the same settings (no random init)."""
    pytest.importorskip("art")
    from art.attacks.evasion import ProjectedGradientDescentPyTorch
    from art.estimators.classification import PyTorchClassifier

    model = SmallConvNet(seed=19, bottleneck=False).eval()
    g = torch.Generator().manual_seed(20)
    x, y = torch.randn(4, 1, 12, 10, generator=g), torch.rand(4, 8, generator=g)
    eps, step, iters = (0.05, 0.01, 8) if norm == "linf" else (0.6, 0.15, 8)
    mine = pgd(model, x, y, norm=norm, epsilon=eps, step_size=step, steps=iters)

    # MSELoss (mean over the batch) only rescales the gradient, and both updates are scale
    # free (sign, or division by the per-clip L2 norm); float ratings pass through ART's
    # label checks unchanged (2-D, not reduced for MSELoss); no clip_values: no clipping.
    estimator = PyTorchClassifier(
        model=model,
        loss=nn.MSELoss(),
        input_shape=(1, 12, 10),
        nb_classes=8,
        device_type="cpu",
    )
    art_attack = ProjectedGradientDescentPyTorch(
        estimator,
        norm=np.inf if norm == "linf" else 2,
        eps=eps,
        eps_step=step,
        max_iter=iters,
        num_random_init=0,
        batch_size=4,
        verbose=False,
    )
    x_art = torch.from_numpy(art_attack.generate(x.numpy(), y.numpy()))
    with torch.no_grad():
        loss_art = ((model(x_art) - y) ** 2).mean(1)
    loss_mine = ((mine.pred - y) ** 2).mean(1)
    torch.testing.assert_close(loss_mine, loss_art, rtol=0, atol=1e-4)
    close = ((mine.x_adv - x_art).abs() <= 1e-5).float().mean()
    assert float(close) > 0.99
    torch.testing.assert_close(mine.x_adv, x_art, rtol=0, atol=2 * step)
