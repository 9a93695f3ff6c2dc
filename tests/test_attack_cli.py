"""End-to-end tests of ``robustmer attack`` / :func:`robustmer.evaluation.attack_run`.

A tiny A2M2E run is trained on a tiny cache; the attack's tables are checked against values
recomputed independently from the cache, the loaded model and :mod:`robustmer.metrics`.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from robustmer.attacks import PaperAttack, PaperConfig, PGDConfig
from robustmer.errors import RobustmerError
from robustmer.names import EMOTIONS, MIDLEVEL_FEATURES
from robustmer.records import AttackSummary, attack_dir, clip_columns

CPU = torch.device("cpu")

N_CLIPS, FRAMES = 20, 16


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from robustmer.audio import FrontEndConfig, Normalization
    from robustmer.data import write_cache
    from robustmer.training import make_config, train

    root = tmp_path_factory.mktemp("attack_cli")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N_CLIPS, FRAMES, 149)).astype(np.float32)
    groups = x[:, :, :144].reshape(N_CLIPS, FRAMES, 8, 18).mean(axis=(1, 3))  # [N, 8]
    ids = list(range(101, 101 + N_CLIPS))
    write_cache(
        root / "cache",
        ids=ids,
        excerpts=x,
        emotions=(0.5 + 0.3 * np.tanh(4 * groups)).astype(np.float32),
        midlevel=(0.5 + 0.3 * np.tanh(-4 * groups[:, :7])).astype(np.float32),
        split={"train": ids[:12], "validation": ids[12:16], "test": ids[16:]},
        normalization=Normalization(0.4, 0.25),
        frontend=FrontEndConfig(),
    )
    config = make_config(
        "A2M2E",
        5,
        width=0.0625,
        max_epochs=2,
        patience=5,
        lr=2e-3,
        batch_size=4,
        device="cpu",
    )
    train(root / "cache", root / "run", config, progress=False)
    return root / "run"


def _cli(args: list[str]) -> int:
    from robustmer.cli import main

    with pytest.raises(SystemExit) as info:
        main(args)
    return int(info.value.code or 0)


def test_cli_paper_attack_writes_real_tables(run_dir: Path, capsys: pytest.CaptureFixture) -> None:
    from robustmer import metrics
    from robustmer.training import load_run

    code = _cli(
        ["attack", "--run", str(run_dir), "--set", "steps=12", "--device", "cpu", "--save-examples"]
    )
    assert code == 0
    assert "ΔMAE" in capsys.readouterr().out
    config = PaperConfig(steps=12)
    out = attack_dir(run_dir, config.key())
    assert out.name == config.key() and out.parent == run_dir / "attacks"
    df = pd.read_parquet(out / "clips.parquet")
    csv = pd.read_csv(out / "clips.csv")
    assert list(df.columns) == clip_columns(True) == list(csv.columns)
    assert len(df) == 4
    np.testing.assert_allclose(csv["adv_valence"], df["adv_valence"], rtol=1e-12)

    run = load_run(run_dir, device="cpu")
    x, y, _, ids = run.cache.arrays("test")
    assert df["clip_id"].tolist() == ids == [117, 118, 119, 120]
    assert set(df["system"]) == {"A2M2E"} and set(df["seed"]) == {5}
    assert set(df["attack"]) == {"paper"} and set(df["attack_key"]) == {config.key()}
    assert df["epsilon"].isna().all() and (df["iterations"] <= 12).all()
    assert not df["zero_gradient"].any()
    true = df[[f"true_{e}" for e in EMOTIONS]].to_numpy()
    clean = df[[f"clean_{e}" for e in EMOTIONS]].to_numpy()
    adv = df[[f"adv_{e}" for e in EMOTIONS]].to_numpy()
    np.testing.assert_allclose(true, y.numpy(), rtol=0, atol=1e-7)
    with torch.no_grad():
        out_clean = run.model(x)
    np.testing.assert_allclose(clean, out_clean.emotions.numpy(), rtol=1e-5, atol=1e-6)
    mid_clean = df[[f"clean_mid_{f}" for f in MIDLEVEL_FEATURES]].to_numpy()
    np.testing.assert_allclose(mid_clean, out_clean.midlevel.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(df["mae_clean"], np.abs(true - clean).mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(df["mae_adv"], np.abs(true - adv).mean(axis=1), rtol=1e-12)
    assert (df["mae_adv"] != df["mae_clean"]).all()  # the attack changed every prediction

    # adv_* is what the attack reports as `pred` (reference mode: the last forward pass)
    res = PaperAttack(run.model, config, normalization=run.cache.normalization)(x, y)
    np.testing.assert_allclose(adv, res.pred.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(df["iterations"], res.iterations.numpy())
    np.testing.assert_array_equal(df["threshold"], res.threshold.numpy())

    examples = np.load(out / "examples.npy")
    assert examples.shape == (4, 1, FRAMES, 149) and examples.dtype == np.float32
    delta = examples.astype(np.float64) - x.numpy()
    np.testing.assert_allclose(df["linf"], np.abs(delta).reshape(4, -1).max(axis=1), atol=1e-6)
    norm = run.cache.normalization
    mag, mag_adv = (
        10 ** (a * norm.std + norm.mean) - 1
        for a in (x.numpy().astype(np.float64), examples.astype(np.float64))
    )
    with np.errstate(divide="ignore"):
        snr = 10 * np.log10(
            (mag**2).reshape(4, -1).sum(1) / ((mag_adv - mag) ** 2).reshape(4, -1).sum(1)
        )
    np.testing.assert_allclose(df["snr_db"], snr, rtol=1e-6)

    summary = AttackSummary.read(out / "summary.json")
    assert json.loads((out / "summary.json").read_text())["format"] == "robustmer-attack"
    assert summary.mae_clean == pytest.approx(metrics.mae(true, clean), abs=1e-12)
    assert summary.mae_adv == pytest.approx(metrics.mae(true, adv), abs=1e-12)
    assert summary.delta_mae == pytest.approx(summary.mae_adv - summary.mae_clean)
    assert summary.avg_corr_clean == pytest.approx(metrics.average_correlation(true, clean))
    assert summary.avg_corr_adv == pytest.approx(metrics.average_correlation(true, adv))
    assert summary.iterations_mean == pytest.approx(df["iterations"].mean())
    assert summary.converged_fraction == pytest.approx(df["converged"].mean())
    # clean pass + loop + final pass, + one pass of the zero-gradient check, per clip
    assert summary.cost.forward_clip_passes == 4 + int(df["iterations"].sum()) + 4 + 4
    assert summary.cost.attack_clip_iterations == int(df["iterations"].sum())
    assert summary.cost.device == "cpu" and summary.cost.wall_seconds > 0
    assert summary.attack == config.to_dict() and summary.key == config.key()
    assert summary.split == "test" and summary.n_clips == 4 and summary.zero_gradient_clips == ()
    finite = snr[np.isfinite(snr)]
    if finite.size:
        assert summary.snr_db_median == pytest.approx(float(np.median(finite)))


def test_rerun_is_skipped_and_new_settings_recompute(run_dir: Path) -> None:
    from robustmer.evaluation import attack_run

    eight, six = PaperConfig(steps=8), PaperConfig(steps=6)
    out = attack_dir(run_dir, eight.key())
    first = attack_run(run_dir, eight, device=CPU)
    stamp = (out / "clips.parquet").stat().st_mtime_ns
    again = attack_run(run_dir, eight, device=CPU)
    assert again == first
    assert (out / "clips.parquet").stat().st_mtime_ns == stamp
    other = attack_run(run_dir, six, device=CPU)
    assert other.attack["steps"] == 6 and other.key == six.key() != eight.key()
    # other settings go to their own directory: the first result is untouched
    assert (out / "clips.parquet").stat().st_mtime_ns == stamp
    assert AttackSummary.read(out / "summary.json") == first
    six_clips = pd.read_parquet(attack_dir(run_dir, six.key()) / "clips.parquet")
    assert (six_clips["iterations"] <= 6).all()


@pytest.mark.parametrize("attack", ["pgd-linf", "paper-bounded"])
def test_bounded_attacks_respect_epsilon(run_dir: Path, tmp_path: Path, attack: str) -> None:
    from robustmer.evaluation import attack_run

    eps = 0.05  # float32(0.05) > 0.05: |δ| must be bounded by ε itself
    if attack == "pgd-linf":
        config = PGDConfig(epsilon=eps, steps=5)
        summary = attack_run(run_dir, config, device=CPU, out=tmp_path / "pgd")
        df = pd.read_parquet(tmp_path / "pgd" / "clips.parquet")
        np.testing.assert_allclose(df["linf"], eps, rtol=1e-6)  # sign steps reach the bound
        assert (df["linf"] <= eps).all() and set(df["attack"]) == {"pgd"}
        assert df["threshold"].isna().all() and not df["converged"].any()
        true = df[[f"true_{e}" for e in EMOTIONS]].to_numpy()
        mse_clean = ((true - df[[f"clean_{e}" for e in EMOTIONS]].to_numpy()) ** 2).mean(1)
        mse_adv = ((true - df[[f"adv_{e}" for e in EMOTIONS]].to_numpy()) ** 2).mean(1)
        assert (mse_adv > mse_clean).all()  # gradient ascent on the MSE
    else:
        config = PaperConfig(mode="bounded", epsilon=eps, steps=10, step_size=0.02)
        summary = attack_run(run_dir, config, device=CPU, out=tmp_path / "bounded")
        df = pd.read_parquet(tmp_path / "bounded" / "clips.parquet")
        assert (df["linf"] <= eps).all() and set(df["attack_key"]) == {config.key()}
        # bounded mode reports f(x_adv): ΔMAE equals that of the returned examples
        assert summary.mae_adv == pytest.approx(summary.mae_adv_of_x_adv, abs=1e-12)
    assert set(df["epsilon"]) == {eps}
    assert summary.n_clips == 4 and math.isfinite(summary.delta_mae)


def test_errors_are_one_line_exit_2(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = ["attack", "--run", str(run_dir), "--device", "cpu"]
    cases = [
        [*run, "--set", "mode=bounded", "--set", "epsilon=0"],
        [*run, "--set", "mode=bounded", "--set", "epsilon=-0.1"],
        [*run, "--set", "epsilon=0.1"],  # reference mode is unbounded
        [*run, "--attack", "pgd"],  # no epsilon
        [*run, "--attack", "pgd", "--set", "epsilon=0.1", "--set", "norm=l1"],
        [*run, "--attack", "pgd-l2", "--set", "epsilon=0.1"],
        [*run, "--attack", "fgsm"],
        [*run, "--set", "iters=5"],  # unknown key
        [*run, "--set", "steps=five"],  # not an int
        [*run, "--set", "steps"],  # no value
        [*run, "--set", "mode=bounded"],
        [*run, "--split", "holdout"],
        ["attack", "--run", str(tmp_path / "nope"), "--device", "cpu"],
    ]
    no_ckpt = tmp_path / "no_ckpt"
    shutil.copytree(run_dir, no_ckpt, ignore=shutil.ignore_patterns("attacks"))
    (no_ckpt / "best.safetensors").unlink()
    cases.append(["attack", "--run", str(no_ckpt), "--device", "cpu"])
    for args in cases:
        assert _cli(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("robustmer: error:") and "\n" not in err, (args, err)
        if "iters=5" in args:
            assert "unknown setting 'iters'" in err and "steps" in err
    assert "checkpoint" in err

    # an empty split
    import robustmer.training as training
    from robustmer.evaluation import attack_run

    real_load_run = training.load_run

    def load_without_test(*args, **kwargs):
        run = real_load_run(*args, **kwargs)
        run.cache.split["test"] = []
        return run

    monkeypatch.setattr(training, "load_run", load_without_test)
    with pytest.raises(RobustmerError, match="empty"):
        attack_run(run_dir, PaperConfig(steps=2), device=CPU, out=tmp_path / "empty")


def test_set_help_lists_the_fields_from_the_dataclass(capsys: pytest.CaptureFixture) -> None:
    import dataclasses

    for name, config_class in (("paper", PaperConfig), ("pgd", PGDConfig)):
        assert _cli(["attack", "--run", "unused", "--attack", name, "--set", "help"]) == 0
        out = capsys.readouterr().out
        for f in dataclasses.fields(config_class):
            assert f"  {f.name}: " in out and repr(f.default) in out, (name, f.name)


def test_case12_zero_gradient_clips_are_flagged_and_named_once(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 11 case 12: a clip whose label equals the model's prediction has an exactly
    zero MSE gradient at the start; the attack cannot move it, and that must not be silent."""
    import logging

    import robustmer.training as training
    from robustmer.evaluation import attack_run

    real_load_run = training.load_run

    def load_with_predicted_labels(*args, **kwargs):
        run = real_load_run(*args, **kwargs)
        real_arrays = run.cache.arrays

        def arrays(split):
            x, y, mid, ids = real_arrays(split)
            with torch.no_grad():
                pred = run.model(x).emotions  # [n, 8], the same batch the attack sees
            y = y.clone()
            y[1] = pred[1]  # clip 118: label == prediction
            return x, y, mid, ids

        run.cache.arrays = arrays
        return run

    monkeypatch.setattr(training, "load_run", load_with_predicted_labels)
    caplog.set_level(logging.WARNING)
    config = PaperConfig(steps=6)
    summary = attack_run(run_dir, config, device=CPU, out=tmp_path / "zero")
    df = pd.read_parquet(tmp_path / "zero" / "clips.parquet")
    assert df["zero_gradient"].tolist() == [False, True, False, False]
    assert summary.zero_gradient_clips == (118,)
    assert df.loc[1, "mae_clean"] == 0.0  # the prediction is the label
    assert df.loc[1, "linf"] == 0.0  # the attack did not move this clip
    warnings = [r for r in caplog.records if "zero input gradient" in r.getMessage()]
    assert len(warnings) == 1 and "clip(s) 118" in warnings[0].getMessage()


def test_cli_epsilons_runs_the_attack_at_each_radius(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from robustmer.attacks import APGDConfig

    args = ["attack", "--run", str(run_dir), "--device", "cpu", "--attack", "apgd"]
    assert _cli([*args, "--set", "steps=3", "--epsilons", "0.01,0.05"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    for eps in (0.01, 0.05):
        df = pd.read_parquet(attack_dir(run_dir, APGDConfig(epsilon=eps, steps=3).key())
                             / "clips.parquet")
        assert set(df["epsilon"]) == {eps} and (df["linf"] <= eps).all()
        assert set(df["attack"]) == {"apgd"} and len(df) == 4
    for bad in (["--epsilons", "0.1,x"], ["--epsilons", "0,0.1"],
                ["--epsilons", "0.1", "--out", str(tmp_path / "o")]):
        assert _cli([*args, *bad]) == 2, bad
        assert capsys.readouterr().err.strip().startswith("robustmer: error:")
    paper = ["attack", "--run", str(run_dir), "--device", "cpu", "--epsilons", "0.1"]
    assert _cli(paper) == 2  # the reference mode is unbounded
