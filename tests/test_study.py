"""The study command end to end: CLI, synthetic path, resume after kills, report contents."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_tiny_dataset

from robustmer.cli import main
from robustmer.data import prepare
from robustmer.errors import RobustmerError
from robustmer.study import StudyProfile, run_study, shrunk
from robustmer.study.profiles import PAPER, QUICK

TINY = StudyProfile(
    name="tiny",
    clips=30,
    seconds=2.0,
    frames=16,
    systems=("A2E", "A2M2E"),
    seeds=(6, 21),
    train={"max_epochs": 3, "patience": 3, "width": 0.0625},
    attack={"max_iters": 12, "lr": 0.002, "mode": "reference"},
)
REPORT_TABLES = ("table1", "delta_mae", "clips", "tests")


def cli(*args: str) -> int:
    """Run the CLI in-process; return its exit code."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    return exc.value.code


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("study-data")
    st, mid = write_tiny_dataset(root / "raw", n=30, seconds=1.2)
    return prepare(st, mid, root / "cache", frames=16, progress=False)


def test_tiny_study_through_the_cli(tiny_cache, tmp_path, capsys):
    out = tmp_path / "study"
    args = (
        "study",
        "--data",
        str(tiny_cache),
        "--profile",
        "quick",
        "--systems",
        "A2E,A2M2E",
        "--seeds",
        "6,21",
        "--out",
        str(out),
        "--jobs",
        "1",
        "--device",
        "cpu",
    )
    assert cli(*args) == 0
    assert "report.html" in capsys.readouterr().out
    state = json.loads((out / "study.json").read_text())
    assert state["plan"] == [
        "data",
        *(
            f"{kind}/{model}{suffix}"
            for model in ("A2E-seed6", "A2E-seed21", "A2M2E-seed6", "A2M2E-seed21")
            for kind, suffix in (("train", ""), ("attack", "/paper"))
        ),
        "report",
    ]
    assert all(u["state"] == "done" for u in state["units"].values())
    assert state["profile"] == "quick" and state["data"]["kind"] == "given cache"

    report = out / "report"
    for name in (
        "report.md",
        "report.html",
        "summary.json",
        "figures/fig3_delta_mae.png",
        "figures/fig3_delta_mae.svg",
        "figures/fig4_true_vs_pred.png",
    ):
        assert (report / name).is_file(), name
    table1 = pd.read_csv(report / "table1.csv")
    assert list(table1["system"]) == ["A2E", "A2M2E"]
    # Table 1 is the mean over seeds of each run's clean test correlation (final.json)
    for system in ("A2E", "A2M2E"):
        runs = [
            json.loads((out / "runs" / f"{system}-seed{s}" / "final.json").read_text())
            for s in (6, 21)
        ]
        corr = [r["metrics"]["test"]["emotions"]["avg_corr"] for r in runs]
        row = table1[table1["system"] == system].iloc[0]
        assert row["avg_corr_mean"] == pytest.approx(np.mean(corr))
        assert np.isfinite(row["mae_mean"]) and row["mae_mean"] > 0
    clips = pd.read_parquet(report / "clips.parquet")
    assert len(clips) == 4 * 3  # 4 models x 3 test clips
    assert (clips["iterations"] >= 1).all() and np.isfinite(clips["mae_adv"]).all()
    tests = pd.read_csv(report / "tests.csv")
    row = tests[(tests["a"] == "A2E") & (tests["b"] == "A2M2E")].iloc[0]
    assert row["n"] == 6  # 3 test clips x 2 seeds, paired
    # The first units did not run again on a second invocation (all done):
    before = (out / "runs" / "A2E-seed6" / "final.json").stat().st_mtime_ns
    assert cli(*args) == 0
    assert (out / "runs" / "A2E-seed6" / "final.json").stat().st_mtime_ns == before


def test_synthetic_study_and_what_it_shrank(tmp_path):
    out = tmp_path / "study"
    report = run_study(out, profile=TINY, device="cpu", jobs=1, progress=False)
    state = json.loads((out / "study.json").read_text())
    assert state["data"]["kind"] == "synthetic" and state["data"]["clips_in_cache"] == 30
    assert (out / "data" / "soundtracks" / "Set1" / "001.mp3").is_file()
    assert state["shrunk"]["frames"] == {"paper": 313, "used": 16}
    assert state["shrunk"]["train.max_epochs"] == {"paper": 199, "used": 3}
    summary = json.loads((report / "summary.json").read_text())
    assert "frames" in json.dumps(summary)  # the report says what was shrunk


def test_quick_profile_keeps_the_papers_recipe():
    changed = shrunk(QUICK)
    allowed = {
        "clips",
        "seconds",
        "frames",
        "seeds",
        "train.max_epochs",
        "train.patience",
        "train.width",
        "train.adv_iters",
        "attack.max_iters",
    }
    assert set(changed) <= allowed, set(changed) - allowed
    assert len(QUICK.seeds) >= 3 and QUICK.systems == PAPER.systems
    assert shrunk(PAPER) == {}


def _tables(report: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(report / f"{name}.csv") for name in REPORT_TABLES}


def test_resume_after_kills_in_training_and_attack(tiny_cache, tmp_path, monkeypatch):
    import robustmer.training as training
    from robustmer.attacks import ATTACKS

    reference = _tables(
        run_study(
            tmp_path / "ref", data=tiny_cache, profile=TINY, device="cpu", jobs=1, progress=False
        )
    )

    # 1st invocation: killed during the 2nd epoch bookkeeping of the second unit's training.
    real_train = training.train

    def killed_train(cache, out_dir, config, **kw):
        def hook(epoch, row):
            if config.system == "A2E" and config.seed == 21 and epoch == 2:
                raise KeyboardInterrupt

        return real_train(cache, out_dir, config, on_epoch_end=hook, **kw)

    monkeypatch.setattr(training, "train", killed_train)
    out = tmp_path / "study"
    with pytest.raises(KeyboardInterrupt):
        run_study(out, data=tiny_cache, profile=TINY, device="cpu", jobs=1, progress=False)
    run = out / "runs" / "A2E-seed21"
    assert (run / "state.pt").is_file() and not (run / "final.json").exists()
    assert len(pd.read_csv(run / "metrics.csv")) == 2
    monkeypatch.setattr(training, "train", real_train)

    # 2nd invocation: killed in the middle of the attack of the first A2M2E model (after 5
    # iterations); A2E-seed21 resumes its training and is attacked before that.
    real_attack_factory = ATTACKS["paper"]

    def killing_attack(model, *, callback=None, **settings):
        def cb(iteration, n_active, mean_r):
            if iteration == 5 and model.config.arch == "a2m2e":
                raise KeyboardInterrupt
            if callback is not None:
                callback(iteration, n_active, mean_r)

        return real_attack_factory(model, callback=cb, **settings)

    first_done = (out / "runs" / "A2E-seed6" / "final.json").stat().st_mtime_ns
    monkeypatch.setitem(ATTACKS, "paper", killing_attack)
    with pytest.raises(KeyboardInterrupt):
        run_study(out, data=tiny_cache, profile=TINY, device="cpu", jobs=1, progress=False)
    assert not (out / "runs" / "A2M2E-seed6" / "attacks" / "paper" / "summary.json").exists()
    state = json.loads((out / "study.json").read_text())
    assert state["units"]["attack/A2E-seed6/paper"]["state"] == "done"
    assert state["units"]["attack/A2E-seed21/paper"]["state"] == "done"
    assert state["units"]["train/A2M2E-seed6"]["state"] == "done"
    assert state["units"]["attack/A2M2E-seed6/paper"]["state"] == "running"
    monkeypatch.setitem(ATTACKS, "paper", real_attack_factory)

    # 3rd invocation finishes; nothing finished is redone and the tables equal the reference.
    resumed = _tables(
        run_study(out, data=tiny_cache, profile=TINY, device="cpu", jobs=1, progress=False)
    )
    assert (out / "runs" / "A2E-seed6" / "final.json").stat().st_mtime_ns == first_done
    for name in REPORT_TABLES:
        pd.testing.assert_frame_equal(resumed[name], reference[name], check_exact=True)


def test_study_bad_input(tiny_cache, tmp_path, capsys):
    assert (
        cli("study", "--data", str(tiny_cache), "--systems", "A2X", "--out", str(tmp_path / "s"))
        == 2
    )
    assert "system 'A2X': unknown" in capsys.readouterr().err
    with pytest.raises(RobustmerError, match="both --soundtracks and --midlevel"):
        run_study(tmp_path / "s2", soundtracks=tmp_path)
    with pytest.raises(RobustmerError, match="either --data or"):
        run_study(tmp_path / "s3", data=tiny_cache, soundtracks=tmp_path, midlevel=tmp_path)
    run_study(
        tmp_path / "s4",
        data=tiny_cache,
        profile=TINY.with_overrides(systems=("A2E",), seeds=(6,)),
        device="cpu",
        jobs=1,
        progress=False,
    )
    with pytest.raises(RobustmerError, match="made with other settings"):
        run_study(
            tmp_path / "s4", data=tiny_cache, profile=TINY, device="cpu", jobs=1, progress=False
        )


def test_parallel_workers_finish_every_unit(tiny_cache, tmp_path):
    """--jobs 2: units run in two spawned worker processes (1 torch thread each)."""
    serial = _tables(
        run_study(
            tmp_path / "serial", data=tiny_cache, profile=TINY, device="cpu", jobs=1, progress=False
        )
    )
    report = run_study(
        tmp_path / "parallel", data=tiny_cache, profile=TINY, device="cpu", jobs=2, progress=False
    )
    state = json.loads((tmp_path / "parallel" / "study.json").read_text())
    assert all(u["state"] == "done" for u in state["units"].values())
    parallel = _tables(report)
    # Same seeds and data; another torch thread count changes float rounding, which training
    # amplifies (about 1e-3 here), so the numbers agree closely but not bit for bit.
    for name, columns in (
        ("table1", ["system", "avg_corr_mean", "mae_mean"]),
        ("delta_mae", ["system", "seed", "delta_mae"]),
    ):
        pd.testing.assert_frame_equal(
            parallel[name][columns], serial[name][columns], rtol=0, atol=0.05
        )
    assert parallel["clips"][["system", "seed", "clip_id"]].equals(
        serial["clips"][["system", "seed", "clip_id"]]
    )


def test_study_on_real_data_layout(tmp_path):
    st, mid = write_tiny_dataset(tmp_path / "raw", n=30, seconds=1.2)
    profile = TINY.with_overrides(systems=("A2B2E",), seeds=(6,))
    report = run_study(
        tmp_path / "study",
        soundtracks=st,
        midlevel=mid,
        profile=profile,
        device="cpu",
        jobs=1,
        progress=False,
    )
    state = json.loads((tmp_path / "study" / "study.json").read_text())
    assert state["data"]["kind"] == "real" and state["data"]["clips_in_cache"] == 30
    assert (tmp_path / "study" / "cache" / "manifest.json").is_file()
    assert len(pd.read_csv(report / "clips.csv")) == 3  # the 3 test clips of 30
