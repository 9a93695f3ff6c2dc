"""Versions of the software that produced a result, recorded in runs, studies and reports."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

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


def device_name(device: Any) -> str:
    """The hardware behind a :class:`torch.device`: the GPU's name, else the CPU's."""
    if device.type == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()
