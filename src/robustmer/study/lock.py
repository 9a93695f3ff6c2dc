"""One study at a time per directory: an exclusive lock on ``STUDY/.lock``.

The lock is an ``flock`` held on the open file for the whole study, with the holder's PID
written in the file. The kernel releases it when the holder ends in any way (also SIGKILL),
so a stale file never blocks a later study; the PID in it only names the holder in the
message a second study gets.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from robustmer.errors import RobustmerError

LOCK_FILE = ".lock"

try:
    import fcntl
except ImportError:  # not POSIX: studies are not locked
    fcntl = None  # type: ignore[assignment]


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return "unknown"
    return text or "unknown"


@contextlib.contextmanager
def study_lock(study_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the exclusive lock of ``study_dir`` for the duration of the block.

    Parameters
    ----------
    study_dir : str or PathLike
        An existing study directory.

    Yields
    ------
    Path
        The lock file.

    Raises
    ------
    RobustmerError
        Another process holds the lock; the message names its PID.
    """
    path = Path(study_dir) / LOCK_FILE
    if fcntl is None:
        yield path
        return
    fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held for the block)
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RobustmerError(
                f"{Path(study_dir)}: another study (PID {_holder(path)}) is running in this "
                "directory; expected one study per directory: wait for it to end, or use "
                "another output directory"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        yield path
    finally:
        fh.close()  # releases the lock
