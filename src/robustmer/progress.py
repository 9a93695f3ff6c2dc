"""Rich progress bars for long-running library work.

Library code calls :func:`progress_bar`; it shows a bar on an interactive terminal and
stays quiet otherwise (``ROBUSTMER_PROGRESS=0`` disables it, ``=1`` forces it).
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any


def progress_enabled() -> bool:
    """Whether progress bars should be drawn."""
    env = os.environ.get("ROBUSTMER_PROGRESS")
    if env is not None:
        return env not in ("0", "", "false", "no")
    return sys.stderr.isatty()


@functools.cache
def console() -> Any:
    """The one stderr :class:`rich.console.Console` shared by progress bars and log output.

    Sharing it lets rich print log records above a live progress display instead of
    through it.
    """
    from rich.console import Console

    return Console(stderr=True)


def progress_bar(
    *, enabled: bool = True, transient: bool = True, extra_columns: tuple[Any, ...] = ()
) -> Any:
    """Return a configured :class:`rich.progress.Progress` (use as a context manager).

    ``enabled=False`` gives a silent bar, e.g. inside another live display (rich allows one).
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *extra_columns,
        console=console(),
        transient=transient,
        disable=not (enabled and progress_enabled()),
    )
