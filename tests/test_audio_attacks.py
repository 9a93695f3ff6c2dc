"""Waveform-domain, targeted and concept-targeted attacks: budgets with known answers, NaN
safety on silence, targets reached, and ``robustmer attack --domain waveform --save-audio``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from audio_helpers import train_audio_run
from torch import nn

from robustmer.attacks import ATTACKS, attack_config, build_attack
from robustmer.attacks.projection import waveform_snr_db
from robustmer.errors import RobustmerError
from robustmer.evaluation.audio import clip_audio
from robustmer.models import MEROutput, WaveformModel
from robustmer.names import EMOTIONS, MIDLEVEL_FEATURES

WAVEFORM_SETTINGS: dict[str, dict[str, object]] = {
    "paper": {"steps": 6},
    "pgd": {"epsilon": 0.05, "steps": 6},
    "apgd": {"epsilon": 0.05, "steps": 6},
    "noise": {"epsilon": 0.05},
}
"""Settings per registered attack for the waveform tests (every attack must be listed)."""


@pytest.fixture(scope="module")
def audio_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The conftest fixture's run, trained 2 epochs."""
    return train_audio_run(tmp_path_factory.mktemp("audio_attacks"), epochs=2)


def _batch(run, n: int = 4) -> tuple[WaveformModel, torch.Tensor, torch.Tensor]:
    model = WaveformModel.from_run(run)
    ids = run.cache.ids[:n]
    wave, _ = clip_audio(run.cache, ids, model.samples)
    y = torch.from_numpy(run.cache.emotions[:n])
    return model, torch.from_numpy(wave), y


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_attack_runs_in_the_waveform_domain(audio_run, name: str) -> None:
    assert set(WAVEFORM_SETTINGS) == set(ATTACKS), "list every registered attack above"
    model, x, y = _batch(audio_run)
    config = attack_config(name, domain="waveform", snr_db=30.0, **WAVEFORM_SETTINGS[name])
    result = build_attack(config, model)(x, y)
    assert result.x_adv.shape == x.shape
    assert float(result.x_adv.abs().max()) <= 1.0
    snr = waveform_snr_db(x, result.x_adv)
    np.testing.assert_allclose(result.snr_db.numpy(), snr.numpy())
    assert (snr >= 30.0 - 1e-3).all() and (snr < 60).all()  # moved, within the budget
    with torch.no_grad():
        out = model(result.x_adv)
    torch.testing.assert_close(out.emotions, result.pred_of_x_adv)
    assert float((result.pred_of_x_adv - result.pred_clean).abs().max()) > 1e-4


def test_snr_projection_binds_exactly(audio_run) -> None:
    model, x, y = _batch(audio_run)
    x = 0.5 * x  # half scale: clipping to [-1, 1] never binds, the SNR ball alone does
    config = attack_config(
        "pgd", norm="l2", epsilon=100.0, steps=4, domain="waveform", snr_db=30.0
    )
    result = build_attack(config, model)(x, y)
    # the L2 ball is far larger than the SNR ball, so the SNR projection binds
    np.testing.assert_allclose(result.snr_db.numpy(), 30.0, atol=0.01)
    energy = x.double().pow(2).sum(dim=1)
    np.testing.assert_allclose(result.l2.double() ** 2, energy * 1e-3, rtol=5e-3)


def test_amplitude_budget_and_full_scale(audio_run) -> None:
    model, x, y = _batch(audio_run)
    config = attack_config("pgd", epsilon=0.004, steps=5, domain="waveform")
    result = build_attack(config, model)(x, y)
    assert float(result.linf.max()) <= 0.004 + 1e-7
    assert float(result.x_adv.abs().max()) <= 1.0
    assert float(x.abs().max()) == 1.0  # decoded audio is peak-normalised: clipping binds


def test_silence_with_a_short_tone_is_nan_safe(audio_run) -> None:
    model = WaveformModel.from_run(audio_run)
    x = torch.zeros(2, model.samples)
    n = torch.arange(600)
    x[0, 5000:5600] = 0.8 * torch.sin(2 * math.pi * 440 * n / 22050)  # a short tone
    y = torch.tensor([[0.2, 0.7, 0.4, 0.3, 0.6, 0.5, 0.8, 0.1]]).repeat(2, 1)
    for name in sorted(ATTACKS):
        config = attack_config(name, domain="waveform", snr_db=20.0, **WAVEFORM_SETTINGS[name])
        result = build_attack(config, model)(x, y)
        for field in ("x_adv", "pred_clean", "pred", "pred_of_x_adv", "l2", "linf"):
            assert torch.isfinite(getattr(result, field)).all(), (name, field)
        assert math.isfinite(float(result.snr_db[0])) and float(result.snr_db[0]) >= 20 - 1e-3
        assert torch.equal(result.x_adv[1], x[1])  # silence has no energy: nothing allowed


class _Linear(nn.Module):
    """emotions = A · mean over frames of x + b, A with orthonormal rows: a linear model."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        q, _ = torch.linalg.qr(torch.randn(149, 8, generator=gen))  # [149, 8] orthonormal
        self.weight = nn.Parameter(q.T.contiguous())
        self.bias = nn.Parameter(torch.full((8,), 0.5))

    def forward(self, x: torch.Tensor) -> MEROutput:
        return MEROutput(x.mean(dim=(1, 2)) @ self.weight.T + self.bias, None)


def test_targeted_attack_reaches_the_target_on_a_linear_model() -> None:
    from robustmer.evaluation.targets import target_table

    model = _Linear()
    x = torch.randn(3, 1, 20, 149, generator=torch.Generator().manual_seed(1))
    y = torch.full((3, 8), 0.5)
    config = attack_config(
        "pgd", norm="l2", epsilon=1000.0, steps=1000, step_size=0.005, target="sad"
    )
    result = build_attack(config, model)(x, y)
    clips = pd.DataFrame({"clip_id": [1, 2, 3]})
    for name, values in (("clean", result.pred_clean), ("adv", result.pred)):
        for j, e in enumerate(EMOTIONS):
            clips[f"{name}_{e}"] = values[:, j].double().numpy()
    table = target_table(clips, "sad")
    assert (table.distance_clean > 2.0).all()
    assert (table.distance_adv < 0.02).all() and (table.corr_adv > 0.9999).all()
    with pytest.raises(RobustmerError, match="untargeted"):
        attack_config("paper", target="sad")


def test_concept_target_spec_in_standard_deviations(audio_run) -> None:
    from robustmer.evaluation.concepts import concept_shift_target, concept_std

    target = concept_shift_target(audio_run, {"dissonance": 2.0, "minorness": -1.0})
    std = concept_std(audio_run) * 10  # rating points
    assert target == f"dissonance={2 * std[4]:+.6g},minorness={-std[6]:+.6g}"
    with pytest.raises(RobustmerError, match="unknown"):
        concept_shift_target(audio_run, {"loudness": 1.0})


def test_concept_target_reached_on_a_bottleneck_model() -> None:
    from robustmer.evaluation.targets import target_table
    from robustmer.models import build_model

    torch.manual_seed(0)
    model = build_model("a2m2e", width=0.0625).eval()  # small and untrained: not saturated
    x = torch.randn(4, 1, 16, 149, generator=torch.Generator().manual_seed(0))
    y, ids = torch.full((4, 8), 0.5), [1, 2, 3, 4]
    target = "dissonance=+2"
    config = attack_config("pgd", epsilon=1.0, steps=100, step_size=0.01, target=target)
    result = build_attack(config, model)(x, y)
    clips = pd.DataFrame({"clip_id": ids})
    for name, values in (("clean_mid", result.midlevel_clean), ("adv_mid", result.midlevel_adv)):
        for j, f in enumerate(MIDLEVEL_FEATURES):
            clips[f"{name}_{f}"] = values[:, j].double().numpy()
    table = target_table(clips, target)
    # within 10 % of the shift (fixed-size sign steps end oscillating around the target)
    assert (table.target_shift == 2.0).all() and (table.remaining.abs() < 0.2).all(), table
    # the emotions followed through the linear head: Δe = W · Δm exactly
    delta_mid = (result.midlevel_adv - result.midlevel_clean).double()  # [4, 7]
    expected = delta_mid @ model.fc2.weight.detach().double().T  # [4, 8]
    change = (result.pred - result.pred_clean).double()  # [4, 8]
    torch.testing.assert_close(change, expected, atol=1e-5, rtol=0)
    assert float(expected.abs().max()) > 0.01


def _cli(args: list[str]) -> int:
    from robustmer.cli import main

    with pytest.raises(SystemExit) as info:
        main(args)
    return int(info.value.code or 0)


def test_cli_waveform_attack_saves_audio(audio_run_dir: Path, tmp_path: Path, capsys) -> None:
    listen = tmp_path / "listen"
    args = ["attack", "--run", str(audio_run_dir), "--attack", "pgd", "--set", "epsilon=0.02"]
    args += ["--set", "steps=4", "--domain", "waveform", "--snr-db", "30"]
    args += ["--save-audio", str(listen), "--split", "train", "--device", "cpu"]
    assert _cli(args) == 0
    printed = capsys.readouterr().out
    assert "MAE" in printed
    sidecars = sorted(listen.glob("*.json"))
    from robustmer.training import load_run

    run = load_run(audio_run_dir)
    assert [int(p.stem) for p in sidecars] == sorted(run.cache.split["train"])
    record = json.loads(sidecars[0].read_text())
    assert record["attack"]["domain"] == "waveform" and record["attack"]["snr_db"] == 30.0
    clean, rate = sf.read(listen / record["clean_file"])
    adv, _ = sf.read(listen / record["adv_file"])
    assert rate == 22050 and np.abs(adv).max() <= 1.0
    snr = 10 * np.log10((clean**2).sum() / ((adv - clean) ** 2).sum())
    assert snr == pytest.approx(record["snr_db"], abs=0.01) and snr >= 30 - 0.01
    (attack_dir,) = (audio_run_dir / "attacks").glob("pgd-*")
    clips = pd.read_parquet(next(attack_dir.rglob("clips.parquet")))
    row = clips[clips.clip_id == int(sidecars[0].stem)]
    assert row.snr_db.item() == pytest.approx(record["snr_db"])
    np.testing.assert_allclose(
        [row[f"adv_{e}"].item() * 10 for e in EMOTIONS], record["emotions"]["adv"], rtol=1e-12
    )
    assert len(record["midlevel"]["adv"]) == 7
    # listening files need the waveform domain
    bad = ["attack", "--run", str(audio_run_dir), "--attack", "pgd", "--set", "epsilon=0.1"]
    assert _cli([*bad, "--save-audio", str(tmp_path / "x"), "--device", "cpu"]) == 2
    assert "waveform domain" in capsys.readouterr().err
