"""Attack speed options: bf16 precision settings and execution options (torch.compile).

``precision`` is a setting (it changes the numbers, so it is part of the storage key when not
the default); :class:`robustmer.attacks.execution.Execution` options are not (they change
the numbers only by float rounding): compiled attacks equal eager ones within tolerance on
the CPU. CUDA graphs need CUDA and are refused elsewhere (they were not run here).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustmer.attacks import APGDConfig, PGDConfig, attack_config, build_attack
from robustmer.attacks.base import fixed_shape
from robustmer.attacks.execution import CompiledModel, Execution, prepare_model
from robustmer.attacks.stack import StackedModel, split_result, stack_rows
from robustmer.errors import RobustmerError
from robustmer.models import MEROutput, build_model

CPU = torch.device("cpu")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.*")  # inductor's


class Tiny(nn.Module):
    """Conv + BatchNorm + a bottleneck: small enough to compile in seconds."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.mid = nn.Linear(4, 7)
        self.out = nn.Linear(7, 8)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.3, 0.3)

    def forward(self, x: torch.Tensor) -> MEROutput:
        h = torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3))  # [B, 4]
        mid = self.mid(h)  # [B, 7]
        return MEROutput(torch.sigmoid(self.out(mid)), mid)


def _data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(n, 1, 8, 12, generator=g), 0.2 + 0.6 * torch.rand(n, 8, generator=g)


def test_precision_is_a_setting_in_the_key_only_when_not_default() -> None:
    for cls in (PGDConfig, APGDConfig):
        fp32, bf16 = cls(epsilon=0.1), cls(epsilon=0.1, precision="bf16")
        assert "precision" not in fp32.to_dict()  # the key of existing results is unchanged
        assert bf16.to_dict()["precision"] == "bf16" and fp32.key() != bf16.key()
        assert cls.from_dict(bf16.to_dict()) == bf16
        assert cls.parse(["epsilon=0.1", "precision=bf16"]) == bf16
        with pytest.raises(RobustmerError, match="precision 'fp16': unknown"):
            cls(epsilon=0.1, precision="fp16")


@pytest.mark.parametrize("name", ["pgd", "apgd"])
def test_bf16_runs_close_to_fp32(name: str) -> None:
    torch.manual_seed(0)
    model = build_model("a2m2e", width=0.125)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(3, 1, 16, 149, generator=g), 0.2 + 0.6 * torch.rand(3, 8, generator=g)
    r32 = build_attack(attack_config(name, epsilon=0.05, steps=3), model)(x, y)
    r16 = build_attack(attack_config(name, epsilon=0.05, steps=3, precision="bf16"), model)(x, y)
    assert r16.pred.dtype == torch.float32 and r16.midlevel_adv.dtype == torch.float32
    assert float((r16.pred_clean - r32.pred_clean).abs().max()) < 0.05  # bf16 rounding
    assert float((r16.pred - r32.pred).abs().max()) < 0.05
    assert float(r16.linf.max()) <= 0.05


def test_execution_options_and_guards() -> None:
    assert Execution().label() == "eager" and Execution().label(3) == "stacked x3"
    assert Execution(compile="default").label(2) == "stacked x2, compiled (default)"
    assert Execution(stack_runs=True).to_dict() == {"stack_runs": True, "compile": "none"}
    with pytest.raises(RobustmerError, match="compile 'fast': unknown"):
        Execution(compile="fast")
    with pytest.raises(RobustmerError, match="needs a CUDA device"):
        prepare_model(Tiny(0), Execution(compile="cuda-graphs"), CPU)
    model = Tiny(0)
    assert prepare_model(model, Execution(), CPU) is model
    compiled = prepare_model(model, Execution(compile="default"), CPU)
    assert isinstance(compiled, CompiledModel) and fixed_shape(compiled)
    assert list(compiled.parameters()) == list(model.parameters())  # one set of weights


@pytest.mark.slow
def test_compiled_stacked_attack_equals_eager_one_run_at_a_time() -> None:
    """torch.compile (inductor, CPU) of two stacked runs: the paper attack and PGD give each
    clip the numbers of the eager attack on its run alone, within float tolerance."""
    models = [Tiny(1), Tiny(2)]
    xs, ys = zip(*(_data(3) for _ in models), strict=True)
    xs = [x + r for r, x in enumerate(xs)]
    compiled = prepare_model(StackedModel(models), Execution(compile="default"), CPU)
    for config in (
        attack_config("paper", steps=4, step_size=0.05),
        attack_config("pgd", epsilon=0.1, steps=3, random_start=True),
    ):
        together = build_attack(config, compiled)(stack_rows(xs), stack_rows(ys))
        for m, x, y, part in zip(models, xs, ys, split_result(together, 2), strict=True):
            alone = build_attack(config, m)(x, y)
            assert torch.equal(alone.iterations, part.iterations)
            for field in ("pred_clean", "pred", "x_adv", "midlevel_adv"):
                torch.testing.assert_close(
                    getattr(part, field), getattr(alone, field), rtol=1e-4, atol=1e-5
                )
