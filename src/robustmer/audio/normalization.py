"""Global standardisation of log spectrograms and its inverse (docs/paper.md §3 and §7).

The models see ``(S - mean) / std`` with one global mean and standard deviation over all
bins of the log spectrograms ``S = log10(1 + X)`` (madmom's front end; Böck et al., 2016).
:meth:`Normalization.to_magnitude` undoes both steps and returns the linear magnitudes ``X``
used for the SNR of an adversarial example (docs/paper.md §7).

Works on NumPy arrays, Python floats and torch tensors alike, without importing torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any, TypeVar

import numpy as np

from robustmer.errors import RobustmerError

__all__ = ["Normalization"]

ArrayT = TypeVar("ArrayT")


def _is_numpy_like(x: Any) -> bool:
    return isinstance(x, np.ndarray | np.generic | float | int)


@dataclasses.dataclass(frozen=True)
class Normalization:
    """One global mean and standard deviation of log spectrograms (docs/paper.md §3).

    Attributes
    ----------
    mean : float
        Mean of all log-spectrogram values.
    std : float
        Standard deviation of all log-spectrogram values, > 0.
    """

    mean: float
    std: float

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise RobustmerError(f"Normalization.{name}: got {value!r}; expected a number")
            if not math.isfinite(value):
                raise RobustmerError(f"Normalization.{name}: got {value!r}; expected finite")
            object.__setattr__(self, name, float(value))
        if self.std <= 0:
            raise RobustmerError(f"Normalization.std: got {self.std!r}; expected > 0")

    def normalize(self, x: ArrayT) -> ArrayT:
        """``(x - mean) / std``; same type, shape and dtype as ``x``."""
        return (x - self.mean) / self.std  # type: ignore[operator]

    def denormalize(self, x: ArrayT) -> ArrayT:
        """``x * std + mean``, the inverse of :meth:`normalize`."""
        return x * self.std + self.mean  # type: ignore[operator]

    def to_magnitude(self, x: ArrayT) -> ArrayT:
        """Linear filterbank magnitudes ``10 ** denormalize(x) - 1`` (inverse of log10(1 + X)).

        Computed as ``expm1(ln(10) * denormalize(x))`` for accuracy near zero.

        Parameters
        ----------
        x : np.ndarray or torch.Tensor or float
            Normalised log spectrogram, any shape (e.g. ``[B, 1, frames, 149]``).

        Returns
        -------
        np.ndarray or torch.Tensor or float
            Magnitudes, same type and shape; differentiable for tensors.
        """
        log_spec = self.denormalize(x)
        if _is_numpy_like(log_spec):
            return np.expm1(math.log(10.0) * log_spec)  # type: ignore[operator,return-value]
        return (log_spec * math.log(10.0)).expm1()  # type: ignore[attr-defined,operator]

    def to_dict(self) -> dict[str, float]:
        """``{"mean": ..., "std": ...}`` for manifests."""
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalization:
        """Inverse of :meth:`to_dict`; raises :class:`RobustmerError` on missing/unknown keys."""
        if not isinstance(d, dict) or set(d) != {"mean", "std"}:
            got = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise RobustmerError(
                f"normalization: got {got}; expected exactly the keys ['mean', 'std']"
            )
        return cls(mean=d["mean"], std=d["std"])

    @classmethod
    def from_spectrograms(cls, spectrograms: Iterable[np.ndarray]) -> Normalization:
        """Global mean and (population, ddof=0) standard deviation over all values.

        Accumulated in float64, one spectrogram at a time (streaming), over spectrograms of
        any (possibly different) shapes, e.g. the full ``[frames, 149]`` log spectrograms of
        the training clips.

        Raises
        ------
        RobustmerError
            If there are no values or all values are equal.
        """
        count, mean, m2 = 0, 0.0, 0.0  # running count, mean and sum of squared deviations
        for spec in spectrograms:
            values = np.asarray(spec, dtype=np.float64).ravel()  # [n]
            if values.size == 0:
                continue
            n_b = values.size
            mean_b = float(values.mean())
            m2_b = float(np.sum((values - mean_b) ** 2))
            total = count + n_b
            delta = mean_b - mean
            # Chan et al. (1979) pairwise update: streaming and numerically stable
            mean += delta * n_b / total
            m2 += m2_b + delta * delta * count * n_b / total
            count = total
        if count == 0:
            raise RobustmerError("normalization: no spectrogram values; expected at least one")
        std = math.sqrt(m2 / count)
        if std == 0:
            raise RobustmerError("normalization: all spectrogram values are equal; expected > 0")
        return cls(mean=mean, std=std)
