"""Executors: where a study's units of work run (worker processes here, or a Ray cluster).

A study is a list of independent :class:`Unit` s (one training run, or one attack of one
run with one attack configuration) with "run after" dependencies (an attack after its
training). An :class:`Executor` runs them and reports each unit's start and finish to the
study through two callbacks, called in the study's own process; the study records them in
``study.json`` and on its progress display. Executors never write study files themselves
and never decide anything that changes a result: every unit gets its full settings
(including its torch thread count) in its arguments and writes its own files under the
study directory, so a unit's result does not depend on where it ran, and a study started
with one executor can be resumed with another.

Executors (:data:`EXECUTORS`):

``local``
    Worker processes on this machine (``spawn``), or the study's own process for one
    worker. With several GPUs, each worker process is pinned to one GPU, round-robin
    (:func:`gpu_per_worker`).
``ray``
    One Ray task per unit with declared resources (CPUs, GPUs or a fraction of one),
    retried by Ray when it fails; on a local Ray instance or an existing cluster.
"""

from __future__ import annotations

import abc
import itertools
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from robustmer.errors import RobustmerError

logger = logging.getLogger(__name__)

OnStart = Callable[[str], None]
OnFinish = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Unit:
    """One unit of a study's work.

    Attributes
    ----------
    name : str
        Unique name, the key of the unit's state in ``study.json`` (``train/A2E-seed6``).
    fn : callable
        A module-level function (sent to workers by reference), called as ``fn(**kwargs)``;
        returns a small JSON-ready dict (timings) that the study records.
    kwargs : mapping
        Everything the unit needs, plain Python values (paths as ``str``).
    after : tuple of str
        Units that must have finished first. Names not among the units being run are taken
        as finished (done in an earlier invocation).
    """

    name: str
    fn: Callable[..., dict[str, Any]]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    after: tuple[str, ...] = ()

    def __call__(self) -> dict[str, Any]:
        return self.fn(**self.kwargs)


@dataclass(frozen=True)
class ExecutorOptions:
    """A study's executor options (``robustmer study`` passes them through).

    Attributes
    ----------
    device : torch.device
        The units' device. With Ray, ``cuda`` need not exist on this machine.
    threads : int, optional
        Torch threads of every unit (a setting of the study); a Ray task reserves as many
        CPUs. None: the executor's :meth:`Executor.default_threads`.
    jobs : int, optional
        Local: worker processes.
    address : str, optional
        Ray: ``auto`` or ``HOST:PORT`` of a cluster; default a local instance.
    gpus_per_unit : float, optional
        Ray: GPUs a task reserves.
    """

    device: Any
    threads: int | None = None
    jobs: int | None = None
    address: str | None = None
    gpus_per_unit: float | None = None

    def only(self, executor: str, **given: object) -> None:
        """Refuse options meant for another executor than ``executor``."""
        other = {
            "jobs": self.jobs,
            "address": self.address,
            "gpus_per_unit": self.gpus_per_unit,
        }
        wrong = [k for k, v in other.items() if v is not None and k not in given]
        if wrong:
            raise RobustmerError(
                f"study {', '.join(wrong)}: not an option of the {executor} executor"
            )

    def gpus(self) -> list[str]:
        """The GPUs visible here (:func:`visible_gpus`)."""
        import torch

        return visible_gpus(torch.cuda.device_count()) if torch.cuda.is_available() else []

    def default_workers(self) -> int:
        """Local worker processes: ``jobs``, else one per GPU with ``cuda``, else one per
        CPU."""
        if self.jobs is not None:
            return self.jobs
        if self.device.type == "cuda":
            return max(1, len(self.gpus())) if self.device.index is None else 1
        return os.cpu_count() or 1


class Executor(abc.ABC):
    """Base class of executors: runs units in dependency order, reports start and finish.

    Subclasses implement :meth:`submit` (start one unit, return a handle) and
    :meth:`wait` (block until something happens), and may override :meth:`capacity`
    (units in flight at most), :meth:`__enter__` and :meth:`__exit__` (acquire and release
    workers). Use as a context manager around :meth:`run`.
    """

    name: ClassVar[str]

    @classmethod
    @abc.abstractmethod
    def for_study(cls, options: ExecutorOptions) -> Executor:
        """The executor for a study's options."""

    @classmethod
    def default_threads(cls, options: ExecutorOptions) -> int:
        """Torch threads per unit when the study gives none: one per unit."""
        return 1

    @classmethod
    def check_installed(cls) -> None:
        """Raise :class:`RobustmerError` (saying how to install it) if the executor's
        software is missing; a study checks this before any work."""
        return None

    @classmethod
    def resolve_device(cls, device: Any, *, gpus_per_unit: float | None = None) -> Any:
        """The units' :class:`torch.device` for ``device`` (``auto``, ``cpu``, ``cuda[:N]``
        or a device), checked on this machine."""
        from robustmer.training import resolve_device

        return resolve_device(device) if isinstance(device, str) else device

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def capacity(self) -> int:
        """How many units may be in flight at once (submitted and not yet finished)."""
        return 1

    @abc.abstractmethod
    def submit(self, unit: Unit) -> Any:
        """Start ``unit`` (or queue it); return a hashable handle."""

    @abc.abstractmethod
    def wait(self, handles: Sequence[Any]) -> tuple[list[str], list[tuple[Any, dict[str, Any]]]]:
        """Block until a unit started or finished.

        Returns
        -------
        started : list of str
            Names of units that started since the last call (a retried unit starts again).
        finished : list of (handle, result)
            Units that finished, with what their function returned.

        Raises
        ------
        Exception
            What a unit raised (after the executor's retries, if any).
        """

    def run(self, units: Iterable[Unit], *, on_start: OnStart, on_finish: OnFinish) -> None:
        """Run ``units``, each once its ``after`` units finished, in the order given.

        ``on_start(name)`` and ``on_finish(name, result)`` are called in this process. The
        first failure (after the executor's retries) is raised at once; leaving the
        ``with`` block (:meth:`__exit__`) then ends the units still running.
        """
        waiting = list(units)
        names = {u.name for u in waiting}
        if len(names) != len(waiting):
            raise RobustmerError("units: names are not unique")
        finished: set[str] = set()
        running: dict[Any, Unit] = {}
        while waiting or running:
            ready = [u for u in waiting if all(d in finished or d not in names for d in u.after)]
            for unit in ready[: max(0, self.capacity() - len(running))]:
                waiting.remove(unit)
                running[self.submit(unit)] = unit
            if not running:
                raise RobustmerError(f"units {[u.name for u in waiting]}: circular 'after'")
            started, done = self.wait(list(running))
            in_flight = {u.name for u in running.values()}
            for name in started:
                if name in in_flight:  # (a late event of a finished unit is dropped)
                    on_start(name)
            for handle, result in done:
                unit = running.pop(handle)
                finished.add(unit.name)
                on_finish(unit.name, result)


class _Inline:
    """:class:`LocalExecutor` with one worker: each unit runs in the study's own process."""

    def __init__(self) -> None:
        self._started: list[str] = []
        self._units: dict[int, Unit] = {}
        self._count = itertools.count()

    def submit(self, unit: Unit) -> int:
        self._started.append(unit.name)
        handle = next(self._count)
        self._units[handle] = unit
        return handle

    def wait(self, handles: Sequence[int]) -> tuple[list[str], list[tuple[Any, dict[str, Any]]]]:
        if self._started:  # report the start before running, so study.json says "running"
            started, self._started = self._started, []
            return started, []
        return [], [(handles[0], self._units.pop(handles[0])())]


def gpu_per_worker(workers: int, gpus: Sequence[str]) -> list[str | None]:
    """The GPU each of ``workers`` worker processes is pinned to, round-robin.

    Parameters
    ----------
    workers : int
        Number of worker processes.
    gpus : sequence of str
        GPUs available, as ``CUDA_VISIBLE_DEVICES`` names them (indices or UUIDs; empty on
        a CPU).

    Returns
    -------
    list of (str or None)
        ``gpus[i % len(gpus)]`` for worker ``i``, or ``None`` for every worker without GPUs.
    """
    return [gpus[i % len(gpus)] if gpus else None for i in range(workers)]


def visible_gpus(count: int, env: str | None = None) -> list[str]:
    """The ``count`` GPUs this process sees, as ``CUDA_VISIBLE_DEVICES`` names them.

    ``env`` (default: this process's ``CUDA_VISIBLE_DEVICES``) restricts and renames the
    GPUs; a worker pinned to a GPU must get that GPU's name from it, not its index.
    """
    env = os.environ.get("CUDA_VISIBLE_DEVICES") if env is None else env
    if env is None or not env.strip():
        return [str(i) for i in range(count)]
    return [name.strip() for name in env.split(",") if name.strip()][:count]


def _init_worker(parent_pid: int, gpu_queue: Any) -> None:
    """Worker-process start-up: :func:`robustmer.study.workers.worker_init` (die with the
    study, leave Ctrl-C to it), then take this worker's GPU (before CUDA starts)."""
    from robustmer.study.workers import worker_init

    worker_init(parent_pid)
    gpu = gpu_queue.get()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu


class LocalExecutor(Executor):
    """Worker processes on this machine (``spawn``), or the study's process for one.

    Parameters
    ----------
    workers : int
        Worker processes (units in flight at once). 1 runs every unit in this process.
    gpus : sequence of str
        GPUs (:func:`visible_gpus`); worker ``i`` sees only ``gpus[i % len(gpus)]`` (through
        ``CUDA_VISIBLE_DEVICES``, so units use ``cuda``). Empty: no pinning.
    """

    name = "local"

    def __init__(self, workers: int = 1, gpus: Sequence[str] = ()) -> None:
        if workers < 1:
            raise RobustmerError(f"workers {workers}; expected at least 1")
        self.workers = workers
        self.gpus = tuple(gpus)
        self._inline: _Inline | None = None
        self._pool: Any = None
        self._in_flight = workers
        self._started: list[str] = []

    @classmethod
    def for_study(cls, options: ExecutorOptions) -> LocalExecutor:
        """``jobs`` workers (default :meth:`ExecutorOptions.default_workers`); with
        several GPUs and ``cuda``, each pinned to one GPU."""
        options.only("local", jobs=options.jobs)
        dev = options.device
        gpus = options.gpus() if dev.type == "cuda" and dev.index is None else []
        return cls(options.default_workers(), gpus if len(gpus) > 1 else ())

    @classmethod
    def default_threads(cls, options: ExecutorOptions) -> int:
        """The machine's CPUs shared by the worker processes: ``cpu_count // workers``."""
        return max(1, (os.cpu_count() or 1) // options.default_workers())

    def run(self, units: Iterable[Unit], *, on_start: OnStart, on_finish: OnFinish) -> None:
        """As :meth:`Executor.run`; no more worker processes than units that can run at
        once (those not waiting for another), and one runs in this process (unless pinned
        to a GPU)."""
        units = list(units)
        names = {u.name for u in units}
        parallel = sum(not any(d in names for d in u.after) for u in units)
        self._in_flight = max(1, min(self.workers, parallel))
        if self._in_flight == 1 and len(self.gpus) <= 1:
            self._inline = _Inline()
        elif self._pool is None:
            self._inline = None
            self._pool = self._start_pool(self._in_flight)
        super().run(units, on_start=on_start, on_finish=on_finish)

    def _start_pool(self, workers: int) -> Any:
        """``workers`` spawned processes, worker ``i`` pinned to GPU ``i mod n``."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        for gpu in gpu_per_worker(workers, self.gpus):
            queue.put(gpu)
        return ProcessPoolExecutor(
            max_workers=workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(os.getpid(), queue),
        )

    def __exit__(self, exc_type: object, *exc: object) -> None:
        from robustmer.study.workers import stop_workers

        pool, self._pool = self._pool, None
        if pool is None:
            return
        if exc_type is None:
            pool.shutdown(wait=True)
        else:  # failed or interrupted: end the running units now (they resume from files)
            stop_workers(pool)

    def capacity(self) -> int:
        return self._in_flight

    def submit(self, unit: Unit) -> Any:
        if self._inline is not None:
            return self._inline.submit(unit)
        self._started.append(unit.name)  # a free worker takes it at once
        return self._pool.submit(unit.fn, **unit.kwargs)

    def wait(self, handles: Sequence[Any]) -> tuple[list[str], list[tuple[Any, dict[str, Any]]]]:
        if self._inline is not None:
            return self._inline.wait(handles)
        from concurrent.futures import FIRST_COMPLETED
        from concurrent.futures import wait as wait_futures

        if self._started:
            started, self._started = self._started, []
            return started, []
        done, _ = wait_futures(handles, return_when=FIRST_COMPLETED)
        return [], [(fut, fut.result()) for fut in done]


RAY_MISSING = (
    "Ray is not installed; install the optional extra with: pip install 'robustmer[ray]' "
    "(or pip install 'ray>=2.40')"
)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RobustmerError(RAY_MISSING) from None
    return ray


RETRIED: tuple[type[Exception], ...] = (OSError, RuntimeError, MemoryError)
"""Exceptions after which Ray runs a unit again (besides a dead worker). Not
:class:`RobustmerError`: bad input fails the same way every time."""


class _Events:
    """Ray actor collecting the units' start events for the study process."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def put(self, name: str) -> None:
        self.items.append(name)

    def drain(self) -> list[str]:
        items, self.items = self.items, []
        return items


def _ray_unit(
    fn: Callable[..., dict[str, Any]], kwargs: Mapping[str, Any], name: str, events: Any
) -> dict[str, Any]:
    """Body of one Ray task: report the start, run the unit."""
    events.put.remote(name)
    return fn(**kwargs)


class RayExecutor(Executor):
    """One Ray task per unit, with declared resources and retries.

    Parameters
    ----------
    address : str, optional
        ``None``: start a local Ray instance with ``num_cpus`` CPUs (no dashboard, node
        address 127.0.0.1, stopped at the end). ``"auto"`` or ``"HOST:PORT"``: join that cluster
        (``ray.init(address=...)``). If Ray is already initialised in this process, that
        instance is used and left running.
    cpus_per_unit : float
        CPUs each task reserves (Ray's ``num_cpus``).
    gpus_per_unit : float
        GPUs each task reserves (``num_gpus``; a fraction shares a GPU). Ray sets the
        task's ``CUDA_VISIBLE_DEVICES``.
    max_retries : int
        Times a unit is run again after its worker died or it raised one of
        :data:`RETRIED` (its files make a retry continue where it stopped).
    num_cpus : int, optional
        CPUs of a local instance (default: this machine's).
    poll_seconds : float
        How often start events are collected while waiting.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        cpus_per_unit: float = 1,
        gpus_per_unit: float = 0,
        max_retries: int = 2,
        num_cpus: int | None = None,
        poll_seconds: float = 0.5,
    ) -> None:
        if cpus_per_unit < 0 or gpus_per_unit < 0 or cpus_per_unit + gpus_per_unit == 0:
            raise RobustmerError(
                f"cpus per unit {cpus_per_unit}, gpus per unit {gpus_per_unit}; expected "
                "non-negative numbers, not both 0"
            )
        if max_retries < 0:
            raise RobustmerError(f"max_retries {max_retries}; expected at least 0")
        self.address = address
        self.cpus_per_unit = cpus_per_unit
        self.gpus_per_unit = gpus_per_unit
        self.max_retries = max_retries
        self.num_cpus = num_cpus
        self.poll_seconds = poll_seconds
        self._ray: Any = None
        self._owns_ray = False
        self._events: Any = None
        self._task: Any = None
        self._refs: set[Any] = set()

    @classmethod
    def for_study(cls, options: ExecutorOptions) -> RayExecutor:
        """A task per unit reserving ``threads`` CPUs and ``gpus_per_unit`` GPUs (default 1
        with a CUDA device, else 0)."""
        options.only("ray", address=options.address, gpus_per_unit=options.gpus_per_unit)
        cuda = options.device.type == "cuda"
        gpus = options.gpus_per_unit if options.gpus_per_unit is not None else float(cuda)
        if gpus and not cuda:
            raise RobustmerError(
                f"study gpus_per_unit {gpus}: with device {options.device}; expected 0"
            )
        threads = options.threads or cls.default_threads(options)
        return cls(options.address, cpus_per_unit=threads, gpus_per_unit=gpus)

    @classmethod
    def check_installed(cls) -> None:
        _import_ray()

    @classmethod
    def resolve_device(cls, device: Any, *, gpus_per_unit: float | None = None) -> Any:
        """``cuda[:N]`` is not checked here (the GPUs may be on other nodes); ``auto`` is
        ``cuda`` when GPUs per unit are given, else what this machine has."""
        import torch

        name = str(device).strip().lower()
        if name.startswith("cuda") or (name == "auto" and gpus_per_unit):
            return torch.device("cuda")
        return super().resolve_device(device)

    def __enter__(self) -> RayExecutor:
        ray = self._ray = _import_ray()
        if not ray.is_initialized():
            self._owns_ray = True
            ray.init(**self._init_kwargs())
        self._events = ray.remote(num_cpus=0)(_Events).remote()
        self._task = ray.remote(_ray_unit)
        return self

    def _init_kwargs(self) -> dict[str, Any]:
        """Arguments of ``ray.init``: join a cluster, or a quiet local instance."""
        quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
        if self.address is not None:
            return {"address": self.address, **quiet}
        return {
            "num_cpus": self.num_cpus or os.cpu_count() or 1,
            "num_gpus": None,
            "include_dashboard": False,
            "_node_ip_address": "127.0.0.1",
            **quiet,
        }

    def __exit__(self, *exc: object) -> None:
        ray = self._ray
        if ray is None:
            return
        for ref in self._refs:  # interrupted or failed: stop what is still running
            ray.cancel(ref, force=True)
        self._refs.clear()
        if self._events is not None:
            ray.kill(self._events)
            self._events = None
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

    def capacity(self) -> int:
        """All ready units: Ray queues them by their declared resources."""
        return 1 << 30

    def submit(self, unit: Unit) -> Any:
        ref = self._task.options(
            name=unit.name,
            num_cpus=self.cpus_per_unit,
            num_gpus=self.gpus_per_unit,
            max_retries=self.max_retries,
            retry_exceptions=list(RETRIED),
        ).remote(unit.fn, dict(unit.kwargs), unit.name, self._events)
        self._refs.add(ref)
        return ref

    def wait(self, handles: Sequence[Any]) -> tuple[list[str], list[tuple[Any, dict[str, Any]]]]:
        ray = self._ray
        while True:
            ready, _ = ray.wait(list(handles), num_returns=1, timeout=self.poll_seconds)
            started = ray.get(self._events.drain.remote())
            if ready or started:
                break
        finished = []
        for ref in ready:
            self._refs.discard(ref)
            try:
                finished.append((ref, ray.get(ref)))
            except ray.exceptions.RayTaskError as err:  # raise what the unit raised
                logger.debug("unit failed on Ray: %s", err)
                cause = getattr(err, "cause", None)
                if isinstance(cause, Exception):
                    raise cause from None
                raise
        return started, finished


EXECUTORS: dict[str, type[Executor]] = {"local": LocalExecutor, "ray": RayExecutor}
"""Executors of ``robustmer study``, by name."""


def make_executor(name: str, options: ExecutorOptions) -> Executor:
    """The executor ``name`` (:data:`EXECUTORS`) configured for ``options``."""
    if name not in EXECUTORS:
        raise RobustmerError(
            f"study executor {name!r}: unknown; expected one of {', '.join(EXECUTORS)}"
        )
    return EXECUTORS[name].for_study(options)
