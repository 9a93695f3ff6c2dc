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

from robustmer.errors import RobustmerError
from robustmer.names import EMOTIONS, MIDLEVEL_FEATURES

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
    from robustmer.attacks import paper_attack
    from robustmer.evaluation import clip_columns
    from robustmer.training import load_run

    code = _cli(
        ["attack", "--run", str(run_dir), "--iters", "12", "--device", "cpu", "--save-examples"]
    )
    assert code == 0
    assert "ΔMAE" in capsys.readouterr().out
    out = run_dir / "attacks" / "paper"
    df = pd.read_parquet(out / "clips.parquet")
    csv = pd.read_csv(out / "clips.csv")
    assert list(df.columns) == clip_columns(True) == list(csv.columns)
    assert len(df) == 4
    np.testing.assert_allclose(csv["adv_valence"], df["adv_valence"], rtol=1e-12)

    run = load_run(run_dir, device="cpu")
    x, y, _, ids = run.cache.arrays("test")
    assert df["clip_id"].tolist() == ids == [117, 118, 119, 120]
    assert set(df["system"]) == {"A2M2E"} and set(df["seed"]) == {5}
    assert set(df["attack"]) == {"paper"} and set(df["mode"]) == {"reference"}
    assert df["epsilon"].isna().all() and set(df["lr"]) == {0.002}
    assert set(df["max_iters"]) == {12} and (df["iterations"] <= 12).all()
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
    res = paper_attack(run.model, x, y, max_iters=12, normalization=run.cache.normalization)
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

    summary = json.loads((out / "summary.json").read_text())
    assert summary["mae_clean"] == pytest.approx(metrics.mae(true, clean), abs=1e-12)
    assert summary["mae_adv"] == pytest.approx(metrics.mae(true, adv), abs=1e-12)
    assert summary["delta_mae"] == pytest.approx(summary["mae_adv"] - summary["mae_clean"])
    assert summary["avg_corr_clean"] == pytest.approx(metrics.average_correlation(true, clean))
    assert summary["avg_corr_adv"] == pytest.approx(metrics.average_correlation(true, adv))
    assert summary["iterations_mean"] == pytest.approx(df["iterations"].mean())
    assert summary["converged_fraction"] == pytest.approx(df["converged"].mean())
    assert summary["model_passes"] == 4 + int(df["iterations"].sum()) + 4
    assert summary["device"] == "cpu" and summary["attack_seconds"] > 0
    assert summary["settings"]["max_iters"] == 12 and summary["settings"]["mode"] == "reference"
    finite = snr[np.isfinite(snr)]
    if finite.size:
        assert summary["snr_db_median"] == pytest.approx(float(np.median(finite)))


def test_rerun_is_skipped_and_new_settings_recompute(run_dir: Path) -> None:
    from robustmer.evaluation import attack_run

    out = run_dir / "attacks" / "paper"
    first = attack_run(run_dir, iters=8, device="cpu")
    stamp = (out / "clips.parquet").stat().st_mtime_ns
    again = attack_run(run_dir, iters=8, device="cpu")
    assert again == first
    assert (out / "clips.parquet").stat().st_mtime_ns == stamp
    other = attack_run(run_dir, iters=6, device="cpu")
    assert other["settings"]["max_iters"] == 6
    assert set(pd.read_parquet(out / "clips.parquet")["max_iters"]) == {6}


@pytest.mark.parametrize("attack", ["pgd-linf", "paper-bounded"])
def test_bounded_attacks_respect_epsilon(run_dir: Path, tmp_path: Path, attack: str) -> None:
    from robustmer.evaluation import attack_run

    eps = 0.05
    if attack == "pgd-linf":
        summary = attack_run(
            run_dir, attack="pgd-linf", epsilon=eps, iters=5, device="cpu", out=tmp_path / "pgd"
        )
        df = pd.read_parquet(tmp_path / "pgd" / "clips.parquet")
        np.testing.assert_allclose(df["linf"], eps, rtol=1e-6)  # sign steps reach the bound
        assert set(df["lr"]) == {2.5 * eps / 5} and set(df["mode"]) == {"bounded"}
        assert df["threshold"].isna().all() and not df["converged"].any()
        true = df[[f"true_{e}" for e in EMOTIONS]].to_numpy()
        mse_clean = ((true - df[[f"clean_{e}" for e in EMOTIONS]].to_numpy()) ** 2).mean(1)
        mse_adv = ((true - df[[f"adv_{e}" for e in EMOTIONS]].to_numpy()) ** 2).mean(1)
        assert (mse_adv > mse_clean).all()  # gradient ascent on the MSE
    else:
        summary = attack_run(
            run_dir, epsilon=eps, iters=10, lr=0.02, device="cpu", out=tmp_path / "bounded"
        )
        df = pd.read_parquet(tmp_path / "bounded" / "clips.parquet")
        assert (df["linf"] <= eps).all() and set(df["mode"]) == {"bounded"}
        assert set(df["epsilon"]) == {eps}
        # bounded mode reports f(x_adv): ΔMAE equals that of the returned examples
        assert summary["mae_adv"] == pytest.approx(summary["mae_adv_of_x_adv"], abs=1e-12)
    assert summary["n_clips"] == 4 and math.isfinite(summary["delta_mae"])


def test_errors_are_one_line_exit_2(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = [
        ["attack", "--run", str(run_dir), "--epsilon", "0", "--device", "cpu"],
        ["attack", "--run", str(run_dir), "--epsilon", "-0.1", "--device", "cpu"],
        ["attack", "--run", str(run_dir), "--attack", "pgd-l2", "--device", "cpu"],
        ["attack", "--run", str(run_dir), "--attack", "fgsm", "--device", "cpu"],
        ["attack", "--run", str(run_dir), "--mode", "bounded", "--device", "cpu"],
        ["attack", "--run", str(run_dir), "--split", "holdout", "--device", "cpu"],
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
        attack_run(run_dir, iters=2, device="cpu", out=tmp_path / "empty")
