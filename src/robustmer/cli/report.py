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
        str | None,
        typer.Option(
            "--attack",
            help="Whose results to report: an attack name (the study's attack of that name; "
            "with --set, those settings) or a storage key as in RUN/attacks/<key>/ (default: "
            "the study's first attack).",
        ),
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="A setting of the --attack (repeatable), as for `robustmer attack`.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Report directory (default STUDY_DIR/report for the study's first attack, "
            "STUDY_DIR/report-<key> for another).",
        ),
    ] = None,
    ddof: Annotated[
        int,
        typer.Option("--ddof", min=0, help="ddof of the std over seeds (the paper's code: 0)."),
    ] = 1,
    include_mismatched: Annotated[
        bool,
        typer.Option(
            "--include-mismatched",
            help="Also report runs trained with other settings than the study's and attack "
            "results made with other settings (left out by default; listed either way).",
        ),
    ] = False,
) -> None:
    """Write the report: Table 1, Figures 3-4, t-tests, cost, report.md/.html."""
    import logging

    from robustmer.cli.attack import attack_settings
    from robustmer.errors import RobustmerError
    from robustmer.report import build_report

    if settings and attack is None:
        raise RobustmerError("--set: needs --attack NAME; expected e.g. --attack pgd --set ...")
    selected = attack_settings(attack, settings) if settings else attack
    report_dir = build_report(
        study_dir,
        figure_seed=seed,
        attack=selected,
        ddof=ddof,
        out=out,
        include_mismatched=include_mismatched,
    )
    logging.getLogger(__name__).info("report: %s", report_dir / "report.html")
