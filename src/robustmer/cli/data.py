"""``robustmer synth`` and ``robustmer prepare``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def synth(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the data set to.")],
    clips: Annotated[int, typer.Option(help="Number of clips (the real Set 1 has 360).")] = 360,
    seconds: Annotated[float, typer.Option(help="Length of each clip in seconds.")] = 15.0,
    seed: Annotated[int, typer.Option(help="Random seed; the data set is a function of it.")] = 0,
) -> None:
    """Write the built-in synthetic music data set in the real data sets' formats.

    Layout: OUT/soundtracks/{mean_ratings_set1.csv, Set1/NNN.mp3} and
    OUT/midlevel/{metadata.csv, annotations.csv}. See docs/synthetic.md.
    """
    from robustmer.data import generate_synthetic

    summary = generate_synthetic(out, clips=clips, seconds=seconds, seed=seed)
    typer.echo(f"wrote {summary['clips']} synthetic clips to {out}")


def prepare(
    soundtracks: Annotated[
        Path, typer.Option(help="Soundtracks Set 1: mean_ratings_set1.csv and NNN.mp3 clips.")
    ],
    midlevel: Annotated[
        Path, typer.Option(help="Mid-level data set: metadata.csv and annotations.csv.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Cache directory to write.")],
    norm_stats: Annotated[
        str,
        typer.Option(
            help="Normalise with statistics of the 'train' split or of 'all' clips "
            "(the paper's choice)."
        ),
    ] = "train",
    frames: Annotated[int, typer.Option(help="Excerpt length in frames (313 = 10 s).")] = 313,
    excerpt_seed: Annotated[int, typer.Option(help="Seed of the excerpt offsets.")] = 0,
) -> None:
    """Compute spectrograms, normalise, cut excerpts and split; write a cache.

    Re-running on an existing cache re-uses the spectrograms of unchanged clips.
    """
    from robustmer.data import prepare as run_prepare

    path = run_prepare(
        soundtracks, midlevel, out, norm_stats=norm_stats, frames=frames, excerpt_seed=excerpt_seed
    )
    typer.echo(f"cache written to {path}")
