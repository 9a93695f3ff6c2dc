"""What an attack optimises: away from the true ratings, towards a target, or a concept shift.

An attack's ``target`` setting (a string, so settings stay JSON and command-line friendly)
selects its :class:`Goal` through :func:`parse_target`:

``None``
    Untargeted (the default): maximise the per-clip emotion MSE to the true ratings.
``"sad"``, ``"happy"``, ...
    A named emotion profile of :data:`EMOTION_PROFILES` (8 ratings on the 1-9 scale):
    minimise the per-clip MSE between the prediction and the profile.
``"2,3,2,1,4,1,8,5"``
    Eight numbers on the 1-9 scale in ``robustmer.names.EMOTIONS`` order, likewise.
``"dissonance=+1.5,melodiousness=-1"``
    A concept shift (bottleneck models): move the named bottleneck outputs by the given
    amounts (rating scale, i.e. 10 × the model's output) from their clean values, minimising
    the MSE over the named outputs; the emotions follow through the model's linear head.
    Names: the mid-level features or ``unit1`` ... ``unit7``.

Every goal returns a per-clip loss that the attack *maximises* (a target's loss is the
negated distance), so one ascent loop serves all goals.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable
from typing import ClassVar

import torch

from robustmer.attacks.result import mse_per_clip
from robustmer.errors import RobustmerError
from robustmer.names import EMOTIONS, MIDLEVEL_FEATURES, RATING_SCALE

__all__ = [
    "EMOTION_PROFILES",
    "ConceptShift",
    "EmotionTarget",
    "Goal",
    "Objective",
    "Untargeted",
    "parse_target",
]

Objective = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]
"""``objective(emotions [B, 8], midlevel [B, 7] | None) -> loss [B]`` to maximise."""

EMOTION_PROFILES: dict[str, tuple[float, ...]] = {
    # valence energy tension anger fear happy  sad tender
    "happy": (8.0, 7.0, 2.5, 1.5, 1.5, 8.0, 1.5, 4.5),
    "sad": (3.0, 2.5, 4.0, 1.5, 3.0, 1.5, 8.0, 4.0),
    "tender": (7.0, 2.5, 2.0, 1.0, 1.5, 4.5, 3.0, 8.0),
    "fear": (2.5, 6.0, 8.0, 3.0, 8.0, 1.0, 3.0, 1.0),
    "anger": (2.5, 8.0, 7.5, 8.0, 4.0, 1.5, 1.5, 1.0),
    "neutral": (5.0, 5.0, 5.0, 3.0, 3.0, 3.0, 3.0, 3.0),
}
"""Named emotion profiles for targeted attacks: 8 ratings on the 1-9 scale
(``valence, energy, tension, anger, fear, happy, sad, tender``). Hand-set stylised profiles
following the dimensional and discrete structure of Eerola & Vuoskoski (2011): the named
emotion high, the others it excludes low, valence/energy/tension placed as in that study's
circumplex (e.g. sad: low valence and energy). They are illustrative targets, not measured
means; see ``docs/audio-attacks.md``."""


class Goal(abc.ABC):
    """Base class: :meth:`bind` turns a batch's clean outputs into its :data:`Objective`."""

    kind: ClassVar[str] = "goal"

    @abc.abstractmethod
    def bind(
        self, pred_clean: torch.Tensor, mid_clean: torch.Tensor | None, y: torch.Tensor
    ) -> Objective:
        """The batch's objective, from its clean prediction ``[B, 8]``, mid-level and labels."""

    @property
    def targeted(self) -> bool:
        """Whether the goal is a target rather than moving away from the labels."""
        return True


@dataclasses.dataclass(frozen=True)
class Untargeted(Goal):
    """Maximise the per-clip emotion MSE to the true ratings ``y``."""

    kind: ClassVar[str] = "untargeted"

    def bind(
        self, pred_clean: torch.Tensor, mid_clean: torch.Tensor | None, y: torch.Tensor
    ) -> Objective:
        return lambda emotions, midlevel: mse_per_clip(emotions, y)

    @property
    def targeted(self) -> bool:
        return False


@dataclasses.dataclass(frozen=True)
class EmotionTarget(Goal):
    """Minimise the per-clip emotion MSE to ``ratings`` (8 values, 1-9 scale)."""

    kind: ClassVar[str] = "emotion"
    ratings: tuple[float, ...]

    def vector(self, like: torch.Tensor) -> torch.Tensor:
        """The target on the training scale (ratings / 10), ``[1, 8]`` like ``like``."""
        t = torch.tensor(self.ratings, dtype=like.dtype, device=like.device) / RATING_SCALE
        return t[None, :]

    def bind(
        self, pred_clean: torch.Tensor, mid_clean: torch.Tensor | None, y: torch.Tensor
    ) -> Objective:
        target = self.vector(pred_clean)  # [1, 8]
        return lambda emotions, midlevel: -mse_per_clip(emotions, target)


@dataclasses.dataclass(frozen=True)
class ConceptShift(Goal):
    """Move bottleneck outputs ``index`` by ``shift`` (rating scale) from their clean values."""

    kind: ClassVar[str] = "concept"
    index: tuple[int, ...]
    shift: tuple[float, ...]

    def bind(
        self, pred_clean: torch.Tensor, mid_clean: torch.Tensor | None, y: torch.Tensor
    ) -> Objective:
        if mid_clean is None:
            raise RobustmerError(
                "attack target: a concept shift needs a model with a bottleneck "
                "(A2B2E or A2M2E); expected an emotion target for this model"
            )
        index = list(self.index)
        shift = torch.tensor(self.shift, dtype=mid_clean.dtype, device=mid_clean.device)
        target = mid_clean[:, index] + shift / RATING_SCALE  # [B, K]

        def objective(emotions: torch.Tensor, midlevel: torch.Tensor | None) -> torch.Tensor:
            assert midlevel is not None
            return -mse_per_clip(midlevel[:, index], target)

        return objective


_UNITS = tuple(f"unit{k}" for k in range(1, len(MIDLEVEL_FEATURES) + 1))


def _concept_index(name: str) -> int:
    for names in (MIDLEVEL_FEATURES, _UNITS):
        if name in names:
            return names.index(name)
    raise RobustmerError(
        f"attack target concept {name!r}: unknown; expected one of "
        f"{', '.join(MIDLEVEL_FEATURES)} or unit1..unit7"
    )


def _parse_concepts(spec: str) -> ConceptShift:
    index, shift = [], []
    for item in spec.split(","):
        name, _, value = item.partition("=")
        try:
            amount = float(value)
        except ValueError:
            amount = math.nan
        if not math.isfinite(amount):
            raise RobustmerError(
                f"attack target {spec!r}: {item.strip()!r} is not concept=amount; expected "
                "e.g. 'dissonance=+1.5'"
            )
        k = _concept_index(name.strip())
        if k in index:
            raise RobustmerError(f"attack target {spec!r}: concept {name.strip()!r} given twice")
        index.append(k)
        shift.append(amount)
    return ConceptShift(tuple(index), tuple(shift))


def _parse_ratings(spec: str) -> EmotionTarget:
    try:
        values = tuple(float(v) for v in spec.split(","))
    except ValueError:
        values = ()
    if len(values) != len(EMOTIONS) or not all(math.isfinite(v) for v in values):
        raise RobustmerError(
            f"attack target {spec!r}: unknown; expected a profile name "
            f"({', '.join(EMOTION_PROFILES)}), {len(EMOTIONS)} comma-separated ratings "
            "(1-9) or concept shifts such as 'dissonance=+1.5'"
        )
    return EmotionTarget(values)


def parse_target(spec: str | None) -> Goal:
    """The :class:`Goal` of a ``target`` setting (see the module docstring).

    Raises
    ------
    RobustmerError
        For an unknown profile or concept, or malformed numbers.
    """
    if spec is None:
        return Untargeted()
    if not isinstance(spec, str) or not spec.strip():
        raise RobustmerError(f"attack target {spec!r}: expected a non-empty string or none")
    text = spec.strip().lower()
    if text in EMOTION_PROFILES:
        return EmotionTarget(EMOTION_PROFILES[text])
    if "=" in text:
        return _parse_concepts(text)
    return _parse_ratings(text)
