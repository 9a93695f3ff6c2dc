"""The report's robustness section, from a study directory whose attack outputs are real
attack results (APGD and noise at two ε, an unbounded correlation attack) on small models.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from robustmer._io import write_json, write_table
from robustmer.attacks.apgd import APGD, APGDConfig
from robustmer.attacks.noise import Noise, NoiseConfig
from robustmer.evaluation.checks import result_table
from robustmer.evaluation.curves import run_metrics, worst_case
from robustmer.report.robustness import attack_label, robustness_section


def _model(scale: float, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    lin = nn.Linear(24, 8)
    with torch.no_grad():
        lin.weight.mul_(scale)
    return nn.Sequential(nn.Flatten(), lin)


def _write_attack(run: Path, cfg, result, y, system: str, seed: int, label_eps) -> None:
    out = run / "attacks" / cfg.key()
    out.mkdir(parents=True)
    df = result_table(result, y, system=system, attack=cfg.name, epsilon=label_eps, seed=seed)
    write_table(df, out / "clips")
    write_json(out / "summary.json", {"attack": cfg.to_dict(), "split": "test"})


def _study(root: Path) -> Path:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 1, 4, 6, generator=g), 0.2 + 0.6 * torch.rand(5, 8, generator=g)
    for system, scale in (("A2E", 1.0), ("A2M2E", 0.3)):  # A2M2E: smaller weights
        for seed in (6, 21):
            run = root / "runs" / f"{system}-seed{seed}"
            run.mkdir(parents=True)
            write_json(run / "final.json", {"system": system, "seed": seed})
            model = _model(scale, seed)
            for eps in (0.05, 0.2):
                for cfg, cls in ((APGDConfig(epsilon=eps, steps=15), APGD),
                                 (NoiseConfig(epsilon=eps, restarts=2), Noise)):
                    _write_attack(run, cfg, cls(model, cfg)(x, y), y, system, seed, eps)
            free = APGDConfig(epsilon=100.0, steps=15, loss="corr")
            _write_attack(run, free, APGD(model, free)(x, y), y, system, seed, None)
    return root


def test_robustness_section_from_a_small_study(tmp_path: Path) -> None:
    study = _study(tmp_path / "study")
    root = tmp_path / "report"
    (root / "figures").mkdir(parents=True)
    section = robustness_section(study, root, transfer=False, zero_gradients=False)
    assert section.summary["curve_attack"] == "apgd-linf"
    curves = pd.read_parquet(root / "robustness_curves.parquet")
    assert len(curves) == 4 and set(curves["n_seeds"]) == {2}
    # the curve means are the seed means of the per-model ΔMAE computed independently here
    clips = pd.concat([pd.read_parquet(p) for p in study.glob("runs/*/attacks/*/clips.parquet")])
    per_model = (clips.assign(d=clips["mae_adv"] - clips["mae_clean"])
                 .query("attack == 'apgd' and epsilon == 0.2")
                 .groupby(["system", "seed"])["d"].mean())
    got = curves.set_index(["system", "epsilon"])["delta_mae"]
    for system in ("A2E", "A2M2E"):
        assert got[(system, 0.2)] == pytest.approx(per_model[system].mean())
    # smaller weights move the prediction less: A2M2E is the more robust one at every ε
    text = section.blocks[1].text
    assert "At ε = 0.05 the most robust system" in text and "A2M2E" in text
    checks = json.loads(json.dumps(section.summary["checks"]))
    assert {c["check"] for c in checks} == {"monotone", "noise", "unbounded"}
    assert all(c["verdict"] == "pass" for c in checks)
    worst = pd.read_parquet(root / "worst_case.parquet")
    wc = worst[(worst["attack"] == "worst case") & (worst["epsilon"] == 0.2)]
    assert len(wc) == 2
    assert (root / "figures" / "robustness_curves.png").is_file()
    assert (root / "figures" / "tradeoff.png").is_file()
    assert len(pd.read_parquet(root / "tradeoff.parquet")) == 4


def test_attack_labels_and_worst_case_consistency(tmp_path: Path) -> None:
    assert attack_label({"attack": "apgd", "norm": "l2", "loss": "corr"}) == "apgd-l2-corr"
    assert attack_label({"attack": "paper", "mode": "reference"}) == "paper"
    study = _study(tmp_path / "study")
    clips = pd.concat([pd.read_parquet(p) for p in study.glob("runs/*/attacks/*/clips.parquet")])
    per_clip, _ = worst_case(clips)
    runs = run_metrics(clips)
    # the worst case is never below any single attack's ΔMAE on the same clip
    bounded = per_clip[per_clip["epsilon"].notna()]
    assert len(bounded) == 2 * 2 * 5 * 2 and len(runs) == 2 * 2 * 5
    merged = clips.merge(bounded, on=["system", "seed", "clip_id", "epsilon"], suffixes=("", "_w"))
    assert (merged["delta_mae"] >= merged["mae_adv"] - merged["mae_clean"] - 1e-12).all()


def test_tiny_study_with_epsilons_reports_curves_transfer_and_checks(tmp_path: Path) -> None:
    """A real (tiny) study: 2 systems x 2 seeds trained, attacked at two ε, reported."""
    from robustmer.attacks import PaperConfig
    from robustmer.study import StudyProfile, run_study

    profile = StudyProfile(
        name="tiny-robustness", clips=30, seconds=2.0, frames=16, systems=("A2E", "A2M2E"),
        seeds=(6, 21), train={"max_epochs": 1, "patience": 1, "width": 0.0625},
        attacks=(PaperConfig(steps=8), APGDConfig(epsilon=0.1, steps=6),
                 NoiseConfig(epsilon=0.1)),
    )
    out = tmp_path / "study"
    report = run_study(out, profile=profile, device="cpu", jobs=1, progress=False,
                       epsilons=(0.03, 0.1))
    state = json.loads((out / "study.json").read_text())
    assert len(state["attacks"]) == 5  # paper + (apgd, noise) x 2 ε
    clips = pd.concat([pd.read_parquet(p) for p in out.glob("runs/*/attacks/*/clips.parquet")])
    assert len(clips) == 4 * 5 * clips["clip_id"].nunique()
    # the curves equal the seed means of each model's ΔMAE, recomputed from the runs' tables
    curves = pd.read_parquet(report / "robustness_curves.parquet")
    apgd = clips[clips["attack"] == "apgd"].assign(d=lambda t: t["mae_adv"] - t["mae_clean"])
    expected = apgd.groupby(["system", "epsilon", "seed"])["d"].mean().groupby(
        ["system", "epsilon"]).mean()
    got = curves.set_index(["system", "epsilon"])["delta_mae"]
    assert len(got) == 4
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9)
    # worst case >= every single attack at the same ε; transfer: 2 x 2 per seed, diagonal =
    # the white-box ΔMAE of the stored attack at the largest ε
    worst = pd.read_parquet(report / "worst_case.parquet")
    for _, g in worst[worst["epsilon"].notna()].groupby(["system", "epsilon"]):
        single = g[g["attack"] != "worst case"]["delta_mae"]
        assert float(g.loc[g["attack"] == "worst case", "delta_mae"].iloc[0]) >= single.max()
    transfer = pd.read_parquet(report / "transfer.parquet")
    assert len(transfer) == 2 * 4 and set(transfer["epsilon"]) == {0.1}
    white = transfer[transfer["white_box"]].set_index(["target", "seed"])["delta_mae"]
    own = apgd[apgd["epsilon"] == 0.1].groupby(["system", "seed"])["d"].mean()
    for key, value in own.items():
        assert white[key] == pytest.approx(value, abs=1e-6)
    summary = json.loads((report / "summary.json").read_text())["robustness"]
    kinds = {c["check"] for c in summary["checks"]}
    assert kinds == {"monotone", "noise", "unbounded", "zero_gradients", "transfer"}
    text = (report / "report.md").read_text()
    assert "## Robustness evaluation" in text and "figures/transfer.png" in text
    assert text.index("## Robustness evaluation") < text.index("## Provenance")
