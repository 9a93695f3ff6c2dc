"""The MER models of the study: a VGG-style backbone and three heads (docs/paper.md §1, §5).

The backbone is the receptive-field-regularised CNN of Chowdhury et al. (ISMIR 2019), as
used by Hoedt, Flexer & Widmer (SMC 2025): nine convolutions, each followed by
``BatchNorm2d`` and ``ReLU``, two max-pool + ``Dropout2d`` stages and a global average pool.
On top of the 256-d feature vector sit

- ``a2e``: one linear layer 256 → 8 emotions (black box);
- ``a2b2e`` / ``a2m2e``: linear 256 → 7 (the bottleneck; for A2M2E it is trained towards the
  seven mid-level perceptual features) followed by linear 7 → 8, no activation in between.

Parameters are registered in table order (``conv1, bn1, conv2, bn2, ..., conv11, bn11``, then
the heads), so a state dict of the same architecture from another code base maps onto this
one by position (:func:`load_state_dict_by_position`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import nn

from robustmer.errors import RobustmerError

N_BANDS: int = 149
"""Frequency bands of the log-filtered spectrogram the models see (docs/paper.md §3)."""

N_EMOTIONS: int = 8
"""Emotion outputs (valence, energy, tension, anger, fear, happy, sad, tender)."""

N_MIDLEVEL: int = 7
"""Bottleneck size: the seven mid-level perceptual features."""

MIN_FRAMES: int = 16
"""Shortest input (frames) the models accept; the paper's excerpts have 313."""


@dataclass(frozen=True)
class ConvSpec:
    """One row of the backbone table (docs/paper.md §5).

    Attributes
    ----------
    name : str
        Block suffix: the conv is registered as ``conv<name>``, its BatchNorm as ``bn<name>``
        (``conv7b`` / ``bn7b``; the final 1×1 conv ``conv11`` / ``bn11``).
    in_channels, out_channels : int
        Channels at ``width = 1``.
    kernel, stride, padding : int
        Square kernel size, stride and zero padding.
    pool_after : bool
        Whether ``MaxPool2d(2)`` and ``Dropout2d(0.3)`` follow the block's ReLU.
    """

    name: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    padding: int
    pool_after: bool = False


BACKBONE: tuple[ConvSpec, ...] = (
    ConvSpec("1", 1, 64, 5, 2, 2),
    ConvSpec("2", 64, 64, 3, 1, 1, pool_after=True),
    ConvSpec("3", 64, 128, 3, 1, 1),
    ConvSpec("4", 128, 128, 3, 1, 1, pool_after=True),
    ConvSpec("5", 128, 256, 3, 1, 1),
    ConvSpec("6", 256, 256, 3, 1, 1),
    ConvSpec("7", 256, 384, 3, 1, 1),
    ConvSpec("7b", 384, 512, 3, 1, 1),
    ConvSpec("11", 512, 256, 1, 1, 0),
)
"""The backbone of Chowdhury et al. (2019), docs/paper.md §5, in registration order."""

DROPOUT: float = 0.3
"""``Dropout2d`` probability after the two max-pool stages."""


@dataclass(frozen=True)
class ArchSpec:
    """What distinguishes the three architectures: the head.

    Attributes
    ----------
    bottleneck : bool
        ``True``: linear 256 → 7 → 8 (``fc1``, ``fc2``); ``False``: linear 256 → 8 (``fc``).
    description : str
        One line for help texts.
    """

    bottleneck: bool
    description: str


ARCHITECTURES: dict[str, ArchSpec] = {
    "a2e": ArchSpec(False, "audio -> emotions (black box, linear 256->8)"),
    "a2b2e": ArchSpec(True, "audio -> 7-d bottleneck -> emotions (bottleneck unsupervised)"),
    "a2m2e": ArchSpec(True, "audio -> 7 mid-level features -> emotions (interpretable)"),
}
"""Registry of model architectures; keys are the ``arch`` names of :class:`ModelConfig`."""


def _check_arch(arch: str) -> ArchSpec:
    try:
        return ARCHITECTURES[arch]
    except KeyError:
        valid = ", ".join(ARCHITECTURES)
        raise RobustmerError(
            f"model architecture {arch!r}: unknown; expected one of {valid}"
        ) from None


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model (stored in every checkpoint's metadata).

    Attributes
    ----------
    arch : str
        ``"a2e"``, ``"a2b2e"`` or ``"a2m2e"`` (:data:`ARCHITECTURES`).
    width : float
        Multiplier of every channel count (rounded, at least 1). ``1.0`` is the paper's
        model; smaller values give the quick profile's cheaper models.
    """

    arch: str
    width: float = 1.0

    def __post_init__(self) -> None:
        _check_arch(self.arch)
        if not (isinstance(self.width, (int, float)) and math.isfinite(self.width)) or (
            self.width <= 0
        ):
            raise RobustmerError(f"model width {self.width!r}: invalid; expected a number > 0")
        object.__setattr__(self, "width", float(self.width))

    def to_dict(self) -> dict:
        """Plain JSON-ready dict ``{"arch": ..., "width": ...}``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(arch=str(d["arch"]), width=float(d.get("width", 1.0)))


def scaled_channels(channels: int, width: float) -> int:
    """Channel count at a width multiplier: ``max(1, round(channels * width))``."""
    return max(1, round(channels * width))


class MEROutput(NamedTuple):
    """Output of a MER model for a batch of B excerpts.

    Attributes
    ----------
    emotions : torch.Tensor, shape [B, 8]
        Predicted emotion ratings (training scale, i.e. rating / 10).
    midlevel : torch.Tensor, shape [B, 7], or None
        Bottleneck outputs (the mid-level feature predictions of A2M2E; an unsupervised
        7-d code for A2B2E); ``None`` for A2E.
    """

    emotions: torch.Tensor
    midlevel: torch.Tensor | None


class MERModel(nn.Module):
    """Backbone + head of one of the study's architectures (docs/paper.md §1, §5).

    Parameters
    ----------
    config : ModelConfig
        Architecture name and width multiplier.

    Notes
    -----
    Input ``x`` has shape ``[B, 1, F, 149]`` (normalised log-filtered spectrogram excerpts,
    ``F >= 16`` frames; 313 in the paper). Build through :func:`build_model`.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        spec = _check_arch(config.arch)
        self.has_bottleneck = spec.bottleneck
        self._blocks: list[tuple[str, bool]] = []
        for row in BACKBONE:
            c_in = 1 if row.in_channels == 1 else scaled_channels(row.in_channels, config.width)
            c_out = scaled_channels(row.out_channels, config.width)
            self.add_module(
                f"conv{row.name}",
                nn.Conv2d(
                    c_in, c_out, row.kernel, stride=row.stride, padding=row.padding, bias=True
                ),
            )
            self.add_module(f"bn{row.name}", nn.BatchNorm2d(c_out))
            if row.pool_after:
                self.add_module(f"pool{row.name}", nn.MaxPool2d(2))
                self.add_module(f"drop{row.name}", nn.Dropout2d(DROPOUT))
            self._blocks.append((row.name, row.pool_after))
        self.n_features = scaled_channels(BACKBONE[-1].out_channels, config.width)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        if self.has_bottleneck:
            self.fc1 = nn.Linear(self.n_features, N_MIDLEVEL)
            self.fc2 = nn.Linear(N_MIDLEVEL, N_EMOTIONS)
        else:
            self.fc = nn.Linear(self.n_features, N_EMOTIONS)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Paper initialisation: Kaiming normal (fan_in, ReLU) weights, zero biases, BN 1/0."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
                module.reset_running_stats()

    @staticmethod
    def check_input(x: torch.Tensor) -> None:
        """Raise :class:`RobustmerError` unless ``x`` is ``[B, 1, F >= 16, 149]``."""
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] < MIN_FRAMES or x.shape[3] != N_BANDS:
            raise RobustmerError(
                f"model input of shape {tuple(x.shape)}: wrong shape; expected "
                f"[batch, 1, frames >= {MIN_FRAMES}, {N_BANDS}]"
            )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features.

        Parameters
        ----------
        x : torch.Tensor, shape [B, 1, F, 149]

        Returns
        -------
        torch.Tensor, shape [B, 256 * width]
            Global average of the ``conv11`` block's output.
        """
        self.check_input(x)
        h = x  # [B, 1, F, 149]
        for name, pool_after in self._blocks:
            h = getattr(self, f"conv{name}")(h)
            h = torch.relu(getattr(self, f"bn{name}")(h))  # [B, C, F', 149']
            if pool_after:
                h = getattr(self, f"drop{name}")(getattr(self, f"pool{name}")(h))
        return self.global_pool(h).flatten(1)  # [B, C11]

    def forward(self, x: torch.Tensor) -> MEROutput:
        """Predict emotions (and the bottleneck) for a batch of excerpts.

        Parameters
        ----------
        x : torch.Tensor, shape [B, 1, F, 149]

        Returns
        -------
        MEROutput
            ``emotions [B, 8]``; ``midlevel [B, 7]`` for bottleneck models, else ``None``.
        """
        h = self.features(x)  # [B, C11]
        if self.has_bottleneck:
            mid = self.fc1(h)  # [B, 7]
            return MEROutput(self.fc2(mid), mid)  # [B, 8], [B, 7]
        return MEROutput(self.fc(h), None)  # [B, 8]


def build_model(name: str, *, width: float = 1.0) -> MERModel:
    """Build a freshly initialised model.

    Parameters
    ----------
    name : str
        ``"a2e"``, ``"a2b2e"`` or ``"a2m2e"`` (case-insensitive).
    width : float
        Channel multiplier (1.0 = the paper's 3.9 M-parameter model).

    Returns
    -------
    MERModel
        In training mode, on the CPU, initialised from torch's global RNG (seed it first).
    """
    return MERModel(ModelConfig(arch=str(name).lower(), width=width))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (A2E 3,937,864; A2B2E/A2M2E 3,937,671 at width 1)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def load_state_dict_by_position(
    model: MERModel, state_dict: OrderedDict[str, torch.Tensor] | dict[str, torch.Tensor]
) -> None:
    """Load a foreign state dict of the same architecture, matching entries by position.

    Parameters
    ----------
    model : MERModel
        Target model; its state dict order is conv1, bn1, ..., conv11, bn11, heads.
    state_dict : mapping of str to torch.Tensor
        Entries in the same order (e.g. the published models of Chowdhury et al.), with
        whatever names; BatchNorm's ``num_batches_tracked`` entries may be absent.

    Raises
    ------
    RobustmerError
        If the numbers of entries or any shapes differ.
    """
    ours = [(k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    theirs = [(k, v) for k, v in state_dict.items() if not k.endswith("num_batches_tracked")]
    if len(ours) != len(theirs):
        raise RobustmerError(
            f"state dict with {len(theirs)} tensors: does not fit {model.config.arch} "
            f"(width {model.config.width}); expected {len(ours)} tensors in table order"
        )
    mapped: dict[str, torch.Tensor] = {}
    for (k_ours, v_ours), (k_theirs, v_theirs) in zip(ours, theirs, strict=True):
        if tuple(v_ours.shape) != tuple(v_theirs.shape):
            raise RobustmerError(
                f"state dict entry {k_theirs!r} of shape {tuple(v_theirs.shape)}: does not fit "
                f"{k_ours!r}; expected shape {tuple(v_ours.shape)}"
            )
        mapped[k_ours] = v_theirs
    missing, _ = model.load_state_dict(mapped, strict=False)
    assert all(k.endswith("num_batches_tracked") for k in missing), missing
