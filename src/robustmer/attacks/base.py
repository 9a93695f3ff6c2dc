"""The :class:`Attack` base class: input checks and model state handling for every attack.

An attack only needs a model: any ``torch.nn.Module`` whose forward on ``x [B, 1, F, T]``
returns either an object with ``.emotions [B, 8]`` and ``.midlevel [B, 7] | None`` (the
project's :class:`robustmer.models.MEROutput`) or a plain ``[B, 8]`` tensor (then there is no
mid-level output).
"""

from __future__ import annotations

import abc
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn

from robustmer.attacks.config import AttackConfig
from robustmer.attacks.domain import Domain, make_domain
from robustmer.attacks.goal import Goal, parse_target
from robustmer.attacks.result import AttackResult, MagnitudeScale, perturbation_norms
from robustmer.errors import RobustmerError
from robustmer.names import EMOTIONS

__all__ = [
    "PRECISIONS",
    "Attack",
    "ProgressCallback",
    "autocast",
    "fixed_shape",
    "float_floor",
    "model_outputs",
    "report_progress",
    "zero_gradient",
]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, float], None]
"""``callback(iteration, n_active, mean_r)``: called once per attack iteration with the
iteration number (from 1), the number of clips still being attacked and their mean Pearson
correlation between prediction and true ratings (NaN if undefined)."""


PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}
"""Autocast dtype per ``precision`` setting of the gradient attacks (``None``: plain float32)."""


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for a ``precision`` of :data:`PRECISIONS` (a no-op for ``fp32``).

    Model outputs computed inside are cast back to float32 by the attacks before any loss,
    correlation or update, so only the model's forward and backward passes run in bf16.
    """
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def fixed_shape(model: nn.Module) -> bool:
    """Whether ``model`` must see the same batch shape in every call of an attack.

    True for a model that stacks several runs (:class:`robustmer.attacks.stack.StackedModel`:
    rows belong to runs by position) or is compiled
    (:func:`robustmer.attacks.execution.prepare_model`: a new shape would recompile it). An
    attack that drops finished clips from its batch (the paper attack's early stopping) then
    keeps them in the batch and masks them out of every update instead; each clip's result
    is the same, up to float rounding.
    """
    return bool(getattr(model, "fixed_shape", False))


def model_outputs(out: object) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Split a model's output into ``(emotions [B, 8], midlevel [B, 7] or None)``.

    Parameters
    ----------
    out : object
        Either an object with ``.emotions`` (and optionally ``.midlevel``) or a tensor.
    """
    if isinstance(out, torch.Tensor):
        return out, None
    emotions = getattr(out, "emotions", None)
    if isinstance(emotions, torch.Tensor):
        return emotions, getattr(out, "midlevel", None)
    raise TypeError(
        f"model output of type {type(out).__name__}: expected a tensor [B, 8] or an object "
        "with .emotions [B, 8] and .midlevel [B, 7] | None"
    )


def float_outputs(out: object) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`model_outputs` as float32 ``(emotions [B, 8], midlevel [B, 7] | None)``, for
    outputs computed under bf16 autocast (a no-op on float32 outputs)."""
    p, mid = model_outputs(out)
    return p.float(), None if mid is None else mid.float()


def zero_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Which clips have an input gradient of the emotion MSE that is exactly zero.

    A gradient attack cannot move such a clip from its start (e.g. a label equal to the
    prediction, or a saturated model). The model is used as it is (call it in eval mode).

    Parameters
    ----------
    model : torch.nn.Module
    x : torch.Tensor, shape [B, 1, F, T]
    y : torch.Tensor, shape [B, 8]

    Returns
    -------
    torch.Tensor, bool, shape [B], on the CPU
    """
    d = torch.zeros_like(x, requires_grad=True)  # [B, 1, F, T]
    with torch.enable_grad():
        p, _ = model_outputs(model(x + d))  # [B, 8]
        loss = (p.float() - y.float()).pow(2).mean(dim=1).sum()  # per-clip MSE, summed
    (grad,) = torch.autograd.grad(loss, d)  # [B, 1, F, T]
    return (grad.reshape(grad.shape[0], -1) == 0).all(dim=1).cpu()  # [B]


def report_progress(
    callback: ProgressCallback | None, iteration: int, n_active: int, r: torch.Tensor
) -> None:
    """Call ``callback(iteration, n_active, mean_r)`` with the mean of the finite ``r [A]``."""
    if callback is None:
        return
    finite = r[~torch.isnan(r)]
    mean_r = float(finite.mean()) if finite.numel() else float("nan")
    callback(iteration, n_active, mean_r)


def float_floor(value: float, dtype: torch.dtype) -> float:
    """The largest number of ``dtype`` that is ``<= value`` (e.g. a radius ε in float32).

    Clamping a ``dtype`` tensor to ``±float_floor(ε)`` keeps ``|δ| ≤ ε`` exactly, where
    rounding ``ε`` to the nearest ``dtype`` number may round it up.
    """
    t = torch.tensor(value, dtype=dtype)
    if float(t) > value:
        t = torch.nextafter(t, torch.tensor(-math.inf, dtype=dtype))
    return float(t)


class Attack(abc.ABC):
    """Base class of the adversarial attacks (docs/paper.md §7).

    One subclass per attack, in its own module, with its settings in one frozen
    :class:`~robustmer.attacks.config.AttackConfig` subclass named by :attr:`config_class`;
    :data:`robustmer.attacks.ATTACKS` maps the attack's name to the class.

    Calling an attack checks the inputs, puts the model in eval mode (BatchNorm uses its
    running statistics, Dropout is off, so each clip's result is independent of its
    batch-mates), turns parameter gradients off, runs :meth:`run`, and afterwards restores
    each module's training flag and each parameter's ``requires_grad``, also when the
    attack raises.

    Parameters
    ----------
    model : torch.nn.Module
        The model under attack; see the module docstring for its output.
    config : AttackConfig
        The attack's settings, an instance of :attr:`config_class`.
    normalization : MagnitudeScale or None
        The cache's normalisation, for the SNR (:func:`robustmer.attacks.result.snr_db`);
        None gives NaN SNRs.
    """

    config_class: ClassVar[type[AttackConfig]] = AttackConfig

    def __init__(
        self,
        model: nn.Module,
        config: AttackConfig,
        *,
        normalization: MagnitudeScale | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: got {type(model).__name__}; expected a torch.nn.Module")
        if not isinstance(config, self.config_class):
            raise RobustmerError(
                f"attack {type(self).__name__}: settings of type {type(config).__name__}; "
                f"expected {self.config_class.__name__}"
            )
        self.model = model
        self.config = config
        self.normalization = normalization
        self.domain: Domain = make_domain(config.domain, config.snr_db)
        self.goal: Goal = parse_target(config.target)

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, *, callback: ProgressCallback | None = None
    ) -> AttackResult:
        """Attack a batch.

        Parameters
        ----------
        x : torch.Tensor, float, shape [B, 1, F, T] or [B, samples]
            Normalised log spectrograms (excerpts), or waveforms in [-1, 1] for an attack in
            the waveform domain (:mod:`robustmer.attacks.domain`), on the model's device.
        y : torch.Tensor, float, shape [B, 8]
            True emotion ratings on the training scale (ratings / 10).
        callback : ProgressCallback or None
            Optional ``callback(iteration, n_active, mean_r)`` for progress reports.

        Returns
        -------
        AttackResult
            Per-clip results (tensors on the CPU).

        Raises
        ------
        RobustmerError
            For an empty batch, wrong shapes or non-finite values in ``x`` or ``y``.
        """
        x, y = self._check_inputs(x, y)
        modes = [(module, module.training) for module in self.model.modules()]
        grads = [(p, p.requires_grad) for p in self.model.parameters()]
        try:
            self.model.eval()
            for p, _ in grads:
                p.requires_grad_(False)
            return self.run(x, y, callback)
        finally:
            for module, training in modes:
                module.training = training
            for p, flag in grads:
                p.requires_grad_(flag)

    @abc.abstractmethod
    def run(
        self, x: torch.Tensor, y: torch.Tensor, callback: ProgressCallback | None
    ) -> AttackResult:
        """Attack a checked batch; the model is in eval mode with gradients off."""

    def result(
        self,
        x: torch.Tensor,
        delta: torch.Tensor,
        x_adv: torch.Tensor,
        *,
        start: float,
        pred_clean: torch.Tensor,
        midlevel_clean: torch.Tensor | None,
        pred: torch.Tensor,
        midlevel_adv: torch.Tensor | None,
        iterations: int | torch.Tensor,
        model_passes: int,
        pred_of_x_adv: torch.Tensor | None = None,
        converged: torch.Tensor | None = None,
        threshold: torch.Tensor | None = None,
        loss: torch.Tensor | None = None,
    ) -> AttackResult:
        """The :class:`AttackResult` of a finished :meth:`run`, every tensor float32 on the CPU.

        Parameters
        ----------
        x : torch.Tensor, shape [B, 1, F, T] or [B, samples]
            The clean batch.
        delta : torch.Tensor, same shape as ``x``
            The returned perturbation; its norms are those of what the domain applies.
        x_adv : torch.Tensor
            The returned examples, ``self.domain.adversarial(x, delta)``.
        start : float
            ``time.perf_counter()`` when the attack began.
        pred_clean, pred : torch.Tensor, shape [B, 8]
            Clean and adversarial predictions (see :class:`AttackResult`).
        midlevel_clean, midlevel_adv : torch.Tensor, shape [B, 7], or None
            The bottleneck outputs that go with them.
        iterations : int or torch.Tensor, int64, shape [B]
            Per clip; an int is the same for every clip.
        model_passes : int
            Forward passes counted per clip.
        pred_of_x_adv : torch.Tensor, shape [B, 8], or None
            ``f(x_adv)``; None: ``pred`` is it.
        converged : torch.Tensor, bool, shape [B], or None
            None: no clip converged (attacks without a stopping rule).
        threshold : torch.Tensor, float64, shape [B], or None
            None: NaN (attacks without a correlation threshold).
        loss : torch.Tensor, shape [B], or None
            The attack's own objective per clip, if it reports one.
        """
        b = x.shape[0]
        if not isinstance(iterations, torch.Tensor):
            iterations = torch.full((b,), iterations, dtype=torch.int64)
        if converged is None:
            converged = torch.zeros(b, dtype=torch.bool)
        if threshold is None:
            threshold = torch.full((b,), math.nan, dtype=torch.float64)
        l2, linf = perturbation_norms(self.domain.applied(x, delta))  # [B], [B]
        return AttackResult(
            x_adv=x_adv.detach().float().cpu(),
            pred_clean=pred_clean.float().cpu(),
            pred=pred.float().cpu(),
            pred_of_x_adv=(pred if pred_of_x_adv is None else pred_of_x_adv).float().cpu(),
            iterations=iterations.cpu(),
            converged=converged.cpu(),
            threshold=threshold.cpu(),
            l2=l2.cpu(),
            linf=linf.cpu(),
            snr_db=self.domain.snr_db(x, x_adv, self.normalization),
            midlevel_clean=None if midlevel_clean is None else midlevel_clean.float().cpu(),
            midlevel_adv=None if midlevel_adv is None else midlevel_adv.float().cpu(),
            model_passes=model_passes,
            seconds=time.perf_counter() - start,
            loss=None if loss is None else loss.float().cpu(),
        )

    def _check_inputs(self, x: object, y: object) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise RobustmerError(
                f"attack input: got x={type(x).__name__}, y={type(y).__name__}; "
                "expected torch tensors"
            )
        self.domain.check(x)
        if x.shape[0] == 0:
            raise RobustmerError("attack input x: empty batch; expected at least one clip")
        n = len(EMOTIONS)
        if y.ndim != 2 or y.shape != (x.shape[0], n):
            raise RobustmerError(
                f"attack input y: shape {tuple(y.shape)}; expected [{x.shape[0]}, {n}] "
                "(one row of emotion ratings per clip of x)"
            )
        if not x.is_floating_point():
            raise RobustmerError(f"attack input x: dtype {x.dtype}; expected floating point")
        if not torch.isfinite(x).all():
            raise RobustmerError("attack input x: contains NaN or infinite values; expected finite")
        y = y.to(device=x.device, dtype=x.dtype)
        if not torch.isfinite(y).all():
            raise RobustmerError("attack input y: contains NaN or infinite values; expected finite")
        return x.detach(), y.detach()
