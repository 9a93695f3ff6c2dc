"""``robustmer study``: data -> spectrograms -> systems x seeds -> attacks -> report.

A study directory::

    STUDY/study.json                  plan, settings and the state of every unit of work
                                      (paths relative to STUDY, or absolute)
    STUDY/.lock                       held while a study runs; the holder's PID
    STUDY/cache/                      prepared model inputs (unless --data names a cache);
                                      for synthetic data hard links into the shared store
                                      (robustmer.data.synth.stored_synthetic)
    STUDY/runs/<SYSTEM>-seed<SEED>/   one training run each, with attacks/<key>/ per attack
    STUDY/report/                     the report

The work is a list of units (each system x seed's training, then its attacks) run by an
executor (:mod:`robustmer.study.executors`: worker processes here, or Ray tasks on a
cluster) that reports each unit's start and finish; only this process writes
``study.json``. Every unit is resumable by its own files (a training run resumes from its
last completed epoch, an attack that finished is skipped), so a study killed at any moment
and started again with the same command, with either executor, redoes nothing that
finished and ends with the same tables.
Every unit computes with the study's recorded torch thread count wherever it runs, so its
results do not depend on whether it ran in a worker or in the main process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustmer._io import check_writable, read_json, to_jsonable, write_json
from robustmer.attacks.execution import Execution
from robustmer.errors import RobustmerError
from robustmer.provenance import versions
from robustmer.records import AUDIO_DIR, STUDY_FILE, attack_dir
from robustmer.study.executors import EXECUTORS, ExecutorOptions, Unit, make_executor
from robustmer.study.lock import study_lock
from robustmer.study.profiles import StudyProfile, get_profile, shrunk
from robustmer.study.workers import unit_threads

if TYPE_CHECKING:
    import torch

    from robustmer.attacks import AttackConfig

logger = logging.getLogger(__name__)

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
    def train_unit(self) -> str:
        """Name of its training unit in ``study.json``."""
        return f"train/{self.name}"

    def attack_unit(self, attack: AttackConfig) -> str:
        """Name of its unit attacking with ``attack`` (named by the attack's storage key)."""
        return f"attack/{self.name}/{attack.key()}"


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
                    f"{[settings.get(k) for k in differ]}); expected the same settings to "
                    "resume, or another output directory"
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


def stored_path(path: str | os.PathLike[str] | None, study_dir: Path) -> str | None:
    """How ``study.json`` records a path: relative to the study directory when inside it
    (so a moved or copied study uses its own files), else absolute; never relative to the
    working directory."""
    if path is None:
        return None
    full = Path(path).resolve()
    try:
        return full.relative_to(study_dir.resolve()).as_posix()
    except ValueError:
        return str(full)


def recorded_path(text: str, study_dir: Path) -> Path:
    """Inverse of :func:`stored_path`: the path ``study.json`` records, as a usable path."""
    path = Path(text)
    return path if path.is_absolute() else study_dir / path


def _train_unit(
    system: str,
    seed: int,
    cache_dir: str,
    run_dir: str,
    train_overrides: dict[str, Any],
    device: torch.device,
    threads: int,
) -> dict[str, float]:
    """Train one system x seed with ``threads`` torch threads, wherever it runs (a unit)."""
    from robustmer.training import TrainConfig, train

    with unit_threads(threads):
        t0 = time.perf_counter()
        config = TrainConfig(system=system, seed=seed, device=str(device), **train_overrides)
        train(cache_dir, run_dir, config, device=device, progress=False)
    return {"train_seconds": time.perf_counter() - t0}


def _attack_unit(
    run_dir: str,
    attack: AttackConfig,
    device: torch.device,
    threads: int,
    save_examples: bool = False,
    save_audio: bool = False,
    execution: Execution | None = None,
) -> dict[str, float]:
    """Attack one trained run's test split with one evaluation attack, with ``threads``
    torch threads (a unit); ``save_examples`` keeps the adversarial examples (for the
    report's transfer matrix), ``save_audio`` a waveform attack's listening files in
    ``RUN/attacks/<key>/audio/`` (for the report's listening section); ``execution``: how
    to compute it (default eager)."""
    from robustmer.evaluation import attack_run

    listen = attack_dir(run_dir, attack.key()) / AUDIO_DIR if save_audio else None
    with unit_threads(threads):
        t0 = time.perf_counter()
        attack_run(
            run_dir,
            attack,
            split="test",
            device=device,
            progress=False,
            save_examples=save_examples,
            save_audio=listen,
            execution=execution,
        )
    return {"attack_seconds": time.perf_counter() - t0}


def _attack_group_unit(
    run_dirs: list[str],
    attack: AttackConfig,
    device: torch.device,
    threads: int,
    save_examples: bool = False,
    execution: Execution | None = None,
) -> dict[str, float]:
    """Attack several trained runs (one system's seeds) with one evaluation attack, stacked
    into one batch (:func:`robustmer.evaluation.attack_runs`), with ``threads`` torch
    threads (a unit); each run's results go to its own ``RUN/attacks/<key>/``."""
    from robustmer.evaluation import attack_runs

    with unit_threads(threads):
        t0 = time.perf_counter()
        attack_runs(
            run_dirs,
            attack,
            split="test",
            device=device,
            progress=False,
            save_examples=save_examples,
            execution=execution,
        )
    return {"attack_seconds": time.perf_counter() - t0}


def _prepare_data(
    out: Path,
    profile: StudyProfile,
    *,
    data: Path | None,
    soundtracks: Path | None,
    midlevel: Path | None,
) -> tuple[Path, dict[str, Any]]:
    """Synthesise and/or prepare the data; return the cache directory and its description
    (paths as :func:`stored_path` records them)."""
    from robustmer.data import load_cache, prepare
    from robustmer.data.synth import stored_synthetic

    if data is not None:
        cache = load_cache(data)
        return Path(data), {
            "kind": "given cache",
            "cache": stored_path(data, out),
            "manifest_hash": cache.manifest_hash,
        }
    cache_dir = out / "cache"
    if soundtracks is None:
        # Synthesised and prepared once in the shared store; the study gets hard links.
        stored = stored_synthetic(
            clips=profile.clips, seconds=profile.seconds, seed=SYNTH_SEED, frames=profile.frames
        )
        _link_tree(stored.cache, cache_dir)
        kind = {
            "kind": "synthetic",
            "clips": profile.clips,
            "seconds": profile.seconds,
            "seed": SYNTH_SEED,
            "store": str(stored.root),
            "reused": stored.reused,
            "stage_seconds": stored.seconds,
        }
    else:
        t0 = time.perf_counter()
        prepare(soundtracks, midlevel, cache_dir, frames=profile.frames, progress=False)
        kind = {
            "kind": "real",
            "soundtracks": stored_path(soundtracks, out),
            "midlevel": stored_path(midlevel, out),
            "stage_seconds": {"spectrograms": time.perf_counter() - t0},
        }
    cache = load_cache(cache_dir)
    return cache_dir, {
        **kind,
        "cache": stored_path(cache_dir, out),
        "manifest_hash": cache.manifest_hash,
        "clips_in_cache": len(cache.ids),
    }


def _link_tree(src: Path, dst: Path) -> None:
    """Copy the directory ``src`` to ``dst`` (replaced atomically) with hard links where the
    file system allows (its files are only ever replaced, never modified in place)."""
    import shutil

    from robustmer._io import atomic_directory

    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    with atomic_directory(dst) as tmp:
        shutil.copytree(src, tmp, copy_function=link, dirs_exist_ok=True)


@dataclass(frozen=True)
class StudyRequest:
    """What one ``run_study`` call asks for, validated and resolved.

    Attributes
    ----------
    out : Path
        Study directory.
    profile : StudyProfile
        With the requested systems and seeds.
    data, soundtracks, midlevel : Path or None
        The given cache, or the real data directories, or none (synthetic data).
    device : torch.device
    jobs : int or None
        Requested parallel workers (None: the default for the device).
    threads : int or None
        Requested torch threads per unit (None: as recorded, else the default).
    executor : str
        Where units run (:data:`robustmer.study.executors.EXECUTORS`).
    options : ExecutorOptions
        The executor's options (its ``threads`` is ``threads``, before defaults).
    execution : Execution
        How the evaluation attacks are computed (:mod:`robustmer.attacks.execution`); with
        ``stack_runs`` one attack unit per system and attack (``attack/<SYSTEM>/<key>``)
        attacks all its seeds in one batch.
    """

    out: Path
    profile: StudyProfile
    data: Path | None
    soundtracks: Path | None
    midlevel: Path | None
    device: torch.device
    jobs: int | None
    threads: int | None
    executor: str = "local"
    options: ExecutorOptions | None = None
    execution: Execution = Execution()

    @property
    def units(self) -> list[ModelUnit]:
        return [ModelUnit(s, seed) for s in self.profile.systems for seed in self.profile.seeds]

    def attack_units(self, models: list[ModelUnit]) -> list[tuple[str, list[ModelUnit], Any, bool]]:
        """``(unit name, models it attacks, attack, stacked)`` of ``models``' evaluation
        attacks: one per model and attack, or with ``execution.stack_runs`` one per attack for
        all of ``models`` (one system's seeds), named ``attack/<SYSTEM>/<key>``. Attacks that
        keep listening audio (:func:`robustmer.evaluation.snr_target.listen_keys`) are never
        stacked: the one-run path writes their audio."""
        from robustmer.evaluation.snr_target import listen_keys

        attacks = self.profile.evaluation_attacks()
        listen = listen_keys(attacks)
        units = []
        for a in attacks:
            if self.execution.stack_runs and a.key() not in listen:
                units.append((f"attack/{models[0].system}/{a.key()}", models, a, True))
            else:
                units += [(m.attack_unit(a), [m], a, False) for m in models]
        return units

    def by_system(self) -> list[list[ModelUnit]]:
        """The models grouped by system (with stacking, one group's attacks are one unit)."""
        if not self.execution.stack_runs:
            return [[m] for m in self.units]
        return [[m for m in self.units if m.system == s] for s in self.profile.systems]

    @property
    def plan(self) -> list[str]:
        names = ["data"]
        for models in self.by_system():
            names += [m.train_unit for m in models]
            names += [name for name, *_ in self.attack_units(models)]
        return [*names, "report"]

    def settings(self, recorded_threads: int | None) -> dict[str, Any]:
        """The settings ``study.json`` records and a later run must repeat."""
        threads = self.threads or recorded_threads
        if threads is None:
            threads = EXECUTORS[self.executor].default_threads(self.options)
        return {
            "profile": self.profile.to_dict(),
            "data": stored_path(self.data, self.out),
            "soundtracks": stored_path(self.soundtracks, self.out),
            "midlevel": stored_path(self.midlevel, self.out),
            "threads": threads,
            **({"execution": self.execution.to_dict()} if self.execution != Execution() else {}),
        }


def _optional_path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


def _request(
    out: str | os.PathLike[str],
    data: str | os.PathLike[str] | None,
    soundtracks: str | os.PathLike[str] | None,
    midlevel: str | os.PathLike[str] | None,
    profile: str | StudyProfile | None,
    systems: tuple[str, ...] | None,
    seeds: tuple[int, ...] | None,
    device: str | torch.device,
    jobs: int | None,
    threads: int | None,
    epsilons: tuple[float, ...] | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    gpus_per_unit: float | None = None,
    execution: Execution | None = None,
    snrs_db: tuple[float, ...] | None = None,
) -> StudyRequest:
    """Validate ``run_study``'s arguments (messages name its parameters, not CLI flags)."""
    from robustmer.training import get_system

    if data is not None and (soundtracks is not None or midlevel is not None):
        raise RobustmerError("study data: give either a cache or soundtracks/midlevel, not both")
    if (soundtracks is None) != (midlevel is None):
        raise RobustmerError("study real data: needs both soundtracks and midlevel")
    for name, value in (("jobs", jobs), ("threads", threads)):
        if value is not None and (isinstance(value, bool) or value < 1):
            raise RobustmerError(f"study {name} {value!r}: invalid; expected at least 1")
    given = data is not None or soundtracks is not None
    if isinstance(profile, StudyProfile):
        prof = profile
    else:
        prof = get_profile(profile or ("paper" if given else "quick"))
    prof = prof.with_overrides(systems=systems, seeds=seeds, epsilons=epsilons, snrs_db=snrs_db)
    for name in prof.systems:
        get_system(name)
    if any(s < 0 for s in prof.seeds):
        raise RobustmerError(f"study seeds {prof.seeds}: invalid; expected integers >= 0")
    if executor not in EXECUTORS:
        raise RobustmerError(
            f"study executor {executor!r}: unknown; expected one of {', '.join(EXECUTORS)}"
        )
    EXECUTORS[executor].check_installed()
    dev = EXECUTORS[executor].resolve_device(device, gpus_per_unit=gpus_per_unit)
    options = ExecutorOptions(dev, threads, jobs, ray_address, gpus_per_unit)
    paths = (_optional_path(p) for p in (data, soundtracks, midlevel))
    execution = execution or Execution()
    if not isinstance(execution, Execution):
        raise RobustmerError(f"study execution {execution!r}: expected an Execution")
    execution.check_device(dev)
    return StudyRequest(
        Path(out),
        prof,
        *paths,
        dev,
        jobs,
        threads,
        executor=executor,
        options=options,
        execution=execution,
    )


def _open_state(req: StudyRequest) -> StudyState:
    """Open (or start) ``study.json``; settings must match a previous run's."""
    recorded = None
    if (req.out / STUDY_FILE).is_file():
        recorded = (read_json(req.out / STUDY_FILE).get("settings") or {}).get("threads")
    state = StudyState.open(req.out, req.settings(recorded), req.plan)
    state.doc.update(
        profile=req.profile.name,
        shrunk=shrunk(req.profile),
        attacks=[a.to_dict() for a in req.profile.evaluation_attacks()],
        device=str(req.device),
        versions=versions(),
    )
    state.save()
    return state


class _Display:
    """The study's progress bar: units done, and what runs now."""

    def __init__(self, bar: Any, task: Any) -> None:
        self.bar, self.task = bar, task

    def show(self, text: str) -> None:
        self.bar.update(self.task, current=text)

    def advance(self) -> None:
        self.bar.advance(self.task)


@contextlib.contextmanager
def _display(state: StudyState, progress: bool) -> Iterator[_Display]:
    from rich.progress import TextColumn

    from robustmer.progress import progress_bar

    current = TextColumn("[cyan]{task.fields[current]}")
    plan = state.doc["plan"]
    with progress_bar(transient=False, extra_columns=(current,)) as bar:
        task = bar.add_task("study", total=len(plan), visible=progress, current="")
        bar.update(task, completed=sum(state.done(u) for u in plan if u != "report"))
        yield _Display(bar, task)


def _data_step(state: StudyState, req: StudyRequest, display: _Display) -> Path:
    """Make (or find) the data cache; return its directory."""
    entry = state.doc.get("data")
    if state.done("data") and entry and recorded_path(entry["cache"], req.out).is_dir():
        return recorded_path(entry["cache"], req.out)
    display.show("data: synthesise/prepare" if req.data is None else "data: check cache")
    cache_dir, state.doc["data"] = _prepare_data(
        req.out, req.profile, data=req.data, soundtracks=req.soundtracks, midlevel=req.midlevel
    )
    state.set("data", "done")
    display.advance()
    return cache_dir


def _units(req: StudyRequest, cache_dir: Path, threads: int) -> list[Unit]:
    """Every model's training unit, then its attack units (one per evaluation attack, after
    the training; with stacking one per system and attack, after the system's trainings)."""
    from robustmer.evaluation.curves import transfer_keys
    from robustmer.evaluation.snr_target import listen_keys

    attacks = req.profile.evaluation_attacks()
    keep = transfer_keys(attacks)  # examples for the report's transfer matrix
    # audio for the report's listening section (which shows the smallest seed's clips)
    listen = listen_keys(attacks)
    listen_seed = min(req.profile.seeds)
    common = {"device": req.device, "threads": threads}
    units = []
    for models in req.by_system():
        for m in models:
            train_kwargs = {
                "system": m.system,
                "seed": m.seed,
                "cache_dir": str(cache_dir),
                "run_dir": str(req.out / "runs" / m.name),
                "train_overrides": req.profile.train,
            }
            units.append(Unit(m.train_unit, _train_unit, {**train_kwargs, **common}))
        for name, targets, attack, stacked in req.attack_units(models):
            run_dirs = [str(req.out / "runs" / m.name) for m in targets]
            kwargs = {"attack": attack, "save_examples": attack.key() in keep, **common}
            if req.execution != Execution():
                kwargs["execution"] = req.execution
            after = tuple(m.train_unit for m in targets)
            if stacked:
                fn, kwargs = _attack_group_unit, {"run_dirs": run_dirs, **kwargs}
            else:
                listened = attack.key() in listen and targets[0].seed == listen_seed
                fn, kwargs = (
                    _attack_unit,
                    {"run_dir": run_dirs[0], "save_audio": listened, **kwargs},
                )
            units.append(Unit(name, fn, kwargs, after))
    return units


def _run_units(state: StudyState, req: StudyRequest, cache_dir: Path, display: _Display) -> None:
    """Run every unit not done yet with the study's executor; record starts and finishes."""
    threads = state.doc["settings"]["threads"]
    executor = make_executor(req.executor, replace(req.options, threads=threads))
    running: set[str] = set()

    def on_start(name: str) -> None:
        state.set(name, "running", executor=executor.name)
        running.add(name)
        display.show(", ".join(sorted(running)))

    def on_finish(name: str, seconds: dict[str, float]) -> None:
        timing = {k: round(v, 3) for k, v in seconds.items()}
        state.set(name, "done", threads=threads, **timing)
        running.discard(name)
        display.advance()
        display.show(", ".join(sorted(running)))

    todo = [u for u in _units(req, cache_dir, threads) if not state.done(u.name)]
    t0 = time.perf_counter()
    with executor:
        executor.run(todo, on_start=on_start, on_finish=on_finish)
    if todo:
        wall = state.doc.get("units_wall_seconds", 0.0) + time.perf_counter() - t0
        state.doc["units_wall_seconds"] = round(wall, 3)  # summed over invocations
        state.save()


def stage_seconds(doc: dict[str, Any]) -> dict[str, float]:
    """Wall time per stage from ``study.json``: the data step's ``synthesis`` and
    ``spectrograms``, then ``training`` and ``attacks``, which share the units' wall time
    (``units_wall_seconds``, summed over invocations) in proportion to the units' own clocks
    (``train_seconds``, ``attack_seconds``), since units of both kinds overlap in workers."""
    data_stages = (doc.get("data") or {}).get("stage_seconds", {})
    out = {k: round(float(v), 3) for k, v in data_stages.items()}
    units = doc.get("units", {}).values()
    train = sum(u.get("train_seconds", 0.0) for u in units)
    attack = sum(u.get("attack_seconds", 0.0) for u in units)
    wall = doc.get("units_wall_seconds", 0.0)
    if train + attack > 0:
        out["training"] = round(wall * train / (train + attack), 3)
        out["attacks"] = round(wall * attack / (train + attack), 3)
    return out


def _report_step(state: StudyState, req: StudyRequest, display: _Display, t0: float) -> Path:
    """Build the report from every finished run; record the invocation's wall time."""
    from robustmer.report import build_report

    display.show("report")
    state.doc["stage_seconds"] = stage_seconds(state.doc)  # the report shows these
    state.save()
    t_report = time.perf_counter()
    report = build_report(req.out)
    state.doc["stage_seconds"]["report"] = round(time.perf_counter() - t_report, 3)
    state.doc["wall_seconds_last_invocation"] = round(time.perf_counter() - t0, 3)
    state.set("report", "done")
    display.advance()
    display.show("done")
    return report


def run_study(
    out: str | os.PathLike[str] = "robustmer-study",
    *,
    data: str | os.PathLike[str] | None = None,
    soundtracks: str | os.PathLike[str] | None = None,
    midlevel: str | os.PathLike[str] | None = None,
    profile: str | StudyProfile | None = None,
    systems: tuple[str, ...] | None = None,
    seeds: tuple[int, ...] | None = None,
    device: str | torch.device = "auto",
    jobs: int | None = None,
    threads: int | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    gpus_per_unit: float | None = None,
    progress: bool = True,
    epsilons: tuple[float, ...] | None = None,
    execution: Execution | None = None,
    snrs_db: tuple[float, ...] | None = None,
) -> Path:
    """Run (or resume) a whole study and write its report.

    Parameters
    ----------
    out : str or PathLike
        Study directory. It is locked while the study runs: a second study into it fails
        at once, naming the holder's PID.
    data : str or PathLike, optional
        An existing cache made by ``robustmer prepare``.
    soundtracks, midlevel : str or PathLike, optional
        Real data directories (both or neither); ``prepare`` is run on them.
    profile : {"quick", "paper"} or StudyProfile, optional
        A named profile or your own :class:`StudyProfile`. Default: ``quick`` when no data
        is given (built-in synthetic data), else ``paper``.
    systems, seeds : tuple, optional
        Subsets to run instead of the profile's (all five systems; 3 or 10 seeds).
    epsilons : tuple of float, optional
        Radii at which to run every bounded attack instead of the profile's
        (:attr:`StudyProfile.epsilons`).
    snrs_db : tuple of float, optional
        SNR budgets [dB] at which to run every targeted waveform attack instead of the
        profile's (:attr:`StudyProfile.snrs_db`).
    device : str or torch.device
        ``auto``, ``cpu``, ``cuda[:N]`` or a resolved device.
    jobs : int, optional
        Local executor: parallel worker processes for independent units (trainings,
        attacks). Default: the CPU count when running on the CPU (small models use cores
        better in separate processes), one per GPU on ``cuda`` (each worker pinned to one
        GPU). Results do not depend on it.
    threads : int, optional
        Torch threads every unit computes with, wherever it runs (a setting of the study,
        recorded in ``study.json``: results depend on it), and the CPUs a Ray task
        reserves. Default: as recorded by an earlier run of this study, else
        ``cpu_count // jobs`` (local) or 1 (Ray).
    executor : {"local", "ray"}
        Where units run (:data:`robustmer.study.executors.EXECUTORS`); a study started with
        one can be resumed with the other.
    ray_address : str, optional
        Ray: ``auto`` or ``HOST:PORT`` of a running cluster; default a local Ray instance.
    gpus_per_unit : float, optional
        Ray: GPUs a task reserves (default 1 on ``cuda``, else 0; a fraction shares one).
    progress : bool
        Show the study's progress display.
    execution : Execution, optional
        How the evaluation attacks are computed (:mod:`robustmer.attacks.execution`):
        ``stack_runs`` attacks each system's seeds in one batch (one unit per system and
        attack), ``compile`` compiles the attack step. A setting of the study when not the
        default (recorded in ``study.json``; the numbers change by float rounding only).

    Returns
    -------
    Path
        The report directory.
    """
    t0 = time.perf_counter()
    req = _request(
        out,
        data,
        soundtracks,
        midlevel,
        profile,
        systems,
        seeds,
        device,
        jobs,
        threads,
        epsilons,
        executor,
        ray_address,
        gpus_per_unit,
        execution,
        snrs_db,
    )
    check_writable(req.out, "study directory")
    req.out.mkdir(parents=True, exist_ok=True)
    with study_lock(req.out):
        state = _open_state(req)
        with _display(state, progress) as display:
            cache_dir = _data_step(state, req, display)
            _run_units(state, req, cache_dir, display)
            return _report_step(state, req, display, t0)
