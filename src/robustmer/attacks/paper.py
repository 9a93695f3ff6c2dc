"""The untargeted attack of Hoedt, Flexer & Widmer (SMC 2025), docs/paper.md §7, batched.

Per clip: ``δ = 0``; each iteration predicts ``p = f(x + δ)`` and the Pearson correlation
``r`` between ``p`` and the clip's 8 true ratings. The first iteration sets the threshold
``τ = ceil(10·r)/10``. Whenever ``r ≤ τ`` the current ``δ`` becomes the best one and ``τ`` is
lowered by 0.1, unless ``τ < -0.9`` already, in which case the clip has converged and stops.
Otherwise (and also after lowering ``τ``) ``δ`` takes one Adam step (learning rate 0.002) on
the negated sign of ``∂MSE(p, y)/∂δ`` (gradient ascent). At most ``steps`` = 1000
iterations. The returned example is ``x + best δ``.

Python-float semantics of the reference code (CPJKU/robustness_mer_bottleneck,
``adversary/attacker.py``), kept exactly:

- ``τ`` is a float64 and 0.1 is subtracted in float64 each time, so it walks
  0.8, 0.7000000000000001, 0.6000000000000001, ... and the last value that is still
  ``≥ -0.9`` is lowered once more to about ``-1.0``: a clip converges only when its
  correlation reaches ``τ ≈ -1`` (in practice: almost never; most clips run 1000 iterations).
- The reference re-initialises ``τ`` whenever it is *falsy* (``if not τ``), i.e. not only on
  the first iteration but also whenever ``τ`` has become exactly ``0.0``, which happens for
  clips that start at ``τ = 0.1`` or ``0.2`` (0.2 - 0.1 - 0.1 == 0.0 in floating point). In
  that state ``τ`` is reset to ``ceil(10·r)/10`` of the current iteration. ``reference`` mode
  reproduces this (quirk (c) below); ``bounded`` mode initialises ``τ`` on the first iteration
  only.
- A correlation that is undefined (constant prediction; SciPy returns NaN) never counts as
  ``r ≤ τ``; where the reference would crash on ``ceil(NaN)`` at the first iteration, ``τ``
  stays unset (NaN) until the first defined correlation.

Settings: :class:`PaperConfig` (``mode``, ``steps``, ``step_size`` = Adam's learning rate,
``epsilon``, ``precision``, ``early_stop``). Modes (:data:`MODES`):

``reference``
    Reproduces the paper's code: (a) no effective clipping of δ (the intended clamp to
    ±0.001 was a no-op); (b) the logged prediction ``pred`` is the one of the *last*
    iteration's forward pass, not of the returned ``x + best δ``; (c) the ``τ == 0.0``
    re-initialisation above.
``bounded``
    The project's variant: δ is projected onto the L∞ ball of radius ``epsilon`` after every
    step, ``pred = f(x_adv)`` for the returned example, ``τ`` set once.

Batching: the whole batch is attacked at once. Every clip has its own Adam moments; since all
clips start together and a clip leaves the batch when it converges, the Adam step count is
the same for every clip still active. Converged clips are dropped from later forward passes.
The MSE is a per-clip mean over the 8 emotions (summed over clips), so a clip's gradient, and
with the model in eval mode its whole result, does not depend on its batch-mates. A model
that needs one batch shape throughout (:func:`robustmer.attacks.base.fixed_shape`: several
runs stacked, or a compiled model) keeps converged clips in the forward passes instead and
masks them out of every update, which gives each clip the same result up to float rounding.

Only ``precision="fp32"`` is promised to match the reference; ``"bf16"`` runs the forward
and backward passes under ``torch.autocast(dtype=torch.bfloat16)`` for speed.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import ClassVar

import torch

from robustmer.attacks.base import (
    PRECISIONS,
    Attack,
    ProgressCallback,
    autocast,
    fixed_shape,
    float_floor,
    float_outputs,
    model_outputs,
    report_progress,
)
from robustmer.attacks.config import AttackConfig, check_choice, check_int, check_positive
from robustmer.attacks.result import AttackResult, clip_pearson
from robustmer.errors import RobustmerError

__all__ = [
    "ADAM_BETAS",
    "ADAM_EPS",
    "MODES",
    "PRECISIONS",
    "PaperAttack",
    "PaperConfig",
    "PaperMode",
    "adam_step",
    "update_threshold",
]

logger = logging.getLogger(__name__)

ADAM_BETAS: tuple[float, float] = (0.9, 0.999)
"""``torch.optim.Adam`` defaults, used by the reference code."""

ADAM_EPS: float = 1e-8
"""``torch.optim.Adam`` default ``eps``."""

THRESHOLD_STEP: float = 0.1
"""The correlation threshold is lowered by this much each time it is reached."""

THRESHOLD_FLOOR: float = -0.9
"""The threshold is lowered only while ``τ ≥ -0.9``; reaching ``τ`` below that converges."""


@dataclasses.dataclass(frozen=True)
class PaperMode:
    """What distinguishes the paper attack's modes.

    Attributes
    ----------
    bounded : bool
        Project δ onto the L∞ ball of radius ``epsilon`` after each step (needs ``epsilon``).
    pred_from_last_pass : bool
        Report the last iteration's prediction as ``pred`` (quirk (b)) instead of ``f(x_adv)``.
    reinit_at_zero : bool
        Re-initialise ``τ`` whenever it is exactly 0.0 (quirk (c), ``if not τ``).
    """

    bounded: bool
    pred_from_last_pass: bool
    reinit_at_zero: bool


MODES: dict[str, PaperMode] = {
    "reference": PaperMode(bounded=False, pred_from_last_pass=True, reinit_at_zero=True),
    "bounded": PaperMode(bounded=True, pred_from_last_pass=False, reinit_at_zero=False),
}
"""Registry of the paper attack's modes."""

@dataclasses.dataclass(frozen=True)
class PaperConfig(AttackConfig):
    """Settings of the paper attack (defaults: the paper's).

    Attributes
    ----------
    mode : str
        ``"reference"`` (the paper's code, unbounded) or ``"bounded"`` (:data:`MODES`).
    steps : int
        Maximum iterations (forward passes) per clip (paper: 1000).
    step_size : float
        Adam learning rate on δ (paper: 0.002).
    epsilon : float or None
        L∞ radius for ``bounded`` mode (normalised-input units); must be None in
        ``reference`` mode.
    precision : str
        ``"fp32"`` (matches the reference) or ``"bf16"`` (autocast, faster on GPUs).
    early_stop : bool
        False keeps every clip in the loop for ``steps`` iterations even after it converged
        (for benchmarks: a fixed amount of work).
    """

    name: ClassVar[str] = "paper"

    mode: str = "reference"
    steps: int = 1000
    step_size: float = 0.002
    epsilon: float | None = None
    precision: str = "fp32"
    early_stop: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self, "mode", self.mode, MODES)
        check_int(self, "steps", self.steps, minimum=1)
        check_positive(self, "step_size", self.step_size)
        check_positive(self, "epsilon", self.epsilon, optional=True)
        check_choice(self, "precision", self.precision, PRECISIONS)
        if not isinstance(self.early_stop, bool):
            raise RobustmerError(
                f"attack 'paper' early_stop {self.early_stop!r}: invalid; expected true or false"
            )
        if MODES[self.mode].bounded and self.epsilon is None:
            raise RobustmerError(
                "attack 'paper' epsilon None: bounded mode needs a radius; expected a finite "
                "number > 0"
            )
        if self.target is not None:
            raise RobustmerError(
                f"attack 'paper' target {self.target!r}: the paper attack is untargeted (its "
                "schedule follows the correlation with the true ratings); expected no target, "
                "or attack pgd for a targeted attack"
            )
        if not MODES[self.mode].bounded and self.epsilon is not None:
            raise RobustmerError(
                f"attack 'paper' epsilon {self.epsilon!r}: reference mode is unbounded; "
                "expected no epsilon (or mode=bounded)"
            )


def update_threshold(
    r: torch.Tensor, tau: torch.Tensor, *, reinit_at_zero: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the paper attack's threshold schedule, for each clip (docs/paper.md §7).

    Parameters
    ----------
    r : torch.Tensor, float64, shape [B]
        Current correlation of each clip's prediction with its true ratings (NaN: undefined).
    tau : torch.Tensor, float64, shape [B]
        Current thresholds; NaN means "not set yet" (the first iteration).
    reinit_at_zero : bool
        Also (re-)initialise where ``tau == 0.0`` (the reference's ``if not τ``).

    Returns
    -------
    tau_new : torch.Tensor, float64, shape [B]
        Threshold for the next iteration: ``τ - 0.1`` (in float64) where the clip reached
        ``τ`` and ``τ ≥ -0.9``, else ``τ``.
    reached : torch.Tensor, bool, shape [B]
        ``r ≤ τ``: the current δ becomes the clip's best δ.
    converged : torch.Tensor, bool, shape [B]
        ``r ≤ τ`` with ``τ < -0.9``: the clip stops.
    """
    assert r.dtype == torch.float64 and tau.dtype == torch.float64, (r.dtype, tau.dtype)
    assert r.shape == tau.shape, (r.shape, tau.shape)
    unset = torch.isnan(tau)  # [B]
    if reinit_at_zero:
        unset = unset | (tau == 0.0)
    # ceil(10 r) / 10 as in Python (k / 10 is correctly rounded); + 0.0 turns -0.0 into 0.0
    initial = torch.ceil(r * 10.0) / 10.0 + 0.0  # [B]
    tau = torch.where(unset & ~torch.isnan(r), initial, tau)  # [B]
    reached = r <= tau  # [B]; False for NaN r or NaN tau
    can_lower = tau >= THRESHOLD_FLOOR  # [B]
    tau_new = torch.where(reached & can_lower, tau - THRESHOLD_STEP, tau)  # [B]
    converged = reached & ~can_lower  # [B]
    return tau_new, reached, converged


def adam_step(
    param: torch.Tensor,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    step: int,
    *,
    lr: float,
    betas: tuple[float, float] = ADAM_BETAS,
    eps: float = ADAM_EPS,
) -> None:
    """One Adam update, in place, with the exact operations of ``torch.optim.Adam``.

    Every element is independent, so a batch of perturbations ``[B, ...]`` gets per-clip
    Adam state as long as all clips share the step count ``step`` (Kingma & Ba, 2015;
    ``torch.optim.Adam`` with ``amsgrad=False``, ``weight_decay=0``).

    Parameters
    ----------
    param : torch.Tensor
        The tensor being optimised (here δ, ``[B, 1, F, T]``); updated in place.
    grad : torch.Tensor
        Its gradient, same shape.
    exp_avg, exp_avg_sq : torch.Tensor
        First and second moment estimates, same shape, zero before the first step; updated.
    step : int
        Number of this step, from 1.
    lr : float
        Learning rate.
    betas : tuple of float
        Moment decay rates.
    eps : float
        Added to the denominator.
    """
    assert step >= 1
    beta1, beta2 = betas
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = lr / bias_correction1
    denom = (exp_avg_sq.sqrt() / bias_correction2**0.5).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-step_size)


@dataclasses.dataclass
class _Track:
    """Per-clip state of the whole batch ``[B]`` (compacted state lives in the loop)."""

    best: torch.Tensor  # [B, 1, F, T] best δ per clip
    tau: torch.Tensor  # [B] float64 thresholds
    iterations: torch.Tensor  # [B] int64
    converged: torch.Tensor  # [B] bool
    pred_last: torch.Tensor  # [B, 8] prediction of the last forward pass
    mid_last: torch.Tensor | None  # [B, 7]

    @classmethod
    def start(cls, x: torch.Tensor, pred: torch.Tensor, mid: torch.Tensor | None) -> _Track:
        b, device = x.shape[0], x.device
        return cls(
            best=torch.zeros_like(x),
            tau=torch.full((b,), float("nan"), dtype=torch.float64, device=device),
            iterations=torch.zeros(b, dtype=torch.int64, device=device),
            converged=torch.zeros(b, dtype=torch.bool, device=device),
            pred_last=pred.clone(),
            mid_last=None if mid is None else mid.float().clone(),
        )


class PaperAttack(Attack):
    """The paper's untargeted attack (see the module docstring and docs/paper.md §7).

    Settings: :class:`PaperConfig`. The progress callback, if given to ``__call__``, is
    called after each iteration's forward pass.
    """

    config_class = PaperConfig
    config: PaperConfig

    def run(
        self, x: torch.Tensor, y: torch.Tensor, callback: ProgressCallback | None
    ) -> AttackResult:
        """Attack a checked batch ``x [B, 1, F, T]``, ``y [B, 8]``; see the class docs."""
        start = time.perf_counter()
        model, precision = self.model, self.config.precision
        b, device = x.shape[0], x.device
        with torch.no_grad(), autocast(device, precision):
            pred_clean, mid_clean = model_outputs(model(x))  # [B, 8], [B, 7] | None
        pred_clean = pred_clean.float()
        track = _Track.start(x, pred_clean, mid_clean)
        passes = b + self._iterate(x, y, track, callback)

        x_adv = self.domain.adversarial(x, track.best)  # [B, 1, F, T] or [B, samples]
        with torch.no_grad(), autocast(device, precision):
            pred_adv, mid_adv = float_outputs(model(x_adv))  # [B, 8], [B, 7] | None
        passes += b
        if MODES[self.config.mode].pred_from_last_pass:
            pred, mid_reported = track.pred_last, track.mid_last
        else:
            pred, mid_reported = pred_adv, mid_adv

        return self.result(
            x, track.best, x_adv, start=start,
            pred_clean=pred_clean, midlevel_clean=mid_clean,
            pred=pred, midlevel_adv=mid_reported, pred_of_x_adv=pred_adv,
            iterations=track.iterations, converged=track.converged, threshold=track.tau,
            model_passes=passes,
        )

    def _iterate(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        track: _Track,
        callback: ProgressCallback | None,
    ) -> int:
        """The attack's iterations, updating ``track``; returns the forward clip passes.

        Converged clips leave the compact state (``pos`` maps it to batch positions), or,
        for a :func:`fixed_shape` model, stay in it with ``active`` False.
        """
        config, model, mode = self.config, self.model, MODES[self.config.mode]
        compact = not fixed_shape(model)
        # clamp to the largest float of x's dtype not above ε, so |δ| ≤ ε holds exactly
        bound = None if config.epsilon is None else float_floor(config.epsilon, x.dtype)
        pos = torch.arange(x.shape[0], device=x.device)  # [A]
        active = torch.ones_like(pos, dtype=torch.bool)  # [A]
        xa, ya = x, y  # [A, 1, F, T], [A, 8]
        delta = torch.zeros_like(x)  # [A, 1, F, T]
        exp_avg = torch.zeros_like(x)  # [A, 1, F, T]
        exp_avg_sq = torch.zeros_like(x)  # [A, 1, F, T]
        tau_a = track.tau.clone()  # [A]
        passes = 0
        for it in range(1, config.steps + 1):
            last = it == config.steps  # the final step's δ would never be evaluated
            d = delta.detach().requires_grad_(not last)  # [A, 1, F, T]
            with torch.set_grad_enabled(not last), autocast(x.device, config.precision):
                p, mid = model_outputs(model(xa + d))  # [A, 8], [A, 7] | None
            p = p.float()
            passes += len(pos)

            r = clip_pearson(p, ya)  # [A] float64
            tau_new, reached, stop = update_threshold(r, tau_a, reinit_at_zero=mode.reinit_at_zero)
            tau_a = torch.where(active, tau_new, tau_a)  # [A]
            reached, stop = reached & active, stop & active  # [A], [A]
            if not config.early_stop:
                stop = torch.zeros_like(stop)
            mine = pos[active]  # [a] batch positions of the active clips
            track.best[pos[reached]] = delta[reached]
            track.pred_last[mine] = p.detach()[active]
            if track.mid_last is not None and mid is not None:
                track.mid_last[mine] = mid.detach().float()[active]
            track.iterations[mine] = it
            track.tau[pos] = tau_a
            track.converged[pos[stop]] = True
            report_progress(callback, it, len(mine), r[active])
            if last or bool((stop == active).all()):
                break

            loss = (p - ya).pow(2).mean(dim=1).sum()  # per-clip MSE, summed: [] scalar
            (grad,) = torch.autograd.grad(loss, d)  # [A, 1, F, T]
            if bool(stop.any()) and compact:
                keep = ~stop  # [A]
                pos, xa, ya, tau_a = pos[keep], xa[keep], ya[keep], tau_a[keep]
                delta, exp_avg, exp_avg_sq = delta[keep], exp_avg[keep], exp_avg_sq[keep]
                grad, active = grad[keep], active[keep]
            elif bool(stop.any()):  # fixed shape: the clip stays, frozen (its δ is unused)
                active = active & ~stop
            # every active clip has stepped in every earlier iteration: common step count
            adam_step(delta, -grad.sign(), exp_avg, exp_avg_sq, it, lr=config.step_size)
            if bound is not None:
                delta.clamp_(-bound, bound)
            delta = self.domain.constrain(xa, delta)  # waveform: SNR budget, [-1, 1]
        return passes
