"""``robustmer report``: build the study report (heavy imports inside the function)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report(
    study_dir: Annotated[
        Path, typer.Argument(help="Study directory holding runs/<SYSTEM>-seed<SEED>/.")
    ],
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Seed of the models in Figure 4 (default: smallest)."),
    ] = None,
    attack: Annotated[
        str, typer.Option("--attack", help="Attack outputs to report (RUN/attacks/<name>/).")
    ] = "paper",
    ddof: Annotated[
        int,
        typer.Option("--ddof", min=0, help="ddof of the std over seeds (the paper's code: 0)."),
    ] = 1,
) -> None:
    """Write STUDY_DIR/report/: Table 1, Figures 3-4, t-tests, cost, report.md/.html."""
    import logging

    from robustmer.report import build_report

    out = build_report(study_dir, figure_seed=seed, attack=attack, ddof=ddof)
    logging.getLogger(__name__).info("report: %s", out / "report.html")
