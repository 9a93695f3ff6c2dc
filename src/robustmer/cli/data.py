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
    from robustmer._io import check_writable
    from robustmer.data import generate_synthetic

    check_writable(out, "output directory")
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
    allow_repeat: Annotated[
        bool,
        typer.Option(
            "--allow-repeat",
            help="Allow excerpts longer than 4x a clip (the clip is repeated to fill them).",
        ),
    ] = False,
) -> None:
    """Compute spectrograms, normalise, cut excerpts and split; write a cache.

    Re-running on an existing cache re-uses the spectrograms of unchanged clips.
    """
    from robustmer.data import prepare as run_prepare
    from robustmer.data.prepare import MAX_REPEAT, NORM_STATS
    from robustmer.errors import RobustmerError

    if norm_stats not in NORM_STATS:
        raise RobustmerError(
            f"--norm-stats {norm_stats!r}: unknown; expected one of {', '.join(NORM_STATS)}"
        )
    if frames < 16:
        raise RobustmerError(f"--frames {frames}: too few; expected at least 16 frames")
    path = run_prepare(
        soundtracks,
        midlevel,
        out,
        norm_stats=norm_stats,
        frames=frames,
        excerpt_seed=excerpt_seed,
        max_repeat=None if allow_repeat else MAX_REPEAT,
    )
    typer.echo(f"cache written to {path}")
