"""Where an attack perturbs its input: the normalised spectrogram or the waveform.

Every attack works on whatever input its model takes; a :class:`Domain` says what that
input is and what the perturbation must respect:

``spectrogram`` (default)
    ``x [B, 1, frames, bands]``, normalised log spectrograms (the paper's threat model);
    only the attack's own budget applies; the SNR is that of the linear filterbank
    magnitudes (:func:`robustmer.attacks.result.snr_db`).
``waveform``
    ``x [B, T]``, audio in [-1, 1] fed to a :class:`robustmer.models.WaveformModel`; after
    every step of the attack (and after its own amplitude budget ``epsilon``, if any) the
    perturbation is projected onto the SNR budget ``snr_db`` and the waveform clipped to
    [-1, 1] (:func:`robustmer.attacks.projection.project_waveform`); the adversarial
    waveform is ``clamp(x + δ, -1, 1)``; the SNR is the waveform's
    (:func:`robustmer.attacks.projection.waveform_snr_db`).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar

import torch

from robustmer.attacks.projection import adversarial_wave, project_waveform, waveform_snr_db
from robustmer.attacks.result import MagnitudeScale, snr_db
from robustmer.errors import RobustmerError

__all__ = ["DOMAINS", "Domain", "SpectrogramDomain", "WaveformDomain", "make_domain"]


@dataclasses.dataclass(frozen=True)
class Domain(abc.ABC):
    """Base class of the attack domains (see the module docstring)."""

    name: ClassVar[str] = "domain"

    @classmethod
    @abc.abstractmethod
    def build(cls, snr_db: float | None) -> Domain:
        """The domain with an SNR budget ``snr_db`` [dB] (None: none)."""

    @abc.abstractmethod
    def check(self, x: torch.Tensor) -> None:
        """Raise :class:`RobustmerError` unless ``x`` is an input of this domain."""

    def constrain(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """The domain's budget applied to ``δ`` (after the attack's own projection)."""
        return delta

    def adversarial(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """The adversarial input for ``x`` and ``δ``."""
        return x + delta

    def applied(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """The perturbation :meth:`adversarial` actually applies (for its norms)."""
        return delta

    @abc.abstractmethod
    def snr_db(
        self, x: torch.Tensor, x_adv: torch.Tensor, normalization: MagnitudeScale | None
    ) -> torch.Tensor:
        """Per-clip SNR [dB] of ``x_adv`` against ``x``, float64 ``[B]`` on the CPU."""


@dataclasses.dataclass(frozen=True)
class SpectrogramDomain(Domain):
    """Normalised log spectrograms ``[B, 1, frames, bands]``."""

    name: ClassVar[str] = "spectrogram"

    @classmethod
    def build(cls, snr_db: float | None) -> Domain:
        if snr_db is not None:
            raise RobustmerError(
                f"attack snr_db {snr_db!r}: an SNR budget needs the waveform domain; expected "
                "domain 'waveform' or no snr_db"
            )
        return cls()

    def check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 1:
            raise RobustmerError(
                f"attack input x: shape {tuple(x.shape)}; expected [B, 1, frames, bands]"
            )

    def snr_db(
        self, x: torch.Tensor, x_adv: torch.Tensor, normalization: MagnitudeScale | None
    ) -> torch.Tensor:
        return snr_db(x, x_adv, normalization)


@dataclasses.dataclass(frozen=True)
class WaveformDomain(Domain):
    """Audio ``[B, T]`` in [-1, 1], with an optional SNR budget ``snr_db`` [dB]."""

    name: ClassVar[str] = "waveform"
    snr_budget: float | None = None

    @classmethod
    def build(cls, snr_db: float | None) -> Domain:
        return cls(snr_db)

    def check(self, x: torch.Tensor) -> None:
        if x.ndim != 2:
            raise RobustmerError(
                f"attack input x: shape {tuple(x.shape)}; expected a waveform [B, samples]"
            )
        if x.is_floating_point() and torch.isfinite(x).all() and float(x.abs().max()) > 1.0:
            raise RobustmerError(
                f"attack input x: waveform peak {float(x.abs().max()):.4g}; expected samples "
                "in [-1, 1]"
            )

    def constrain(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return project_waveform(delta, x, snr_db=self.snr_budget)

    def adversarial(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return adversarial_wave(x, delta)

    def applied(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return adversarial_wave(x, delta) - x

    def snr_db(
        self, x: torch.Tensor, x_adv: torch.Tensor, normalization: MagnitudeScale | None
    ) -> torch.Tensor:
        return waveform_snr_db(x, x_adv)


DOMAINS: dict[str, type[Domain]] = {"spectrogram": SpectrogramDomain, "waveform": WaveformDomain}
"""Registry of attack domains by name."""


def make_domain(name: str, snr_db: float | None = None) -> Domain:
    """The :class:`Domain` named ``name`` with an SNR budget (waveform domain only).

    Raises
    ------
    RobustmerError
        For an unknown domain, or an SNR budget outside the waveform domain.
    """
    if name not in DOMAINS:
        raise RobustmerError(
            f"attack domain {name!r}: unknown; expected one of {', '.join(DOMAINS)}"
        )
    return DOMAINS[name].build(snr_db)
