"""``robustmer prepare``: audio and annotations to a cache of model inputs (docs/paper.md §2-4).

Pipeline per clip: decode -> front end (:func:`robustmer.audio.spectrogram_from_file`);
then one global mean and standard deviation over the training split (project default) or
all clips (the paper's choice, ``norm_stats="all"``); then one excerpt of ``frames`` frames
(313 = 10 s) per clip at a random offset drawn once with a fixed seed, the spectrogram
repeated first if the clip is shorter (at most ``max_repeat`` times its length unless
allowed).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from robustmer._io import check_writable, read_json, sha256_file
from robustmer.data.cache import CACHE_FORMAT, CACHE_VERSION, write_cache
from robustmer.data.loader import find_midlevel_files, load_soundtracks, read_midlevel
from robustmer.data.split import paper_split
from robustmer.errors import RobustmerError
from robustmer.names import RATING_SCALE

logger = logging.getLogger(__name__)

NORM_STATS = ("train", "all")
PAPER_FRAMES = 313
MAX_REPEAT = 4.0
"""Default limit on excerpt length / clip length: longer excerpts would be mostly copies."""


def excerpt(
    spectrogram: np.ndarray, frames: int, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """Cut one excerpt of ``frames`` frames at a random offset.

    A spectrogram shorter than ``frames`` is repeated (tiled along time) until it is long
    enough; the offset is drawn uniformly from the valid range.

    Parameters
    ----------
    spectrogram : np.ndarray, shape (T, bands)
    frames : int
    rng : np.random.Generator

    Returns
    -------
    excerpt : np.ndarray, shape (frames, bands)
    offset : int
        First frame of the excerpt (in the repeated spectrogram).
    """
    if spectrogram.ndim != 2 or len(spectrogram) == 0:
        raise RobustmerError(
            f"spectrogram of shape {spectrogram.shape}; expected a non-empty (T, bands) array"
        )
    if len(spectrogram) < frames:
        reps = -(-frames // len(spectrogram))
        spectrogram = np.concatenate([spectrogram] * reps, axis=0)
    offset = int(rng.integers(0, len(spectrogram) - frames + 1))
    return spectrogram[offset : offset + frames], offset


def _check_repeat(file: Path, clip_frames: int, frames: int, max_repeat: float | None) -> None:
    """Refuse an excerpt that would repeat a clip (the shortest) more than ``max_repeat``
    times."""
    if max_repeat is not None and frames > max_repeat * clip_frames:
        raise RobustmerError(
            f"{file}: {clip_frames} frames long; an excerpt of {frames} frames would repeat "
            f"it {frames / clip_frames:.1f} times; expected excerpts of at most "
            f"{max_repeat:g}x the clip (allow longer repeats explicitly, or choose fewer frames)"
        )


def _previous_spectrograms(out: Path, frontend_dict: dict) -> dict[str, Path]:
    """sha256 -> spectrogram file of an existing cache made with the same front end.

    Only files whose own SHA-256 matches the one recorded when they were written count.
    """
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        return {}
    try:
        manifest = read_json(manifest_path)
    except RobustmerError:
        return {}
    if (
        manifest.get("format") != CACHE_FORMAT
        or manifest.get("version") != CACHE_VERSION
        or manifest.get("frontend") != frontend_dict
    ):
        return {}
    recorded = (manifest.get("sha256") or {}).get("spectrograms") or {}
    reuse = {}
    for key, src in manifest.get("sources", {}).items():
        file = out / "spectrograms" / f"{key}.npy"
        if file.is_file() and recorded.get(key) == sha256_file(file):
            reuse[src["sha256"]] = file
    return reuse


def _check_settings(norm_stats: str, frames: int, max_repeat: float | None) -> None:
    """Raise :class:`RobustmerError` for an unknown ``norm_stats``, fewer than 16 frames or a
    ``max_repeat`` below 1."""
    if norm_stats not in NORM_STATS:
        raise RobustmerError(
            f"norm_stats {norm_stats!r}: unknown; expected one of {', '.join(NORM_STATS)}"
        )
    if frames < 16:
        raise RobustmerError(f"frames {frames}: too few; expected at least 16 frames")
    if max_repeat is not None and not max_repeat >= 1:
        raise RobustmerError(f"max_repeat {max_repeat!r}: invalid; expected a number >= 1")


def _spectrograms(
    audio: dict[int, Path], frontend, reuse: dict[str, Path], progress: bool
) -> tuple[dict[int, np.ndarray], dict[str, dict]]:
    """Log spectrogram of every clip, re-using those of unchanged files.

    Parameters
    ----------
    audio : dict of int to Path
        Clip file per Set-1 number, in ratings-file order.
    frontend : robustmer.audio.FrontEndConfig
    reuse : dict of str to Path
        Saved spectrogram per source-file SHA-256 (:func:`_previous_spectrograms`).
    progress : bool
        Show a progress bar.

    Returns
    -------
    spectrograms : dict of int to np.ndarray, float32, shape (T_n, 149)
    sources : dict of str to dict
        Per clip (``"NNN"``): source file, its SHA-256 and the spectrogram's frame count.
    """
    import torch

    from robustmer.audio import spectrogram_from_file
    from robustmer.progress import progress_bar

    spectrograms: dict[int, np.ndarray] = {}
    sources: dict[str, dict] = {}
    reused = 0
    with progress_bar(transient=False) as bar:
        task = bar.add_task("spectrograms", total=len(audio), visible=progress)
        for n, file in audio.items():
            digest = sha256_file(file)
            if digest in reuse:
                spec = np.load(reuse[digest], allow_pickle=False)
                reused += 1
            else:
                spec = spectrogram_from_file(file, frontend, dtype=torch.float64).numpy()
            spectrograms[n] = spec.astype(np.float32)
            sources[f"{n:03d}"] = {"file": str(file), "sha256": digest, "frames": len(spec)}
            bar.advance(task)
    logger.info("spectrograms: %d computed, %d re-used", len(audio) - reused, reused)
    return spectrograms, sources


def _excerpts(
    spectrograms: list[np.ndarray], frames: int, seed: int, normalization
) -> tuple[np.ndarray, list[int]]:
    """One normalised excerpt per clip at offsets drawn in order from ``default_rng(seed)``.

    Returns
    -------
    excerpts : np.ndarray, float32, shape (N, frames, 149)
    offsets : list of int
    """
    rng = np.random.default_rng(seed)
    excerpts, offsets = [], []
    for spec in spectrograms:
        exc, off = excerpt(spec, frames, rng)
        excerpts.append(normalization.normalize(exc.astype(np.float64)).astype(np.float32))
        offsets.append(off)
    return np.stack(excerpts), offsets


def prepare(
    soundtracks: str | Path,
    midlevel: str | Path,
    out: str | Path,
    *,
    norm_stats: str = "train",
    frames: int = PAPER_FRAMES,
    excerpt_seed: int = 0,
    split_seed: int = 42,
    max_repeat: float | None = MAX_REPEAT,
    frontend=None,
    progress: bool = True,
) -> Path:
    """Build the model-input cache from Soundtracks Set 1 and the mid-level annotations.

    Parameters
    ----------
    soundtracks : str or Path
        Directory with ``mean_ratings_set1.csv`` and clips ``NNN.mp3`` (directly or in a
        subfolder such as ``Set1/``).
    midlevel : str or Path
        Directory with ``metadata.csv`` and ``annotations.csv`` (directly or in one subfolder).
    out : str or Path
        Cache directory; replaced atomically. Spectrograms of an existing cache are re-used
        for clips whose source file hash is unchanged.
    norm_stats : {"train", "all"}
        Clips the normalisation mean and std are taken over: the training split (project
        default) or all clips (the paper's choice).
    frames : int
        Excerpt length in frames (313 = 10 s at 31.3 fps, the paper's value).
    excerpt_seed : int
        Seed of the excerpt offsets (drawn once per clip, in ratings-file order).
    split_seed : int
        Seed of :func:`robustmer.data.paper_split` (42 in the paper).
    max_repeat : float or None
        Refuse excerpts longer than this multiple of a clip's spectrogram (4: an excerpt
        may repeat a short clip up to 4 times); ``None`` allows any length.
    frontend : robustmer.audio.FrontEndConfig, optional
        Front-end parameters (docs/paper.md §3 by default).
    progress : bool
        Show a progress bar.

    Returns
    -------
    Path
        The cache directory.

    Raises
    ------
    RobustmerError
        Bad settings, an unwritable ``out``, bad data (named by file and line), or a clip
        shorter than ``frames / max_repeat`` frames.
    """
    from robustmer.audio import FrontEndConfig, Normalization

    _check_settings(norm_stats, frames, max_repeat)
    frontend = frontend or FrontEndConfig()
    out = Path(out)
    check_writable(out, "cache directory")
    check_writable(out.parent, "directory for the cache")  # the new cache is built there

    st = load_soundtracks(soundtracks)
    mid = read_midlevel(midlevel, st.ids)
    reuse = _previous_spectrograms(out, frontend.to_dict())

    audio = {n: st.audio[n] for n in st.ids}
    spectrograms, sources = _spectrograms(audio, frontend, reuse, progress)
    shortest = min(st.ids, key=lambda n: len(spectrograms[n]))
    _check_repeat(st.audio[shortest], len(spectrograms[shortest]), frames, max_repeat)

    rows = paper_split(len(st.ids), split_seed)
    split = {k: [st.ids[i] for i in v] for k, v in rows.items()}
    stat_ids = split["train"] if norm_stats == "train" else st.ids
    normalization = Normalization.from_spectrograms(spectrograms[n] for n in stat_ids)

    excerpts, offsets = _excerpts(
        [spectrograms[n] for n in st.ids], frames, excerpt_seed, normalization
    )

    midlevel_files = {p.name: sha256_file(p) for p in find_midlevel_files(midlevel)}
    write_cache(
        out,
        ids=st.ids,
        excerpts=excerpts,
        emotions=st.ratings / RATING_SCALE,
        midlevel=np.stack([mid[n] for n in st.ids]) / RATING_SCALE,
        split=split,
        normalization=normalization,
        frontend=frontend,
        spectrograms=spectrograms,
        extra={
            "norm_stats": norm_stats,
            "split_seed": split_seed,
            "excerpt": {"frames": frames, "seed": excerpt_seed, "offsets": offsets},
            "targets": st.targets,
            "ratings_file": {"path": str(st.ratings_file), "sha256": sha256_file(st.ratings_file)},
            "midlevel_files": midlevel_files,
            "sources": sources,
        },
    )
    logger.info("cache written to %s (%d clips, %d frames)", out, len(st.ids), frames)
    return out


__all__ = ["MAX_REPEAT", "NORM_STATS", "PAPER_FRAMES", "excerpt", "prepare"]
