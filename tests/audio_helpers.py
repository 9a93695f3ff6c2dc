"""A tiny trained run on real (tone) audio, for the tests of models on audio and audio attacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import ANN_HEADER, write_tiny_dataset

AUDIO_CLIPS, AUDIO_SECONDS, AUDIO_FRAMES = 12, 2.0, 16


def train_audio_run(root: Path, system: str = "A2M2E", *, epochs: int = 1) -> Path:
    """Tone clips -> ``robustmer prepare`` cache (16-frame excerpts) -> a tiny trained run.

    Returns the run directory ``root / "run"``; the cache is ``root / "cache"``.
    """
    from robustmer.data import prepare
    from robustmer.training import make_config, train

    st, mid = write_tiny_dataset(root / "raw", n=AUDIO_CLIPS, seconds=AUDIO_SECONDS)
    # mid-level annotations that vary on every feature (the tiny set's minorness is constant)
    rng = np.random.default_rng(7)
    rows = [ANN_HEADER]
    for i in range(1, AUDIO_CLIPS + 1):
        rows.append(f"{500 + i}," + ",".join(f"{v:.3f}" for v in rng.uniform(2, 8, 7)))
    rows.append("9001," + ",".join(["5.0"] * 7))
    (mid / "annotations.csv").write_text("\n".join(rows) + "\n")
    prepare(st, mid, root / "cache", frames=AUDIO_FRAMES, progress=False)
    config = make_config(
        system, 1, width=0.0625, max_epochs=epochs, batch_size=4, lr=2e-3, device="cpu"
    )
    train(root / "cache", root / "run", config, progress=False)
    return root / "run"
