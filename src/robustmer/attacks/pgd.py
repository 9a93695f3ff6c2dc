"""Projected gradient descent (Madry et al., ICLR 2018) on the emotion MSE, L∞ or L2.

A standard bounded attack for comparison with the paper attack (docs/paper.md §7 extension):
maximise ``MSE(f(x + δ), y)`` (per-clip mean over the 8 emotions) subject to ``‖δ‖ ≤ ε``:

- L∞: ``δ ← clip(δ + α · sign(∇δ), -ε, ε)``;
- L2: ``δ ← Π(δ + α · ∇δ / ‖∇δ‖₂)`` with ``Π`` the rescaling onto the L2 ball of radius ε,
  norms per clip (a zero gradient gives a zero step).

Settings: :class:`PGDConfig`. ``α`` (``step_size``) defaults to ``2.5 · ε / steps`` (Madry
et al.). With ``random_start`` δ starts uniformly distributed in the ball (L∞: each element
uniform in [-ε, ε]; L2: uniform in the volume), drawn per clip from a CPU generator seeded
with ``seed``, the restart number and a hash of the clip (:func:`clip_generator`), so a
clip's start depends neither on the device nor on its batch-mates or position in the batch
(before 2026-11-22 one generator drew for the whole batch, so the starts depended on the
batch size). With several ``restarts``, each clip keeps the final
δ of the restart with the highest loss. This is the update of ART's
``ProjectedGradientDescentPyTorch`` (without random init, ``decay`` or
clip values), against which the tests check it.

With a ``target`` (:mod:`robustmer.attacks.goal`) the ascent is on the goal's objective (the
negated distance to the target) instead of the MSE, and each restart is judged by it. In
the waveform domain (:mod:`robustmer.attacks.domain`) ε is an amplitude, and every step is
followed by the domain's SNR projection and clipping to [-1, 1].
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from robustmer.attacks.base import (
    PRECISIONS,
    Attack,
    ProgressCallback,
    autocast,
    float_floor,
    float_outputs,
    report_progress,
)
from robustmer.attacks.config import AttackConfig, check_choice, check_int, check_positive
from robustmer.attacks.result import AttackResult, clip_pearson
from robustmer.errors import RobustmerError

__all__ = [
    "NORMS",
    "PGD",
    "PGDConfig",
    "PGDNorm",
    "check_ball",
    "check_precision",
    "clip_generator",
    "random_in_ball",
]


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    """Per-clip L2 norm of ``t [B, ...]``, shaped ``[B, 1, ..., 1]`` for broadcasting."""
    n = torch.linalg.vector_norm(t.reshape(t.shape[0], -1), dim=1)  # [B]
    return n.reshape((-1,) + (1,) * (t.ndim - 1))


def _linf_direction(grad: torch.Tensor) -> torch.Tensor:
    return grad.sign()


def _linf_project(delta: torch.Tensor, eps: float) -> torch.Tensor:
    bound = float_floor(eps, delta.dtype)  # |δ| ≤ ε exactly, not only up to rounding
    return delta.clamp(-bound, bound)


def _linf_random(shape: torch.Size, eps: float, gen: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * eps


def _l2_direction(grad: torch.Tensor) -> torch.Tensor:
    norm = _flat_norm(grad)  # [B, 1, 1, 1]
    return torch.where(norm > 0, grad / norm, torch.zeros_like(grad))


def _l2_project(delta: torch.Tensor, eps: float) -> torch.Tensor:
    norm = _flat_norm(delta)  # [B, 1, 1, 1]
    scale = torch.where(norm > eps, eps / norm, torch.ones_like(norm))
    return delta * scale


def _l2_random(shape: torch.Size, eps: float, gen: torch.Generator) -> torch.Tensor:
    direction = torch.randn(shape, generator=gen, dtype=torch.float64)  # [B, ...]
    direction = direction / _flat_norm(direction)
    dims = math.prod(shape[1:])
    radius = eps * torch.rand(shape[0], generator=gen, dtype=torch.float64) ** (1.0 / dims)
    return direction * radius.reshape((-1,) + (1,) * (len(shape) - 1))


@dataclasses.dataclass(frozen=True)
class PGDNorm:
    """The three operations that make PGD an L∞ or an L2 attack.

    Attributes
    ----------
    direction : callable
        ``grad [B, ...] -> step direction [B, ...]`` (unit size in the norm's dual sense).
    project : callable
        ``(delta [B, ...], eps) -> delta`` projected onto the ε-ball.
    random : callable
        ``(shape, eps, generator) -> float64 delta`` uniform in the ε-ball.
    """

    direction: Callable[[torch.Tensor], torch.Tensor]
    project: Callable[[torch.Tensor, float], torch.Tensor]
    random: Callable[[torch.Size, float, torch.Generator], torch.Tensor]


NORMS: dict[str, PGDNorm] = {
    "linf": PGDNorm(_linf_direction, _linf_project, _linf_random),
    "l2": PGDNorm(_l2_direction, _l2_project, _l2_random),
}
"""Registry of PGD threat models."""


def check_ball(config: Any) -> None:
    """Check the settings every ε-ball attack shares: ``norm``, ``epsilon``, ``restarts``, ``seed``.

    Raises :class:`RobustmerError` (via the ``check_*`` helpers) naming the attack and field.
    """
    check_choice(config, "norm", config.norm, NORMS)
    check_positive(config, "epsilon", config.epsilon)
    check_int(config, "restarts", config.restarts, minimum=1)
    check_int(config, "seed", config.seed, minimum=0)


def check_precision(config: Any) -> None:
    """Check a gradient attack's ``precision`` (:data:`robustmer.attacks.base.PRECISIONS`)."""
    check_choice(config, "precision", config.precision, PRECISIONS)


def clip_generator(x_clip: torch.Tensor, seed: int, stream: int) -> torch.Generator:
    """CPU generator for one clip's random draws.

    Seeded with SHA-256 of ``(seed, stream, the clip's float32 bytes)``, so the draws depend on
    the clip's content and not on its position in a batch or the device it lives on.

    Parameters
    ----------
    x_clip : torch.Tensor, shape [1, F, T]
        One clip's input.
    seed : int
        The attack's seed.
    stream : int
        Which draw (restart) of the attack this generator serves.
    """
    h = hashlib.sha256(f"{seed}:{stream}:".encode())
    h.update(x_clip.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return torch.Generator(device="cpu").manual_seed(int.from_bytes(h.digest()[:8], "little") >> 1)


def random_in_ball(
    x: torch.Tensor, norm: str, epsilon: float, seed: int, stream: int
) -> torch.Tensor:
    """Per-clip uniform draws from the ε-ball, ``[B, 1, F, T]`` like ``x`` (dtype, device).

    Each clip's draw comes from :func:`clip_generator`; float32 rounding is projected back
    into the ball.
    """
    ops = NORMS[norm]
    draws = [
        ops.random((1, *x.shape[1:]), epsilon, clip_generator(x[i], seed, stream))  # [1, 1, F, T]
        for i in range(x.shape[0])
    ]
    delta = torch.cat(draws).to(device=x.device, dtype=x.dtype)  # [B, 1, F, T]
    return ops.project(delta, epsilon)


@dataclasses.dataclass(frozen=True)
class PGDConfig(AttackConfig):
    """Settings of PGD.

    Attributes
    ----------
    norm : str
        ``"linf"`` or ``"l2"`` (:data:`NORMS`).
    epsilon : float
        Radius of the ball (normalised-input units), > 0; required.
    steps : int
        Gradient steps per restart.
    step_size : float or None
        Step α; None: ``2.5 · epsilon / steps``.
    restarts : int
        Independent runs; the one with the highest final loss is kept per clip.
    random_start : bool
        Start each run uniformly in the ball instead of at δ = 0.
    seed : int
        Seed of the random starts.
    precision : str
        ``"fp32"`` (default) or ``"bf16"``: the model's forward and backward passes under
        ``torch.autocast(dtype=torch.bfloat16)`` (faster on GPUs; changes the numbers, so
        it is part of the storage key when not the default). Keyword-only.
    """

    name: ClassVar[str] = "pgd"

    norm: str = "linf"
    epsilon: float | None = None
    steps: int = 40
    step_size: float | None = None
    restarts: int = 1
    random_start: bool = False
    seed: int = 0
    precision: str = dataclasses.field(default="fp32", kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ball(self)
        check_precision(self)
        check_int(self, "steps", self.steps, minimum=1)
        check_positive(self, "step_size", self.step_size, optional=True)
        if not isinstance(self.random_start, bool):
            raise RobustmerError(
                f"attack 'pgd' random_start {self.random_start!r}: invalid; expected true or "
                "false"
            )

    @property
    def alpha(self) -> float:
        """The step size used: ``step_size``, or ``2.5 · epsilon / steps`` when None."""
        assert self.epsilon is not None  # checked in __post_init__
        return 2.5 * self.epsilon / self.steps if self.step_size is None else self.step_size


class PGD(Attack):
    """Projected gradient ascent on the per-clip emotion MSE (see the module docstring).

    Settings: :class:`PGDConfig`. The progress callback, if given to ``__call__``, is
    called as ``callback(iteration, n_clips, mean_r)`` after each step's forward pass
    (iteration counted over all restarts).
    """

    config_class = PGDConfig
    config: PGDConfig

    def run(
        self, x: torch.Tensor, y: torch.Tensor, callback: ProgressCallback | None
    ) -> AttackResult:
        """Attack a checked batch ``x [B, 1, F, T]``, ``y [B, 8]``; see the class docs."""
        start = time.perf_counter()
        config = self.config
        model, norm, eps, alpha = self.model, NORMS[config.norm], config.epsilon, config.alpha
        assert eps is not None  # checked by PGDConfig
        b = x.shape[0]
        amp = config.precision

        with torch.no_grad(), autocast(x.device, amp):
            pred_clean, mid_clean = float_outputs(model(x))  # [B, 8], [B, 7] | None
        passes = b
        objective = self.goal.bind(pred_clean, mid_clean, y)  # (p, mid) -> [B] to maximise

        best_delta = torch.zeros_like(x)  # [B, 1, F, T]
        best_loss = torch.full((b,), -math.inf, device=x.device)  # [B]
        best_pred = pred_clean.clone()  # [B, 8]
        best_mid = None if mid_clean is None else mid_clean.clone()  # [B, 7]
        step = 0
        for restart in range(config.restarts):
            if config.random_start:
                delta = random_in_ball(x, config.norm, eps, config.seed, restart)  # [B, 1, F, T]
                delta = self.domain.constrain(x, delta)
            else:
                delta = torch.zeros_like(x)  # [B, 1, F, T]
            for _ in range(config.steps):
                step += 1
                d = delta.detach().requires_grad_(True)  # [B, 1, F, T]
                with torch.enable_grad():
                    with autocast(x.device, amp):
                        p, mid = float_outputs(model(x + d))  # [B, 8], [B, 7] | None
                    loss = objective(p, mid).sum()  # per-clip objective, summed
                (grad,) = torch.autograd.grad(loss, d)  # [B, 1, F, T]
                passes += b
                report_progress(callback, step, b, clip_pearson(p, y))
                delta = norm.project(delta + alpha * norm.direction(grad), eps)
                delta = self.domain.constrain(x, delta)  # e.g. the waveform's SNR budget
            with torch.no_grad(), autocast(x.device, amp):
                p, mid = float_outputs(model(x + delta))  # [B, 8], [B, 7] | None
            passes += b
            loss_c = objective(p, mid)  # [B]
            better = loss_c > best_loss  # [B]
            best_loss = torch.where(better, loss_c, best_loss)
            best_delta[better] = delta[better]
            best_pred[better] = p[better]
            if best_mid is not None and mid is not None:
                best_mid[better] = mid[better]

        x_adv = self.domain.adversarial(x, best_delta)  # [B, 1, F, T] or [B, samples]
        return self.result(
            x, best_delta, x_adv, start=start,
            pred_clean=pred_clean, midlevel_clean=mid_clean,
            pred=best_pred, midlevel_adv=best_mid,
            iterations=step, model_passes=passes,
        )

