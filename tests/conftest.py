"""Shared test fixtures: tiny hand-made data sets in the real on-disk formats."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("ROBUSTMER_PROGRESS", "0")



@pytest.fixture(autouse=True)
def _private_data_store(tmp_path, monkeypatch):
    """Every test gets its own shared data store (never the user's ~/.cache/robustmer)."""
    monkeypatch.setenv("ROBUSTMER_CACHE", str(tmp_path / "robustmer-store"))


SHARED = Path(__file__).resolve().parents[2] / "shared"
HEADER = "number,valence,energy,tension,anger,fear,happy,sad,tender,TARGET"
ANN_HEADER = (
    "song_id,melodiousness,articulation,rhythm_complexity,rhythm_stability,"
    "dissonance,tonal_stability,minorness"
)


def write_tiny_dataset(
    root: Path, n: int = 6, seconds: float = 1.0, sr: int = 22050, fmt: str = "wav"
) -> tuple[Path, Path]:
    """Write ``n`` tone clips with hand-chosen ratings; return (soundtracks, midlevel) dirs."""
    import soundfile as sf

    st = root / "soundtracks"
    (st / "Set1").mkdir(parents=True)
    mid = root / "midlevel"
    mid.mkdir()
    t = np.arange(int(seconds * sr)) / sr
    rows, meta, ann = [HEADER], ["song id;Source;ID at file source;Genre"], [ANN_HEADER]
    for i in range(1, n + 1):
        tone = 0.5 * np.sin(2 * np.pi * (220.0 * i) * t)
        sf.write(st / "Set1" / f"{i:03d}.{fmt}", tone, sr)
        r = [1.0 + (i + j) % 8 + 0.25 for j in range(8)]
        rows.append(f"{i:03d}," + ",".join(f"{v:.2f}" for v in r) + ",HAPPY")
        meta.append(f"{500 + i};soundtracks;{i};film")
        ann.append(f"{500 + i}," + ",".join(f"{2 + (i * k) % 7:.3f}" for k in range(1, 8)))
    meta.append("9001;jamendo;77;rock")
    ann.append("9001," + ",".join(["5.0"] * 7))
    (st / "mean_ratings_set1.csv").write_text("\n".join(rows) + "\n")
    (mid / "metadata.csv").write_text("\n".join(meta) + "\n")
    (mid / "annotations.csv").write_text("\n".join(ann) + "\n")
    return st, mid


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> tuple[Path, Path]:
    return write_tiny_dataset(tmp_path / "raw")


TINY_CLIPS, TINY_SECONDS, TINY_FRAMES = 30, 1.2, 16
"""The tiny study's data: clips, their length in seconds, frames per cached excerpt."""


def prepare_tiny_cache(root: Path) -> Path:
    """The tiny study's tone clips under ``root / "raw"``, prepared into ``root / "cache"``."""
    from robustmer.data import prepare

    st, mid = write_tiny_dataset(root / "raw", n=TINY_CLIPS, seconds=TINY_SECONDS)
    return prepare(st, mid, root / "cache", frames=TINY_FRAMES, progress=False)


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One :func:`prepare_tiny_cache` per test module."""
    return prepare_tiny_cache(tmp_path_factory.mktemp("tiny-data"))


def tiny_profile(**fields):
    """A :class:`robustmer.study.StudyProfile` for the tiny cache, with ``fields`` changed.

    Defaults: systems A2E and A2M2E, seed 6, at most 2 epochs of width-1/16 models, the
    paper attack with 3 steps.
    """
    from robustmer.attacks import PaperConfig
    from robustmer.study import StudyProfile

    settings = {
        "name": "tiny",
        "clips": TINY_CLIPS,
        "seconds": TINY_SECONDS,
        "frames": TINY_FRAMES,
        "systems": ("A2E", "A2M2E"),
        "seeds": (6,),
        "train": {"max_epochs": 2, "patience": 2, "width": 0.0625},
        "attacks": (PaperConfig(steps=3),),
    }
    return StudyProfile(**{**settings, **fields})


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (the project's shared fixtures live beside the repo)")
    return SHARED


@pytest.fixture(scope="module")
def audio_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run trained on tone audio (``audio_helpers.train_audio_run``), per module; a
    module that wants another one overrides this fixture."""
    from audio_helpers import train_audio_run

    return train_audio_run(tmp_path_factory.mktemp("audio-run"))


@pytest.fixture(scope="module")
def audio_run(audio_run_dir: Path):
    """:func:`robustmer.training.load_run` of :func:`audio_run_dir`."""
    from robustmer.training import load_run

    return load_run(audio_run_dir)
