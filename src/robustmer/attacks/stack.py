"""Several runs of one architecture as one model: attack their clips in one batch.

The study attacks every run (system x seed) on the same 36 test clips. On a GPU one run's
attack is launch-bound (small kernels, one Python iteration per step); attacking the clips
of R runs together in one batch of ``R · B`` clips does the same work in ``1/R`` of the
kernel launches. :class:`StackedModel` makes that possible without touching the attacks:
it holds the R runs' parameters stacked (:func:`torch.func.stack_module_state`) and maps a
batch ``x [R · B, ...]`` (rows ``r · B ... (r + 1) · B - 1`` belong to run ``r``) to
``[R · B, 8]`` by :func:`torch.func.vmap` over :func:`torch.func.functional_call` of the
shared architecture. Every attack then runs unchanged on ``R · B`` independent clips: its
losses are per clip (summed only for the backward pass), its step sizes, early stopping
and random starts are per clip (random starts are drawn from a hash of each clip's input,
:func:`robustmer.attacks.pgd.clip_generator`), so each clip's result equals the one of
attacking its run alone, up to float rounding (the stacked convolutions are grouped
convolutions, summed in another order). :func:`split_result` cuts the batched
:class:`AttackResult` back into one per run.

The models must be in eval mode (BatchNorm with running statistics, no Dropout), which
every attack sets anyway; a stacked model cannot be trained.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from robustmer.attacks.base import model_outputs
from robustmer.attacks.result import AttackResult
from robustmer.errors import RobustmerError
from robustmer.models import MEROutput

__all__ = ["StackedModel", "split_result", "stack_rows"]


def _signature(model: nn.Module) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    return [(k, tuple(v.shape), v.dtype) for k, v in model.state_dict().items()]


class StackedModel(nn.Module):
    """R models of the same architecture evaluated at once on ``[R · B, ...]`` inputs.

    Parameters
    ----------
    models : sequence of torch.nn.Module
        At least one model; all with the same parameter and buffer names, shapes and dtypes,
        on one device. Their parameters are copied (stacked); the models are not changed.

    Notes
    -----
    ``forward(x)`` takes ``x [R · B, ...]`` and returns a
    :class:`robustmer.models.MEROutput` ``(emotions [R · B, 8], midlevel [R · B, 7] |
    None)`` whatever the models return (a tensor: no midlevel); a batch whose size is not
    a multiple of R is a :class:`RobustmerError`. :attr:`fixed_shape` is True: an attack
    keeps finished clips in the batch (:func:`robustmer.attacks.base.fixed_shape`), since
    rows belong to runs by position.
    """

    fixed_shape = True

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        models = list(models)
        if not models:
            raise RobustmerError("stacked model: no models; expected at least one")
        first = _signature(models[0])
        if any(_signature(m) != first for m in models[1:]):
            raise RobustmerError(
                "stacked model: the runs' models differ in parameters or shapes; expected "
                "runs of one architecture and width (stack the runs of one system)"
            )
        was = [m.training for m in models]
        for m in models:
            m.eval()
        params, buffers = torch.func.stack_module_state(models)  # name -> [R, ...]
        for m, training in zip(models, was, strict=True):
            m.train(training)
        self.runs = len(models)
        self._names = {"param": list(params), "buffer": list(buffers)}
        for i, value in enumerate([*params.values(), *buffers.values()]):
            self.register_buffer(f"stacked_{i}", value.detach())
        # the architecture without weights (meta tensors): functional_call supplies them
        base = copy.deepcopy(models[0]).to("meta").eval()
        object.__setattr__(self, "_base", base)  # not a submodule: no meta parameters
        self.eval()

    def train(self, mode: bool = True) -> StackedModel:
        """Eval mode only; ``train(True)`` is a :class:`RobustmerError`."""
        if mode:
            raise RobustmerError("stacked model: cannot be trained; expected eval mode")
        return super().train(False)

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        values = [getattr(self, f"stacked_{i}") for i in range(len(self._buffers))]
        n = len(self._names["param"])
        return (
            dict(zip(self._names["param"], values[:n], strict=True)),
            dict(zip(self._names["buffer"], values[n:], strict=True)),
        )

    def forward(self, x: torch.Tensor) -> MEROutput:
        """``x [R · B, ...]`` -> ``MEROutput(emotions [R · B, 8], midlevel [R · B, 7] | None)``."""
        r = self.runs
        if x.shape[0] % r:
            raise RobustmerError(
                f"stacked model input: batch of {x.shape[0]} rows; expected a multiple of the "
                f"{r} stacked runs (rows r·B..(r+1)·B-1 belong to run r)"
            )
        params, buffers = self._state()
        base = self._base
        xs = x.reshape(r, x.shape[0] // r, *x.shape[1:])  # [R, B, ...]
        with_mid = [True]

        def one(p: dict, b: dict, xr: torch.Tensor) -> tuple[torch.Tensor, ...]:
            emotions, mid = model_outputs(torch.func.functional_call(base, (p, b), (xr,)))
            with_mid[0] = mid is not None
            return (emotions,) if mid is None else (emotions, mid)

        out = torch.func.vmap(one)(params, buffers, xs)  # ([R, B, 8], [R, B, 7]?)
        emotions = out[0].reshape(x.shape[0], -1)  # [R · B, 8]
        mid = out[1].reshape(x.shape[0], -1) if with_mid[0] else None  # [R · B, 7]
        return MEROutput(emotions, mid)


def stack_rows(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """The stacked batch of R runs' batches ``[B, ...]`` each: ``[R · B, ...]``."""
    sizes = {p.shape[0] for p in parts}
    if len(sizes) != 1:
        raise RobustmerError(
            f"stacked batch: the runs' batches have {sorted(sizes)} clips; expected the same "
            "number of clips for every run"
        )
    return torch.cat(list(parts))


def split_result(result: AttackResult, runs: int) -> list[AttackResult]:
    """Cut the result of attacking ``[R · B]`` stacked clips into R results of B clips.

    Per-clip fields are sliced by position; the batch's ``seconds`` and ``model_passes``
    are shared equally (each run's share of the batched work).
    """
    n = len(result)
    if n % runs:
        raise RobustmerError(f"stacked result: {n} clips; expected a multiple of {runs} runs")
    b = n // runs
    parts = []
    for r in range(runs):
        fields = {}
        for f in dataclasses.fields(result):
            value = getattr(result, f.name)
            if isinstance(value, torch.Tensor):
                value = value[r * b : (r + 1) * b]
            fields[f.name] = value
        fields["seconds"] = result.seconds / runs
        fields["model_passes"] = result.model_passes // runs
        parts.append(type(result)(**fields))
    return parts
