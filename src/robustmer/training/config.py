"""Systems, training configuration, profiles and devices (docs/paper.md §1, §6)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from robustmer.attacks.config import AttackConfig
from robustmer.attacks.paper import PaperConfig
from robustmer.errors import RobustmerError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class SystemSpec:
    """One of the study's five systems (docs/paper.md §1 table).

    Attributes
    ----------
    name : str
        ``"A2E"``, ``"A2B2E"``, ``"A2M2E"``, ``"aA2E"`` or ``"aA2B2E"``.
    arch : str
        Model architecture (:data:`robustmer.models.ARCHITECTURES`).
    midlevel_loss : bool
        Whether the bottleneck is supervised with the mid-level targets
        (loss = (1 - w) · MSE(emotions) + w · MSE(mid-level), w = ``midlevel_weight``).
    adversarial : bool
        Whether to train adversarially (every ``adv_every``-th epoch, see :func:`train`).
    """

    name: str
    arch: str
    midlevel_loss: bool
    adversarial: bool

    @property
    def bottleneck(self) -> bool:
        """Whether the architecture has the 7-d bottleneck (A2B2E, A2M2E, aA2B2E)."""
        from robustmer.models.mer import ARCHITECTURES

        return ARCHITECTURES[self.arch].bottleneck

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


SYSTEMS: dict[str, SystemSpec] = {
    "A2E": SystemSpec("A2E", "a2e", midlevel_loss=False, adversarial=False),
    "A2B2E": SystemSpec("A2B2E", "a2b2e", midlevel_loss=False, adversarial=False),
    "A2M2E": SystemSpec("A2M2E", "a2m2e", midlevel_loss=True, adversarial=False),
    "aA2E": SystemSpec("aA2E", "a2e", midlevel_loss=False, adversarial=True),
    "aA2B2E": SystemSpec("aA2B2E", "a2b2e", midlevel_loss=False, adversarial=True),
}
"""The five systems of the study, in the paper's order."""


def get_system(name: str) -> SystemSpec:
    """Look up a system by name; :class:`RobustmerError` listing the valid names otherwise."""
    try:
        return SYSTEMS[name]
    except (KeyError, TypeError):
        raise RobustmerError(
            f"system {name!r}: unknown; expected one of {', '.join(SYSTEMS)}"
        ) from None


def _mid_supervised(system: SystemSpec) -> bool:
    return system.midlevel_loss


def _mid_if_bottleneck(system: SystemSpec) -> bool:
    return system.bottleneck


MONITORS: dict[str, Callable[[SystemSpec], bool]] = {
    "emotions": _mid_supervised,
    "paper": _mid_if_bottleneck,
}
"""Early-stopping rules: whether the mid-level correlation joins the emotion correlation.

- ``"emotions"`` (project default): validation emotion average correlation; for A2M2E, whose
  bottleneck is trained on the mid-level targets, the mean of the emotion and mid-level
  average correlations.
- ``"paper"``: the paper's rule: that mean for every bottleneck model, including A2B2E and
  aA2B2E, whose bottleneck is unsupervised (its correlation with the mid-level targets is
  then largely chance).

(The paper added the two correlations; the mean ranks epochs identically and stays on the
correlation scale.)
"""


@dataclass(frozen=True)
class TrainConfig:
    """Training configuration; the defaults are the paper's (docs/paper.md §6).

    Attributes
    ----------
    system : str
        System name, a key of :data:`SYSTEMS`.
    seed : int
        Training seed (>= 0): model initialisation (``torch.manual_seed(seed)``), and, per
        epoch, shuffling and dropout (seeded from ``(seed, epoch)``).
    lr : float
        Adam learning rate (5e-4).
    batch_size : int
        Clips per training step (8); the last incomplete batch of an epoch is dropped.
    max_epochs : int
        Upper limit on epochs (199).
    patience : int
        Early stopping: stop after this many epochs without a new best monitored
        validation score (50). The best epoch's weights are kept.
    midlevel_weight : float
        w in the A2M2E loss (1 - w) · MSE(emotions) + w · MSE(mid-level) (0.5).
    monitor : str
        Early-stopping rule, a key of :data:`MONITORS` (``"emotions"``, project default, or
        ``"paper"``).
    adv_every : int
        Adversarial systems: epochs whose 1-based number is divisible by this are
        adversarial (5: epochs 5, 10, 15, ...).
    adv_attack : AttackConfig
        The attack of adversarial training, any registered attack's settings
        (:func:`robustmer.attacks.attack_config`); default the paper attack with 50
        iterations and Adam learning rate 0.002 (docs/paper.md §6).
    width : float
        Channel multiplier of the model (1.0 = the paper's model).
    eval_batch_size : int
        Clips per forward pass when predicting validation/test sets (no effect on training).
    device : str
        ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda[:N]"``. Not part of a run's
        identity: a run may be resumed on another device.
    channels_last : bool
        Use the channels-last memory format (a speed option; off by default).
    amp : bool
        Automatic mixed precision (bfloat16 autocast) for training steps (off by default;
        validation, test and attacks stay in float32).
    """

    system: str
    seed: int
    lr: float = 5e-4
    batch_size: int = 8
    max_epochs: int = 199
    patience: int = 50
    midlevel_weight: float = 0.5
    monitor: str = "emotions"
    adv_every: int = 5
    adv_attack: AttackConfig = PaperConfig(steps=50, step_size=0.002)
    width: float = 1.0
    eval_batch_size: int = 32
    device: str = "auto"
    channels_last: bool = False
    amp: bool = False

    def __post_init__(self) -> None:
        get_system(self.system)
        if self.monitor not in MONITORS:
            raise RobustmerError(
                f"monitor {self.monitor!r}: unknown; expected one of {', '.join(MONITORS)}"
            )
        for name in ("seed",):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise RobustmerError(f"{name} {value!r}: invalid; expected an integer >= 0")
        for name in (
            "batch_size",
            "max_epochs",
            "patience",
            "adv_every",
            "eval_batch_size",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RobustmerError(f"{name} {value!r}: invalid; expected an integer >= 1")
        if not isinstance(self.adv_attack, AttackConfig):
            raise RobustmerError(
                f"adv_attack {self.adv_attack!r}: invalid; expected attack settings "
                "(robustmer.attacks.attack_config)"
            )
        if self.adv_attack.max_clips is not None:
            raise RobustmerError(
                f"adv_attack max_clips {self.adv_attack.max_clips!r}: adversarial training "
                "attacks every batch; expected no max_clips"
            )
        for name in ("lr", "width"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise RobustmerError(f"{name} {value!r}: invalid; expected a number > 0")
            object.__setattr__(self, name, float(value))
        if not 0.0 <= float(self.midlevel_weight) <= 1.0:
            raise RobustmerError(
                f"midlevel_weight {self.midlevel_weight!r}: invalid; expected 0 <= w <= 1"
            )
        object.__setattr__(self, "midlevel_weight", float(self.midlevel_weight))

    @property
    def spec(self) -> SystemSpec:
        """The :class:`SystemSpec` of :attr:`system`."""
        return SYSTEMS[self.system]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (``adv_attack`` as ``AttackConfig.to_dict()``)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["adv_attack"] = self.adv_attack.to_dict()
        return d

    def identity(self) -> dict[str, Any]:
        """The fields that define a run (all but ``device``); compared on resume."""
        d = self.to_dict()
        d.pop("device")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`RobustmerError`."""
        from robustmer.attacks import config_from_dict

        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise RobustmerError(
                f"training config: unknown fields {unknown}; expected some of {sorted(known)}"
            )
        d = dict(d)
        if isinstance(d.get("adv_attack"), dict):
            d["adv_attack"] = config_from_dict(d["adv_attack"])
        return cls(**d)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)


PROFILES: dict[str, dict[str, Any]] = {
    "paper": {},
    "quick": {
        "max_epochs": 12,
        "patience": 6,
        "width": 0.25,
        "lr": 1e-3,
        "amp": True,
        "adv_attack": PaperConfig(steps=5, step_size=0.002),
    },
}
"""Named sets of :class:`TrainConfig` overrides. ``paper`` = the paper's settings;
``quick`` = the laptop demo used by ``robustmer study`` on the synthetic data: fewer epochs,
a quarter-width backbone (same sequence of layers, same heads), 5 instead of 50 attack
steps in adversarial epochs, a learning rate of 1e-3 instead of 5e-4 (16 epochs are far
fewer steps than the paper's) and bfloat16 autocast for the training steps (about 1.6x
faster on a CPU with native bf16; validation, test and attacks stay float32); measurements
in docs/quick-profile.md. Optimiser, batch size, losses and the adversarial schedule stay
the paper's."""


def make_config(system: str, seed: int, *, profile: str = "paper", **overrides: Any) -> TrainConfig:
    """Build a :class:`TrainConfig` from a profile plus explicit overrides.

    Parameters
    ----------
    system : str
    seed : int
    profile : str
        Key of :data:`PROFILES`.
    **overrides
        Field values; ``None`` values are ignored (convenient for optional CLI options).
    """
    if profile not in PROFILES:
        raise RobustmerError(f"profile {profile!r}: unknown; expected one of {', '.join(PROFILES)}")
    values: dict[str, Any] = {**PROFILES[profile]}
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(TrainConfig)} - {"system", "seed"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise RobustmerError(
            f"training options {unknown}: unknown; expected some of {sorted(known)}"
        )
    return TrainConfig(system=system, seed=seed, **values)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"`` or ``"cuda[:N]"`` into a :class:`torch.device`.

    ``"auto"`` picks CUDA when available. Requesting CUDA without it raises
    :class:`RobustmerError`.
    """
    import torch

    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise RobustmerError(
                f"device {device!r}: CUDA is not available on this machine; expected "
                "'cpu' or 'auto'"
            )
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise RobustmerError(f"device {device!r}: invalid; expected cuda or cuda:N") from None
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RobustmerError(
                f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s); "
                f"expected an index below that"
            )
        return dev
    raise RobustmerError(f"device {device!r}: unknown; expected auto, cpu, cuda or cuda:N")
