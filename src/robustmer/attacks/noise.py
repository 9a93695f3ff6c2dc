"""Uniform random noise in the ε-ball: the baseline every gradient attack must beat.

Each clip gets ``restarts`` perturbations drawn uniformly from the ball ``‖δ‖ ≤ ε`` (L∞: every
element uniform in ``[-ε, ε]``; L2: uniform in the volume) and keeps the one with the highest
emotion MSE. A gradient attack at the same ε that does not clearly beat this is a sign of
gradient masking (Carlini et al., 2019, "On Evaluating Adversarial Robustness"), which
:mod:`robustmer.evaluation.checks` tests.

The random draws of a clip come from a CPU generator seeded with the attack's ``seed``, the
draw number and a hash of the clip's input (:func:`robustmer.attacks.pgd.clip_generator`,
re-exported here), so a clip's result does not depend on its batch-mates, the batch size or
the device.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import ClassVar

import torch

from robustmer.attacks.base import Attack, ProgressCallback, model_outputs, report_progress
from robustmer.attacks.config import AttackConfig
from robustmer.attacks.pgd import check_ball, clip_generator, random_in_ball
from robustmer.attacks.result import AttackResult, clip_pearson, mse_per_clip
from robustmer.errors import RobustmerError

__all__ = ["Noise", "NoiseConfig", "clip_generator", "random_in_ball"]


@dataclasses.dataclass(frozen=True)
class NoiseConfig(AttackConfig):
    """Settings of :class:`Noise`.

    Attributes
    ----------
    norm : str
        ``"linf"`` or ``"l2"``.
    epsilon : float
        Radius of the ball (normalised-input units), > 0; required.
    restarts : int
        Draws per clip; the one with the highest MSE is kept.
    seed : int
        Seed of the draws.
    """

    name: ClassVar[str] = "noise"

    norm: str = "linf"
    epsilon: float | None = None
    restarts: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ball(self)
        if self.target is not None:
            raise RobustmerError(f"attack 'noise' target {self.target!r}: expected no target")


class Noise(Attack):
    """Worst of ``restarts`` uniform draws from the ε-ball per clip (see the module docstring).

    Settings: :class:`NoiseConfig`. No gradients are used; the progress callback is called
    once per draw as ``callback(draw, n_clips, mean_r)``.
    """

    config_class = NoiseConfig
    config: NoiseConfig

    def run(
        self, x: torch.Tensor, y: torch.Tensor, callback: ProgressCallback | None
    ) -> AttackResult:
        """Attack a checked batch ``x [B, 1, F, T]``, ``y [B, 8]``; no gradients are used."""
        start = time.perf_counter()
        cfg, model, b = self.config, self.model, x.shape[0]
        with torch.no_grad():
            pred_clean, mid_clean = model_outputs(model(x))  # [B, 8], [B, 7] | None
            best_delta = torch.zeros_like(x)  # [B, 1, F, T]
            best_loss = torch.full((b,), -math.inf, device=x.device)  # [B]
            best_pred, best_mid = pred_clean.clone(), mid_clean  # [B, 8], [B, 7] | None
            for draw in range(cfg.restarts):
                delta = random_in_ball(x, cfg.norm, cfg.epsilon, cfg.seed, draw)  # [B, 1, F, T]
                delta = self.domain.constrain(x, delta)  # e.g. the waveform's SNR budget
                p, mid = model_outputs(model(x + delta))  # [B, 8], [B, 7] | None
                report_progress(callback, draw + 1, b, clip_pearson(p, y))
                loss = mse_per_clip(p, y)  # [B]
                better = loss > best_loss  # [B]
                best_loss = torch.where(better, loss, best_loss)
                best_delta[better] = delta[better]
                best_pred = torch.where(better[:, None], p, best_pred)
                if mid is not None:
                    best_mid = torch.where(better[:, None], mid, best_mid)
        x_adv = self.domain.adversarial(x, best_delta)  # [B, 1, F, T] or [B, samples]
        return self.result(
            x, best_delta, x_adv, start=start,
            pred_clean=pred_clean, midlevel_clean=mid_clean,
            pred=best_pred, midlevel_adv=best_mid,
            iterations=cfg.restarts, model_passes=b * (1 + cfg.restarts), loss=best_loss,
        )
