"""Small file helpers shared by all stages: atomic writes, JSON, hashing, tables.

Nothing is ever left half-written: every writer goes to a temporary file in the target's
directory and is renamed over the target only when complete. No pickle anywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from robustmer.errors import RobustmerError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The caller writes the whole file to the yielded path. On an exception the temporary
    file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600 files
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file for writing; it replaces ``path`` only if the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode, encoding=None if "b" in mode else "utf-8") as fh:
        yield fh


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; move it onto ``path`` on success.

    An existing ``path`` is replaced only after the new directory is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700 directories
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def check_writable(path: str | os.PathLike[str], what: str = "output directory") -> Path:
    """Raise :class:`RobustmerError` unless files can be created at ``path``.

    Probes by creating and removing a temporary file in ``path`` if it is a directory,
    else in its nearest existing ancestor (where ``path`` will be created), so a read-only
    file system, a missing permission or an ancestor that is a file are reported before
    any work is done, also for root (whom permission bits do not stop). Nothing is left
    behind.

    Parameters
    ----------
    path : str or PathLike
        Directory (existing or to be created) the caller will write into.
    what : str
        What ``path`` is, for the message.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RobustmerError(f"{path}: exists and is not a directory; expected a {what}")
    probe = path
    while not probe.is_dir():
        if probe.exists() or probe.parent == probe:
            raise RobustmerError(
                f"{path}: cannot be created ({probe} is not a directory); expected a {what} "
                "in a writable location"
            )
        probe = probe.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=".robustmer-write-check.", dir=probe)
    except OSError as exc:
        raise RobustmerError(
            f"{path}: not writable ({exc.strerror or exc} in {probe}); expected a {what} "
            "in a writable location"
        ) from None
    os.close(fd)
    os.unlink(tmp)
    return path


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, paths and tuples into plain JSON types."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and obj != obj:  # NaN is not valid JSON
        return None
    return obj


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_open(path) as fh:
        json.dump(to_jsonable(obj), fh, indent=2, sort_keys=False)
        fh.write("\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file, raising :class:`RobustmerError` if it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise RobustmerError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RobustmerError(f"{path}: not valid JSON ({exc})") from None


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of a byte string."""
    return hashlib.sha256(data).hexdigest()


def write_table(df: Any, stem: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write a pandas DataFrame as ``stem.parquet`` and ``stem.csv``, each atomically."""
    stem = Path(stem)
    parquet, csv = stem.with_suffix(".parquet"), stem.with_suffix(".csv")
    with atomic_path(parquet) as tmp:
        df.to_parquet(tmp, index=False)
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False)
    return parquet, csv
