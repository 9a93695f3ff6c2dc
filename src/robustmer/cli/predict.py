"""``robustmer predict``: rate audio files with a trained run (docs/audio-attacks.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def predict(
    files: Annotated[list[Path], typer.Argument(help="Audio files (wav, flac, mp3, ogg).")],
    run: Annotated[Path, typer.Option("--run", help="Training run directory.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the table as CSV to this file.")
    ] = None,
    hop_frames: Annotated[
        int | None,
        typer.Option(help="Frames between sliding windows (default: half an excerpt)."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "cpu",
) -> None:
    """Print each file's eight emotion ratings (1-9) and, for bottleneck models, the bottleneck.

    The model's excerpt is slid over the file (every half excerpt by default) and the
    window predictions are averaged.
    """
    from robustmer._io import atomic_path
    from robustmer.evaluation.predict import predict_files

    table = predict_files(run, files, hop_frames=hop_frames, device=device)
    typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if out is not None:
        with atomic_path(out) as tmp:
            table.to_csv(tmp, index=False)
        typer.echo(f"-> {out}")
