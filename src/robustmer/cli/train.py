"""``robustmer train``: train one system with one seed (docs/paper.md §6)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def train(
    system: Annotated[str, typer.Option(help="System: A2E, A2B2E, A2M2E, aA2E or aA2B2E.")],
    seed: Annotated[int, typer.Option(help="Training seed (the paper used 10, e.g. 6).")],
    data: Annotated[Path, typer.Option("--data", help="Data cache made by `robustmer prepare`.")],
    out: Annotated[Path, typer.Option("--out", help="Run directory (resumed if present).")],
    profile: Annotated[
        str, typer.Option(help="Settings profile: 'paper' (defaults) or 'quick' (cheap).")
    ] = "paper",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    max_epochs: Annotated[
        int | None, typer.Option(help="Upper limit on epochs (paper: 199).")
    ] = None,
    patience: Annotated[
        int | None, typer.Option(help="Early-stopping patience in epochs (paper: 50).")
    ] = None,
    monitor: Annotated[
        str | None,
        typer.Option(
            help="Early-stopping rule: 'emotions' (project default; mid-level joins only "
            "for A2M2E) or 'paper' (mid-level joins for every bottleneck model)."
        ),
    ] = None,
    width: Annotated[
        float | None, typer.Option(help="Channel width multiplier (paper: 1.0).")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate (paper: 5e-4).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (paper: 8).")] = None,
    adv_every: Annotated[
        int | None, typer.Option(help="Adversarial systems: every N-th epoch (paper: 5).")
    ] = None,
    adv_steps: Annotated[
        int | None,
        typer.Option(help="Steps of the adversarial-training attack (paper attack: 50)."),
    ] = None,
    channels_last: Annotated[
        bool | None, typer.Option("--channels-last/--no-channels-last", help="Memory format.")
    ] = None,
    amp: Annotated[
        bool | None, typer.Option("--amp/--no-amp", help="bfloat16 autocast for training steps.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train one system with one seed; an interrupted run resumes, a finished one is skipped.

    Writes OUT/{config.json, metrics.csv, best.safetensors, state.pt, final.json}.
    See docs/training.md.
    """
    from robustmer.training import make_config, resolve_device
    from robustmer.training import train as run_train

    dev = resolve_device(device)
    config = make_config(
        system,
        seed,
        profile=profile,
        device=str(dev),
        max_epochs=max_epochs,
        patience=patience,
        monitor=monitor,
        width=width,
        lr=lr,
        batch_size=batch_size,
        adv_every=adv_every,
        channels_last=channels_last,
        amp=amp,
    )
    if adv_steps is not None:
        config = config.replace(adv_attack=config.adv_attack.replace(steps=adv_steps))
    final = run_train(data, out, config, device=dev, progress=progress)
    test = final["metrics"]["test"]["emotions"]
    typer.echo(
        f"{config.system} seed {config.seed}: best epoch {final['best_epoch']} of "
        f"{final['epochs_run']}, test avg corr {test['avg_corr']:.4f}, MAE {test['mae']:.4f} "
        f"-> {out}"
    )
