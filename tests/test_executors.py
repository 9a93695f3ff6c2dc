"""Study executors: dependency order, GPU pinning, options, and Ray against the local pool.

The Ray tests share one local 2-CPU Ray instance (started once for the module) and compare
tiny studies run on Ray with the same study run by the local executor, to the last bit.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_profile

from robustmer.attacks import PaperConfig
from robustmer.cli import main
from robustmer.errors import RobustmerError
from robustmer.study import run as study_run
from robustmer.study import run_study
from robustmer.study.executors import (
    EXECUTORS,
    ExecutorOptions,
    LocalExecutor,
    RayExecutor,
    Unit,
    gpu_per_worker,
    make_executor,
    visible_gpus,
)

TABLES = ("table1", "delta_mae", "clips", "tests")
TINY = tiny_profile(seconds=2.0, attacks=(PaperConfig(steps=6),))


def _echo(value: int) -> dict[str, int]:
    return {"value": value}


def _record_run(executor, units):
    events: list[tuple[str, ...]] = []
    with executor as ex:
        ex.run(
            units,
            on_start=lambda name: events.append(("start", name)),
            on_finish=lambda name, result: events.append(("finish", name, result["value"])),
        )
    return events


def test_units_run_after_their_dependencies_and_report_start_then_finish():
    units = [
        Unit("attack/m1", _echo, {"value": 2}, after=("train/m1",)),
        Unit("train/m1", _echo, {"value": 1}),
        Unit("attack/m0", _echo, {"value": 0}, after=("train/m0",)),  # train/m0 done earlier
    ]
    events = _record_run(LocalExecutor(1), units)
    assert events == [
        ("start", "train/m1"),
        ("finish", "train/m1", 1),
        ("start", "attack/m1"),
        ("finish", "attack/m1", 2),
        ("start", "attack/m0"),
        ("finish", "attack/m0", 0),
    ]
    with pytest.raises(RobustmerError, match="circular"):
        _record_run(LocalExecutor(1), [Unit("a", _echo, {"value": 0}, after=("b",)),
                                       Unit("b", _echo, {"value": 1}, after=("a",))])
    with pytest.raises(RobustmerError, match="not unique"):
        _record_run(LocalExecutor(1), [Unit("a", _echo, {"value": 0})] * 2)


def test_worker_processes_run_every_unit():
    units = [Unit(f"u{i}", _echo, {"value": i}) for i in range(4)]
    events = _record_run(LocalExecutor(2), units)
    assert sorted(e[1:] for e in events if e[0] == "finish") == [(f"u{i}", i) for i in range(4)]
    for i in range(4):  # every unit reported its start before its finish
        assert events.index(("start", f"u{i}")) < events.index(("finish", f"u{i}", i))


def test_gpus_are_assigned_to_workers_round_robin():
    assert gpu_per_worker(5, ["0", "1"]) == ["0", "1", "0", "1", "0"]
    assert gpu_per_worker(2, ["3", "1", "2"]) == ["3", "1"]
    assert gpu_per_worker(3, []) == [None, None, None]
    # The parent's CUDA_VISIBLE_DEVICES names the GPUs a worker may be pinned to.
    assert visible_gpus(2, env="") == ["0", "1"]
    assert visible_gpus(2, env="2, 5") == ["2", "5"]
    assert visible_gpus(1, env="GPU-a1b2,GPU-c3d4") == ["GPU-a1b2"]


def test_executor_options():
    import torch

    cpu = torch.device("cpu")
    cpus = os.cpu_count() or 1
    local = make_executor("local", ExecutorOptions(cpu))
    assert isinstance(local, LocalExecutor) and local.workers == cpus and local.gpus == ()
    assert LocalExecutor.default_threads(ExecutorOptions(cpu)) == 1
    assert LocalExecutor.default_threads(ExecutorOptions(cpu, jobs=1)) == cpus
    assert make_executor("local", ExecutorOptions(cpu, jobs=3)).workers == 3
    ray = make_executor("ray", ExecutorOptions(cpu, threads=2, address="auto"))
    assert isinstance(ray, RayExecutor) and ray.address == "auto"
    assert ray.cpus_per_unit == 2 and ray.gpus_per_unit == 0
    assert RayExecutor.default_threads(ExecutorOptions(cpu)) == 1
    # With Ray the GPUs may be on other nodes: cuda is not checked here.
    cuda = RayExecutor.resolve_device("cuda")
    assert cuda.type == "cuda"
    assert make_executor("ray", ExecutorOptions(cuda)).gpus_per_unit == 1
    assert make_executor("ray", ExecutorOptions(cuda, gpus_per_unit=0.25)).gpus_per_unit == 0.25
    assert RayExecutor.resolve_device("auto", gpus_per_unit=0.5).type == "cuda"
    assert set(EXECUTORS) == {"local", "ray"}
    for name, options, match in (
        ("dask", ExecutorOptions(cpu), "unknown; expected one of local, ray"),
        ("ray", ExecutorOptions(cpu, jobs=2), "jobs: not an option of the ray executor"),
        ("local", ExecutorOptions(cpu, address="auto"), "address: not an option of the local"),
        ("ray", ExecutorOptions(cpu, gpus_per_unit=1.0), "with device cpu"),
    ):
        with pytest.raises(RobustmerError, match=match):
            make_executor(name, options)


def test_ray_missing_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(SystemExit) as exc:
        main(["study", "--executor", "ray", "--device", "cpu", "--out", str(tmp_path / "s")])
    assert exc.value.code == 2
    assert "pip install 'robustmer[ray]'" in capsys.readouterr().err


# --- Ray ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_instance():
    """One local 2-CPU Ray instance for the module (start-up takes seconds)."""
    import logging

    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    # Functions of this test module travel to Ray workers by value (tests/ is not importable
    # there); the package's own unit functions go by reference.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    settings = {
        "num_cpus": 2,
        "include_dashboard": False,
        "_node_ip_address": "127.0.0.1",
        "logging_level": logging.WARNING,
        "log_to_driver": False,
    }
    try:
        ray.init(**settings)
    except Exception:  # Ray gives its node 30 s to start: a second chance on a busy machine
        ray.shutdown()
        ray.init(**settings)
    yield ray
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def local_tables(tiny_cache, tmp_path_factory) -> dict[str, pd.DataFrame]:
    """The tiny study with the local executor: 2 worker processes, 1 torch thread per unit."""
    out = tmp_path_factory.mktemp("local") / "study"
    run_study(out, data=tiny_cache, profile=TINY, device="cpu", jobs=2, threads=1, progress=False)
    return _tables(out)


def _tables(study: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(study / "report" / f"{name}.csv") for name in TABLES}


def _assert_same_tables(tables, reference) -> None:
    for name in TABLES:
        pd.testing.assert_frame_equal(tables[name], reference[name], check_exact=True)


def _fails_once(marker: str, error: str, fn, **kwargs):
    """Run ``fn(**kwargs)``, except the first time (across processes): fail instead."""
    if not os.path.exists(marker):
        Path(marker).write_text("failed once\n")
        if error == "exit":
            os._exit(3)  # the worker process dies
        raise OSError(f"injected failure ({marker})")
    return fn(**kwargs)


def test_ray_executor_retries_and_reports_starts(ray_instance, tmp_path):
    units = [
        Unit("raises", _fails_once, {"marker": str(tmp_path / "a"), "error": "raise",
                                     "fn": _echo, "value": 1}),
        Unit("dies", _fails_once, {"marker": str(tmp_path / "b"), "error": "exit",
                                   "fn": _echo, "value": 2}, after=("raises",)),
    ]
    events = _record_run(RayExecutor(poll_seconds=0.1), units)
    assert ("finish", "raises", 1) in events and ("finish", "dies", 2) in events
    assert (tmp_path / "a").is_file() and (tmp_path / "b").is_file()  # each failed once
    assert events.index(("finish", "raises", 1)) < events.index(("finish", "dies", 2))
    # Out of retries, the unit's own exception reaches the caller.
    with pytest.raises(OSError, match="injected"):
        _record_run(
            RayExecutor(max_retries=0),
            [Unit("x", _fails_once, {"marker": str(tmp_path / "c"), "error": "raise",
                                     "fn": _echo, "value": 0})],
        )
    # Bad input fails the same way every time: not retried.
    attempts = tmp_path / "attempts"
    with pytest.raises(RobustmerError, match="bad input"):
        _record_run(RayExecutor(), [Unit("y", _bad_input, {"log": str(attempts)})])
    assert attempts.read_text() == "x"


def _bad_input(log: str) -> dict[str, int]:
    with open(log, "a") as fh:
        fh.write("x")
    raise RobustmerError("bad input")


def test_ray_study_equals_the_local_study(ray_instance, tiny_cache, local_tables, tmp_path):
    out = tmp_path / "study"
    run_study(out, data=tiny_cache, profile=TINY, device="cpu", executor="ray", progress=False)
    state = json.loads((out / "study.json").read_text())
    assert all(u["state"] == "done" for u in state["units"].values())
    assert state["units"]["train/A2E-seed6"]["executor"] == "ray"
    assert state["settings"]["threads"] == 1
    _assert_same_tables(_tables(out), local_tables)


def test_ray_study_retries_a_failed_unit(
    ray_instance, tiny_cache, local_tables, tmp_path, monkeypatch
):
    marker = str(tmp_path / "failed")

    def flaky_train(**kwargs):
        return _fails_once(marker, "raise", real_train, **kwargs)

    real_train = study_run._train_unit
    monkeypatch.setattr(study_run, "_train_unit", flaky_train)
    out = tmp_path / "study"
    run_study(out, data=tiny_cache, profile=TINY, device="cpu", executor="ray", progress=False)
    assert Path(marker).is_file()
    _assert_same_tables(_tables(out), local_tables)


def test_study_killed_under_ray_resumes_with_either_executor(
    ray_instance, tiny_cache, local_tables, tmp_path, monkeypatch
):
    """Ctrl-C in the study process when the first training finished (the other is still
    running on Ray and is cancelled), then resume with the local executor."""
    real_set = study_run.StudyState.set

    def interrupted(self, unit, state, **info):
        if state == "done" and unit.startswith("train/"):
            raise KeyboardInterrupt
        return real_set(self, unit, state, **info)

    out = tmp_path / "study"
    monkeypatch.setattr(study_run.StudyState, "set", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_study(out, data=tiny_cache, profile=TINY, device="cpu", executor="ray",
                  progress=False)
    monkeypatch.setattr(study_run.StudyState, "set", real_set)
    state = json.loads((out / "study.json").read_text())
    assert not any(u["state"] == "done" for name, u in state["units"].items() if "/" in name)
    assert not (out / "report").exists()
    run_study(out, data=tiny_cache, profile=TINY, device="cpu", jobs=2, progress=False)
    state = json.loads((out / "study.json").read_text())
    attack = f"attack/A2M2E-seed6/{TINY.attacks[0].key()}"
    assert state["units"][attack]["executor"] == "local"
    _assert_same_tables(_tables(out), local_tables)
