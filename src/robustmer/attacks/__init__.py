"""Adversarial attacks on MER models (DESIGN.md §7).

- :func:`paper_attack` / :class:`PaperAttack`: the untargeted attack of Hoedt, Flexer &
  Widmer (SMC 2025), in ``reference`` mode (the paper's code, quirks included) or the
  project's ``bounded`` mode (L∞ ball of radius ε);
- :func:`pgd` / :class:`PGD`: projected gradient ascent on the emotion MSE, L∞ or L2
  (Madry et al., 2018), for comparison.

Every attack takes any ``torch.nn.Module`` whose output is a ``MEROutput``-like object
(``.emotions``, ``.midlevel``) or a plain ``[B, 8]`` tensor, and returns an
:class:`AttackResult` with per-clip fields. :data:`ATTACKS` maps attack names to factories
``(model, **settings) -> Attack``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from torch import nn

from robustmer.attacks.base import Attack, ProgressCallback, model_outputs
from robustmer.attacks.paper import (
    MODES,
    PRECISIONS,
    PaperAttack,
    adam_step,
    paper_attack,
    update_threshold,
)
from robustmer.attacks.pgd import NORMS, PGD, pgd
from robustmer.attacks.result import AttackResult, clip_pearson, perturbation_norms, snr_db

AttackFactory = Callable[..., Attack]
"""``factory(model, **settings) -> Attack``."""

ATTACKS: dict[str, AttackFactory] = {
    "paper": PaperAttack,
    "pgd-linf": functools.partial(PGD, norm="linf"),
    "pgd-l2": functools.partial(PGD, norm="l2"),
}
"""Registry of attacks by name: ``ATTACKS[name](model, **settings)`` builds an attack."""


def build_attack(name: str, model: nn.Module, **settings: object) -> Attack:
    """Build the attack ``name`` from :data:`ATTACKS` (RobustmerError for unknown names)."""
    from robustmer.errors import RobustmerError

    try:
        factory = ATTACKS[name]
    except KeyError:
        raise RobustmerError(f"attack {name!r}: unknown; expected one of {list(ATTACKS)}") from None
    return factory(model, **settings)


__all__ = [
    "ATTACKS",
    "MODES",
    "NORMS",
    "PGD",
    "PRECISIONS",
    "Attack",
    "AttackFactory",
    "AttackResult",
    "PaperAttack",
    "ProgressCallback",
    "adam_step",
    "build_attack",
    "clip_pearson",
    "model_outputs",
    "paper_attack",
    "perturbation_norms",
    "pgd",
    "snr_db",
    "update_threshold",
]
