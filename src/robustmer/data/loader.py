"""Readers for the two real data sets (docs/paper.md §2), with precise validation.

Soundtracks Set 1 (Eerola & Vuoskoski 2011): ``mean_ratings_set1.csv`` and clips
``001.mp3`` ... ``360.mp3``. Mid-level features (Aljanaki & Soleymani 2018):
``metadata.csv`` (``;``-separated) and ``annotations.csv``. The synthetic generator writes
the same formats, so this code serves both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robustmer.errors import RobustmerError
from robustmer.names import EMOTIONS, MIDLEVEL_FEATURES

RATINGS_FILE = "mean_ratings_set1.csv"
METADATA_FILE = "metadata.csv"
ANNOTATIONS_FILE = "annotations.csv"
AUDIO_EXTENSIONS = (".mp3", ".wav", ".flac", ".ogg")
_CLIP_NAME = re.compile(r"^(\d{3})$")
_NUMBER = re.compile(r"^\d+(\.0*)?$")


@dataclass(frozen=True)
class SoundtracksSet:
    """The located and validated Soundtracks Set 1.

    Attributes
    ----------
    ids : list of int
        Set-1 numbers in the order of the ratings CSV's rows.
    ratings : np.ndarray, shape (n, 8)
        Mean emotion ratings on the 1-9 scale, columns as :data:`robustmer.names.EMOTIONS`.
    targets : list of str
        The CSV's TARGET label per clip ("" if the column is absent).
    audio : dict of int to Path
        Audio file of each clip.
    ratings_file : Path
    """

    ids: list[int]
    ratings: np.ndarray
    targets: list[str]
    audio: dict[int, Path]
    ratings_file: Path


def _require_dir(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise RobustmerError(f"{path}: {what} directory not found")
    if not path.is_dir():
        raise RobustmerError(f"{path}: expected the {what} directory, found a file")
    return path


def _find_file(root: Path, name: str, what: str) -> Path:
    """``root/name`` or ``root/<one subfolder>/name``."""
    direct = root / name
    if direct.is_file():
        return direct
    found = sorted(p for p in root.glob(f"*/{name}") if p.is_file())
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        names = ", ".join(str(p) for p in found)
        raise RobustmerError(f"{root}: several {name} files found ({names}); expected one")
    raise RobustmerError(
        f"{root}: {name} not found; expected the {what} file in this directory "
        "or in one of its subfolders"
    )


def _read_csv(path: Path, sep: str):
    import pandas as pd

    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise RobustmerError(f"{path}: not a readable CSV file ({exc})") from None


def _require_columns(df, path: Path, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise RobustmerError(
            f"{path}: missing column(s) {', '.join(missing)}; expected columns "
            f"{', '.join(columns)} (found {', '.join(map(str, df.columns))})"
        )


def _parse_number(value: str, path: Path, line: int, column: str) -> int:
    text = str(value).strip()
    if not _NUMBER.match(text):
        raise RobustmerError(
            f"{path}, line {line}: {column} {value!r} is not a clip number; "
            "expected a whole number such as 001"
        )
    return int(float(text))


def _parse_float_block(df, columns: tuple[str, ...], path: Path, low: float, high: float):
    values = np.empty((len(df), len(columns)), dtype=np.float64)
    for j, col in enumerate(columns):
        for i, raw in enumerate(df[col].tolist()):
            line = i + 2  # header is line 1
            try:
                v = float(str(raw).strip())
            except ValueError:
                raise RobustmerError(
                    f"{path}, line {line}: {col} {raw!r} is not a number; expected a rating "
                    f"between {low:g} and {high:g}"
                ) from None
            if not np.isfinite(v):
                raise RobustmerError(
                    f"{path}, line {line}: {col} is {raw!r}; expected a rating between "
                    f"{low:g} and {high:g}"
                )
            if not low <= v <= high:
                raise RobustmerError(
                    f"{path}, line {line}: {col} = {v:g} is outside {low:g}-{high:g}"
                )
            values[i, j] = v
    return values


def read_ratings(path: str | Path) -> tuple[list[int], np.ndarray, list[str]]:
    """Read and validate ``mean_ratings_set1.csv``.

    Parameters
    ----------
    path : str or Path
        The CSV: header ``number,valence,energy,tension,anger,fear,happy,sad,tender,TARGET``.

    Returns
    -------
    ids : list of int
        Set-1 numbers in row order.
    ratings : np.ndarray, shape (n, 8), float64
        Ratings on the 1-9 scale.
    targets : list of str
        TARGET labels ("" where the column is absent).

    Raises
    ------
    RobustmerError
        Missing file, missing or renamed columns, duplicate numbers, non-numeric or NaN
        ratings, ratings outside 1-9; the message names the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise RobustmerError(f"{path}: ratings file not found")
    df = _read_csv(path, ",")
    df.columns = [str(c).strip() for c in df.columns]
    _require_columns(df, path, ("number", *EMOTIONS))
    if len(df) == 0:
        raise RobustmerError(f"{path}: no rows; expected one row per clip")
    ids = [_parse_number(v, path, i + 2, "number") for i, v in enumerate(df["number"].tolist())]
    seen: dict[int, int] = {}
    for i, n in enumerate(ids):
        if n in seen:
            raise RobustmerError(
                f"{path}, line {i + 2}: duplicate number {n:03d} (first on line {seen[n]}); "
                "expected each clip once"
            )
        seen[n] = i + 2
    ratings = _parse_float_block(df, EMOTIONS, path, 1.0, 9.0)
    targets = [str(t) for t in df["TARGET"].tolist()] if "TARGET" in df.columns else [""] * len(df)
    return ids, ratings, targets


def find_clips(root: str | Path) -> dict[int, Path]:
    """Map Set-1 numbers to audio files named ``NNN.<ext>`` under ``root`` (two levels deep).

    Raises
    ------
    RobustmerError
        A number with several audio files (``007.mp3`` and ``007.ogg``, or the same name in
        two folders), naming both: which one is meant is not for robustmer to guess.
    """
    root = Path(root)
    found: dict[int, Path] = {}
    for depth in ("*", "*/*", "*/*/*"):
        for p in sorted(root.glob(depth)):
            m = _CLIP_NAME.match(p.stem)
            if not m or p.suffix.lower() not in AUDIO_EXTENSIONS or not p.is_file():
                continue
            n = int(m.group(1))
            if n in found:
                raise RobustmerError(
                    f"{root}: clip {n:03d} has two audio files, {found[n]} and {p}; expected "
                    "one file per clip: remove or rename the other"
                )
            found[n] = p
    return found


def load_soundtracks(directory: str | Path) -> SoundtracksSet:
    """Locate and validate Soundtracks Set 1 in ``directory``.

    ``directory`` holds ``mean_ratings_set1.csv`` and the clips, directly or in a subfolder
    such as ``Set1/``; clips are found by their three-digit names.
    """
    root = _require_dir(directory, "Soundtracks")
    ratings_file = _find_file(root, RATINGS_FILE, "Soundtracks ratings")
    ids, ratings, targets = read_ratings(ratings_file)
    clips = find_clips(root)
    missing = [n for n in ids if n not in clips]
    if missing:
        shown = ", ".join(f"{n:03d}" for n in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise RobustmerError(
            f"{root}: no audio file for {len(missing)} clip(s) of {ratings_file.name} ({shown}); "
            f"expected files named NNN{'/'.join(AUDIO_EXTENSIONS)}"
        )
    return SoundtracksSet(ids, ratings, targets, {n: clips[n] for n in ids}, ratings_file)


def find_midlevel_files(directory: str | Path) -> tuple[Path, Path]:
    """Locate ``metadata.csv`` and ``annotations.csv`` in ``directory`` or one subfolder."""
    root = _require_dir(directory, "mid-level")
    return (
        _find_file(root, METADATA_FILE, "mid-level metadata"),
        _find_file(root, ANNOTATIONS_FILE, "mid-level annotations"),
    )


def read_midlevel(directory: str | Path, ids: list[int] | None = None) -> dict[int, np.ndarray]:
    """Read the mid-level annotations of the Soundtracks clips.

    Parameters
    ----------
    directory : str or Path
        Holds ``metadata.csv`` (``;``-separated, columns ``song id``, ``Source``,
        ``ID at file source``) and ``annotations.csv`` (``song_id`` then the seven features),
        directly or in one subfolder.
    ids : list of int, optional
        Set-1 numbers that must all be covered.

    Returns
    -------
    dict of int to np.ndarray, shape (7,)
        Mid-level ratings (annotation scale) keyed by Set-1 number, features in
        :data:`robustmer.names.MIDLEVEL_FEATURES` order.
    """
    meta_path, ann_path = find_midlevel_files(directory)

    meta = _read_csv(meta_path, ";")
    meta.columns = [str(c).strip() for c in meta.columns]
    _require_columns(meta, meta_path, ("song id", "Source", "ID at file source"))
    is_st = meta["Source"].str.strip().str.lower() == "soundtracks"
    if not is_st.any():
        raise RobustmerError(
            f"{meta_path}: no rows with Source 'soundtracks'; expected the Soundtracks clips "
            "among the mid-level data set's sources"
        )
    number_of_song: dict[str, int] = {}
    for i in np.flatnonzero(is_st.to_numpy()):
        row = meta.iloc[i]
        n = _parse_number(row["ID at file source"], meta_path, int(i) + 2, "ID at file source")
        number_of_song[str(row["song id"]).strip()] = n

    ann = _read_csv(ann_path, ",")
    ann.columns = [str(c).strip() for c in ann.columns]
    _require_columns(ann, ann_path, ("song_id", *MIDLEVEL_FEATURES))
    ann = ann.assign(song_id=ann["song_id"].str.strip())
    ann = ann[ann["song_id"].isin(number_of_song)].reset_index(drop=True)
    values = _parse_float_block(ann, MIDLEVEL_FEATURES, ann_path, -np.inf, np.inf)
    result: dict[int, np.ndarray] = {}
    for song, v in zip(ann["song_id"].tolist(), values, strict=True):
        result[number_of_song[song]] = v

    if ids is not None:
        missing = [n for n in ids if n not in result]
        if missing:
            shown = ", ".join(f"{n:03d}" for n in missing[:10])
            more = " ..." if len(missing) > 10 else ""
            raise RobustmerError(
                f"{ann_path}: no mid-level annotation for {len(missing)} Soundtracks clip(s) "
                f"({shown}{more}); expected every clip of the ratings file to appear in "
                f"{meta_path.name} (Source 'soundtracks') and {ann_path.name}"
            )
    return result
