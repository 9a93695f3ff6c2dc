"""Attack one trained run and log the per-clip results (DESIGN.md §7, §8).

``attack_run(RUN_DIR)`` loads the run's best checkpoint and its data cache, attacks every
clip of a split in batches and writes, in ``RUN_DIR/attacks/<attack>/``:

``clips.parquet`` / ``clips.csv``
    One row per clip: ``clip_id, system, seed, attack, mode, epsilon, lr, max_iters,
    iterations, converged, threshold, l2, linf, snr_db, mae_clean, mae_adv``,
    ``true_<emotion>``, ``clean_<emotion>``, ``adv_<emotion>`` for the 8 emotions and, for
    bottleneck models, ``clean_mid_<feature>``, ``adv_mid_<feature>`` for the 7 mid-level
    features. Ratings on the training scale (ratings / 10). ``adv_*`` is
    :attr:`AttackResult.pred`, the prediction the paper logs (for the reference mode that of
    the last iteration, not of the returned example).
``summary.json``
    MAE clean / adversarial, ΔMAE, average correlation clean / adversarial, SNR mean and
    median (over clips with a finite SNR), mean iterations, converged fraction, wall time,
    model passes, device and the settings. Its presence with the same settings means the
    attack is done: a re-run returns it without attacking again.
``examples.npy`` (with ``save_examples``)
    float32 ``[n, 1, frames, 149]``, the adversarial examples in the table's row order.

For the PGD attacks, ``lr`` is the step size, ``max_iters`` the number of steps and
``mode`` is ``"bounded"``.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from robustmer._io import (
    atomic_path,
    check_writable,
    read_json,
    sha256_file,
    to_jsonable,
    write_json,
    write_table,
)
from robustmer.errors import RobustmerError
from robustmer.names import EMOTIONS, MIDLEVEL_FEATURES

__all__ = ["ATTACK_SETTINGS", "SUMMARY_FORMAT", "attack_run", "clip_columns"]

logger = logging.getLogger(__name__)

SUMMARY_FORMAT = "robustmer-attack"
"""``format`` field of ``summary.json``."""


def _paper_settings(
    epsilon: float | None, iters: int | None, lr: float | None, mode: str | None
) -> dict[str, Any]:
    if mode is None:
        mode = "reference" if epsilon is None else "bounded"
    return {
        "mode": mode,
        "epsilon": epsilon,
        "lr": 0.002 if lr is None else float(lr),
        "max_iters": 1000 if iters is None else int(iters),
        "precision": "fp32",
    }


def _pgd_settings(
    epsilon: float | None, iters: int | None, lr: float | None, mode: str | None
) -> dict[str, Any]:
    if mode not in (None, "bounded"):
        raise RobustmerError(f"attack mode {mode!r}: PGD is always bounded; expected no mode")
    if epsilon is None:
        raise RobustmerError("attack epsilon: missing; expected a number > 0 for PGD")
    iters = 40 if iters is None else int(iters)
    return {
        "epsilon": float(epsilon),
        "iters": iters,
        "step_size": 2.5 * float(epsilon) / iters if lr is None else float(lr),
    }


ATTACK_SETTINGS = {
    "paper": _paper_settings,
    "pgd-linf": _pgd_settings,
    "pgd-l2": _pgd_settings,
}
"""Per attack name: ``(epsilon, iters, lr, mode) -> keyword settings of its factory``
(defaults filled in), from the options of :func:`attack_run`."""


def clip_columns(bottleneck: bool) -> list[str]:
    """Column names of ``clips.parquet`` (see the module docstring)."""
    cols = [
        "clip_id",
        "system",
        "seed",
        "attack",
        "mode",
        "epsilon",
        "lr",
        "max_iters",
        "iterations",
        "converged",
        "threshold",
        "l2",
        "linf",
        "snr_db",
        "mae_clean",
        "mae_adv",
    ]
    for prefix in ("true", "clean", "adv"):
        cols += [f"{prefix}_{e}" for e in EMOTIONS]
    if bottleneck:
        for prefix in ("clean_mid", "adv_mid"):
            cols += [f"{prefix}_{f}" for f in MIDLEVEL_FEATURES]
    return cols


def _finite_stats(values: Any) -> tuple[float | None, float | None, int]:
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return None, None, 0
    return float(finite.mean()), float(np.median(finite)), int(finite.size)


def attack_run(
    run_dir: str | os.PathLike[str],
    *,
    attack: str = "paper",
    split: str = "test",
    epsilon: float | None = None,
    iters: int | None = None,
    lr: float | None = None,
    mode: str | None = None,
    batch_size: int = 36,
    device: str = "auto",
    save_examples: bool = False,
    progress: bool = True,
    out: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Attack a trained run's split and write ``clips.{parquet,csv}`` and ``summary.json``.

    Parameters
    ----------
    run_dir : str or PathLike
        A training run (``robustmer.training.load_run``).
    attack : str
        ``"paper"``, ``"pgd-linf"`` or ``"pgd-l2"`` (:data:`robustmer.attacks.ATTACKS`).
    split : str
        ``"test"`` (the paper's 36 clips), ``"validation"`` or ``"train"``.
    epsilon : float, optional
        L∞ (L2 for ``pgd-l2``) radius, normalised-input units. Paper attack: giving it
        selects ``bounded`` mode unless ``mode`` says otherwise. Required for PGD.
    iters : int, optional
        Paper attack: ``max_iters`` (default 1000). PGD: steps (default 40).
    lr : float, optional
        Paper attack: Adam learning rate (default 0.002). PGD: step size (default
        ``2.5 · epsilon / iters``).
    mode : str, optional
        Paper attack: ``"reference"`` (default without ``epsilon``) or ``"bounded"``
        (default with ``epsilon``).
    batch_size : int
        Clips attacked together (results do not depend on it).
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
    save_examples : bool
        Also write the adversarial examples as ``examples.npy``.
    progress : bool
        Show a progress bar per iteration block with the current mean correlation.
    out : str or PathLike, optional
        Output directory; default ``RUN_DIR/attacks/<attack>``.

    Returns
    -------
    dict
        The content of ``summary.json``.

    Raises
    ------
    RobustmerError
        Unknown attack or split, an empty split, ``epsilon ≤ 0``, bad settings, or a run
        without a checkpoint.
    """
    import numpy as np
    import pandas as pd
    import torch

    from robustmer import metrics
    from robustmer.attacks import ATTACKS, AttackResult
    from robustmer.progress import progress_bar
    from robustmer.training import load_run

    check_writable(out if out is not None else Path(run_dir) / "attacks", "attack output directory")
    if attack not in ATTACKS:
        raise RobustmerError(f"attack {attack!r}: unknown; expected one of {list(ATTACKS)}")
    if epsilon is not None and not (math.isfinite(epsilon) and epsilon > 0):
        raise RobustmerError(f"attack epsilon {epsilon!r}: invalid; expected a number > 0")
    if iters is not None and iters < 1:
        raise RobustmerError(f"attack iters {iters!r}: invalid; expected an int >= 1")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise RobustmerError(f"attack lr {lr!r}: invalid; expected a number > 0")
    if batch_size < 1:
        raise RobustmerError(f"attack batch_size {batch_size!r}: invalid; expected >= 1")
    factory_settings = ATTACK_SETTINGS[attack](epsilon, iters, lr, mode)

    run = load_run(run_dir, device=device)
    model, cache = run.model, run.cache
    dev = next(model.parameters()).device
    out_dir = Path(out) if out is not None else Path(run.path) / "attacks" / attack
    x_all, y_all, _mid_true, ids = cache.arrays(split)  # [n,1,F,149], [n,8], [n,7], n ids
    n = len(ids)
    if n == 0:
        raise RobustmerError(f"{cache.path}: split {split!r} is empty; expected clips to attack")

    # building the attack validates the settings (RobustmerError) before anything runs
    probe = ATTACKS[attack](model, normalization=cache.normalization, **factory_settings)
    best = Path(run.path) / "best.safetensors"
    settings = {
        **probe.settings(),
        "split": split,
        "n_clips": n,
        "checkpoint_sha256": sha256_file(best) if best.is_file() else None,
        "cache_manifest_sha256": getattr(cache, "manifest_hash", None),
    }
    summary_path = out_dir / "summary.json"
    if summary_path.is_file() and (out_dir / "clips.parquet").is_file():
        try:
            previous = read_json(summary_path)
        except RobustmerError:
            previous = None
        if (
            isinstance(previous, dict)
            and previous.get("settings") == to_jsonable(settings)
            and (not save_examples or (out_dir / "examples.npy").is_file())
        ):
            logger.info("%s: attack already done with these settings; skipped", out_dir)
            return previous

    label = f"{run.system.name}-seed{run.config.seed} {attack}"
    results: list[AttackResult] = []
    batches = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    total_iters = int(factory_settings.get("max_iters", factory_settings.get("iters", 1)))
    logger.info("%s: attacking %d %s clips on %s", label, n, split, dev)
    with progress_bar(enabled=progress) as bar:
        task = bar.add_task(label, total=len(batches) * total_iters)
        for b_idx, (lo, hi) in enumerate(batches):
            base = b_idx * total_iters

            def report(it: int, n_active: int, mean_r: float, base: int = base) -> None:
                bar.update(
                    task,
                    completed=base + min(it, total_iters),
                    description=f"{label} [{n_active} active, mean r {mean_r:+.3f}]",
                )

            attacker = ATTACKS[attack](
                model, normalization=cache.normalization, callback=report, **factory_settings
            )
            x = x_all[lo:hi].to(dev)  # [b, 1, F, 149]
            y = y_all[lo:hi].to(dev)  # [b, 8]
            results.append(attacker(x, y))
            bar.update(task, completed=base + total_iters)

    def cat(name: str) -> np.ndarray:
        return torch.cat([getattr(r, name) for r in results]).numpy()

    y_np = y_all.numpy().astype(np.float64)  # [n, 8]
    clean, adv, adv_x = cat("pred_clean"), cat("pred"), cat("pred_of_x_adv")  # [n, 8]
    s = settings
    table: dict[str, Any] = {
        "clip_id": np.asarray(ids, dtype=np.int64),
        "system": [run.system.name] * n,
        "seed": np.full(n, int(run.config.seed), dtype=np.int64),
        "attack": [attack] * n,
        "mode": [s.get("mode", "bounded")] * n,
        "epsilon": np.full(n, np.nan if s.get("epsilon") is None else s["epsilon"]),
        "lr": np.full(n, float(s.get("lr", s.get("step_size", np.nan)))),
        "max_iters": np.full(n, int(s.get("max_iters", s.get("iters", 0))), dtype=np.int64),
        "iterations": cat("iterations"),
        "converged": cat("converged"),
        "threshold": cat("threshold"),
        "l2": cat("l2").astype(np.float64),
        "linf": cat("linf").astype(np.float64),
        "snr_db": cat("snr_db"),
        "mae_clean": np.abs(y_np - clean).mean(axis=1),
        "mae_adv": np.abs(y_np - adv).mean(axis=1),
    }
    for prefix, values in (("true", y_np), ("clean", clean), ("adv", adv)):
        for j, emotion in enumerate(EMOTIONS):
            table[f"{prefix}_{emotion}"] = values[:, j].astype(np.float64)
    bottleneck = results[0].midlevel_clean is not None
    if bottleneck:
        for prefix, name in (("clean_mid", "midlevel_clean"), ("adv_mid", "midlevel_adv")):
            values = cat(name)  # [n, 7]
            for j, feature in enumerate(MIDLEVEL_FEATURES):
                table[f"{prefix}_{feature}"] = values[:, j].astype(np.float64)
    df = pd.DataFrame(table, columns=clip_columns(bottleneck))
    assert len(df) == n

    out_dir.mkdir(parents=True, exist_ok=True)
    write_table(df, out_dir / "clips")
    if save_examples:
        with atomic_path(out_dir / "examples.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, cat("x_adv").astype(np.float32))

    mae_clean, mae_adv = metrics.mae(y_np, clean), metrics.mae(y_np, adv)
    snr_mean, snr_median, snr_finite = _finite_stats(table["snr_db"])
    summary = {
        "format": SUMMARY_FORMAT,
        "version": 1,
        "run": str(run.path),
        "system": run.system.name,
        "seed": int(run.config.seed),
        "attack": attack,
        "n_clips": n,
        "mae_clean": mae_clean,
        "mae_adv": mae_adv,
        "delta_mae": mae_adv - mae_clean,
        "mae_adv_of_x_adv": metrics.mae(y_np, adv_x),
        "avg_corr_clean": metrics.average_correlation(y_np, clean),
        "avg_corr_adv": metrics.average_correlation(y_np, adv),
        "snr_db_mean": snr_mean,
        "snr_db_median": snr_median,
        "snr_db_finite_clips": snr_finite,
        "iterations_mean": float(table["iterations"].mean()),
        "converged_fraction": float(table["converged"].mean()),
        "l2_mean": float(table["l2"].mean()),
        "linf_max": float(table["linf"].max()),
        "attack_seconds": float(sum(r.seconds for r in results)),
        "model_passes": int(sum(r.model_passes for r in results)),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "settings": settings,
    }
    write_json(summary_path, summary)
    logger.info(
        "%s: MAE %.4f -> %.4f (ΔMAE %+.4f), avg corr %.3f -> %.3f, %.1f s",
        label,
        mae_clean,
        mae_adv,
        mae_adv - mae_clean,
        summary["avg_corr_clean"],
        summary["avg_corr_adv"],
        summary["attack_seconds"],
    )
    return read_json(summary_path)
