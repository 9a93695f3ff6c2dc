"""Rich progress bars for long-running library work.

Library code calls :func:`progress_bar`; it shows a bar on an interactive terminal and
stays quiet otherwise (``ROBUSTMER_PROGRESS=0`` disables it, ``=1`` forces it).
"""

from __future__ import annotations

import os
import sys
from typing import Any


def progress_enabled() -> bool:
    """Whether progress bars should be drawn."""
    env = os.environ.get("ROBUSTMER_PROGRESS")
    if env is not None:
        return env not in ("0", "", "false", "no")
    return sys.stderr.isatty()


def progress_bar(
    *, enabled: bool = True, transient: bool = True, extra_columns: tuple[Any, ...] = ()
) -> Any:
    """Return a configured :class:`rich.progress.Progress` (use as a context manager).

    ``enabled=False`` gives a silent bar, e.g. inside another live display (rich allows one).
    """
    from rich.console import Console
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
        console=Console(stderr=True),
        transient=transient,
        disable=not (enabled and progress_enabled()),
    )
