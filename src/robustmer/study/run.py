"""``robustmer study``: data -> spectrograms -> systems x seeds -> attacks -> report.

A study directory::

    STUDY/study.json                  plan, settings and the state of every unit of work
    STUDY/data/                       the synthetic data set (when no data is given)
    STUDY/cache/                      prepared model inputs (unless --data names a cache)
    STUDY/runs/<SYSTEM>-seed<SEED>/   one training run each, with attacks/paper/
    STUDY/report/                     the report

Every unit is resumable by its own files (a training run resumes from its last completed
epoch, an attack that finished is skipped), so a study killed at any moment and started
again with the same command redoes nothing that finished and ends with the same tables.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from robustmer._io import read_json, to_jsonable, write_json
from robustmer.errors import RobustmerError
from robustmer.provenance import versions
from robustmer.study.executors import Unit, plan_executor
from robustmer.study.profiles import StudyProfile, get_profile, shrunk

logger = logging.getLogger(__name__)

STUDY_FILE = "study.json"
SYNTH_SEED = 0


@dataclass(frozen=True)
class ModelUnit:
    """One system x seed: a training unit, then an attack unit on the test split."""

    system: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.system}-seed{self.seed}"

    @property
    def units(self) -> tuple[str, str]:
        """Names of its training and attack units in ``study.json``."""
        return f"train/{self.name}", f"attack/{self.name}/paper"


class StudyState:
    """``study.json``: the plan, the settings and per-unit state, rewritten atomically."""

    def __init__(self, path: Path, doc: dict[str, Any]) -> None:
        self.path = path
        self.doc = doc

    @classmethod
    def open(cls, out: Path, settings: dict[str, Any], plan: list[str]) -> StudyState:
        path = out / STUDY_FILE
        settings = to_jsonable(settings)  # tuples -> lists, as read back from JSON
        if path.exists():
            doc = read_json(path)
            old = doc.get("settings") or {}
            if old != settings:
                differ = sorted(
                    k for k in settings.keys() | old.keys() if old.get(k) != settings.get(k)
                )
                raise RobustmerError(
                    f"{path}: this study directory was made with other settings "
                    f"({', '.join(differ)} differ: was {[old.get(k) for k in differ]}, now "
                    f"{[settings.get(k) for k in differ]}); use another --out, or the "
                    "original command to resume"
                )
        else:
            doc = {"settings": settings, "units": {}}
        units = doc.setdefault("units", {})
        for name in plan:
            units.setdefault(name, {"state": "pending"})
            if units[name]["state"] == "running":  # killed last time
                units[name]["state"] = "pending"
        doc["plan"] = plan
        state = cls(path, doc)
        state.save()
        return state

    def save(self) -> None:
        write_json(self.path, self.doc)

    def set(self, unit: str, state: str, **info: Any) -> None:
        entry = self.doc["units"].setdefault(unit, {})
        entry.update(state=state, updated=datetime.now(UTC).isoformat(timespec="seconds"), **info)
        self.save()

    def done(self, unit: str) -> bool:
        return self.doc["units"].get(unit, {}).get("state") == "done"


def _train_unit(
    system: str,
    seed: int,
    cache_dir: str,
    run_dir: str,
    train_overrides: dict[str, Any],
    device: str,
    threads: int,
) -> dict[str, float]:
    """Train one system x seed (a study unit; runs in the study process or a worker)."""
    import torch

    from robustmer.training import TrainConfig, train

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    config = TrainConfig(system=system, seed=seed, device=device, **train_overrides)
    train(cache_dir, run_dir, config, progress=False)
    return {"train_seconds": time.perf_counter() - t0}


def _attack_unit(
    run_dir: str, attack: dict[str, Any], device: str, threads: int
) -> dict[str, float]:
    """Attack one trained run's test split (a study unit)."""
    import torch

    from robustmer.evaluation import attack_run

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    attack_run(
        run_dir,
        attack="paper",
        split="test",
        iters=attack.get("max_iters"),
        lr=attack.get("lr"),
        mode=attack.get("mode"),
        epsilon=attack.get("epsilon"),
        device=device,
        progress=False,
    )
    return {"attack_seconds": time.perf_counter() - t0}


def _units(
    models: list[ModelUnit],
    prof: StudyProfile,
    cache_dir: Path,
    out: Path,
    device: str,
    threads: int,
) -> list[Unit]:
    """Every model's training unit, then its attack unit (after the training)."""
    units = []
    for m in models:
        run_dir = str(out / "runs" / m.name)
        train_name, attack_name = m.units
        units.append(
            Unit(
                train_name,
                _train_unit,
                {
                    "system": m.system,
                    "seed": m.seed,
                    "cache_dir": str(cache_dir),
                    "run_dir": run_dir,
                    "train_overrides": prof.train,
                    "device": device,
                    "threads": threads,
                },
            )
        )
        units.append(
            Unit(
                attack_name,
                _attack_unit,
                {"run_dir": run_dir, "attack": prof.attack, "device": device, "threads": threads},
                after=(train_name,),
            )
        )
    return units


def _prepare_data(
    out: Path,
    profile: StudyProfile,
    *,
    data: Path | None,
    soundtracks: Path | None,
    midlevel: Path | None,
) -> tuple[Path, dict[str, Any]]:
    """Synthesise and/or prepare the data; return the cache directory and its description."""
    from robustmer.data import generate_synthetic, load_cache, prepare

    if data is not None:
        cache = load_cache(data)
        return Path(data), {
            "kind": "given cache",
            "cache": str(data),
            "manifest_hash": cache.manifest_hash,
        }
    cache_dir = out / "cache"
    if soundtracks is None:
        raw = out / "data"
        generate_synthetic(raw, clips=profile.clips, seconds=profile.seconds, seed=SYNTH_SEED)
        soundtracks, midlevel = raw / "soundtracks", raw / "midlevel"
        kind = {
            "kind": "synthetic",
            "clips": profile.clips,
            "seconds": profile.seconds,
            "seed": SYNTH_SEED,
        }
    else:
        kind = {"kind": "real", "soundtracks": str(soundtracks), "midlevel": str(midlevel)}
    prepare(soundtracks, midlevel, cache_dir, frames=profile.frames, progress=False)
    cache = load_cache(cache_dir)
    return cache_dir, {
        **kind,
        "cache": str(cache_dir),
        "manifest_hash": cache.manifest_hash,
        "clips_in_cache": len(cache.ids),
    }


def run_study(
    out: str | Path = "robustmer-study",
    *,
    data: str | Path | None = None,
    soundtracks: str | Path | None = None,
    midlevel: str | Path | None = None,
    profile: str | StudyProfile | None = None,
    systems: tuple[str, ...] | None = None,
    seeds: tuple[int, ...] | None = None,
    device: str = "auto",
    jobs: int | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    cpus_per_unit: int | None = None,
    gpus_per_unit: float | None = None,
    progress: bool = True,
) -> Path:
    """Run (or resume) a whole study and write its report.

    Parameters
    ----------
    out : str or Path
        Study directory.
    data : str or Path, optional
        An existing cache made by ``robustmer prepare``.
    soundtracks, midlevel : str or Path, optional
        Real data directories (both or neither); ``prepare`` is run on them.
    profile : {"quick", "paper"} or StudyProfile, optional
        A named profile or your own :class:`StudyProfile`. Default: ``quick`` when no data
        is given (built-in synthetic data), else ``paper``.
    systems, seeds : tuple, optional
        Subsets to run instead of the profile's (all five systems; 3 or 10 seeds).
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    jobs : int, optional
        Local executor: parallel worker processes for independent units (trainings,
        attacks), each with ``cpu_count // jobs`` torch threads. Default: the CPU count
        when running on the CPU (small models use cores better in separate processes), one
        per GPU on GPUs (each worker pinned to one GPU).
    executor : {"local", "ray"}
        Where units run (:data:`robustmer.study.executors.EXECUTORS`).
    ray_address : str, optional
        Ray: ``auto`` or ``HOST:PORT`` of a running cluster; default a local Ray instance.
    cpus_per_unit : int, optional
        Torch threads per unit (and CPUs a Ray task reserves; Ray default 1).
    gpus_per_unit : float, optional
        Ray: GPUs a task reserves (default 1 with ``cuda``, else 0).
    progress : bool
        Show the study's progress display.

    Returns
    -------
    Path
        The report directory.
    """
    from robustmer.progress import progress_bar
    from robustmer.training import get_system

    out = Path(out)
    if data is not None and (soundtracks is not None or midlevel is not None):
        raise RobustmerError("give either --data or --soundtracks/--midlevel, not both")
    if (soundtracks is None) != (midlevel is None):
        raise RobustmerError("real data needs both --soundtracks and --midlevel")
    given = data is not None or soundtracks is not None
    if isinstance(profile, StudyProfile):
        prof = profile
    else:
        prof = get_profile(profile or ("paper" if given else "quick"))
    prof = prof.with_overrides(systems=systems, seeds=seeds)
    for name in prof.systems:
        get_system(name)
    if any(s < 0 for s in prof.seeds):
        raise RobustmerError(f"--seeds {prof.seeds}; expected non-negative integers")
    plan_ex = plan_executor(
        executor,
        device=device,
        jobs=jobs,
        cpus_per_unit=cpus_per_unit,
        gpus_per_unit=gpus_per_unit,
        address=ray_address,
    )
    resolved = plan_ex.device

    models = [ModelUnit(s, seed) for s in prof.systems for seed in prof.seeds]
    plan = ["data", *(name for m in models for name in m.units), "report"]
    settings = {
        "profile": prof.to_dict(),
        "data": str(data) if data else None,
        "soundtracks": str(soundtracks) if soundtracks else None,
        "midlevel": str(midlevel) if midlevel else None,
    }
    out.mkdir(parents=True, exist_ok=True)
    state = StudyState.open(out, settings, plan)
    state.doc.update(
        profile=prof.name,
        shrunk=shrunk(prof),
        attack={"name": "paper", "split": "test", **prof.attack},
        device=resolved,
        threads_per_unit=plan_ex.threads,
        versions=versions(),
    )
    state.save()

    t_start = time.perf_counter()
    from rich.progress import TextColumn

    current = TextColumn("[cyan]{task.fields[current]}")
    with progress_bar(transient=False, extra_columns=(current,)) as bar:
        task = bar.add_task("study", total=len(plan), visible=progress, current="")
        bar.update(task, completed=sum(state.done(u) for u in plan if u != "report"))

        def show(text: str) -> None:
            bar.update(task, current=text)

        cache_ok = "data" in state.doc and Path(state.doc["data"]["cache"]).is_dir()
        if not (state.done("data") and cache_ok):
            show("data: synthesise/prepare" if data is None else "data: check cache")
            _, state.doc["data"] = _prepare_data(
                out,
                prof,
                data=Path(data) if data else None,
                soundtracks=Path(soundtracks) if soundtracks else None,
                midlevel=Path(midlevel) if midlevel else None,
            )
            state.set("data", "done")
            bar.advance(task)
        cache_dir = Path(state.doc["data"]["cache"])

        units = _units(models, prof, cache_dir, out, resolved, plan_ex.threads)
        running: set[str] = set()

        def on_start(name: str) -> None:
            state.set(name, "running", executor=plan_ex.executor.name)
            running.add(name)
            show(", ".join(sorted(running)))

        def on_finish(name: str, seconds: dict[str, float]) -> None:
            state.set(name, "done", **{k: round(v, 3) for k, v in seconds.items()})
            running.discard(name)
            bar.advance(task)
            show(", ".join(sorted(running)))

        with plan_ex.executor as ex:
            ex.run(
                [u for u in units if not state.done(u.name)],
                on_start=on_start,
                on_finish=on_finish,
            )

        show("report")
        from robustmer.report import build_report

        report = build_report(out)
        state.doc["wall_seconds_last_invocation"] = round(time.perf_counter() - t_start, 3)
        state.set("report", "done")
        bar.advance(task)
        show("done")
    return report
