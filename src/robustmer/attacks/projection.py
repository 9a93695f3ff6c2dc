"""Budgets of waveform-domain attacks: an SNR ball, an amplitude box and the [-1, 1] range.

A waveform attack perturbs audio ``x [B, T]`` by ``δ``. Its budgets, enforced after every
step by :func:`project_waveform`:

- SNR: ``10 · log10(‖x‖² / ‖δ‖²) ≥ snr_db`` per clip, i.e. ``‖δ‖₂ ≤ ‖x‖₂ · 10^(−snr_db/20)``,
  enforced by rescaling δ onto that L2 ball (:func:`project_snr`; the Euclidean projection);
- amplitude: ``|δ| ≤ epsilon`` per sample (:func:`project_amplitude`);
- range: ``x + δ ∈ [-1, 1]`` (:func:`clip_to_range`), applied last. Clipping moves each
  sample of ``x + δ`` towards ``x`` (``x`` is in range), so it only shrinks ``|δ|``
  elementwise and keeps both budgets.

Norms are computed in float64. A clip of digital silence has ``‖x‖ = 0`` and so an SNR
budget of zero perturbation; nothing divides by zero (no NaN or inf).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "adversarial_wave",
    "clip_to_range",
    "project_amplitude",
    "project_snr",
    "project_waveform",
    "snr_radius",
    "waveform_snr_db",
]


def _energy(t: torch.Tensor) -> torch.Tensor:
    """Per-clip ``Σ t²`` of ``t [B, ...]`` in float64, ``[B]``."""
    return t.detach().reshape(t.shape[0], -1).to(torch.float64).pow(2).sum(dim=1)


def snr_radius(x: torch.Tensor, snr_db: float) -> torch.Tensor:
    """Largest ``‖δ‖₂`` a clip allows at ``snr_db``: ``‖x‖₂ · 10^(−snr_db/20)``, float64 ``[B]``."""
    return _energy(x).sqrt() * 10.0 ** (-snr_db / 20.0)


def project_snr(delta: torch.Tensor, x: torch.Tensor, snr_db: float) -> torch.Tensor:
    """Rescale each clip's ``δ`` onto the ball ``‖δ‖₂ ≤ ‖x‖₂ · 10^(−snr_db/20)``.

    Parameters
    ----------
    delta, x : torch.Tensor, shape [B, ...]
        Perturbation and clean input.
    snr_db : float
        Minimum SNR [dB].

    Returns
    -------
    torch.Tensor
        ``δ`` scaled by ``min(1, radius / ‖δ‖)`` per clip (unchanged inside the ball; zero
        for a silent clip); same dtype and shape.
    """
    radius = snr_radius(x, snr_db)  # [B]
    norm = _energy(delta).sqrt()  # [B]
    scale = torch.where(norm > radius, radius / torch.where(norm > 0, norm, 1.0), 1.0)  # [B]
    shape = (-1,) + (1,) * (delta.ndim - 1)
    return delta * scale.reshape(shape).to(delta.dtype)


def _float_floor(value: float, dtype: torch.dtype) -> float:
    """The largest ``dtype`` number ``<= value`` (``0.2`` rounds up in float32)."""
    t = torch.tensor(value, dtype=dtype)
    if float(t) > value:
        t = torch.nextafter(t, torch.tensor(-math.inf, dtype=dtype))
    return float(t)


def project_amplitude(delta: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``clamp(δ, -ε, ε)``: the L∞ amplitude budget (``|δ| ≤ ε`` exactly in δ's dtype)."""
    bound = _float_floor(epsilon, delta.dtype)
    return delta.clamp(-bound, bound)


def clip_to_range(delta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``clamp(x + δ, -1, 1) − x``: keep the adversarial waveform in full scale.

    In floating point ``x + result`` may exceed 1 by one rounding step; the adversarial
    waveform itself is therefore formed as ``clamp(x + δ, -1, 1)`` (:func:`adversarial_wave`).
    """
    return (x + delta).clamp(-1.0, 1.0) - x


def project_waveform(
    delta: torch.Tensor,
    x: torch.Tensor,
    *,
    snr_db: float | None = None,
    epsilon: float | None = None,
) -> torch.Tensor:
    """All waveform budgets in order: amplitude, SNR, then the [-1, 1] range.

    Parameters
    ----------
    delta, x : torch.Tensor, shape [B, T]
    snr_db : float or None
        Minimum SNR [dB]; None: no SNR budget.
    epsilon : float or None
        Largest ``|δ|`` per sample; None: no amplitude budget.

    Returns
    -------
    torch.Tensor
        The projected ``δ``; ``x + δ`` lies in ``[-1, 1]`` (up to float rounding of the sum)
        and within both budgets.
    """
    if epsilon is not None:
        delta = project_amplitude(delta, epsilon)
    if snr_db is not None:
        delta = project_snr(delta, x, snr_db)
    return clip_to_range(delta, x)


def adversarial_wave(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """The adversarial waveform ``clamp(x + δ, -1, 1)``: never beyond full scale."""
    return (x + delta).clamp(-1.0, 1.0)


def waveform_snr_db(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    """``10 · log10(‖x‖² / ‖x_adv − x‖²)`` per clip in dB, float64 ``[B]`` on the CPU.

    ``inf`` where ``x_adv == x``; ``-inf`` for a perturbed silent clip; NaN only for an
    unperturbed silent clip (0 / 0).
    """
    signal = _energy(x)  # [B]
    noise = _energy(x_adv.detach().to(x.device) - x.detach())  # [B]
    with torch.no_grad():
        snr = 10.0 * (torch.log10(signal) - torch.log10(noise))  # [B]
    both_zero = (signal == 0) & (noise == 0)
    return torch.where(both_zero, math.nan, snr).cpu()
