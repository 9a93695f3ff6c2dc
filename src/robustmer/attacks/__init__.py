"""Adversarial attacks on MER models (docs/paper.md §7), behind one interface.

Every attack is one module with two classes: a frozen settings dataclass (a subclass of
:class:`AttackConfig`: defaults, validation, JSON round trip, storage key) and the attack (a
subclass of :class:`Attack` naming that dataclass as its ``config_class``). :data:`ATTACKS`
maps the attack's name to its class; adding an attack is one new module plus one line here.

- ``paper`` (:class:`PaperAttack`, :class:`PaperConfig`): the untargeted attack of Hoedt,
  Flexer & Widmer (SMC 2025), in ``reference`` mode (the paper's code, quirks included) or
  the project's ``bounded`` mode (L∞ ball of radius ε);
- ``pgd`` (:class:`PGD`, :class:`PGDConfig`): projected gradient ascent on the emotion MSE,
  L∞ or L2 (Madry et al., 2018);
- ``apgd`` (:class:`APGD`, :class:`APGDConfig`): Auto-PGD (Croce & Hein, 2020) for
  regression, on the emotion MSE or the negative per-clip correlation, L∞ or L2;
- ``noise`` (:class:`Noise`, :class:`NoiseConfig`): the worst of uniform random draws in
  the ε-ball, the baseline of the gradient-masking checks.

Usage::

    config = attack_config("pgd", epsilon=0.1, steps=20)    # or PGDConfig(epsilon=0.1, ...)
    result = build_attack(config, model)(x, y)              # AttackResult, per-clip fields

Every attack takes any ``torch.nn.Module`` whose output is a ``MEROutput``-like object
(``.emotions``, ``.midlevel``) or a plain ``[B, 8]`` tensor.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from robustmer.attacks.apgd import APGD, APGDConfig
from robustmer.attacks.base import Attack, ProgressCallback, model_outputs, zero_gradient
from robustmer.attacks.config import AttackConfig
from robustmer.attacks.noise import Noise, NoiseConfig
from robustmer.attacks.paper import (
    MODES,
    PRECISIONS,
    PaperAttack,
    PaperConfig,
    adam_step,
    update_threshold,
)
from robustmer.attacks.pgd import NORMS, PGD, PGDConfig
from robustmer.attacks.result import (
    AttackResult,
    MagnitudeScale,
    clip_pearson,
    perturbation_norms,
    snr_db,
)
from robustmer.errors import RobustmerError

ATTACKS: dict[str, type[Attack]] = {
    "paper": PaperAttack,
    "pgd": PGD,
    "apgd": APGD,
    "noise": Noise,
}
"""Registry of attacks by name (the name is also ``ATTACKS[name].config_class.name``)."""


def attack_class(name: str) -> type[Attack]:
    """The attack class registered as ``name`` (RobustmerError listing the known names)."""
    try:
        return ATTACKS[name]
    except (KeyError, TypeError):
        raise RobustmerError(
            f"attack {name!r}: unknown; expected one of {', '.join(ATTACKS)}"
        ) from None


def attack_config(name: str, **fields: Any) -> AttackConfig:
    """The settings of attack ``name`` with some fields given (the rest take defaults).

    Raises
    ------
    RobustmerError
        Unknown attack, unknown field or invalid value.
    """
    return attack_class(name).config_class.from_dict({"attack": name, **fields})


def config_from_dict(d: dict[str, Any]) -> AttackConfig:
    """Inverse of :meth:`AttackConfig.to_dict`, dispatching on ``d["attack"]``."""
    if not isinstance(d, dict) or "attack" not in d:
        raise RobustmerError(f"attack settings {d!r}: expected a mapping with an 'attack' name")
    return attack_class(d["attack"]).config_class.from_dict(d)


def build_attack(
    config: AttackConfig, model: nn.Module, *, normalization: MagnitudeScale | None = None
) -> Attack:
    """The attack of ``config`` (looked up in :data:`ATTACKS` by ``config.name``) on ``model``.

    Parameters
    ----------
    config : AttackConfig
    model : torch.nn.Module
    normalization : MagnitudeScale or None
        The cache's normalisation, for the SNR of the results.
    """
    return attack_class(config.name)(model, config, normalization=normalization)


__all__ = [
    "APGD",
    "APGDConfig",
    "Noise",
    "NoiseConfig",
    "ATTACKS",
    "MODES",
    "NORMS",
    "PGD",
    "PRECISIONS",
    "Attack",
    "AttackConfig",
    "AttackResult",
    "PGDConfig",
    "PaperAttack",
    "PaperConfig",
    "ProgressCallback",
    "adam_step",
    "attack_class",
    "attack_config",
    "build_attack",
    "clip_pearson",
    "config_from_dict",
    "model_outputs",
    "perturbation_norms",
    "snr_db",
    "update_threshold",
    "zero_gradient",
]
