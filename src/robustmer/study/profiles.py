"""Study profiles: what one ``robustmer study`` runs (DESIGN.md §1, §6, §7).

``paper`` is the study as published: 360 clips (real data), 313-frame excerpts, the full
backbone, 199 epochs with patience 50, the 5 systems x 10 seeds and the 1000-iteration paper
attack. ``quick`` is the laptop demo on the built-in synthetic data: it keeps the
architecture's sequence of layers and both heads and the attack's algorithm, but shrinks the
number and length of clips, the channel widths, the epoch budget and the attack iterations,
and the report lists exactly what it shrank (:func:`shrunk`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from robustmer.errors import RobustmerError
from robustmer.names import PAPER_SEEDS, SYSTEM_NAMES
from robustmer.training.config import PROFILES as TRAIN_PROFILES


@dataclass(frozen=True)
class StudyProfile:
    """Everything a study shrinks or keeps.

    Attributes
    ----------
    name : str
    clips : int
        Synthetic clips to generate when no data is given (the real Set 1 has 360).
    seconds : float
        Length of each synthetic clip in seconds.
    frames : int
        Excerpt length in frames (313 = 10 s).
    systems : tuple of str
    seeds : tuple of int
    train : dict
        :class:`robustmer.training.TrainConfig` overrides (epochs, patience, width, ...).
    attack : dict
        Paper-attack settings for the evaluation (``max_iters``, ``lr``, ``mode``,
        ``epsilon``).
    """

    name: str
    clips: int = 360
    seconds: float = 15.0
    frames: int = 313
    systems: tuple[str, ...] = SYSTEM_NAMES
    seeds: tuple[int, ...] = PAPER_SEEDS
    train: dict[str, Any] = field(default_factory=dict)
    attack: dict[str, Any] = field(
        default_factory=lambda: {"max_iters": 1000, "lr": 0.002, "mode": "reference"}
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    def with_overrides(
        self, *, systems: tuple[str, ...] | None = None, seeds: tuple[int, ...] | None = None
    ) -> StudyProfile:
        """A copy with other systems and/or seeds."""
        return replace(
            self,
            systems=tuple(systems) if systems else self.systems,
            seeds=tuple(seeds) if seeds else self.seeds,
        )


PAPER = StudyProfile(name="paper")

QUICK = StudyProfile(
    name="quick",
    clips=360,
    seconds=6.0,
    frames=32,
    seeds=PAPER_SEEDS[:3],
    train=dict(TRAIN_PROFILES["quick"]),
    attack={"max_iters": 50, "lr": 0.002, "mode": "reference"},
)

STUDY_PROFILES: dict[str, StudyProfile] = {"paper": PAPER, "quick": QUICK}
"""Named profiles of ``robustmer study --profile``."""


def get_profile(name: str) -> StudyProfile:
    """Look a profile up by name."""
    try:
        return STUDY_PROFILES[name]
    except KeyError:
        raise RobustmerError(
            f"study profile {name!r}: unknown; expected one of {', '.join(STUDY_PROFILES)}"
        ) from None


def shrunk(profile: StudyProfile) -> dict[str, dict[str, Any]]:
    """What ``profile`` changes relative to the paper: ``{setting: {"paper", "used"}}``."""
    from robustmer.training import TrainConfig

    paper_train = TrainConfig(system="A2E", seed=0)
    out: dict[str, dict[str, Any]] = {}
    for key in ("clips", "seconds", "frames"):
        if getattr(profile, key) != getattr(PAPER, key):
            out[key] = {"paper": getattr(PAPER, key), "used": getattr(profile, key)}
    if len(profile.seeds) != len(PAPER.seeds):
        out["seeds"] = {"paper": len(PAPER.seeds), "used": len(profile.seeds)}
    for key, value in profile.train.items():
        paper_value = getattr(paper_train, key)
        if value != paper_value:
            out[f"train.{key}"] = {"paper": paper_value, "used": value}
    for key, value in profile.attack.items():
        if PAPER.attack.get(key) != value:
            out[f"attack.{key}"] = {"paper": PAPER.attack.get(key), "used": value}
    return out
