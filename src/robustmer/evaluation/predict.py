"""Rate audio files with a trained run: one row per file (``robustmer predict``).

Each file is decoded like the training data (:func:`robustmer.audio.load_audio`), the run's
excerpt length is slid over it and the window predictions are averaged
(:func:`robustmer.models.predict_audio`; windows every half excerpt by default).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from robustmer.names import EMOTIONS, MIDLEVEL_FEATURES

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["bottleneck_names", "predict_files"]


def bottleneck_names(midlevel_loss: bool) -> tuple[str, ...]:
    """Column names of the bottleneck outputs.

    The mid-level feature names for a bottleneck trained on them (A2M2E), else the unnamed
    units ``unit1`` ... ``unit7`` (A2B2E, aA2B2E).
    """
    if midlevel_loss:
        return MIDLEVEL_FEATURES
    return tuple(f"unit{k}" for k in range(1, len(MIDLEVEL_FEATURES) + 1))


def predict_files(
    run_dir: str | os.PathLike[str],
    files: Sequence[str | os.PathLike[str]],
    *,
    hop_frames: int | None = None,
    device: str = "cpu",
) -> pd.DataFrame:
    """Predict the emotions (and bottleneck) of audio files with a trained run.

    Parameters
    ----------
    run_dir : str or PathLike
        A training run (``robustmer.training.load_run``); its data cache supplies the front
        end, normalisation and excerpt length.
    files : sequence of str or PathLike
        Audio files (wav, flac, mp3, ogg) of any length.
    hop_frames : int, optional
        Frames between sliding windows (default half an excerpt).
    device : str
        ``"cpu"``, ``"auto"`` or ``"cuda[:N]"``.

    Returns
    -------
    pandas.DataFrame
        One row per file: ``file``, ``seconds``, ``windows``, the 8 emotions on the 1-9
        scale and, for bottleneck models, the 7 bottleneck outputs times 10 (named by
        :func:`bottleneck_names`).

    Raises
    ------
    RobustmerError
        For a bad run or a file that does not decode (naming it).
    """
    import pandas as pd

    from robustmer.models import WaveformModel, predict_file
    from robustmer.training import load_run

    run = load_run(run_dir, device=device)
    model = WaveformModel.from_run(run)
    names = bottleneck_names(run.system.midlevel_loss)
    rows = []
    for file in files:
        pred = predict_file(model, file, hop_frames=hop_frames)
        row: dict[str, object] = {
            "file": str(file),
            "seconds": pred.seconds,
            "windows": pred.windows,
        }
        row.update(zip(EMOTIONS, pred.emotions.tolist(), strict=True))
        if pred.midlevel is not None:
            row.update(zip(names, pred.midlevel.tolist(), strict=True))
        rows.append(row)
    return pd.DataFrame(rows)
