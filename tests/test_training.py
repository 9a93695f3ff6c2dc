"""Tests of robustmer.training: systems, config, the training loop, resume, adversarial
training, run directories and the ``robustmer train`` command (docs/paper.md §6)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from robustmer.attacks import PaperConfig, PGDConfig
from robustmer.audio import FrontEndConfig, Normalization
from robustmer.data import load_cache, write_cache
from robustmer.errors import RobustmerError
from robustmer.models import ModelConfig, build_model, load_model, read_metadata
from robustmer.training import (
    COUNTERS,
    METRICS_COLUMNS,
    PROFILES,
    SYSTEMS,
    TrainConfig,
    epoch_seed,
    is_adversarial_epoch,
    load_run,
    make_config,
    resolve_device,
    train,
)

N_CLIPS, FRAMES = 40, 32
RUN_FILES = ("config.json", "metrics.csv", "best.safetensors", "state.pt", "final.json")


def _make_cache(path: Path, *, seed: int = 0, frontend: FrontEndConfig | None = None) -> Path:
    """A tiny cache whose targets are smooth functions of band-group means of the input."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N_CLIPS, FRAMES, 149)).astype(np.float32)
    x[:, :, :144] += rng.standard_normal((N_CLIPS, 1, 8)).repeat(18, axis=2)[:, :, :144]
    groups = x[:, :, :144].reshape(N_CLIPS, FRAMES, 8, 18).mean(axis=(1, 3))  # [N, 8]
    emotions = (0.5 + 0.3 * np.tanh(groups)).astype(np.float32)
    midlevel = (0.5 + 0.3 * np.tanh(-groups[:, :7])).astype(np.float32)
    ids = list(range(1, N_CLIPS + 1))
    split = {"train": ids[:24], "validation": ids[24:32], "test": ids[32:]}
    return write_cache(
        path,
        ids=ids,
        excerpts=x,
        emotions=emotions,
        midlevel=midlevel,
        split=split,
        normalization=Normalization(0.0, 1.0),
        frontend=frontend or FrontEndConfig(),
    )


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return _make_cache(tmp_path_factory.mktemp("cache") / "cache")


def _config(system: str = "A2M2E", **kw) -> TrainConfig:
    values = {"width": 0.125, "max_epochs": 6, "patience": 10, "lr": 2e-3, "device": "cpu"}
    values.update(kw)
    return make_config(system, 1, **values)


def _read_metrics(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


class _Killed(Exception):
    """Simulated kill of the training process."""


# ----------------------------------------------------------------------------- config


def test_systems_table():
    assert list(SYSTEMS) == ["A2E", "A2B2E", "A2M2E", "aA2E", "aA2B2E"]
    rows = {n: (s.arch, s.midlevel_loss, s.adversarial) for n, s in SYSTEMS.items()}
    assert rows == {
        "A2E": ("a2e", False, False),
        "A2B2E": ("a2b2e", False, False),
        "A2M2E": ("a2m2e", True, False),
        "aA2E": ("a2e", False, True),
        "aA2B2E": ("a2b2e", False, True),
    }


def test_config_defaults_are_the_papers():
    c = TrainConfig("A2E", 6)
    assert (c.lr, c.batch_size, c.max_epochs, c.patience, c.midlevel_weight) == (
        5e-4,
        8,
        199,
        50,
        0.5,
    )
    assert (c.adv_every, c.width) == (5, 1.0)
    assert c.adv_attack == PaperConfig(steps=50, step_size=0.002, mode="reference")
    assert c.to_dict()["adv_attack"] == {"attack": "paper", **c.adv_attack.to_dict()}
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c  # JSON round trip
    assert make_config("A2E", 6, profile="quick").adv_attack == PaperConfig(steps=5)
    assert c.monitor == "emotions" and not c.amp and not c.channels_last
    assert TrainConfig.from_dict(c.to_dict()) == c
    assert "device" not in c.identity()
    quick = make_config("A2E", 6, profile="quick", patience=3)
    assert quick.max_epochs == PROFILES["quick"]["max_epochs"] and quick.patience == 3
    assert make_config("A2E", 6, profile="paper", width=None) == c


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"system": "A2X"}, "A2E, A2B2E, A2M2E, aA2E, aA2B2E"),
        ({"system": "A2E", "monitor": "loss"}, "emotions, paper"),
        ({"system": "A2E", "batch_size": 0}, "batch_size"),
        ({"system": "A2E", "lr": -1.0}, "lr"),
        ({"system": "A2E", "midlevel_weight": 1.5}, "midlevel_weight"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(RobustmerError, match=match):
        TrainConfig(seed=0, **kwargs)


def test_make_config_errors():
    with pytest.raises(RobustmerError, match="paper, quick"):
        make_config("A2E", 0, profile="slow")
    with pytest.raises(RobustmerError, match="unknown"):
        make_config("A2E", 0, epochs=3)
    with pytest.raises(RobustmerError, match="unknown fields"):
        TrainConfig.from_dict({"system": "A2E", "seed": 0, "foo": 1})


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(RobustmerError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RobustmerError, match="CUDA is not available"):
            resolve_device("cuda")


def test_adversarial_epochs_are_multiples_of_adv_every():
    c = TrainConfig("aA2E", 0)
    adv = [e for e in range(1, 21) if is_adversarial_epoch(SYSTEMS["aA2E"], c, e)]
    assert adv == [5, 10, 15, 20]
    assert not any(is_adversarial_epoch(SYSTEMS["A2E"], c, e) for e in range(1, 21))


def test_epoch_seed_streams_differ():
    seeds = {epoch_seed(s, e, k) for s in (0, 1) for e in (1, 2) for k in (0, 1)}
    assert len(seeds) == 8 and all(0 <= v < 2**63 for v in seeds)
    assert epoch_seed(6, 3, 0) == epoch_seed(6, 3, 0)


# ----------------------------------------------------------------------------- training


def test_first_epoch_loss_matches_independent_computation(cache_dir, tmp_path):
    """With a negligible learning rate, epoch 1's mean training loss must equal the loss
    recomputed here from the documented seeding, shuffling and the A2M2E loss formula."""
    config = _config("A2M2E", max_epochs=1, lr=1e-12, midlevel_weight=0.3)
    train(cache_dir, tmp_path / "run", config, progress=False)
    logged = float(_read_metrics(tmp_path / "run" / "metrics.csv")[0]["train_loss"])

    x, emo, mid, _ = load_cache(cache_dir).arrays("train")
    torch.manual_seed(config.seed)
    model = build_model("a2m2e", width=0.125).train()
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(epoch_seed(1, 1, 0)))
    torch.manual_seed(epoch_seed(1, 1, 1))
    losses = []
    with torch.no_grad():
        for b in range(3):
            idx = perm[b * 8 : (b + 1) * 8]
            out = model(x[idx])
            e = ((out.emotions - emo[idx]) ** 2).mean()
            m = ((out.midlevel - mid[idx]) ** 2).mean()
            losses.append(0.7 * e + 0.3 * m)
    assert logged == pytest.approx(float(torch.stack(losses).mean()), rel=1e-5)


def test_training_run_writes_every_file(cache_dir, tmp_path):
    out = tmp_path / "run"
    final = train(cache_dir, out, _config("A2M2E", max_epochs=8), progress=False)
    for name in RUN_FILES:
        assert (out / name).is_file(), name

    rows = _read_metrics(out / "metrics.csv")
    assert list(rows[0]) == list(METRICS_COLUMNS)
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    losses = [float(r["train_loss"]) for r in rows]
    assert losses[-1] < 0.5 * losses[0]  # it learns
    assert all(math.isfinite(float(r["val_avg_corr"])) for r in rows)
    assert all(r["adversarial"] == "False" for r in rows)
    # A2M2E with the default monitor: mean of emotion and mid-level correlation.
    for r in rows:
        expected = 0.5 * (float(r["val_avg_corr"]) + float(r["val_mid_corr"]))
        assert float(r["monitored"]) == pytest.approx(expected, abs=1e-12)
    monitored = [float(r["monitored"]) for r in rows]
    best_epoch = int(np.argmax(monitored)) + 1
    assert final["best_epoch"] == best_epoch
    assert final["best_score"] == pytest.approx(max(monitored))
    assert [r["best"] == "True" for r in rows] == [
        m > max(monitored[:i], default=-math.inf) for i, m in enumerate(monitored)
    ]

    record = json.loads((out / "config.json").read_text())
    assert record["train_config"]["system"] == "A2M2E"
    assert record["cache"]["manifest_hash"] == load_cache(cache_dir).manifest_hash
    assert record["frontend"] == FrontEndConfig().to_dict()
    assert record["versions"]["torch"] == torch.__version__

    config, extra = read_metadata(out / "best.safetensors")
    assert config == ModelConfig("a2m2e", 0.125) and extra["epoch"] == best_epoch
    assert extra["train_config"]["seed"] == 1 and extra["frontend"] == FrontEndConfig().to_dict()

    # final.json metrics = metrics of the best checkpoint, recomputed with numpy.corrcoef.
    run = load_run(out)
    assert not run.model.training and run.final == final and run.system.name == "A2M2E"
    for split in ("train", "validation", "test"):
        x, emo, mid, ids = run.cache.arrays(split)
        with torch.no_grad():
            pred = run.model(x)
        r_emo = [
            np.corrcoef(emo[:, j].numpy(), pred.emotions[:, j].numpy())[0, 1] for j in range(8)
        ]
        r_mid = [
            np.corrcoef(mid[:, j].numpy(), pred.midlevel[:, j].numpy())[0, 1] for j in range(7)
        ]
        report = final["metrics"][split]
        assert report["clips"] == len(ids)
        assert report["emotions"]["avg_corr"] == pytest.approx(np.mean(r_emo), abs=1e-5)
        assert report["midlevel"]["avg_corr"] == pytest.approx(np.mean(r_mid), abs=1e-5)
        mae = float((emo - pred.emotions).abs().mean())
        assert report["emotions"]["mae"] == pytest.approx(mae, rel=1e-5)

    cost = final["cost"]
    assert cost["epochs_run"] == 8 and cost["device"] == "cpu" and cost["wall_seconds"] > 0
    assert cost["optimizer_steps"] == 8 * 3  # 24 clips / batch 8, per epoch
    assert cost["forward_clip_passes"] == 8 * 24 + 8 * 8  # training + validation clips
    assert cost["backward_clip_passes"] == 8 * 24
    assert cost["attack_clip_iterations"] == 0 and set(COUNTERS) <= set(cost)

    # Finished run: skipped, same result, nothing rewritten.
    stamp = (out / "metrics.csv").stat().st_mtime_ns
    again = train(
        cache_dir,
        out,
        _config("A2M2E", max_epochs=8),
        progress=False,
        on_epoch_end=lambda e, r: pytest.fail("finished run was not skipped"),
    )
    assert again == final and (out / "metrics.csv").stat().st_mtime_ns == stamp


def test_early_stopping_and_monitor_rules(cache_dir, tmp_path):
    final = train(
        cache_dir,
        tmp_path / "r",
        _config("A2B2E", max_epochs=12, patience=2, lr=3e-2),
        progress=False,
    )
    rows = _read_metrics(tmp_path / "r" / "metrics.csv")
    # A2B2E, project monitor: emotion correlation alone; stop 2 epochs after the best one.
    assert all(float(r["monitored"]) == float(r["val_avg_corr"]) for r in rows)
    assert len(rows) == min(12, final["best_epoch"] + 2) and final["epochs_run"] == len(rows)
    paper = train(
        cache_dir, tmp_path / "p", _config("A2B2E", max_epochs=2, monitor="paper"), progress=False
    )
    rows = _read_metrics(tmp_path / "p" / "metrics.csv")
    for r in rows:  # the paper's rule adds the unsupervised bottleneck's correlation
        expected = 0.5 * (float(r["val_avg_corr"]) + float(r["val_mid_corr"]))
        assert float(r["monitored"]) == pytest.approx(expected, abs=1e-12)
    assert paper["metrics"]["test"]["midlevel"] is not None
    a2e = train(cache_dir, tmp_path / "e", _config("A2E", max_epochs=1), progress=False)
    assert a2e["metrics"]["test"]["midlevel"] is None
    assert _read_metrics(tmp_path / "e" / "metrics.csv")[0]["val_mid_corr"] == "nan"


def _state(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def _without_time(final: dict) -> dict:
    final = json.loads(json.dumps(final))
    final["cost"].pop("wall_seconds")
    return final


def test_resume_after_kill_is_bit_identical(cache_dir, tmp_path):
    config = _config("A2M2E", max_epochs=6)
    reference = train(cache_dir, tmp_path / "ref", config, progress=False)

    # Kill after epoch 2 has been committed, then restart with the same command.
    def kill_after_2(epoch, row):
        if epoch == 2:
            raise _Killed

    with pytest.raises(_Killed):
        train(cache_dir, tmp_path / "run", config, progress=False, on_epoch_end=kill_after_2)
    assert not (tmp_path / "run" / "final.json").exists()
    assert len(_read_metrics(tmp_path / "run" / "metrics.csv")) == 2
    seen = []
    resumed = train(
        cache_dir,
        tmp_path / "run",
        config,
        progress=False,
        on_epoch_end=lambda e, r: seen.append(e),
    )
    assert seen == [3, 4, 5, 6]
    assert _without_time(resumed) == _without_time(reference)
    a, b = (
        _state(tmp_path / "ref" / "best.safetensors"),
        _state(tmp_path / "run" / "best.safetensors"),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(_read_metrics(tmp_path / "run" / "metrics.csv")) == drop(
        _read_metrics(tmp_path / "ref" / "metrics.csv")
    )
    sa = torch.load(tmp_path / "ref" / "state.pt", weights_only=True)
    sb = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])

    # Killed between committing a new best epoch and writing its checkpoint: repaired.
    def kill_at_new_best(epoch, row):
        if epoch >= 2 and row["best"]:
            (tmp_path / "gap" / "best.safetensors").unlink()
            raise _Killed

    with pytest.raises(_Killed):
        train(cache_dir, tmp_path / "gap", config, progress=False, on_epoch_end=kill_at_new_best)
    repaired = train(cache_dir, tmp_path / "gap", config, progress=False)
    assert _without_time(repaired) == _without_time(reference)
    c = _state(tmp_path / "gap" / "best.safetensors")
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_run_directory_and_cache_errors(cache_dir, tmp_path):
    out = tmp_path / "run"
    train(cache_dir, out, _config("A2E", max_epochs=1), progress=False)
    with pytest.raises(RobustmerError, match=r"another configuration \(seed: 1 -> 2\)"):
        train(
            cache_dir,
            out,
            make_config("A2E", 2, width=0.125, max_epochs=1, patience=10, lr=2e-3),
            progress=False,
        )
    # Resuming on another device is allowed (device is not part of a run's identity).
    train(cache_dir, out, _config("A2E", max_epochs=1, device="auto"), progress=False)

    other = _make_cache(tmp_path / "other", seed=5)
    with pytest.raises(RobustmerError, match="another data cache"):
        train(other, out, _config("A2E", max_epochs=1), progress=False)
    other_frontend = _make_cache(tmp_path / "fe", frontend=FrontEndConfig(fps=50.0))
    with pytest.raises(RobustmerError, match="another data cache"):
        train(other_frontend, out, _config("A2E", max_epochs=1), progress=False)
    with pytest.raises(RobustmerError, match="data cache differs"):
        load_run(out, cache=other)

    manifest = json.loads((other / "manifest.json").read_text())
    manifest["format"] = "something-else"
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RobustmerError, match="format"):
        train(other, tmp_path / "new", _config("A2E", max_epochs=1), progress=False)
    with pytest.raises(RobustmerError, match="not found"):
        train(tmp_path / "nope", tmp_path / "new", _config("A2E", max_epochs=1), progress=False)

    with pytest.raises(RobustmerError, match="24 training clips; expected at least one full"):
        train(cache_dir, tmp_path / "big", _config("A2E", batch_size=32), progress=False)
    assert not (tmp_path / "big" / "config.json").exists()

    (out / "best.safetensors").unlink()
    with pytest.raises(RobustmerError, match="no checkpoint"):
        load_run(out)
    with pytest.raises(RobustmerError, match="not found"):
        load_run(tmp_path / "missing")


def test_load_run_model_matches_checkpoint(cache_dir, tmp_path):
    out = tmp_path / "run"
    train(cache_dir, out, _config("aA2B2E", max_epochs=1), progress=False)
    run = load_run(out)
    ref = load_model(out / "best.safetensors", expected=ModelConfig("a2b2e", 0.125))
    assert run.config == _config("aA2B2E", max_epochs=1) and run.system.adversarial
    x = run.cache.arrays("test")[0]
    with torch.no_grad():
        assert torch.equal(run.model(x).emotions, ref(x).emotions)
    assert Path(run.cache.path).resolve() == Path(cache_dir).resolve()


def test_adversarial_training_attacks_every_fifth_epoch(cache_dir, tmp_path, monkeypatch):
    from robustmer.attacks import ATTACKS, PaperAttack

    calls: list[dict] = []
    current = {"epoch": 1}

    class CountingAttack(PaperAttack):
        def __call__(self, x, y, *, callback=None):
            assert not self.model.training  # the attack runs with the model in eval mode
            result = super().__call__(x, y, callback=callback)
            calls.append(
                {
                    "epoch": current["epoch"],
                    "clips": x.shape[0],
                    "config": self.config,
                    "iterations": int(result.iterations.sum()),
                    "passes": result.model_passes,
                }
            )
            return result

    def next_epoch(epoch, row):
        current["epoch"] = epoch + 1

    monkeypatch.setitem(ATTACKS, "paper", CountingAttack)
    config = _config("aA2E", max_epochs=6, adv_attack=PaperConfig(steps=4), lr=1e-3)
    final = train(cache_dir, tmp_path / "adv", config, progress=False, on_epoch_end=next_epoch)
    assert [c["epoch"] for c in calls] == [5, 5, 5]  # 3 full batches, epoch 5 only
    assert all(c["clips"] == 8 and c["config"] == PaperConfig(steps=4) for c in calls)
    rows = _read_metrics(tmp_path / "adv" / "metrics.csv")
    assert [r["adversarial"] for r in rows] == ["False"] * 4 + ["True", "False"]
    assert math.isnan(float(rows[0]["adv_loss"])) and float(rows[4]["adv_loss"]) > 0

    cost = final["cost"]
    iters = sum(c["iterations"] for c in calls)
    passes = sum(c["passes"] for c in calls)
    assert 0 < iters <= 3 * 8 * 4  # at most max_iters per clip
    assert cost["attack_calls"] == 3 and cost["adversarial_steps"] == 3
    assert cost["attack_clip_iterations"] == iters
    assert cost["optimizer_steps"] == 6 * 3 + 3
    assert cost["forward_clip_passes"] == 6 * 24 + 3 * 8 + passes + 6 * 8
    assert cost["backward_clip_passes"] == 6 * 24 + 3 * 8 + iters
    assert cost["adversarial_epochs"] == 1

    # Up to epoch 4 the adversarial system trains exactly like its standard counterpart;
    # epoch 5 differs (the extra steps on adversarial batches).
    train(cache_dir, tmp_path / "std", _config("A2E", max_epochs=6, lr=1e-3), progress=False)
    std = _read_metrics(tmp_path / "std" / "metrics.csv")
    for a, s in zip(rows[:4], std[:4], strict=True):
        assert a["train_loss"] == s["train_loss"] and a["val_avg_corr"] == s["val_avg_corr"]
    assert rows[5]["train_loss"] != std[5]["train_loss"]


def test_pgd_adversarial_training_needs_no_code(cache_dir, tmp_path):
    """adv_attack holds any registered attack's settings: PGD adversarial training."""
    adv = PGDConfig(epsilon=0.05, steps=2)
    config = _config("aA2E", max_epochs=2, adv_every=1, adv_attack=adv)
    final = train(cache_dir, tmp_path / "pgd", config, progress=False)
    rows = _read_metrics(tmp_path / "pgd" / "metrics.csv")
    assert [r["adversarial"] for r in rows] == ["True", "True"]
    assert all(float(r["adv_loss"]) > 0 for r in rows)
    cost = final["cost"]
    # 24 training clips: 3 batches of 8 per epoch, each attacked with 2 PGD steps per clip
    assert cost["attack_calls"] == 6 and cost["attack_clip_iterations"] == 6 * 8 * 2
    # PGD passes per batch: clean + steps + final, per clip
    assert cost["forward_clip_passes"] == 2 * 24 + 6 * (8 + 8 * (2 + 2)) + 2 * 8
    record = json.loads((tmp_path / "pgd" / "config.json").read_text())
    assert record["train_config"]["adv_attack"] == adv.to_dict()
    assert load_run(tmp_path / "pgd").config.adv_attack == adv  # config.json round trip


# ----------------------------------------------------------------------------- CLI


def test_cli_train(cache_dir, tmp_path, capsys):
    from robustmer.cli import main

    out = tmp_path / "cli"
    args = [
        "train",
        "--system",
        "A2B2E",
        "--seed",
        "3",
        "--data",
        str(cache_dir),
        "--out",
        str(out),
        "--width",
        "0.125",
        "--max-epochs",
        "2",
        "--device",
        "cpu",
        "--no-progress",
    ]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 0
    assert "test avg corr" in capsys.readouterr().out
    final = json.loads((out / "final.json").read_text())
    assert final["system"] == "A2B2E" and final["seed"] == 3 and final["epochs_run"] == 2
    assert json.loads((out / "config.json").read_text())["train_config"]["max_epochs"] == 2
    with pytest.raises(SystemExit) as info:
        main(
            [
                "train",
                "--system",
                "B2E",
                "--seed",
                "3",
                "--data",
                str(cache_dir),
                "--out",
                str(tmp_path / "x"),
            ]
        )
    assert info.value.code == 2
    assert "A2E, A2B2E, A2M2E" in capsys.readouterr().err
