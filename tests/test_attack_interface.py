"""Adding an attack is one new module plus one registry line (docs/attacks.md).

The test defines a small attack (a settings dataclass and an :class:`Attack` subclass, what
one new file would hold), registers it in ``ATTACKS`` (the one line), and runs it through
``robustmer attack``, ``run_study`` and the report, checking the numbers against an
independent computation of the same one-step attack.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import prepare_tiny_cache, tiny_profile

from robustmer.attacks import (
    ATTACKS,
    Attack,
    AttackConfig,
    PaperConfig,
    model_outputs,
)
from robustmer.attacks.config import check_positive
from robustmer.names import EMOTIONS
from robustmer.records import AttackSummary, attack_dir


# ---------------------------------------------------------------- the new attack's "file"
@dataclasses.dataclass(frozen=True)
class SignStepConfig(AttackConfig):
    """One signed gradient step of size ``epsilon`` (FGSM on the emotion MSE)."""

    name: ClassVar[str] = "signstep"

    epsilon: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, "epsilon", self.epsilon)


class SignStep(Attack):
    """``x_adv = x + epsilon · sign(∂MSE/∂x)``."""

    config_class = SignStepConfig
    config: SignStepConfig

    def run(self, x, y, callback):
        start = time.perf_counter()
        d = torch.zeros_like(x, requires_grad=True)  # [B, 1, F, T]
        with torch.enable_grad():
            p, _ = model_outputs(self.model(x + d))  # [B, 8]
            loss = (p - y).pow(2).mean(dim=1).sum()
        (grad,) = torch.autograd.grad(loss, d)
        if callback is not None:
            callback(1, len(x), math.nan)
        delta = self.config.epsilon * grad.sign()  # [B, 1, F, T]
        x_adv = x + delta
        with torch.no_grad():
            clean, mid_clean = model_outputs(self.model(x))
            adv, mid_adv = model_outputs(self.model(x_adv))
        return self.result(
            x, delta, x_adv, start=start,
            pred_clean=clean, midlevel_clean=mid_clean, pred=adv, midlevel_adv=mid_adv,
            iterations=1, model_passes=3 * len(x),
        )


# ---------------------------------------------------------------- the test
def _cli(args: list[str]) -> int:
    from robustmer.cli import main

    with pytest.raises(SystemExit) as info:
        main(args)
    return int(info.value.code or 0)


def _expected_mae_adv(run_dir: Path, epsilon: float) -> np.ndarray:
    """Per-clip MAE after one signed step, computed here from the loaded model."""
    from robustmer.training import load_run

    run = load_run(run_dir, device="cpu")
    x, y, _, _ = run.cache.arrays("test")
    x = x.clone().requires_grad_(True)
    out = run.model(x)
    ((out.emotions - y) ** 2).mean(dim=1).sum().backward()
    with torch.no_grad():
        adv = run.model(x + epsilon * x.grad.sign()).emotions
    return (adv - y).abs().mean(dim=1).double().numpy()


def test_one_file_attack_runs_through_attack_study_and_report(tmp_path, monkeypatch):
    from robustmer.study import run_study

    monkeypatch.setitem(ATTACKS, "signstep", SignStep)  # the registry line

    cache = prepare_tiny_cache(tmp_path)
    profile = tiny_profile(
        systems=("A2M2E",), attacks=(PaperConfig(steps=3), SignStepConfig(epsilon=0.05))
    )
    study = tmp_path / "study"
    default_report = run_study(
        study, data=cache, profile=profile, device="cpu", jobs=1, progress=False
    )
    run_dir = study / "runs" / "A2M2E-seed6"

    # the study attacked the model with both attacks, each in its own directory
    sign = SignStepConfig(epsilon=0.05)
    sign_dir = attack_dir(run_dir, sign.key())
    summary = AttackSummary.read(sign_dir / "summary.json")
    assert summary.attack == {"attack": "signstep", "epsilon": 0.05} and summary.n_clips == 3
    clips = pd.read_parquet(sign_dir / "clips.parquet")
    np.testing.assert_allclose(clips["linf"], 0.05, rtol=1e-6)
    np.testing.assert_allclose(clips["mae_adv"], _expected_mae_adv(run_dir, 0.05), atol=1e-6)
    assert (attack_dir(run_dir, PaperConfig(steps=3).key()) / "summary.json").is_file()

    # the command line takes the new attack's fields as --set options
    code = _cli(
        ["attack", "--run", str(run_dir), "--attack", "signstep", "--set", "epsilon=0.1",
         "--device", "cpu"]  # fmt: skip
    )
    assert code == 0
    cli_clips = pd.read_parquet(attack_dir(run_dir, SignStepConfig(0.1).key()) / "clips.parquet")
    np.testing.assert_allclose(cli_clips["mae_adv"], _expected_mae_adv(run_dir, 0.1), atol=1e-6)
    assert _cli(["attack", "--run", str(run_dir), "--attack", "signstep", "--set", "steps=3"]) == 2

    # the report: the study's first attack by default, the new one on request, beside it
    assert default_report == study / "report"
    paper_summary = json.loads((default_report / "summary.json").read_text())
    assert paper_summary["attack"] == PaperConfig(steps=3).key()
    assert _cli(["report", str(study), "--attack", "signstep"]) == 0
    report = study / f"report-{sign.key()}"
    rep = json.loads((report / "summary.json").read_text())
    assert rep["attack"] == sign.key()
    assert rep["provenance"]["attack_settings"] == sign.to_dict()
    (row,) = rep["delta_mae"]
    expected = _expected_mae_adv(run_dir, 0.05).mean() - clips["mae_clean"].mean()
    assert row["delta_mae"] == pytest.approx(expected, abs=1e-6)
    assert row["delta_mae"] == pytest.approx(summary.delta_mae, abs=1e-12)
    table = pd.read_csv(report / "clips.csv")
    assert set(table["attack"]) == {"signstep"} and len(table) == 3
    assert [f"adv_{e}" for e in EMOTIONS] == [c for c in table.columns if c.startswith("adv_")][:8]
    # the paper report was not overwritten by the second one
    assert json.loads((default_report / "summary.json").read_text()) == paper_summary
