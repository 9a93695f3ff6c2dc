"""``robustmer attack``: attack a trained run's test clips (docs/paper.md §7)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

SET_HELP = (
    "A setting of the attack as KEY=VALUE (repeatable): a field of the attack's settings, "
    "parsed by the field's type ('none' for an optional field), e.g. --set steps=100, or "
    "--attack pgd --set epsilon=0.1 --set norm=l2. --set help lists the attack's fields and "
    "defaults; an unknown key is an error."
)


def attack_settings(name: str, settings: list[str] | None) -> object:
    """The :class:`AttackConfig` of attack ``name`` with ``--set KEY=VALUE`` settings."""
    from robustmer.attacks import attack_class
    from robustmer.errors import RobustmerError

    config_class = attack_class(name).config_class
    if settings and "help" in settings:
        typer.echo(config_class.describe())
        raise typer.Exit(0)
    try:
        return config_class.parse(settings or [])
    except RobustmerError as exc:
        raise RobustmerError(f"--attack {name} --set: {exc}") from None


def parse_epsilons(text: str | None) -> tuple[float, ...] | None:
    """``--epsilons 0.01,0.03`` as a tuple of floats > 0 (None when not given)."""
    from robustmer.errors import RobustmerError

    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise RobustmerError(f"--epsilons {text!r}: expected comma-separated numbers > 0")
    return values


def attack(
    run: Annotated[
        list[Path],
        typer.Option(
            "--run",
            metavar="RUN",
            help="Training run directory; repeat it to attack several runs (see --stack-runs).",
        ),
    ],
    attack: Annotated[
        str,
        typer.Option(
            "--attack", help="Attack name: paper, pgd, apgd, noise (robustmer.attacks.ATTACKS)."
        ),
    ] = "paper",
    settings: Annotated[
        list[str] | None, typer.Option("--set", metavar="KEY=VALUE", help=SET_HELP)
    ] = None,
    split: Annotated[str, typer.Option(help="test, validation or train.")] = "test",
    batch_size: Annotated[int, typer.Option(help="Clips attacked at once.")] = 36,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    save_examples: Annotated[
        bool, typer.Option("--save-examples", help="Also write examples.npy (x_adv).")
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Output directory (default RUN/attacks/<key>).")
    ] = None,
    epsilons: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated radii, e.g. 0.01,0.03,0.1,0.3: run the (bounded) attack at "
            "each, one result directory per ε (robustness curves)."
        ),
    ] = None,
    domain: Annotated[
        str | None,
        typer.Option(help="spectrogram (default) or waveform: perturb the audio itself."),
    ] = None,
    snr_db: Annotated[
        float | None,
        typer.Option("--snr-db", help="Waveform domain: minimum SNR of the adversarial audio."),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="Targeted attack (pgd): an emotion profile (happy, sad, tender, fear, anger, "
            "neutral), 8 ratings 'v,e,t,a,f,h,s,t' (1-9) or concept shifts "
            "'dissonance=+1.5' (rating points). See docs/audio-attacks.md."
        ),
    ] = None,
    save_audio: Annotated[
        Path | None,
        typer.Option(
            "--save-audio", help="Waveform domain: write clean/adversarial FLAC + JSON here."
        ),
    ] = None,
    stack_runs: Annotated[
        bool,
        typer.Option(
            "--stack-runs",
            help="Attack the given runs of one architecture (e.g. the seeds of a system) in "
            "one batch; each run's results as without it (docs/performance.md).",
        ),
    ] = False,
    compile_mode: Annotated[
        str,
        typer.Option(
            "--compile",
            help="none, default (torch.compile the attack step) or cuda-graphs (CUDA only).",
        ),
    ] = "none",
) -> None:
    """Attack RUN's clips; writes RUN/attacks/<key>/{clips.parquet,clips.csv,summary.json}.

    <key> is derived from the attack's full settings (e.g. paper-1a2b3c4d5e), so attacks
    with other settings never overwrite each other; a finished identical attack is skipped.
    Example: robustmer attack --run RUN --attack pgd --set epsilon=0.1 --set steps=20.
    Audio: robustmer attack --run RUN --attack pgd --set epsilon=0.01 --domain waveform
    --snr-db 30 --save-audio listen/ (see docs/audio-attacks.md).
    Several runs in one batch: robustmer attack --run R1 --run R2 --run R3 --stack-runs.
    See docs/attacks.md.
    """
    from robustmer.attacks.execution import Execution
    from robustmer.errors import RobustmerError
    from robustmer.evaluation import attack_run, attack_runs
    from robustmer.evaluation.curves import at_epsilons
    from robustmer.training import resolve_device

    shortcuts = {"domain": domain, "snr_db": snr_db, "target": target}
    extra = [f"{k}={v}" for k, v in shortcuts.items() if v is not None]
    settings = [*(settings or []), *extra]
    grid = parse_epsilons(epsilons)
    if grid and not any(s.partition("=")[0].strip() == "epsilon" for s in settings):
        settings.append(f"epsilon={grid[0]}")  # a bounded attack to expand
    configs = at_epsilons([attack_settings(attack, settings)], grid or ())
    if grid and (len(configs) < len(set(grid)) or out is not None):
        raise RobustmerError(
            f"--epsilons with --attack {attack}: expected a bounded spectrogram-domain attack "
            "(an epsilon setting; a waveform attack's epsilon is an amplitude) and no --out "
            "(each ε gets its own RUN/attacks/<key>)"
        )
    execution = Execution(stack_runs=stack_runs, compile=compile_mode)
    if len(run) > 1 and (out is not None or save_audio is not None):
        raise RobustmerError(
            f"--run given {len(run)} times: --out and --save-audio need a single run; expected "
            "one --run, or no --out/--save-audio (each run writes RUN/attacks/<key>)"
        )
    for config in configs:
        if len(run) == 1 and not stack_runs:
            summaries = [
                attack_run(
                    run[0],
                    config,
                    split=split,
                    batch_size=batch_size,
                    device=resolve_device(device),
                    save_examples=save_examples,
                    out=out,
                    save_audio=save_audio,
                    execution=execution,
                )
            ]
        else:
            summaries = attack_runs(
                run,
                config,
                split=split,
                batch_size=batch_size,
                device=resolve_device(device),
                save_examples=save_examples,
                execution=execution,
            )
        for summary in summaries:
            typer.echo(
                f"{summary.system} seed {summary.seed} {summary.key}: "
                f"MAE {summary.mae_clean:.4f} -> {summary.mae_adv:.4f} "
                f"(ΔMAE {summary.delta_mae:+.4f}), {summary.n_clips} clips, "
                f"{summary.cost.wall_seconds:.1f} s ({summary.cost.execution})"
            )
