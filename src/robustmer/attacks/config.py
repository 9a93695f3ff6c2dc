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

Every attack also has four settings of its base class (keyword-only):

============  ==============================================================================
``domain``    ``"spectrogram"`` (default: the normalised log spectrogram) or ``"waveform"``
              (the audio, through :class:`robustmer.models.WaveformModel`);
              :mod:`robustmer.attacks.domain`
``snr_db``    waveform domain: minimum SNR of the adversarial audio [dB], enforced after
              every step (:mod:`robustmer.attacks.projection`); None = no SNR budget
``target``    None (untargeted), an emotion profile name, 8 ratings or a concept shift
              (:func:`robustmer.attacks.goal.parse_target`)
``max_clips`` attack only the first ``max_clips`` clips of the split, in the cache's order
              (:func:`robustmer.evaluation.attack_run`; a cheap waveform attack for the
              study's listening section); None = every clip
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

__all__ = ["AttackConfig", "check_choice", "check_int", "check_positive", "parse_value"]


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


_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
_NONE = {"none", "null", ""}


def parse_value(config_class: type, field: str, text: str) -> Any:
    """Parse the text ``text`` as the value of ``config_class``'s field ``field``.

    The field's annotation decides: ``int``, ``float``, ``bool`` (true/false, yes/no, 1/0,
    on/off), ``str``; an optional field (``X | None``) also takes ``none``.

    Raises
    ------
    RobustmerError
        For text that is not a value of that type.
    """
    hint = typing.get_type_hints(config_class)[field]
    args = typing.get_args(hint)
    optional = type(None) in args
    kinds = [a for a in args if a is not type(None)] or [hint]
    if optional and text.strip().lower() in _NONE:
        return None
    kind = kinds[0]
    what = f"attack {getattr(config_class, 'name', '?')!r} {field}={text!r}"
    try:
        if kind is bool:
            low = text.strip().lower()
            if low not in _TRUE | _FALSE:
                raise ValueError(text)
            return low in _TRUE
        if kind in (int, float):
            return kind(text)
        return text
    except ValueError:
        expected = kind.__name__ + (" or none" if optional else "")
        raise RobustmerError(f"{what}: not a valid value; expected {expected}") from None


@dataclasses.dataclass(frozen=True)
class AttackConfig:
    """Base class of the attacks' settings (see the module docstring).

    Subclasses are frozen dataclasses that set :attr:`name` (the attack's registry name)
    and validate their fields in ``__post_init__`` with :func:`check_positive`,
    :func:`check_int` and :func:`check_choice`.
    """

    name: ClassVar[str] = "attack"

    domain: str = dataclasses.field(default="spectrogram", kw_only=True)
    snr_db: float | None = dataclasses.field(default=None, kw_only=True)
    target: str | None = dataclasses.field(default=None, kw_only=True)
    max_clips: int | None = dataclasses.field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        """Store integers given for float fields as floats (``1`` and ``1.0`` are one key);
        check ``domain``, ``snr_db``, ``target`` and ``max_clips``.

        Subclasses call ``super().__post_init__()`` before validating.
        """
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kinds = typing.get_args(hints[f.name]) or (hints[f.name],)
            if float in kinds and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
        from robustmer.attacks.domain import make_domain
        from robustmer.attacks.goal import parse_target

        if self.snr_db is not None and (
            isinstance(self.snr_db, bool)
            or not isinstance(self.snr_db, float)
            or not math.isfinite(self.snr_db)
        ):
            raise RobustmerError(
                f"{_what(self, 'snr_db')} {self.snr_db!r}: invalid; expected a finite number "
                "of dB or none"
            )
        make_domain(self.domain, self.snr_db)
        parse_target(self.target)
        if self.max_clips is not None:
            check_int(self, "max_clips", self.max_clips, minimum=1)

    @classmethod
    def parse(cls, settings: typing.Iterable[str]) -> Self:
        """Build a config from ``key=value`` strings (values parsed by :func:`parse_value`).

        Raises
        ------
        RobustmerError
            For text without ``=``, an unknown or repeated key, or an invalid value.
        """
        known = [f.name for f in dataclasses.fields(cls)]
        values: dict[str, Any] = {}
        for item in settings:
            key, sep, text = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise RobustmerError(f"attack setting {item!r}: expected key=value")
            if key not in known:
                fields = ", ".join(
                    f"{f.name} ({f.default!r})" for f in dataclasses.fields(cls)
                )
                raise RobustmerError(
                    f"attack {cls.name!r}: unknown setting {key!r}; expected one of "
                    f"{fields or '(none)'}"
                )
            if key in values:
                raise RobustmerError(f"attack setting {key!r}: given twice; expected it once")
            values[key] = parse_value(cls, key, text.strip())
        return cls._build(values)

    @classmethod
    def describe(cls) -> str:
        """One line per field: ``name: type = default``, e.g. for ``--set help``."""
        hints = typing.get_type_hints(cls)
        lines = [f"settings of attack {cls.name!r} (KEY=VALUE):"]
        for f in dataclasses.fields(cls):
            kind = hints[f.name]
            kind_name = getattr(kind, "__name__", None) or str(kind).replace("typing.", "")
            default = "required" if f.default is dataclasses.MISSING else repr(f.default)
            lines.append(f"  {f.name}: {kind_name} = {default}")
        return "\n".join(lines)

    def max_iterations(self) -> int:
        """Iterations per clip at most (``steps · restarts`` where present; for progress bars)."""
        return int(getattr(self, "steps", 1)) * int(getattr(self, "restarts", 1))

    def to_dict(self) -> dict[str, Any]:
        """``{"attack": name, field: value, ...}`` with tuples as lists (JSON-ready).

        The base class's keyword-only settings (``domain``, ``snr_db``, ``target``,
        ``max_clips``) appear only when they differ from their defaults, so a
        spectrogram-domain, untargeted attack of every clip keeps the settings (and storage
        key) it had before they existed.
        """
        out: dict[str, Any] = {"attack": self.name}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.kw_only and value == f.default:
                continue
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
        return cls._build(values)

    @classmethod
    def _build(cls, values: dict[str, Any]) -> Self:
        try:
            return cls(**values)
        except TypeError as exc:  # a required field without a value
            raise RobustmerError(f"attack {cls.name!r} settings: {exc}") from None

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (validated again)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise RobustmerError(
                f"attack {self.name!r}: unknown setting(s) {', '.join(unknown)}; expected some "
                f"of {', '.join(f.name for f in dataclasses.fields(self))}"
            )
        return dataclasses.replace(self, **changes)

    def key(self) -> str:
        """Storage key ``<name>-<10 hex digits>`` derived from the full settings."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return f"{self.name}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"

    def label(self) -> str:
        """Short human-readable description, e.g. ``pgd norm=linf epsilon=0.1 steps=40``."""
        parts = [f"{k}={v}" for k, v in self.to_dict().items() if k != "attack" and v is not None]
        return " ".join([self.name, *parts])
