"""Auto-PGD (Croce & Hein, ICML 2020) for multi-output regression, L∞ or L2.

Maximises a per-clip loss ``L(f(x + δ), y)`` subject to ``‖δ‖ ≤ ε`` without a step-size to
tune. One run (Algorithm 1 of the paper), per clip, with ``N = steps``:

1. ``δ⁰`` = 0 on the first restart, uniform in the ball on later ones; step size ``η = 2ε``.
2. ``δ¹ = P(δ⁰ + η·s(∇L(δ⁰)))``, with ``s`` the sign (L∞) or the gradient divided by its L2
   norm (L2) and ``P`` the projection onto the ball.
3. For k = 1 … N−1: ``z = P(δᵏ + η·s(∇L(δᵏ)))``,
   ``δᵏ⁺¹ = P(δᵏ + α·(z − δᵏ) + (1 − α)·(δᵏ − δᵏ⁻¹))`` with ``α`` = ``momentum`` = 0.75.
4. Checkpoints ``wⱼ = ⌈pⱼ·N⌉`` with ``p₀ = 0, p₁ = 0.22,
   pⱼ₊₁ = pⱼ + max(pⱼ − pⱼ₋₁ − 0.03, 0.06)``. At a checkpoint the step size is halved and the
   iterate moved back to the best point found so far when (1) fewer than a fraction
   ``rho`` = 0.75 of the steps since the previous checkpoint increased the loss, or (2) the
   step size was not halved at the previous checkpoint and the best loss has not improved
   since.

Every clip carries its own step size, counters and best point; the shared iteration counter
only fixes where the checkpoints are. The loss is summed over clips before the backward pass,
so each clip's gradient and result are independent of its batch-mates. ``N`` steps cost ``N``
gradient evaluations and ``N + 1`` forward passes per restart, like :class:`PGD` with
``steps = N``. With several ``restarts`` each clip keeps the restart with the highest loss.

Losses (:data:`LOSSES`): ``"mse"``, the per-clip emotion MSE (untargeted ascent), and
``"corr"``, the negative Pearson correlation between a clip's 8 predicted and true ratings
(differentiable form: the cosine of the centred vectors), which drives the prediction
towards anti-correlation as the paper attack does.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn

from robustmer.attacks.base import (
    Attack,
    ProgressCallback,
    autocast,
    float_outputs,
    model_outputs,
    report_progress,
)
from robustmer.attacks.config import AttackConfig, check_choice, check_int, check_positive
from robustmer.attacks.pgd import NORMS, check_ball, check_precision, random_in_ball
from robustmer.attacks.result import AttackResult, clip_pearson, mse_per_clip
from robustmer.errors import RobustmerError

__all__ = ["APGD", "LOSSES", "APGDConfig", "apgd_run", "checkpoints", "negative_correlation"]

Report = Callable[[torch.Tensor], None]
"""``report(pred [B, 8])``: called after every forward pass of the attack loop."""


def negative_correlation(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-clip negative Pearson correlation of ``p`` and ``y [B, K]`` across K: ``[B]``.

    Differentiable everywhere (a tiny constant under the square roots); 0 for a constant row.
    """
    pc = p - p.mean(dim=1, keepdim=True)  # [B, K]
    yc = y - y.mean(dim=1, keepdim=True)  # [B, K]
    tiny = 1e-12
    norms = torch.sqrt(pc.pow(2).sum(dim=1) + tiny) * torch.sqrt(yc.pow(2).sum(dim=1) + tiny)
    return -(pc * yc).sum(dim=1) / norms  # [B]


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": mse_per_clip,
    "corr": negative_correlation,
}
"""Attack objectives ``(pred [B, 8], y [B, 8]) -> per-clip loss [B]``, maximised."""


@dataclasses.dataclass(frozen=True)
class APGDConfig(AttackConfig):
    """Settings of :class:`APGD` (see the module docstring).

    Attributes
    ----------
    norm : str
        ``"linf"`` or ``"l2"``.
    epsilon : float
        Radius of the ball (normalised-input units), > 0; required.
    steps : int
        Gradient steps per restart (N).
    restarts : int
        Runs per clip; the first starts at δ = 0, later ones uniformly in the ball.
    seed : int
        Seed of the random starts.
    loss : str
        ``"mse"`` or ``"corr"`` (:data:`LOSSES`).
    rho : float
        Fraction of successful steps below which the step size is halved, in (0, 1].
    momentum : float
        ``α``, the weight of the new step against the previous update, in (0, 1].
    precision : str
        ``"fp32"`` (default) or ``"bf16"`` (forward and backward passes under bf16 autocast;
        part of the storage key when not the default). Keyword-only.
    """

    name: ClassVar[str] = "apgd"

    norm: str = "linf"
    epsilon: float | None = None
    steps: int = 100
    restarts: int = 1
    seed: int = 0
    loss: str = "mse"
    rho: float = 0.75
    momentum: float = 0.75
    precision: str = dataclasses.field(default="fp32", kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ball(self)
        check_precision(self)
        check_int(self, "steps", self.steps, minimum=1)
        check_choice(self, "loss", self.loss, LOSSES)
        if self.target is not None:
            raise RobustmerError(
                f"attack 'apgd' target {self.target!r}: APGD here is untargeted; expected no "
                "target, or attack pgd for a targeted attack"
            )
        for field in ("rho", "momentum"):
            value = getattr(self, field)
            check_positive(self, field, value)
            if value > 1:
                raise RobustmerError(f"attack 'apgd' {field} {value!r}: invalid; expected <= 1")


def checkpoints(steps: int) -> list[int]:
    """The checkpoint iterations ``w₁ < w₂ < … ≤ steps`` of APGD (``w₀ = 0`` left out).

    ``wⱼ = ⌈pⱼ·steps⌉`` with ``p₀ = 0``, ``p₁ = 0.22``, ``pⱼ₊₁ = pⱼ + max(pⱼ − pⱼ₋₁ − 0.03,
    0.06)`` for ``pⱼ ≤ 1``; e.g. ``steps = 100`` gives 22, 41, 57, 70, 80, 87, 93, 99.
    """
    p = [0.0, 0.22]
    while True:
        nxt = p[-1] + max(p[-1] - p[-2] - 0.03, 0.06)
        if nxt > 1:
            break
        p.append(nxt)
    # round before ceil so that e.g. 0.57 * 100 = 57.00000000000001 gives 57
    return sorted({math.ceil(round(q * steps, 9)) for q in p[1:]} - {0})


def _evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    delta: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    need_grad: bool,
    precision: str = "fp32",
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Per-clip loss ``[B]``, its gradient w.r.t. δ ``[B, 1, F, T]`` (or None) and ``f(x + δ)``
    (float32; the model runs under autocast for ``precision`` ``"bf16"``)."""
    d = delta.detach().requires_grad_(need_grad)  # [B, 1, F, T]
    with torch.set_grad_enabled(need_grad):
        with autocast(x.device, precision):
            p, _ = model_outputs(model(x + d))  # [B, 8]
        p = p.float()
        loss = loss_fn(p, y)  # [B]
    grad = torch.autograd.grad(loss.sum(), d)[0] if need_grad else None
    return loss.detach(), grad, p.detach()


def _bcast(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.reshape((-1,) + (1,) * (like.ndim - 1))


def apgd_run(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    delta: torch.Tensor,
    config: APGDConfig,
    report: Report | None = None,
    constrain: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One APGD run from ``delta``; returns the best ``δ [B, 1, F, T]`` and its loss ``[B]``.

    The model must be in eval mode (the :class:`APGD` wrapper sees to it). ``constrain(x, δ)``
    is applied after every projection (the attack domain's extra budget, e.g. the waveform's
    SNR); None: the ε-ball alone.
    """
    ops, eps, alpha, n = NORMS[config.norm], config.epsilon, config.momentum, config.steps

    def project(d: torch.Tensor) -> torch.Tensor:
        d = ops.project(d, eps)
        return d if constrain is None else constrain(x, d)
    loss_fn, checks = LOSSES[config.loss], set(checkpoints(n))
    loss, grad, p = _evaluate(model, x, y, delta, loss_fn, True, config.precision)
    if report is not None:
        report(p)
    best, best_loss, best_grad = delta.clone(), loss.clone(), grad
    eta = torch.full_like(loss, 2 * eps).reshape((-1,) + (1,) * (x.ndim - 1))  # [B, 1, 1, 1]
    prev, delta = delta, project(delta + eta * ops.direction(grad))
    successes = torch.zeros_like(loss)  # [B], steps that raised the loss since the checkpoint
    reduced = torch.zeros_like(loss, dtype=torch.bool)  # [B], halved at the last checkpoint
    best_at_check, last_check = best_loss.clone(), 0
    for k in range(1, n + 1):
        new_loss, grad, p = _evaluate(model, x, y, delta, loss_fn, k < n, config.precision)
        if report is not None:
            report(p)
        successes += (new_loss > loss).to(successes.dtype)
        loss = new_loss
        better = loss > best_loss  # [B]
        best = torch.where(_bcast(better, x), delta, best)
        best_loss = torch.where(better, loss, best_loss)
        if k == n:
            break
        best_grad = torch.where(_bcast(better, x), grad, best_grad)
        if k in checks:
            halve = (successes < config.rho * (k - last_check)) | (
                ~reduced & (best_loss <= best_at_check)
            )  # [B]
            eta = torch.where(_bcast(halve, eta), eta / 2, eta)
            delta = torch.where(_bcast(halve, x), best, delta)
            grad = torch.where(_bcast(halve, x), best_grad, grad)
            loss = torch.where(halve, best_loss, loss)
            reduced, best_at_check, last_check = halve, best_loss.clone(), k
            successes.zero_()
        z = project(delta + eta * ops.direction(grad))  # [B, 1, F, T]
        step = alpha * (z - delta) + (1 - alpha) * (delta - prev)  # [B, 1, F, T]
        prev, delta = delta, project(delta + step)
    return best, best_loss


class APGD(Attack):
    """Auto-PGD on the emotion MSE or the negative correlation (see the module docstring).

    Settings: :class:`APGDConfig`. The progress callback, if given to ``__call__``, is called
    as ``callback(iteration, n_clips, mean_r)`` after every forward pass of the attack loop
    (iteration counted over all restarts).
    """

    config_class = APGDConfig
    config: APGDConfig

    def run(
        self, x: torch.Tensor, y: torch.Tensor, callback: ProgressCallback | None
    ) -> AttackResult:
        """Attack a checked batch ``x [B, 1, F, T]``, ``y [B, 8]``; see the class docs."""
        start = time.perf_counter()
        cfg, model, b = self.config, self.model, x.shape[0]
        calls = [0]

        def report(p: torch.Tensor) -> None:
            calls[0] += 1
            if callback is not None:
                report_progress(callback, calls[0], b, clip_pearson(p, y))

        with torch.no_grad(), autocast(x.device, cfg.precision):
            pred_clean, mid_clean = float_outputs(model(x))  # [B, 8], [B, 7] | None
        best_delta = torch.zeros_like(x)  # [B, 1, F, T]
        best_loss = torch.full((b,), -math.inf, device=x.device, dtype=x.dtype)  # [B]
        for restart in range(cfg.restarts):
            if restart == 0:
                delta = torch.zeros_like(x)  # [B, 1, F, T]
            else:
                delta = random_in_ball(x, cfg.norm, cfg.epsilon, cfg.seed, restart)
                delta = self.domain.constrain(x, delta)
            found, loss = apgd_run(model, x, y, delta, cfg, report, self.domain.constrain)
            better = loss > best_loss  # [B]
            best_loss = torch.where(better, loss, best_loss)
            best_delta = torch.where(_bcast(better, x), found, best_delta)
        x_adv = self.domain.adversarial(x, best_delta)  # [B, 1, F, T] or [B, samples]
        with torch.no_grad(), autocast(x.device, cfg.precision):
            pred, mid = float_outputs(model(x_adv))  # [B, 8], [B, 7] | None
        return self.result(
            x, best_delta, x_adv, start=start,
            pred_clean=pred_clean, midlevel_clean=mid_clean, pred=pred, midlevel_adv=mid,
            iterations=cfg.steps * cfg.restarts,
            model_passes=b * (2 + cfg.restarts * (cfg.steps + 1)),
            loss=LOSSES[cfg.loss](pred, y),
        )
