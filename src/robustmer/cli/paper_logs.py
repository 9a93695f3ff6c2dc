"""``robustmer import-paper-logs``: the authors' published attack logs as a study."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def import_paper_logs(
    log_dir: Annotated[
        Path,
        typer.Argument(
            help="The authors' runs/adversaries folder, or one <seed>_<hash>_..._test folder "
            "in it (log.csv + hparams.yaml)."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Study directory to write (new, or an earlier import).")
    ],
    system: Annotated[
        str | None,
        typer.Option(
            "--system",
            help="System of logs that are not among the 50 published runs (A2E, A2B2E, "
            "A2M2E, aA2E or aA2B2E).",
        ),
    ] = None,
) -> None:
    """Import published per-clip attack logs as runs of a study; see docs/paper-logs.md.

    Writes STUDY/runs/<SYSTEM>-seed<SEED>/ per log (no checkpoint) and STUDY/study.json;
    `robustmer report STUDY` then reports the paper's own models.
    """
    from robustmer.evaluation.paper_logs import import_paper_logs as run_import

    runs = run_import(log_dir, out, system=system)
    typer.echo(f"imported {len(runs)} run(s) into {out / 'runs'}; next: robustmer report {out}")
