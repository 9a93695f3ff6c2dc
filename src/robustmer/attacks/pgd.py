"""Projected gradient descent (Madry et al., ICLR 2018) on the emotion MSE, L∞ or L2.

A standard bounded attack for comparison with the paper attack (DESIGN.md §7 extension):
maximise ``MSE(f(x + δ), y)`` (per-clip mean over the 8 emotions) subject to ``‖δ‖ ≤ ε``:

- L∞: ``δ ← clip(δ + α · sign(∇δ), -ε, ε)``;
- L2: ``δ ← Π(δ + α · ∇δ / ‖∇δ‖₂)`` with ``Π`` the rescaling onto the L2 ball of radius ε,
  norms per clip (a zero gradient gives a zero step).

``α`` defaults to ``2.5 · ε / iters`` (Madry et al.). With ``random_start`` δ starts uniformly
distributed in the ball (L∞: each element uniform in [-ε, ε]; L2: uniform in the volume),
drawn from a CPU generator seeded with ``seed`` (deterministic across devices). With several
``restarts``, each clip keeps the final δ of the restart with the highest loss. This is the
update of ART's ``ProjectedGradientDescentPyTorch`` (without random init, ``decay`` or
clip values), against which the tests check it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import torch
from torch import nn

from robustmer.attacks.base import Attack, ProgressCallback, model_outputs
from robustmer.attacks.result import (
    AttackResult,
    MagnitudeScale,
    clip_pearson,
    perturbation_norms,
    snr_db,
)
from robustmer.errors import RobustmerError

__all__ = ["NORMS", "PGD", "PGDNorm", "pgd"]


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    """Per-clip L2 norm of ``t [B, ...]``, shaped ``[B, 1, ..., 1]`` for broadcasting."""
    n = torch.linalg.vector_norm(t.reshape(t.shape[0], -1), dim=1)  # [B]
    return n.reshape((-1,) + (1,) * (t.ndim - 1))


def _linf_direction(grad: torch.Tensor) -> torch.Tensor:
    return grad.sign()


def _linf_project(delta: torch.Tensor, eps: float) -> torch.Tensor:
    return delta.clamp(-eps, eps)


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


class PGD(Attack):
    """Projected gradient ascent on the per-clip emotion MSE (see the module docstring).

    Parameters
    ----------
    model : torch.nn.Module
        Model under attack.
    norm : str
        ``"linf"`` or ``"l2"`` (:data:`NORMS`).
    epsilon : float
        Radius of the ball (normalised-input units), > 0.
    step_size : float or None
        Step α; default ``2.5 · epsilon / iters``.
    iters : int
        Gradient steps per restart.
    restarts : int
        Independent runs; the one with the highest final loss is kept per clip.
    random_start : bool
        Start each run uniformly in the ball instead of at δ = 0.
    seed : int
        Seed of the random starts.
    normalization : MagnitudeScale or None
        For the SNR; None gives NaN SNRs.
    callback : ProgressCallback or None
        ``callback(iteration, n_clips, mean_r)`` after each step's forward pass
        (iteration counted over all restarts).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        norm: str = "linf",
        epsilon: float,
        step_size: float | None = None,
        iters: int = 40,
        restarts: int = 1,
        random_start: bool = False,
        seed: int = 0,
        normalization: MagnitudeScale | None = None,
        callback: ProgressCallback | None = None,
    ) -> None:
        super().__init__(model, callback=callback)
        if norm not in NORMS:
            raise RobustmerError(f"PGD norm {norm!r}: unknown; expected one of {list(NORMS)}")
        if epsilon is None or not (math.isfinite(epsilon) and epsilon > 0):
            raise RobustmerError(f"PGD epsilon {epsilon!r}: invalid; expected a finite number > 0")
        if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
            raise RobustmerError(f"PGD iters {iters!r}: invalid; expected an int >= 1")
        if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 1:
            raise RobustmerError(f"PGD restarts {restarts!r}: invalid; expected an int >= 1")
        if step_size is None:
            step_size = 2.5 * epsilon / iters
        if not (math.isfinite(step_size) and step_size > 0):
            raise RobustmerError(
                f"PGD step_size {step_size!r}: invalid; expected a finite number > 0"
            )
        self.name = f"pgd-{norm}"
        self.norm_name = norm
        self.norm = NORMS[norm]
        self.epsilon = float(epsilon)
        self.step_size = float(step_size)
        self.iters = iters
        self.restarts = restarts
        self.random_start = bool(random_start)
        self.seed = int(seed)
        self.normalization = normalization

    def settings(self) -> dict[str, object]:
        """``{"attack", "norm", "epsilon", "step_size", "iters", "restarts", ...}``."""
        return {
            "attack": self.name,
            "norm": self.norm_name,
            "epsilon": self.epsilon,
            "step_size": self.step_size,
            "iters": self.iters,
            "restarts": self.restarts,
            "random_start": self.random_start,
            "seed": self.seed,
        }

    def run(self, x: torch.Tensor, y: torch.Tensor) -> AttackResult:
        """Attack a checked batch ``x [B, 1, F, T]``, ``y [B, 8]``; see the class docs."""
        start = time.perf_counter()
        model, norm, eps = self.model, self.norm, self.epsilon
        b = x.shape[0]
        gen = torch.Generator(device="cpu").manual_seed(self.seed)

        with torch.no_grad():
            pred_clean, mid_clean = model_outputs(model(x))  # [B, 8], [B, 7] | None
        passes = b

        best_delta = torch.zeros_like(x)  # [B, 1, F, T]
        best_loss = torch.full((b,), -math.inf, device=x.device)  # [B]
        best_pred = pred_clean.clone()  # [B, 8]
        best_mid = None if mid_clean is None else mid_clean.clone()  # [B, 7]
        step = 0
        for _ in range(self.restarts):
            if self.random_start:
                delta = norm.random(x.shape, eps, gen).to(device=x.device, dtype=x.dtype)
                delta = norm.project(delta, eps)  # float32 rounding may step outside
            else:
                delta = torch.zeros_like(x)  # [B, 1, F, T]
            for _ in range(self.iters):
                step += 1
                d = delta.detach().requires_grad_(True)  # [B, 1, F, T]
                with torch.enable_grad():
                    p, _ = model_outputs(model(x + d))  # [B, 8]
                    loss = (p - y).pow(2).mean(dim=1).sum()  # per-clip MSE, summed
                (grad,) = torch.autograd.grad(loss, d)  # [B, 1, F, T]
                passes += b
                self._report(step, b, clip_pearson(p, y))
                delta = norm.project(delta + self.step_size * norm.direction(grad), eps)
            with torch.no_grad():
                p, mid = model_outputs(model(x + delta))  # [B, 8], [B, 7] | None
            passes += b
            loss_c = (p - y).pow(2).mean(dim=1)  # [B]
            better = loss_c > best_loss  # [B]
            best_loss = torch.where(better, loss_c, best_loss)
            best_delta[better] = delta[better]
            best_pred[better] = p[better]
            if best_mid is not None and mid is not None:
                best_mid[better] = mid[better]

        x_adv = x + best_delta  # [B, 1, F, T]
        l2, linf = perturbation_norms(best_delta)
        return AttackResult(
            x_adv=x_adv.detach().float().cpu(),
            pred_clean=pred_clean.float().cpu(),
            pred=best_pred.float().cpu(),
            pred_of_x_adv=best_pred.float().cpu(),
            iterations=torch.full((b,), step, dtype=torch.int64),
            converged=torch.zeros(b, dtype=torch.bool),
            threshold=torch.full((b,), math.nan, dtype=torch.float64),
            l2=l2.cpu(),
            linf=linf.cpu(),
            snr_db=snr_db(x, x_adv, self.normalization),
            midlevel_clean=None if mid_clean is None else mid_clean.float().cpu(),
            midlevel_adv=None if best_mid is None else best_mid.float().cpu(),
            model_passes=passes,
            seconds=time.perf_counter() - start,
        )


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str = "linf",
    epsilon: float,
    step_size: float | None = None,
    iters: int = 40,
    restarts: int = 1,
    random_start: bool = False,
    seed: int = 0,
    normalization: MagnitudeScale | None = None,
    callback: ProgressCallback | None = None,
) -> AttackResult:
    """Run PGD on a batch; see :class:`PGD`.

    Parameters
    ----------
    model : torch.nn.Module
        Model under attack.
    x : torch.Tensor, shape [B, 1, F, T]
        Normalised log spectrograms.
    y : torch.Tensor, shape [B, 8]
        True ratings / 10.
    norm, epsilon, step_size, iters, restarts, random_start, seed, normalization, callback
        See :class:`PGD`.

    Returns
    -------
    AttackResult
        ``pred == pred_of_x_adv``; ``threshold`` NaN; ``converged`` False.
    """
    attack = PGD(
        model,
        norm=norm,
        epsilon=epsilon,
        step_size=step_size,
        iters=iters,
        restarts=restarts,
        random_start=random_start,
        seed=seed,
        normalization=normalization,
        callback=callback,
    )
    return attack(x, y)
