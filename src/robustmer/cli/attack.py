"""``robustmer attack``: attack a trained run's test clips (DESIGN.md §7)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def attack(
    run: Annotated[Path, typer.Option("--run", help="Training run directory.")],
    attack: Annotated[
        str, typer.Option("--attack", help="Attack: paper, pgd-linf or pgd-l2.")
    ] = "paper",
    epsilon: Annotated[
        float | None,
        typer.Option(
            help="Perturbation radius (normalised input). Paper attack: selects bounded mode. "
            "Required for PGD."
        ),
    ] = None,
    iters: Annotated[
        int | None, typer.Option(help="Paper attack: max iterations (1000). PGD: steps (40).")
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(help="Paper attack: Adam learning rate (0.002). PGD: step size."),
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            help="Paper attack: 'reference' (paper's code, unbounded; default without "
            "--epsilon) or 'bounded' (default with --epsilon)."
        ),
    ] = None,
    split: Annotated[str, typer.Option(help="test, validation or train.")] = "test",
    batch_size: Annotated[int, typer.Option(help="Clips attacked at once.")] = 36,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    save_examples: Annotated[
        bool, typer.Option("--save-examples", help="Also write examples.npy (x_adv).")
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Output directory (default RUN/attacks/<attack>).")
    ] = None,
) -> None:
    """Attack RUN's clips; writes RUN/attacks/<attack>/{clips.parquet,clips.csv,summary.json}.

    A finished attack with the same settings is skipped. See docs/attacks.md.
    """
    from robustmer.evaluation import attack_run

    summary = attack_run(
        run,
        attack=attack,
        split=split,
        epsilon=epsilon,
        iters=iters,
        lr=lr,
        mode=mode,
        batch_size=batch_size,
        device=device,
        save_examples=save_examples,
        out=out,
    )
    typer.echo(
        f"{summary['system']} seed {summary['seed']} {summary['attack']}: "
        f"MAE {summary['mae_clean']:.4f} -> {summary['mae_adv']:.4f} "
        f"(ΔMAE {summary['delta_mae']:+.4f}), {summary['n_clips']} clips, "
        f"{summary['attack_seconds']:.1f} s"
    )
