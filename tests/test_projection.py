"""Known answers for the waveform budgets of :mod:`robustmer.attacks.projection`."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robustmer.attacks.projection import (
    adversarial_wave,
    clip_to_range,
    project_amplitude,
    project_snr,
    project_waveform,
    snr_radius,
    waveform_snr_db,
)


def _tone_in_silence(b: int = 3, t: int = 22050) -> torch.Tensor:
    """Digital silence with a short 0.05 s tone in the middle of each clip, float32 [B, T]."""
    x = torch.zeros(b, t)
    n = torch.arange(1102)
    for k in range(b):
        x[k, 10000 : 10000 + n.numel()] = 0.9 * torch.sin(2 * math.pi * (300 + 100 * k) * n / t)
    return x


@pytest.mark.parametrize("snr", [10.0, 30.0, 45.0, 60.0])
def test_projection_snr_is_exact(snr: float) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(4, 5000, generator=gen) * 1.6 - 0.8  # [4, 5000]
    delta = torch.randn(4, 5000, generator=gen)  # far outside every budget
    projected = project_snr(delta, x, snr)
    measured = waveform_snr_db(x, x + projected)
    # independent reference: NumPy in float64 on the projected perturbation
    xs, ds = x.double().numpy(), projected.double().numpy()
    reference = 10 * np.log10((xs**2).sum(1) / (ds**2).sum(1))
    np.testing.assert_allclose(reference, snr, atol=0.01)
    np.testing.assert_allclose(measured.numpy(), reference, atol=1e-9)
    # the projection is the scaling onto the ball: same direction, norm = radius
    cos = torch.nn.functional.cosine_similarity(projected.double(), delta.double(), dim=1)
    np.testing.assert_allclose(cos.numpy(), 1.0, atol=1e-6)
    radius = np.sqrt((xs**2).sum(1)) * 10 ** (-snr / 20)
    np.testing.assert_allclose(snr_radius(x, snr).numpy(), radius, rtol=1e-12)


def test_projection_keeps_a_small_perturbation() -> None:
    x = torch.full((1, 100), 0.5)  # ‖x‖² = 25
    delta = torch.full((1, 100), 0.001)  # ‖δ‖² = 1e-4: SNR = 10·log10(25 / 1e-4) = 53.98 dB
    assert torch.equal(project_snr(delta, x, 40.0), delta)
    # x + δ is rounded to float32: the measured SNR is the budget to well within 0.01 dB
    assert float(waveform_snr_db(x, x + delta)) == pytest.approx(10 * math.log10(25e4), abs=0.01)
    assert float(waveform_snr_db(x, x)) == math.inf


def test_clipping_keeps_full_scale_and_the_budget() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(3, 4000, generator=gen) * 2 - 1
    x[:, ::50] = 1.0  # peaks at full scale, as after the peak normalisation of decoding
    x[:, 1::50] = -1.0
    delta = 0.5 * torch.randn(3, 4000, generator=gen)
    for snr in (6.0, 20.0):
        projected = project_waveform(delta, x, snr_db=snr, epsilon=0.2)
        adv = adversarial_wave(x, projected)
        assert float(adv.abs().max()) == 1.0  # the clean peaks stay at full scale, none beyond
        assert float((x + projected).abs().max()) <= 1.0 + 2**-23  # one rounding step at most
        assert float((adv - x).abs().max()) <= 0.2 + 2**-24
        assert (waveform_snr_db(x, adv) >= snr - 1e-4).all()
    assert float(project_amplitude(delta, 0.2).abs().max()) <= 0.2  # float32(0.2) > 0.2
    clipped = clip_to_range(torch.full_like(x, 3.0), x)
    assert torch.equal(x + clipped, torch.ones_like(x))


def test_silence_with_a_short_tone_is_nan_safe() -> None:
    x = _tone_in_silence()
    silent = torch.zeros(1, x.shape[1])
    both = torch.cat([x, silent])  # [4, T], the last clip all digital silence
    delta = torch.randn(both.shape, generator=torch.Generator().manual_seed(3))
    projected = project_waveform(delta, both, snr_db=30.0)
    assert torch.isfinite(projected).all()
    assert torch.equal(projected[3], torch.zeros_like(projected[3]))  # silence allows nothing
    snr = waveform_snr_db(x, x + projected[:3])
    assert torch.isfinite(snr).all()
    np.testing.assert_allclose(snr.numpy(), 30.0, atol=0.01)
