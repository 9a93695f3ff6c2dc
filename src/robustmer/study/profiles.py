"""Study profiles: what one ``robustmer study`` runs (docs/paper.md §1, §6, §7).

``paper`` is the study as published: 360 clips (real data), 313-frame excerpts, the full
backbone, 199 epochs with patience 50, the 5 systems x 10 seeds and the 1000-iteration paper
attack, plus the robustness evaluation (APGD and uniform noise at every ε of
:data:`ROBUSTNESS_EPSILONS`, docs/robustness.md) and a targeted waveform attack at every SNR
of :data:`TARGET_SNRS_DB` (:data:`WAVEFORM_TARGETED`, docs/audio-attacks.md). ``quick`` is
the laptop demo on the built-in synthetic data: it keeps the architecture's sequence of
layers and both heads and the attack's algorithm, but changes the number (600 synthetic
clips, split 480/60/60 by the paper's 80/10/10 rule) and length of clips, the channel
widths, the epoch budget, the learning rate and the attack iterations (the waveform attack
also its clips and SNR grid), and the report lists exactly what it changed (:func:`shrunk`).
How the quick values were chosen: ``docs/quick-profile.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from robustmer.attacks import APGDConfig, AttackConfig, NoiseConfig, PaperConfig, PGDConfig
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
        Synthetic clips to generate when no data is given (the real Set 1 has 360). Any
        number is split by :func:`robustmer.data.paper_split`'s rule (80 % train, then the
        rest halved; the paper's 288/36/36 for 360).
    seconds : float
        Length of each synthetic clip in seconds.
    frames : int
        Excerpt length in frames (313 = 10 s).
    systems : tuple of str
    seeds : tuple of int
    train : dict
        :class:`robustmer.training.TrainConfig` overrides (epochs, patience, width,
        ``adv_attack``, ...).
    attacks : tuple of AttackConfig
        The evaluation attacks; every model is attacked with each of them (default: the
        paper attack with the paper's settings). The report reads the first unless asked
        for another.
    epsilons : tuple of float
        Radii at which every bounded spectrogram-domain attack of ``attacks`` (one with an
        ``epsilon``) is run instead of its own ε, for the robustness curves
        (docs/robustness.md); empty: as given.
    snrs_db : tuple of float
        SNR budgets [dB] at which every targeted waveform-domain attack of ``attacks`` is run
        instead of its own ``snr_db``, for the report's SNR-to-target table
        (:mod:`robustmer.evaluation.snr_target`, docs/audio-attacks.md); empty: as given.
    """

    name: str
    clips: int = 360
    seconds: float = 15.0
    frames: int = 313
    systems: tuple[str, ...] = SYSTEM_NAMES
    seeds: tuple[int, ...] = PAPER_SEEDS
    train: dict[str, Any] = field(default_factory=dict)
    attacks: tuple[AttackConfig, ...] = (PaperConfig(),)
    epsilons: tuple[float, ...] = ()
    snrs_db: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not self.attacks or not all(isinstance(a, AttackConfig) for a in self.attacks):
            raise RobustmerError(
                f"study profile {self.name!r} attacks {self.attacks!r}: expected one or more "
                "attack settings (robustmer.attacks.attack_config)"
            )
        object.__setattr__(self, "attacks", tuple(self.attacks))
        eps = tuple(self.epsilons)
        if any(isinstance(e, bool) or not isinstance(e, int | float) or not e > 0 for e in eps):
            raise RobustmerError(
                f"study profile {self.name!r} epsilons {self.epsilons!r}: expected numbers > 0"
            )
        object.__setattr__(self, "epsilons", tuple(float(e) for e in eps))
        snrs = tuple(self.snrs_db)
        if any(isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s)
               for s in snrs):
            raise RobustmerError(
                f"study profile {self.name!r} snrs_db {self.snrs_db!r}: expected finite dB values"
            )
        object.__setattr__(self, "snrs_db", tuple(float(s) for s in snrs))

    def evaluation_attacks(self) -> tuple[AttackConfig, ...]:
        """The attacks every model gets: :attr:`attacks`, each bounded one at every ε of
        :attr:`epsilons` (:func:`robustmer.evaluation.curves.at_epsilons`), each targeted
        waveform attack at every SNR of :attr:`snrs_db`
        (:func:`robustmer.evaluation.snr_target.at_snrs`)."""
        from robustmer.evaluation.curves import at_epsilons
        from robustmer.evaluation.snr_target import at_snrs

        return at_snrs(at_epsilons(self.attacks, self.epsilons), self.snrs_db)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (attack settings as ``AttackConfig.to_dict()``)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["train"] = {
            k: v.to_dict() if isinstance(v, AttackConfig) else v for k, v in self.train.items()
        }
        d["attacks"] = [a.to_dict() for a in self.attacks]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudyProfile:
        """Inverse of :meth:`to_dict` (lists back to tuples, attack settings to configs)."""
        from robustmer.attacks import config_from_dict

        d = dict(d)
        d["train"] = {
            k: config_from_dict(v) if isinstance(v, dict) and "attack" in v else v
            for k, v in d.get("train", {}).items()
        }
        d["attacks"] = tuple(config_from_dict(a) for a in d.get("attacks", ()))
        for key, value in d.items():
            if isinstance(value, list):
                d[key] = tuple(value)
        return cls(**d)

    def with_overrides(
        self,
        *,
        systems: tuple[str, ...] | None = None,
        seeds: tuple[int, ...] | None = None,
        epsilons: tuple[float, ...] | None = None,
        snrs_db: tuple[float, ...] | None = None,
    ) -> StudyProfile:
        """A copy with other systems, seeds, ε grid and/or SNR grid."""
        return replace(
            self,
            systems=tuple(systems) if systems else self.systems,
            seeds=tuple(seeds) if seeds else self.seeds,
            epsilons=tuple(epsilons) if epsilons else self.epsilons,
            snrs_db=tuple(snrs_db) if snrs_db else self.snrs_db,
        )


ROBUSTNESS_EPSILONS: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3)
"""The ε grid of the robustness curves (L∞, normalised-input units; docs/robustness.md)."""

TARGET_SNRS_DB: tuple[float, ...] = (50.0, 40.0, 30.0, 20.0)
"""The SNR grid [dB] of the targeted waveform attack (the report's SNR needed to reach the
target; docs/audio-attacks.md)."""

WAVEFORM_TARGETED = PGDConfig(
    epsilon=0.05, steps=100, domain="waveform", snr_db=30.0, target="sad"
)
"""The study's targeted waveform attack: PGD towards the ``sad`` profile on the audio, run at
every SNR of the profile's ``snrs_db`` (its amplitude bound ε = 0.05 only binds below about
20 dB for a clip of RMS 0.2); its audio at the lowest SNR goes to the report's listening
section."""

PAPER = StudyProfile(
    name="paper",
    attacks=(PaperConfig(), APGDConfig(epsilon=0.1), NoiseConfig(epsilon=0.1), WAVEFORM_TARGETED),
    epsilons=ROBUSTNESS_EPSILONS,
    snrs_db=TARGET_SNRS_DB,
)

QUICK = StudyProfile(
    name="quick",
    clips=600,
    seconds=6.0,
    frames=32,
    seeds=PAPER_SEEDS[:3],
    train=dict(TRAIN_PROFILES["quick"]),
    # APGD: 10 steps at 3 radii cost about 30 paper-attack iterations per clip; the waveform
    # attack: 10 steps on 2 clips at 3 SNRs, about 1 CPU second per model (docs/audio-attacks.md)
    attacks=(
        PaperConfig(steps=50),
        APGDConfig(epsilon=0.1, steps=10),
        NoiseConfig(epsilon=0.1),
        WAVEFORM_TARGETED.replace(steps=10, max_clips=2),
    ),
    epsilons=ROBUSTNESS_EPSILONS[:3],
    snrs_db=TARGET_SNRS_DB[1:],
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


def _changed(prefix: str, paper: Any, used: Any) -> dict[str, dict[str, Any]]:
    """``{prefix: {"paper", "used"}}``, per field for two settings of the same attack."""
    if isinstance(paper, AttackConfig) and isinstance(used, AttackConfig):
        if paper.name == used.name:
            a, b = paper.to_dict(), used.to_dict()
            keys = dict.fromkeys([*a, *b])  # a setting at its default is absent from to_dict
            return {
                f"{prefix}.{k}": {"paper": a.get(k), "used": b.get(k)}
                for k in keys
                if a.get(k) != b.get(k)
            }
        return {prefix: {"paper": paper.label(), "used": used.label()}}
    return {} if paper == used else {prefix: {"paper": paper, "used": used}}


def shrunk(profile: StudyProfile) -> dict[str, dict[str, Any]]:
    """What ``profile`` changes relative to the paper: ``{setting: {"paper", "used"}}``.

    Training settings are named ``train.<field>`` (``train.adv_attack.<field>`` inside the
    adversarial-training attack); evaluation attacks that the paper also ran (same attack
    name) ``attack.<name>.<field>``. Attacks the paper did not run are additions, not
    changes, and are not listed.
    """
    from robustmer.training import TrainConfig

    paper_train = TrainConfig(system="A2E", seed=0)
    out: dict[str, dict[str, Any]] = {}
    for key in ("clips", "seconds", "frames"):
        if getattr(profile, key) != getattr(PAPER, key):
            out[key] = {"paper": getattr(PAPER, key), "used": getattr(profile, key)}
    if profile.epsilons != PAPER.epsilons:
        out["epsilons"] = {"paper": list(PAPER.epsilons), "used": list(profile.epsilons)}
    if profile.snrs_db != PAPER.snrs_db:
        out["snrs_db"] = {"paper": list(PAPER.snrs_db), "used": list(profile.snrs_db)}
    if len(profile.seeds) != len(PAPER.seeds):
        out["seeds"] = {"paper": len(PAPER.seeds), "used": len(profile.seeds)}
    for key, value in profile.train.items():
        out.update(_changed(f"train.{key}", getattr(paper_train, key), value))
    paper_attacks = {a.name: a for a in PAPER.attacks}
    for config in profile.attacks:
        if config.name in paper_attacks:
            out.update(_changed(f"attack.{config.name}", paper_attacks[config.name], config))
    return out
