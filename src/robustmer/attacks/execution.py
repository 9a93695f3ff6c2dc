"""How an attack is computed, as opposed to what it computes: execution options.

An attack's *settings* (:class:`robustmer.attacks.AttackConfig`) decide its numbers and
name its storage key; ``precision="bf16"`` is a setting, since bf16 autocast changes the
numbers well beyond float rounding (thresholds, iterations and ΔMAE move). The options
here compute the same float32 mathematics in another way, so they change results only by
float rounding (operations summed or fused in another order), like the device or the torch
version, which are not part of the key either. They are therefore **not** settings: they do
not change the storage key, a finished attack is reused whatever options made it, and each
summary records the options it was computed with (``cost.execution``,
:class:`robustmer.records.Cost`).

:class:`Execution` fields:

``stack_runs``
    Attack the test clips of several runs of one architecture (e.g. the seeds of one
    system) in one batch through :class:`robustmer.attacks.stack.StackedModel`
    (``robustmer attack --stack-runs``, ``robustmer study --stack-runs``).
``compile``
    ``"none"`` (default, eager), ``"default"`` (:func:`torch.compile` of the model, or of
    the stacked model: the forward and backward of the fixed-shape attack step become
    fused kernels) or ``"cuda-graphs"`` (``torch.compile(mode="reduce-overhead")``: the
    step is also captured as a CUDA graph and replayed, removing the launch overhead;
    CUDA only). A compiled model needs one batch shape per attack call
    (:func:`robustmer.attacks.base.fixed_shape`); the first calls pay the compilation
    (about a minute per graph on a CPU).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from robustmer.attacks.config import check_choice
from robustmer.errors import RobustmerError

__all__ = ["COMPILE_MODES", "CompiledModel", "Execution", "prepare_model"]

COMPILE_MODES: dict[str, str | None] = {
    "none": None,
    "default": "default",
    "cuda-graphs": "reduce-overhead",
}
"""``compile`` option -> ``torch.compile`` mode (None: eager)."""


@dataclasses.dataclass(frozen=True)
class Execution:
    """Execution options of attacks (see the module docstring); defaults: eager, one run.

    Attributes
    ----------
    stack_runs : bool
        Attack several runs of one architecture in one batch.
    compile : str
        ``"none"``, ``"default"`` or ``"cuda-graphs"`` (:data:`COMPILE_MODES`).
    """

    name: ClassVar[str] = "execution"

    stack_runs: bool = False
    compile: str = "none"

    def __post_init__(self) -> None:
        if not isinstance(self.stack_runs, bool):
            raise RobustmerError(
                f"attack execution stack_runs {self.stack_runs!r}: expected true or false"
            )
        check_choice(self, "compile", self.compile, COMPILE_MODES)

    def to_dict(self) -> dict[str, Any]:
        """``{"stack_runs": ..., "compile": ...}`` (JSON-ready)."""
        return dataclasses.asdict(self)

    def label(self, runs: int = 1) -> str:
        """What a summary records, e.g. ``eager``, ``stacked x10`` or ``stacked x10, compiled
        (default)``."""
        parts = [f"stacked x{runs}"] if runs > 1 else []
        if self.compile != "none":
            parts.append(f"compiled ({self.compile})")
        return ", ".join(parts) or "eager"

    def check_device(self, device: torch.device) -> None:
        """Raise :class:`RobustmerError` for CUDA graphs on a device other than CUDA."""
        if self.compile == "cuda-graphs" and torch.device(device).type != "cuda":
            raise RobustmerError(
                f"attack execution compile 'cuda-graphs': needs a CUDA device, got {device}; "
                "expected --device cuda, or compile 'default' (or 'none') on this device"
            )


class CompiledModel(nn.Module):
    """A model run through :func:`torch.compile` (``mode``), with a fixed batch shape.

    The wrapped model stays a submodule (its modules and parameters are this module's, so
    an attack's eval mode and ``requires_grad`` handling reach it). With CUDA graphs
    (``mode="reduce-overhead"``) each call starts a new graph step and returns copies of
    the outputs, since a later replay overwrites the graph's output memory while an attack
    still holds the clean predictions.

    Parameters
    ----------
    model : torch.nn.Module
        A model returning a :class:`robustmer.models.MEROutput`-like object or a tensor.
    mode : str
        ``torch.compile`` mode (``"default"`` or ``"reduce-overhead"``).
    """

    fixed_shape = True

    def __init__(self, model: nn.Module, mode: str) -> None:
        super().__init__()
        self.model = model
        self.mode = mode
        compiled = torch.compile(model, mode=mode, dynamic=False)
        object.__setattr__(self, "_compiled", compiled)  # not a second submodule
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> Any:
        """The wrapped model's output for ``x [B, ...]``, computed by the compiled graph."""
        if self.mode != "reduce-overhead":
            return self._compiled(x)
        torch.compiler.cudagraph_mark_step_begin()
        out = self._compiled(x)
        if isinstance(out, torch.Tensor):
            return out.clone()
        return type(out)(*(None if t is None else t.clone() for t in out))


def prepare_model(model: nn.Module, execution: Execution, device: torch.device) -> nn.Module:
    """``model`` as ``execution`` computes it: itself (eager) or a :class:`CompiledModel`.

    Raises
    ------
    RobustmerError
        CUDA graphs on a device other than CUDA.
    """
    execution.check_device(device)
    mode = COMPILE_MODES[execution.compile]
    return model if mode is None else CompiledModel(model, mode)
