"""``robustmer study``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _csv_list(value: str | None) -> tuple[str, ...] | None:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


def study(
    out: Annotated[Path, typer.Option("--out", help="Study directory.")] = Path("robustmer-study"),
    data: Annotated[Path | None, typer.Option(help="A cache made by `robustmer prepare`.")] = None,
    soundtracks: Annotated[
        Path | None, typer.Option(help="Real Soundtracks Set 1 directory (with --midlevel).")
    ] = None,
    midlevel: Annotated[
        Path | None, typer.Option(help="Real mid-level data directory (with --soundtracks).")
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            help="quick (default without data: synthetic demo) or paper (default with data)."
        ),
    ] = None,
    systems: Annotated[
        str | None, typer.Option(help="Comma-separated systems, e.g. A2E,A2M2E (default: all 5).")
    ] = None,
    seeds: Annotated[
        str | None, typer.Option(help="Comma-separated seeds (default: the profile's).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    jobs: Annotated[
        int | None,
        typer.Option(
            help="Local executor: parallel worker processes (default: CPU count on CPU, "
            "one per GPU on GPUs)."
        ),
    ] = None,
    executor: Annotated[
        str, typer.Option(help="Where units run: local (worker processes) or ray.")
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster to join: auto or HOST:PORT (default: start a local Ray instance)."
        ),
    ] = None,
    cpus_per_unit: Annotated[
        int | None,
        typer.Option(
            help="Torch threads per unit, and CPUs a Ray task reserves "
            "(default: local CPU count // jobs, ray 1)."
        ),
    ] = None,
    gpus_per_unit: Annotated[
        float | None,
        typer.Option(help="Ray: GPUs a task reserves, e.g. 0.5 (default: 1 with cuda, else 0)."),
    ] = None,
) -> None:
    """Run the whole study: data, spectrograms, systems x seeds, attacks, report.

    Resumable: run the same command again after an interruption and it continues (with
    either executor).
    """
    from robustmer.errors import RobustmerError
    from robustmer.study import run_study

    seed_list = _csv_list(seeds)
    try:
        seed_values = tuple(int(s) for s in seed_list) if seed_list else None
    except ValueError:
        raise RobustmerError(f"--seeds {seeds!r}; expected comma-separated integers") from None
    report = run_study(
        out,
        data=data,
        soundtracks=soundtracks,
        midlevel=midlevel,
        profile=profile,
        systems=_csv_list(systems),
        seeds=seed_values,
        device=device,
        jobs=jobs,
        executor=executor,
        ray_address=ray_address,
        cpus_per_unit=cpus_per_unit,
        gpus_per_unit=gpus_per_unit,
    )
    typer.echo(f"report: {report / 'report.md'} and {report / 'report.html'}")
