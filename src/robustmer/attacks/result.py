"""What an attack returns: one :class:`AttackResult` per batch, with per-clip fields.

Also the helpers every attack shares to fill it: the Pearson correlation of one clip's
predicted and true emotions, the per-clip perturbation norms and the SNR of docs/paper.md §7.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import torch

__all__ = [
    "AttackResult",
    "MagnitudeScale",
    "clip_pearson",
    "mse_per_clip",
    "perturbation_norms",
    "snr_db",
]


class MagnitudeScale(Protocol):
    """Anything with ``to_magnitude(x)`` (e.g. :class:`robustmer.audio.Normalization`).

    ``to_magnitude`` maps the normalised log spectrogram a model sees back to linear
    filterbank magnitudes ``X`` (undoing the normalisation and ``log10(1 + X)``).
    """

    def to_magnitude(self, x: Any) -> Any: ...


@dataclasses.dataclass
class AttackResult:
    """Outcome of an attack on a batch of B clips (all tensors on the CPU, detached).

    Attributes
    ----------
    x_adv : torch.Tensor, float32, shape [B, 1, F, T]
        The adversarial examples the attack returns (paper attack: ``x + best δ``).
    pred_clean : torch.Tensor, float32, shape [B, 8]
        Model prediction for the clean input ``f(x)`` (training scale, ratings / 10).
    pred : torch.Tensor, float32, shape [B, 8]
        The adversarial prediction the paper logs and uses for ΔMAE. Paper attack in
        ``reference`` mode: the prediction of the *last* iteration's forward pass (quirk (b)
        of docs/paper.md §7); otherwise equal to ``pred_of_x_adv``.
    pred_of_x_adv : torch.Tensor, float32, shape [B, 8]
        ``f(x_adv)``, the prediction for the returned example.
    iterations : torch.Tensor, int64, shape [B]
        Paper attack: forward passes of the attack loop for this clip (the iteration at
        which it converged, else ``max_iters``). PGD: gradient steps (``iters · restarts``).
    converged : torch.Tensor, bool, shape [B]
        Whether the clip reached the final correlation threshold (always False for PGD).
    threshold : torch.Tensor, float64, shape [B]
        Final correlation threshold τ of the paper attack (NaN for PGD, or if the
        correlation was never defined).
    l2, linf : torch.Tensor, float32, shape [B]
        ``‖δ‖₂`` and ``‖δ‖∞`` of the returned perturbation (normalised-input units).
    snr_db : torch.Tensor, float64, shape [B]
        SNR of the returned example in dB (:func:`snr_db`); NaN without a normalisation.
    midlevel_clean, midlevel_adv : torch.Tensor, float32, shape [B, 7], or None
        Bottleneck outputs for the clean input and for the adversarial prediction
        (``midlevel_adv`` belongs to the same forward pass as ``pred``); None for models
        without a bottleneck.
    model_passes : int
        Forward passes counted per clip (one clip through the model once = 1), including
        the clean and the final pass.
    seconds : float
        Wall-clock time of the attack.
    loss : torch.Tensor, float32, shape [B], or None
        The attack's own objective at the returned example, per clip (e.g. APGD: the MSE or
        the negative correlation it maximised); None for attacks that do not report it.
    """

    x_adv: torch.Tensor
    pred_clean: torch.Tensor
    pred: torch.Tensor
    pred_of_x_adv: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    threshold: torch.Tensor
    l2: torch.Tensor
    linf: torch.Tensor
    snr_db: torch.Tensor
    midlevel_clean: torch.Tensor | None
    midlevel_adv: torch.Tensor | None
    model_passes: int
    seconds: float
    loss: torch.Tensor | None = None

    def __post_init__(self) -> None:
        b = self.x_adv.shape[0]
        for name in ("pred_clean", "pred", "pred_of_x_adv"):
            assert getattr(self, name).shape[0] == b, name
        for name in ("iterations", "converged", "threshold", "l2", "linf", "snr_db"):
            assert getattr(self, name).shape == (b,), name
        assert self.iterations.dtype == torch.int64
        assert self.converged.dtype == torch.bool
        assert self.threshold.dtype == torch.float64
        assert self.loss is None or self.loss.shape == (b,), "loss"

    def __len__(self) -> int:
        return int(self.x_adv.shape[0])


def mse_per_clip(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-clip mean squared error over the emotions: ``p, y [B, K] -> [B]``."""
    return (p - y).pow(2).mean(dim=1)


def clip_pearson(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each clip's prediction with its true ratings, across emotions.

    Computed in float64 from the (float32) predictions as the cosine of the centred
    vectors and clipped to [-1, 1] as ``scipy.stats.pearsonr`` does (the reference code
    used SciPy), so that the threshold tests of the paper attack see a correlation of at
    least -1.

    Parameters
    ----------
    p, y : torch.Tensor, shape [B, K]
        Predicted and true ratings of B clips over K ≥ 2 emotions.

    Returns
    -------
    torch.Tensor, float64, shape [B]
        NaN for a clip whose prediction or ratings are constant.
    """
    assert p.shape == y.shape and p.ndim == 2 and p.shape[1] >= 2, (p.shape, y.shape)
    pc = p.detach().to(torch.float64)  # [B, K]
    yc = y.detach().to(torch.float64)  # [B, K]
    pc = pc - pc.mean(dim=1, keepdim=True)  # [B, K]
    yc = yc - yc.mean(dim=1, keepdim=True)  # [B, K]
    norms = torch.linalg.vector_norm(pc, dim=1) * torch.linalg.vector_norm(yc, dim=1)  # [B]
    r = (pc * yc).sum(dim=1) / norms  # [B]; 0 / 0 = NaN for a constant row
    return r.clamp(-1.0, 1.0)  # clamp keeps NaN


def perturbation_norms(delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-clip ``‖δ‖₂`` and ``‖δ‖∞`` of a perturbation ``delta [B, ...]`` (float32, [B])."""
    flat = delta.detach().reshape(delta.shape[0], -1).to(torch.float64)  # [B, D]
    l2 = torch.linalg.vector_norm(flat, ord=2, dim=1)  # [B]
    linf = flat.abs().amax(dim=1) if flat.shape[1] else torch.zeros(flat.shape[0])  # [B]
    return l2.float(), linf.float()


def snr_db(
    x: torch.Tensor, x_adv: torch.Tensor, normalization: MagnitudeScale | None
) -> torch.Tensor:
    """Signal-to-noise ratio of adversarial spectrograms in dB (docs/paper.md §7).

    ``X = normalization.to_magnitude(x)``, ``X' = normalization.to_magnitude(x_adv)``
    (linear filterbank magnitudes); ``SNR = 10 · log10(ΣX² / Σ(X' − X)²)`` per clip,
    sums over all bins and frames, computed in float64.

    Parameters
    ----------
    x, x_adv : torch.Tensor, shape [B, 1, F, T]
        Clean and adversarial normalised log spectrograms.
    normalization : MagnitudeScale or None
        The cache's normalisation; None gives NaN for every clip.

    Returns
    -------
    torch.Tensor, float64, shape [B]
        ``inf`` where ``x_adv == x`` exactly; NaN without a normalisation.
    """
    b = x.shape[0]
    if normalization is None:
        return torch.full((b,), float("nan"), dtype=torch.float64)
    mag = torch.as_tensor(normalization.to_magnitude(x.detach().to(torch.float64)))
    mag_adv = torch.as_tensor(normalization.to_magnitude(x_adv.detach().to(torch.float64)))
    signal = mag.reshape(b, -1).pow(2).sum(dim=1)  # [B]
    noise = (mag_adv - mag).reshape(b, -1).pow(2).sum(dim=1)  # [B]
    with torch.no_grad():
        snr = 10.0 * torch.log10(signal / noise)  # [B]; noise 0 -> +inf
    return snr.cpu()
