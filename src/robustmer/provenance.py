"""Versions of the software that produced a result, recorded in runs, studies and reports."""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = ("numpy", "scipy", "pandas", "matplotlib", "torch")


def versions() -> dict[str, str]:
    """Python, platform, robustmer and the main libraries' versions (from package metadata).

    Reads installed package metadata only, so it imports nothing heavy.
    """
    import robustmer

    out = {
        "robustmer": robustmer.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for dist in PACKAGES:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out
