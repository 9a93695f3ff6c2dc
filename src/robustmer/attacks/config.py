"""The settings of an attack: one frozen :class:`AttackConfig` dataclass per attack.

Every attack's settings live in one frozen dataclass, a subclass of :class:`AttackConfig`:
its defaults live there and nowhere else, ``__post_init__`` validates them, and
:meth:`AttackConfig.to_dict` / :meth:`AttackConfig.from_dict` round-trip them through JSON.
The same idea has the same field name in every attack:

============  ==============================================================================
``epsilon``   radius of the threat model's ball (normalised-input units); None = unbounded
``norm``      ``"linf"`` or ``"l2"``
``steps``     gradient steps (iterations) per restart
``step_size`` step size (learning rate for the paper attack's Adam); None = the attack's rule
``restarts``  independent restarts; the worst case per clip is kept
``seed``      seed of every random draw the attack makes
``target``    None (untargeted) or a target the attack moves the prediction towards
============  ==============================================================================

:meth:`AttackConfig.key` names the directory an attack's results are stored under, derived
from the full settings, so attacks with different settings never overwrite each other.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from typing import Any, ClassVar, Self

from robustmer.errors import RobustmerError

__all__ = ["AttackConfig", "check_choice", "check_int", "check_positive"]


def _what(config: object, field: str) -> str:
    return f"attack {getattr(config, 'name', type(config).__name__)!r} {field}"


def check_positive(config: object, field: str, value: object, *, optional: bool = False) -> None:
    """Raise :class:`RobustmerError` unless ``value`` is a finite number > 0 (or None)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
        math.isfinite(value) and value > 0
    ):
        expected = "a finite number > 0" + (" or none" if optional else "")
        raise RobustmerError(f"{_what(config, field)} {value!r}: invalid; expected {expected}")


def check_int(config: object, field: str, value: object, *, minimum: int) -> None:
    """Raise :class:`RobustmerError` unless ``value`` is an int ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RobustmerError(
            f"{_what(config, field)} {value!r}: invalid; expected an integer >= {minimum}"
        )


def check_choice(config: object, field: str, value: object, choices: typing.Iterable[str]) -> None:
    """Raise :class:`RobustmerError` unless ``value`` is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise RobustmerError(
            f"{_what(config, field)} {value!r}: unknown; expected one of {', '.join(choices)}"
        )


@dataclasses.dataclass(frozen=True)
class AttackConfig:
    """Base class of the attacks' settings (see the module docstring).

    Subclasses are frozen dataclasses that set :attr:`name` (the attack's registry name)
    and validate their fields in ``__post_init__`` with :func:`check_positive`,
    :func:`check_int` and :func:`check_choice`.
    """

    name: ClassVar[str] = "attack"

    def to_dict(self) -> dict[str, Any]:
        """``{"attack": name, field: value, ...}`` with tuples as lists (JSON-ready)."""
        out: dict[str, Any] = {"attack": self.name}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        """Rebuild a config from :meth:`to_dict` (missing fields take their defaults).

        Raises
        ------
        RobustmerError
            For another attack's settings, unknown fields or invalid values.
        """
        if not isinstance(d, dict):
            raise RobustmerError(f"attack {cls.name!r} settings: got {d!r}; expected a mapping")
        d = dict(d)
        name = d.pop("attack", cls.name)
        if name != cls.name:
            raise RobustmerError(f"attack settings for {name!r}: expected {cls.name!r}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise RobustmerError(
                f"attack {cls.name!r}: unknown setting(s) {', '.join(unknown)}; "
                f"expected some of {', '.join(known)}"
            )
        hints = typing.get_type_hints(cls)
        values = {}
        for key, value in d.items():
            if isinstance(value, list) and "tuple" in str(hints.get(key, "")):
                value = tuple(value)
            values[key] = value
        return cls(**values)

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def key(self) -> str:
        """Storage key ``<name>-<10 hex digits>`` derived from the full settings."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return f"{self.name}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"

    def label(self) -> str:
        """Short human-readable description, e.g. ``pgd norm=linf epsilon=0.1 steps=40``."""
        parts = [f"{k}={v}" for k, v in self.to_dict().items() if k != "attack" and v is not None]
        return " ".join([self.name, *parts])
