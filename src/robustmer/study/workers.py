"""Worker processes of a study: they die with the main process and leave Ctrl-C to it.

Any executor that runs study units in other processes calls :func:`worker_init` as the
worker initializer (with the main process's PID) and :func:`stop_workers` when the study
is interrupted. :func:`unit_threads` sets the torch thread count a unit computes with, the
same wherever the unit runs (in the main process or in a worker), so results do not depend
on where or when a unit ran.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
"""``prctl`` option: signal this process when its parent dies (Linux)."""

WATCHDOG_SECONDS = 1.0
"""How often the portable fallback checks that the main process is alive."""


def _set_parent_death_signal(sig: int) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies; False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int) -> None:
    """Daemon-thread body: end this process once ``parent_pid`` is no longer its parent."""
    while os.getppid() == parent_pid:
        time.sleep(WATCHDOG_SECONDS)
    os._exit(1)


def worker_init(parent_pid: int) -> None:
    """Initializer of a study worker process.

    - SIGINT is ignored: Ctrl-C goes to the whole process group, and the main process
      alone decides what happens (it stops the workers); no worker prints a traceback.
    - The worker ends when the main process dies, even by SIGKILL: on Linux the kernel
      sends it SIGTERM (``prctl(PR_SET_PDEATHSIG)``); everywhere a daemon thread checks
      the parent PID every :data:`WATCHDOG_SECONDS` and exits when it changed.

    Parameters
    ----------
    parent_pid : int
        PID of the study's main process (``os.getpid()`` there).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before the death signal was set
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()


def stop_workers(pool: Any) -> None:
    """Stop a :class:`concurrent.futures.ProcessPoolExecutor` now, ending running units.

    Cancels what has not started and terminates the worker processes (which ignore
    SIGINT, see :func:`worker_init`). Each unit's files are written atomically, so a unit
    ended here resumes from its last committed step on the next run.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(timeout=10)


@contextlib.contextmanager
def unit_threads(threads: int) -> Iterator[None]:
    """Compute with ``threads`` torch intra-op threads inside the block (restored after).

    The thread count changes float rounding in the convolutions, which training amplifies,
    so it is part of a study's settings and set identically for every unit.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
