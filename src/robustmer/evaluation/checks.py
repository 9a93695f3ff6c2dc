"""Gradient-masking checks and the transfer matrix (Carlini et al., 2019; Croce & Hein, 2020).

A model can look robust because its gradient is useless to the attacker (gradient masking:
quantisation, saturation, zero or noisy gradients), not because its prediction is hard to
move. Each check below looks for one symptom and returns a :class:`Check` with the verdict
``"pass"`` or ``"warn"`` and the numbers behind it:

==================  ==========================================================================
``monotone``        the attack's ΔMAE rises with ε: no drop between neighbouring ε larger than
                    ``tolerance`` x the largest |ΔMAE|, and a total rise larger than that
``unbounded``       an unbounded attack drives the mean per-clip correlation to ``max_corr``
                    (default -0.5) or below
``noise``           uniform noise in the same ε-ball achieves at most ``max_ratio`` (0.5) of the
                    strongest gradient attack's ΔMAE
``zero_gradients``  at most ``max_fraction`` (0.1) of the input gradient's elements are exactly 0
``transfer``        no example crafted on another model beats the white-box attack on the
                    target by more than ``tolerance`` (5 %) of its ΔMAE
==================  ==========================================================================

The table checks take :func:`robustmer.evaluation.curves.run_metrics`;
:func:`masking_checks` runs the attacks on one model and applies all checks but the transfer
one; :func:`transfer_matrix` evaluates examples crafted on each model on every model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from robustmer.attacks.apgd import APGD, APGDConfig
from robustmer.attacks.base import model_outputs
from robustmer.attacks.noise import Noise, NoiseConfig
from robustmer.attacks.result import AttackResult
from robustmer.evaluation.curves import clip_correlations, run_metrics
from robustmer.names import EMOTIONS

__all__ = [
    "Check",
    "check_monotone",
    "check_noise",
    "check_transfer",
    "check_unbounded",
    "check_zero_gradients",
    "is_noise",
    "masking_checks",
    "result_table",
    "transfer_matrix",
    "zero_gradient_fraction",
]


@dataclasses.dataclass(frozen=True)
class Check:
    """One check on one system.

    Attributes
    ----------
    check : str
        ``monotone``, ``unbounded``, ``noise``, ``zero_gradients`` or ``transfer``.
    system : str
    verdict : str
        ``"pass"`` or ``"warn"``.
    numbers : dict
        The values the verdict was computed from, and the threshold.
    message : str
        One line saying what was found.
    """

    check: str
    system: str
    verdict: str
    numbers: dict[str, Any]
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dataclasses.asdict(self)


def is_noise(attack: str) -> bool:
    """Whether an attack label names the uniform-noise baseline (``noise``, ``noise-linf``)."""
    return str(attack).split("-")[0] == "noise"


def _verdict(ok: bool) -> str:
    return "pass" if ok else "warn"


def check_monotone(runs: pd.DataFrame, *, tolerance: float = 0.05) -> list[Check]:
    """ΔMAE of every bounded gradient attack rises with ε (mean over seeds), per system."""
    out = []
    bounded = runs[runs["epsilon"].notna() & ~runs["attack"].map(is_noise)]
    for (system, attack), g in bounded.groupby(["system", "attack"]):
        curve = g.groupby("epsilon")["delta_mae"].mean().sort_index()  # over seeds
        v = curve.to_numpy(np.float64)
        slack = tolerance * float(np.abs(v).max()) if v.size else 0.0
        worst_drop = float(np.max(v[:-1] - v[1:])) if v.size > 1 else 0.0
        rise = float(v[-1] - v[0]) if v.size else 0.0
        ok = v.size > 1 and worst_drop <= slack and rise > slack
        out.append(Check(
            "monotone", system, _verdict(ok),
            {"attack": attack, "epsilon": curve.index.tolist(), "delta_mae": v.tolist(),
             "largest_drop": worst_drop, "rise": rise, "tolerance": tolerance},
            f"{attack}: ΔMAE {v[0]:.4g} at ε={curve.index[0]:g} -> {v[-1]:.4g} at "
            f"ε={curve.index[-1]:g}, largest drop {max(worst_drop, 0.0):.3g}"))
    return out


def check_unbounded(runs: pd.DataFrame, *, max_corr: float = -0.5) -> list[Check]:
    """The unbounded attacks (ε NaN) drive the mean per-clip correlation to ``max_corr``."""
    out = []
    for (system, attack), g in runs[runs["epsilon"].isna()].groupby(["system", "attack"]):
        r = float(g["clip_corr_adv"].mean())
        out.append(Check(
            "unbounded", system, _verdict(r <= max_corr),
            {"attack": attack, "clip_corr_adv": r, "max_corr": max_corr},
            f"{attack}: mean per-clip correlation after the unbounded attack {r:+.3f}"))
    return out


def check_noise(runs: pd.DataFrame, *, max_ratio: float = 0.5) -> list[Check]:
    """Uniform noise (:func:`is_noise`) does at most ``max_ratio`` of the best attack's ΔMAE."""
    out = []
    bounded = runs[runs["epsilon"].notna()]
    means = bounded.groupby(["system", "epsilon", "attack"])["delta_mae"].mean()  # over seeds
    for (system, eps), g in means.groupby(level=["system", "epsilon"]):
        g = g.droplevel(["system", "epsilon"])
        noisy = g.index.map(is_noise).to_numpy(bool)
        if not noisy.any() or noisy.all():
            continue
        noise, attack = float(g[noisy].max()), float(g[~noisy].max())
        ok = attack > 0 and noise <= max_ratio * attack
        out.append(Check(
            "noise", system, _verdict(ok),
            {"epsilon": float(eps), "noise_delta_mae": noise, "attack_delta_mae": attack,
             "max_ratio": max_ratio},
            f"ε={eps:g}: noise ΔMAE {noise:.4g} vs best attack {attack:.4g}"))
    return out


def zero_gradient_fraction(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of exactly-zero elements of ``∂ Σ MSE(f(x), y) / ∂x`` (model in eval mode)."""
    training = model.training
    model.eval()
    try:
        xg = x.detach().clone().requires_grad_(True)  # [B, 1, F, T]
        with torch.enable_grad():
            p, _ = model_outputs(model(xg))  # [B, 8]
            loss = (p - y.to(p.dtype)).pow(2).mean(dim=1).sum()
        (grad,) = torch.autograd.grad(loss, xg)
    finally:
        model.train(training)
    return float((grad == 0).double().mean())


def check_zero_gradients(
    fractions: Mapping[str, float], *, max_fraction: float = 0.1
) -> list[Check]:
    """At most ``max_fraction`` of the input-gradient elements are exactly zero, per system."""
    return [
        Check("zero_gradients", system, _verdict(f <= max_fraction),
              {"zero_fraction": f, "max_fraction": max_fraction},
              f"{100 * f:.1f} % of the input gradient is exactly zero")
        for system, f in fractions.items()
    ]


def result_table(
    result: AttackResult, y: torch.Tensor, *, system: str, attack: str,
    epsilon: float | None, seed: int = 0,
) -> pd.DataFrame:
    """An :class:`AttackResult` as per-clip rows in the columns of ``clips.parquet``."""
    y_np = y.detach().double().cpu().numpy()  # [B, 8]
    clean = result.pred_clean.double().numpy()  # [B, 8]
    adv = result.pred.double().numpy()  # [B, 8]
    n = len(y_np)
    table: dict[str, Any] = {
        "system": [system] * n, "seed": seed, "clip_id": np.arange(n), "attack": attack,
        "epsilon": math.nan if epsilon is None else float(epsilon),
        "snr_db": result.snr_db.numpy(),
        "mae_clean": np.abs(y_np - clean).mean(axis=1),
        "mae_adv": np.abs(y_np - adv).mean(axis=1),
    }
    for prefix, values in (("true", y_np), ("clean", clean), ("adv", adv)):
        table.update({f"{prefix}_{e}": values[:, j] for j, e in enumerate(EMOTIONS)})
    return pd.DataFrame(table)


def masking_checks(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, system: str = "model",
    norm: str = "linf", epsilons: Sequence[float] = (0.01, 0.03, 0.1, 0.3), steps: int = 20,
    noise_restarts: int = 4, unbounded_epsilon: float = 100.0, seed: int = 0,
) -> list[Check]:
    """Run APGD and noise at every ε and an unbounded APGD on one model; apply the checks.

    The unbounded attack is APGD on the negative correlation with a radius
    ``unbounded_epsilon`` far beyond any meaningful perturbation.

    Returns
    -------
    list of Check
        ``monotone``, ``noise`` (one per ε), ``unbounded`` and ``zero_gradients``.
    """
    tables = []
    for eps in epsilons:
        cfg = APGDConfig(norm=norm, epsilon=eps, steps=steps, seed=seed)
        noise = NoiseConfig(norm=norm, epsilon=eps, restarts=noise_restarts, seed=seed)
        for name, attack in (("apgd", APGD(model, cfg)), ("noise", Noise(model, noise))):
            tables.append(result_table(attack(x, y), y, system=system, attack=name, epsilon=eps))
    free = APGDConfig(norm=norm, epsilon=unbounded_epsilon, steps=steps, loss="corr", seed=seed)
    tables.append(
        result_table(APGD(model, free)(x, y), y, system=system, attack="apgd-corr", epsilon=None)
    )
    runs = run_metrics(pd.concat(tables, ignore_index=True))
    zero = {system: zero_gradient_fraction(model, x, y)}
    return [*check_monotone(runs), *check_noise(runs), *check_unbounded(runs),
            *check_zero_gradients(zero)]


def _predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            preds = [model_outputs(model(x[i:i + batch_size]))[0] for i in range(0, len(x),
                                                                                   batch_size)]
    finally:
        model.train(training)
    return torch.cat(preds).double().cpu()  # [n, 8]


def transfer_matrix(
    models: Mapping[str, nn.Module], x: torch.Tensor, examples: Mapping[str, torch.Tensor],
    y: torch.Tensor, *, batch_size: int = 36,
) -> pd.DataFrame:
    """Evaluate the examples crafted on each source model on every target model.

    Parameters
    ----------
    models : mapping of str to torch.nn.Module
        Target models by system name.
    x : torch.Tensor, shape [n, 1, F, T]
        The clean inputs (the same clips for every source, on the models' device).
    examples : mapping of str to torch.Tensor, shape [n, 1, F, T]
        Adversarial examples by the system they were crafted on (same clips, same seed).
    y : torch.Tensor, shape [n, 8]
        True ratings / 10.

    Returns
    -------
    pd.DataFrame
        One row per (source, target): ``source, target, white_box`` (source == target),
        ``mae_clean, mae_adv, delta_mae, clip_corr_adv``; pivot ``delta_mae`` for a heat map.
    """
    y_np = y.detach().double().cpu().numpy()  # [n, 8]
    rows = []
    for target, model in models.items():
        clean = _predict(model, x, batch_size).numpy()  # [n, 8]
        mae_clean = float(np.abs(y_np - clean).mean())
        for source, x_adv in examples.items():
            adv = _predict(model, x_adv.to(x.device, x.dtype), batch_size).numpy()  # [n, 8]
            mae_adv = float(np.abs(y_np - adv).mean())
            cols = {f"true_{e}": y_np[:, j] for j, e in enumerate(EMOTIONS)}
            cols.update({f"adv_{e}": adv[:, j] for j, e in enumerate(EMOTIONS)})
            r = clip_correlations(pd.DataFrame(cols))
            rows.append({"source": source, "target": target, "white_box": source == target,
                         "mae_clean": mae_clean, "mae_adv": mae_adv,
                         "delta_mae": mae_adv - mae_clean,
                         "clip_corr_adv": float(np.nanmean(r)) if np.isfinite(r).any()
                         else math.nan})
    return pd.DataFrame(rows)


def check_transfer(matrix: pd.DataFrame, *, tolerance: float = 0.05) -> list[Check]:
    """No transfer attack beats the white-box attack on its target (ΔMAE, ``tolerance``)."""
    out = []
    for target, g in matrix.groupby("target", sort=False):
        white = float(g.loc[g["source"] == target, "delta_mae"].iloc[0])
        others = g[g["source"] != target]
        if others.empty:
            continue
        best = others.loc[others["delta_mae"].idxmax()]
        transfer = float(best["delta_mae"])
        ok = transfer <= white + tolerance * abs(white)
        out.append(Check(
            "transfer", str(target), _verdict(ok),
            {"white_box_delta_mae": white, "best_transfer_delta_mae": transfer,
             "best_source": str(best["source"]), "tolerance": tolerance},
            f"white-box ΔMAE {white:.4g}; best transfer ({best['source']}) {transfer:.4g}"))
    return out
