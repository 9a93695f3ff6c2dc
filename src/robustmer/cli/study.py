"""``robustmer study``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _csv_list(value: str | None) -> tuple[str, ...] | None:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


def _parse_snrs(text: str | None) -> tuple[float, ...] | None:
    """``--snrs-db 40,30,20`` as a tuple of finite floats (None when not given)."""
    import math

    from robustmer.errors import RobustmerError

    items = _csv_list(text)
    if items is None:
        return None
    try:
        values = tuple(float(v) for v in items)
    except ValueError:
        values = (math.nan,)
    if not all(math.isfinite(v) for v in values):
        raise RobustmerError(f"--snrs-db {text!r}: expected comma-separated numbers of dB")
    return values


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
    epsilons: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated radii, e.g. 0.01,0.03,0.1,0.3: every bounded attack of the "
            "profile runs at each (robustness curves; default: the profile's)."
        ),
    ] = None,
    snrs_db: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated SNR budgets in dB, e.g. 40,30,20: every targeted waveform "
            "attack of the profile runs at each (SNR needed to reach the target; default: the "
            "profile's).",
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    jobs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Local executor: parallel worker processes (default: CPU count on CPU, one "
            "per GPU on GPUs, each pinned to its GPU).",
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Torch threads per unit (a training or an attack), a recorded setting of the "
            "study, and the CPUs a Ray task reserves (default: as recorded, else CPU count // "
            "jobs; with ray 1).",
        ),
    ] = None,
    executor: Annotated[
        str, typer.Option(help="Where units run: local (worker processes) or ray.")
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster to join: auto or HOST:PORT (default: a local Ray instance)."
        ),
    ] = None,
    gpus_per_unit: Annotated[
        float | None,
        typer.Option(
            min=0.0, help="Ray: GPUs a task reserves, e.g. 0.5 (default: 1 with cuda, else 0)."
        ),
    ] = None,
    stack_runs: Annotated[
        bool,
        typer.Option(
            "--stack-runs",
            help="Attack each system's seeds in one batch (one attack unit per system and "
            "attack); a setting of the study (docs/performance.md).",
        ),
    ] = False,
    compile_mode: Annotated[
        str,
        typer.Option(
            "--compile",
            help="Evaluation attacks: none, default (torch.compile) or cuda-graphs (CUDA).",
        ),
    ] = "none",
) -> None:
    """Run the whole study: data, spectrograms, systems x seeds, attacks, report.

    Resumable: after Ctrl-C or a crash, run the same command again and it continues.
    """
    import sys

    from robustmer.attacks.execution import Execution
    from robustmer.cli.attack import parse_epsilons
    from robustmer.errors import RobustmerError
    from robustmer.study import STUDY_PROFILES, run_study
    from robustmer.study.executors import EXECUTORS

    if data is not None and (soundtracks is not None or midlevel is not None):
        raise RobustmerError("give either --data or --soundtracks/--midlevel, not both")
    if (soundtracks is None) != (midlevel is None):
        raise RobustmerError("real data needs both --soundtracks and --midlevel")
    if profile is not None and profile not in STUDY_PROFILES:
        raise RobustmerError(
            f"--profile {profile!r}: unknown; expected one of {', '.join(STUDY_PROFILES)}"
        )
    if executor not in EXECUTORS:
        raise RobustmerError(
            f"--executor {executor!r}: unknown; expected one of {', '.join(EXECUTORS)}"
        )
    if executor != "ray" and (ray_address is not None or gpus_per_unit is not None):
        raise RobustmerError("--ray-address and --gpus-per-unit need --executor ray")
    if executor == "ray" and jobs is not None:
        raise RobustmerError("--jobs is for the local executor; with ray, use --threads")
    seed_list = _csv_list(seeds)
    try:
        seed_values = tuple(int(s) for s in seed_list) if seed_list else None
    except ValueError:
        raise RobustmerError(f"--seeds {seeds!r}; expected comma-separated integers") from None
    try:
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
            threads=threads,
            executor=executor,
            ray_address=ray_address,
            gpus_per_unit=gpus_per_unit,
            epsilons=parse_epsilons(epsilons),
            execution=Execution(stack_runs=stack_runs, compile=compile_mode),
            snrs_db=_parse_snrs(snrs_db),
        )
    except KeyboardInterrupt:
        sys.stderr.write(f"robustmer: study interrupted; run the same command to resume {out}\n")
        raise SystemExit(130) from None
    typer.echo(f"report: {report / 'report.md'} and {report / 'report.html'}")
