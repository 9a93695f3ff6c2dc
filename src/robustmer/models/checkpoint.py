"""Model checkpoints as safetensors files with the :class:`ModelConfig` in the metadata.

No pickle: the weights (including BatchNorm running statistics) are a flat safetensors
file; its string metadata holds ``robustmer.model`` (the model config as JSON) and
``robustmer.extra`` (any JSON-ready dict the caller adds, e.g. the training config).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from robustmer._io import atomic_path, to_jsonable
from robustmer.errors import RobustmerError
from robustmer.models.mer import MERModel, ModelConfig

_CONFIG_KEY = "robustmer.model"
_EXTRA_KEY = "robustmer.extra"
_FORMAT_KEY = "robustmer.format"
CHECKPOINT_FORMAT = "robustmer-model-1"
"""Format tag written into every checkpoint."""


def save_model(
    path: str | os.PathLike[str], model: MERModel, *, extra: dict[str, Any] | None = None
) -> Path:
    """Write a model's weights and config to a safetensors file, atomically.

    Parameters
    ----------
    path : str or PathLike
        Target file (conventionally ``*.safetensors``).
    model : MERModel
        Model to save (any device; the tensors are copied to the CPU).
    extra : dict, optional
        JSON-ready metadata stored beside the config (read back by :func:`read_metadata`).

    Returns
    -------
    pathlib.Path
    """
    from safetensors.torch import save

    path = Path(path)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    metadata = {
        _FORMAT_KEY: CHECKPOINT_FORMAT,
        _CONFIG_KEY: json.dumps(model.config.to_dict()),
        _EXTRA_KEY: json.dumps(to_jsonable(extra or {})),
    }
    blob = _canonical_header(save(state, metadata=metadata))
    with atomic_path(path) as tmp:
        tmp.write_bytes(blob)
    return path


def _canonical_header(blob: bytes) -> bytes:
    """The same safetensors file with its string metadata in sorted key order.

    safetensors writes the ``__metadata__`` entries in hash-map order, which changes from
    process to process, so equal weights and metadata would give files with different
    bytes (and hashes). The tensor entries and the data section are kept as they are; the
    header is padded with spaces to a multiple of 8 bytes, as safetensors does.
    """
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + size])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + blob[8 + size :]


def _read_header(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    if not path.is_file():
        raise RobustmerError(f"{path}: checkpoint not found; expected a .safetensors file")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise RobustmerError(f"{path}: not a readable safetensors file ({exc})") from None
    if meta.get(_FORMAT_KEY) != CHECKPOINT_FORMAT or _CONFIG_KEY not in meta:
        raise RobustmerError(
            f"{path}: not a robustmer model checkpoint; expected metadata "
            f"{_FORMAT_KEY}={CHECKPOINT_FORMAT}"
        )
    return meta


def read_metadata(path: str | os.PathLike[str]) -> tuple[ModelConfig, dict[str, Any]]:
    """Read a checkpoint's model config and extra metadata without loading the weights.

    Returns
    -------
    (ModelConfig, dict)
    """
    meta = _read_header(Path(path))
    return ModelConfig.from_dict(json.loads(meta[_CONFIG_KEY])), json.loads(
        meta.get(_EXTRA_KEY, "{}")
    )


def load_model(
    path: str | os.PathLike[str],
    *,
    expected: ModelConfig | None = None,
    device: str | torch.device = "cpu",
) -> MERModel:
    """Rebuild a model from a checkpoint written by :func:`save_model`.

    Parameters
    ----------
    path : str or PathLike
    expected : ModelConfig, optional
        If given, the checkpoint's config must equal it.
    device : str or torch.device

    Returns
    -------
    MERModel
        In eval mode, on ``device``.

    Raises
    ------
    RobustmerError
        Missing or foreign file, or a checkpoint of another architecture/width than
        ``expected`` (the message names both).
    """
    from safetensors.torch import load_file

    path = Path(path)
    config, _ = read_metadata(path)
    if expected is not None and config != expected:
        raise RobustmerError(
            f"{path}: checkpoint is arch={config.arch} width={config.width}; expected "
            f"arch={expected.arch} width={expected.width}"
        )
    model = MERModel(config)
    state = load_file(str(path), device="cpu")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise RobustmerError(
            f"{path}: weights do not fit arch={config.arch} width={config.width} ({exc})"
        ) from None
    return model.to(device).eval()
