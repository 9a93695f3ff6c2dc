"""The :class:`Attack` base class: input checks and model state handling for every attack.

An attack only needs a model: any ``torch.nn.Module`` whose forward on ``x [B, 1, F, T]``
returns either an object with ``.emotions [B, 8]`` and ``.midlevel [B, 7] | None`` (the
project's :class:`robustmer.models.MEROutput`) or a plain ``[B, 8]`` tensor (then there is no
mid-level output).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable

import torch
from torch import nn

from robustmer.attacks.result import AttackResult
from robustmer.errors import RobustmerError
from robustmer.names import EMOTIONS

__all__ = ["Attack", "ProgressCallback", "model_outputs"]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, float], None]
"""``callback(iteration, n_active, mean_r)``: called once per attack iteration with the
iteration number (from 1), the number of clips still being attacked and their mean Pearson
correlation between prediction and true ratings (NaN if undefined)."""


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


class Attack(abc.ABC):
    """Base class of the adversarial attacks (DESIGN.md §7).

    Calling an attack checks the inputs, puts the model in eval mode (BatchNorm uses its
    running statistics, Dropout is off, so each clip's result is independent of its
    batch-mates), turns parameter gradients off, runs :meth:`run`, and afterwards restores
    each module's training flag and each parameter's ``requires_grad``, also when the
    attack raises.

    Parameters
    ----------
    model : torch.nn.Module
        The model under attack; see the module docstring for its output.
    callback : ProgressCallback or None
        Optional ``callback(iteration, n_active, mean_r)`` for progress reports.
    """

    name: str = "attack"

    def __init__(self, model: nn.Module, *, callback: ProgressCallback | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: got {type(model).__name__}; expected a torch.nn.Module")
        self.model = model
        self.callback = callback

    def settings(self) -> dict[str, object]:
        """The attack's settings as a JSON-ready dict (logged with every result)."""
        return {"attack": self.name}

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> AttackResult:
        """Attack a batch.

        Parameters
        ----------
        x : torch.Tensor, float, shape [B, 1, F, T]
            Normalised log spectrograms (excerpts), on the model's device.
        y : torch.Tensor, float, shape [B, 8]
            True emotion ratings on the training scale (ratings / 10).

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
            return self.run(x, y)
        finally:
            for module, training in modes:
                module.training = training
            for p, flag in grads:
                p.requires_grad_(flag)

    @abc.abstractmethod
    def run(self, x: torch.Tensor, y: torch.Tensor) -> AttackResult:
        """Attack a checked batch; the model is in eval mode with gradients off."""

    def _report(self, iteration: int, n_active: int, r: torch.Tensor) -> None:
        if self.callback is None:
            return
        finite = r[~torch.isnan(r)]
        mean_r = float(finite.mean()) if finite.numel() else float("nan")
        self.callback(iteration, n_active, mean_r)

    @staticmethod
    def _check_inputs(x: object, y: object) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise RobustmerError(
                f"attack input: got x={type(x).__name__}, y={type(y).__name__}; "
                "expected torch tensors"
            )
        if x.ndim != 4 or x.shape[1] != 1:
            raise RobustmerError(
                f"attack input x: shape {tuple(x.shape)}; expected [B, 1, frames, bands]"
            )
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
