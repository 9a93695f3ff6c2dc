"""The ``robustmer`` command line.

Each sub-command lives in its own module of this package and keeps heavy imports (torch,
pandas, matplotlib) inside the command function, so ``robustmer --help`` stays fast.
A :class:`robustmer.errors.RobustmerError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import errno
import logging
import sys

import typer

from robustmer.errors import RobustmerError

_ENVIRONMENT_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR}
)
"""File-system errors that are the environment's, not a bug: one line and exit code 2 even
where no earlier check caught them (the output locations are checked before any work)."""

app = typer.Typer(
    name="robustmer",
    help="Adversarial robustness of interpretable music emotion recognition models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from robustmer.cli import attack as attack_cmds
    from robustmer.cli import data as data_cmds
    from robustmer.cli import paper_logs as paper_logs_cmds
    from robustmer.cli import predict as predict_cmds
    from robustmer.cli import report as report_cmds
    from robustmer.cli import study as study_cmds
    from robustmer.cli import train as train_cmds

    app.command("synth")(data_cmds.synth)
    app.command("prepare")(data_cmds.prepare)
    app.command("report")(report_cmds.report)
    app.command("train")(train_cmds.train)
    app.command("study")(study_cmds.study)
    app.command("attack")(attack_cmds.attack)
    app.command("import-paper-logs")(paper_logs_cmds.import_paper_logs)
    app.command("predict")(predict_cmds.predict)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``robustmer`` console script."""
    from rich.logging import RichHandler

    from robustmer.progress import console

    logging.basicConfig(
        level=logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console(), show_path=False, show_time=False)],
    )
    try:
        app(args=argv, standalone_mode=True)
    except RobustmerError as exc:
        sys.stderr.write(f"robustmer: error: {exc}\n")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("robustmer: interrupted\n")
        sys.exit(130)
    except OSError as exc:
        if exc.errno not in _ENVIRONMENT_ERRNOS:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        sys.stderr.write(f"robustmer: error: {where}{exc.strerror or exc}\n")
        sys.exit(2)
