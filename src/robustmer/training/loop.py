"""Training of one system with one seed: resumable, deterministic on CPU (docs/paper.md §6).

Run directory (every file written atomically)::

    config.json        TrainConfig, system, model config, cache path + manifest hash,
                       front end, versions (written once, checked on every restart)
    metrics.csv        one row per completed epoch
    best.safetensors   weights of the best epoch so far (robustmer.models.save_model)
    state.pt           resume state after the last completed epoch (tensors and plain
                       containers only; loaded with ``weights_only=True``)
    final.json         metrics of the best checkpoint on train/validation/test and the
                       compute cost; written last, its presence means the run is done

Commit protocol per epoch: ``state.pt`` is written first (the commit), then, if the epoch
improved, ``best.safetensors`` (its metadata names the epoch), then ``metrics.csv``. A run
killed at any point restarts from the last committed epoch; a missing or stale best
checkpoint of that epoch is rewritten from the committed weights. Every epoch re-seeds
shuffling and dropout from ``(seed, epoch)``, so a resumed CPU run is bit-identical to an
uninterrupted one.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from robustmer._io import atomic_open, atomic_path, check_writable, read_json, write_json
from robustmer.errors import RobustmerError
from robustmer.metrics import average_correlation, regression_report
from robustmer.names import EMOTIONS, MIDLEVEL_FEATURES
from robustmer.progress import progress_bar
from robustmer.provenance import device_name, versions
from robustmer.records import (
    BEST_FILE,
    CONFIG_FILE,
    FINAL_FILE,
    METRICS_FILE,
    STATE_FILE,
    Cost,
    FinalMetrics,
)
from robustmer.training.config import (
    MONITORS,
    SystemSpec,
    TrainConfig,
    get_system,
    resolve_device,
)

if TYPE_CHECKING:
    import torch

    from robustmer.attacks import AttackResult
    from robustmer.data import Cache
    from robustmer.models import MERModel

logger = logging.getLogger(__name__)

RUN_FORMAT = "robustmer-run"
RUN_VERSION = 1
STATE_FORMAT = "robustmer-train-state"

METRICS_COLUMNS: tuple[str, ...] = (
    "epoch",
    "train_loss",
    "adv_loss",
    "val_avg_corr",
    "val_mid_corr",
    "monitored",
    "best",
    "best_score",
    "seconds",
    "adversarial",
)
"""Columns of ``metrics.csv``: 1-based epoch; mean training loss of the normal steps; mean
emotion MSE of the adversarial steps (NaN on standard epochs); validation emotion average
correlation; validation average correlation of the bottleneck with the mid-level targets
(NaN for A2E); the monitored early-stopping score; whether this epoch became the best
checkpoint; the best monitored score so far; epoch wall time (s); whether the epoch was
adversarial."""

COUNTERS: tuple[str, ...] = (
    "forward_clip_passes",
    "backward_clip_passes",
    "attack_clip_iterations",
    "validation_clip_passes",
    "optimizer_steps",
    "adversarial_steps",
    "attack_calls",
)
"""Compute counters kept in ``state.pt`` and reported under ``cost`` in ``final.json``.
``forward_clip_passes`` counts every clip through the model (training and adversarial
steps, attack iterations and validation); ``backward_clip_passes`` every clip through a
backward pass (training and adversarial steps, and one per attack clip-iteration).
``attack_clip_iterations`` sums the attack's per-clip iteration counts; its forward passes
(``AttackResult.model_passes``, which include the clean and final passes) go into
``forward_clip_passes``."""

_SHUFFLE_STREAM = 0
_DROPOUT_STREAM = 1

EpochHook = Callable[[int, dict[str, Any]], None]


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A 63-bit seed for one epoch's random stream, derived from ``(seed, epoch, stream)``."""
    state = np.random.SeedSequence([seed, epoch, stream]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


def is_adversarial_epoch(system: SystemSpec, config: TrainConfig, epoch: int) -> bool:
    """Whether 1-based ``epoch`` is adversarial: adversarial systems, epoch % adv_every == 0."""
    return system.adversarial and epoch % config.adv_every == 0


@contextlib.contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic algorithms on the CPU for the duration of the block (restored after)."""
    import torch

    if device.type != "cpu":
        yield
        return
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


def predict(
    model: MERModel, x: torch.Tensor, *, batch_size: int = 32, channels_last: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions of a model in eval mode, in batches, without gradients.

    Parameters
    ----------
    model : MERModel
    x : torch.Tensor, shape [n, 1, F, 149]
        On the model's device.
    batch_size : int
    channels_last : bool
        Feed the input in channels-last memory format.

    Returns
    -------
    emotions : np.ndarray, float64, shape (n, 8)
    midlevel : np.ndarray, float64, shape (n, 7), or None for models without bottleneck
    """
    import torch

    was_training = model.training
    model.eval()
    emo, mid = [], []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size]  # [b, 1, F, 149]
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            out = model(xb)
            emo.append(out.emotions.double().cpu().numpy())  # [b, 8]
            if out.midlevel is not None:
                mid.append(out.midlevel.double().cpu().numpy())  # [b, 7]
    model.train(was_training)
    emotions = np.concatenate(emo) if emo else np.zeros((0, len(EMOTIONS)))
    return emotions, (np.concatenate(mid) if mid else None)


def _run_record(config: TrainConfig, system: SystemSpec, cache: Cache, out: Path) -> dict:
    """The content of ``config.json``."""
    cache_path = Path(cache.path).resolve()
    return {
        "format": RUN_FORMAT,
        "version": RUN_VERSION,
        "train_config": config.to_dict(),
        "system": system.to_dict(),
        "model": {"arch": system.arch, "width": config.width},
        "cache": {
            "path": str(cache_path),
            "relative_path": os.path.relpath(cache_path, out.resolve()),
            "manifest_hash": cache.manifest_hash,
            "frames": cache.frames,
            "split_sizes": {k: len(v) for k, v in cache.split.items()},
        },
        "frontend": cache.frontend.to_dict(),
        "normalization": cache.normalization.to_dict(),
        "versions": versions(),
    }


def _check_run_dir(out: Path, record: dict) -> None:
    """Raise if ``out`` holds a run of another configuration or other data."""
    path = out / CONFIG_FILE
    old = read_json(path)
    if old.get("format") != RUN_FORMAT:
        raise RobustmerError(f"{path}: not a robustmer training run; expected format {RUN_FORMAT}")
    try:
        old_identity = TrainConfig.from_dict(old["train_config"]).identity()
    except (KeyError, TypeError):
        raise RobustmerError(f"{path}: malformed training config; expected {RUN_FORMAT}") from None
    new_identity = TrainConfig.from_dict(record["train_config"]).identity()
    if old_identity != new_identity:
        diff = {
            k: (old_identity.get(k), new_identity.get(k))
            for k in sorted(set(old_identity) | set(new_identity))
            if old_identity.get(k) != new_identity.get(k)
        }
        changes = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
        raise RobustmerError(
            f"{path}: this run directory holds a run with another configuration ({changes}); "
            "expected the same configuration, or use another output directory"
        )
    old_hash = old.get("cache", {}).get("manifest_hash")
    if old_hash != record["cache"]["manifest_hash"]:
        raise RobustmerError(
            f"{path}: this run was trained on another data cache (manifest hash "
            f"{str(old_hash)[:12]}, now {record['cache']['manifest_hash'][:12]}); expected the "
            "same cache, or use another output directory"
        )


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_open(path) as fh:
        writer = csv.DictWriter(fh, fieldnames=list(METRICS_COLUMNS), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row[k] for k in METRICS_COLUMNS})


def _monitored(system: SystemSpec, config: TrainConfig, emo_corr: float, mid_corr: float) -> float:
    if MONITORS[config.monitor](system):
        return 0.5 * (emo_corr + mid_corr)
    return emo_corr


def _loss(
    out: Any, y_emo: torch.Tensor, y_mid: torch.Tensor, system: SystemSpec, config: TrainConfig
) -> torch.Tensor:
    """Training loss: emotion MSE, or (1 - w)·emo + w·mid MSE for mid-level supervision."""
    import torch.nn.functional as F

    emo = F.mse_loss(out.emotions.float(), y_emo)  # scalar
    if system.midlevel_loss:
        w = config.midlevel_weight
        return (1.0 - w) * emo + w * F.mse_loss(out.midlevel.float(), y_mid)
    return emo


def _save_best(
    out: Path, model: MERModel, config: TrainConfig, cache: Cache, epoch: int, score: float
) -> None:
    from robustmer.models import save_model

    save_model(
        out / BEST_FILE,
        model,
        extra={
            "epoch": epoch,
            "monitored": score,
            "train_config": config.to_dict(),
            "system": config.spec.to_dict(),
            "frontend": cache.frontend.to_dict(),
            "normalization": cache.normalization.to_dict(),
            "cache_manifest_hash": cache.manifest_hash,
        },
    )


def _best_epoch_on_disk(out: Path) -> int | None:
    from robustmer.models import read_metadata

    if not (out / BEST_FILE).is_file():
        return None
    try:
        _, extra = read_metadata(out / BEST_FILE)
    except RobustmerError:
        return None
    epoch = extra.get("epoch")
    return int(epoch) if epoch is not None else None


def _load_state(out: Path, device: torch.device) -> dict[str, Any] | None:
    import torch

    path = out / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # corrupt file or foreign content
        raise RobustmerError(
            f"{path}: unreadable resume state ({exc}); expected a robustmer state file: "
            "delete the run directory to start again"
        ) from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise RobustmerError(f"{path}: not a robustmer resume state; expected {STATE_FORMAT}")
    return state


def _save_state(out: Path, state: dict[str, Any]) -> None:
    import torch

    with atomic_path(out / STATE_FILE) as tmp:
        torch.save(state, tmp)


def _split_report(
    model: MERModel, cache: Cache, split: str, config: TrainConfig, device: torch.device
) -> dict[str, Any]:
    x, emo, mid, ids = cache.arrays(split)
    p_emo, p_mid = predict(
        model, x.to(device), batch_size=config.eval_batch_size, channels_last=config.channels_last
    )
    report: dict[str, Any] = {
        "clips": len(ids),
        "emotions": regression_report(emo.numpy(), p_emo, EMOTIONS),
        "midlevel": None,
    }
    if p_mid is not None:
        report["midlevel"] = regression_report(mid.numpy(), p_mid, MIDLEVEL_FEATURES)
        # the bottleneck outputs' sample sd (the concepts' scale, evaluation.concepts)
        report["bottleneck_std"] = p_mid.std(axis=0, ddof=1).tolist() if len(ids) > 1 else None
    return report


AMP_DTYPE_NAME = "bfloat16"
"""Autocast dtype of ``TrainConfig.amp`` (bfloat16 needs no gradient scaling)."""


def _memory_format(config: TrainConfig) -> torch.memory_format:
    import torch

    return torch.channels_last if config.channels_last else torch.contiguous_format


def training_step(
    model: MERModel,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y_emotions: torch.Tensor,
    y_midlevel: torch.Tensor,
    *,
    system: SystemSpec,
    config: TrainConfig,
) -> torch.Tensor:
    """One optimiser step on a batch with the system's loss (model in train mode).

    Parameters
    ----------
    model : MERModel
        In train mode, on the batch's device.
    optimizer : torch.optim.Optimizer
    x : torch.Tensor, shape [B, 1, F, 149]
    y_emotions : torch.Tensor, shape [B, 8]
    y_midlevel : torch.Tensor, shape [B, 7]
    system : SystemSpec
        Selects the loss: emotion MSE, or (1 - w)·emo + w·mid for A2M2E.
    config : TrainConfig
        ``midlevel_weight`` and the ``amp`` option.

    Returns
    -------
    torch.Tensor
        The batch loss (detached scalar).
    """
    import torch

    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=getattr(torch, AMP_DTYPE_NAME), enabled=config.amp):
        out = model(x)  # emotions [B, 8], midlevel [B, 7] | None
    loss = _loss(out, y_emotions, y_midlevel, system, config)
    loss.backward()
    optimizer.step()
    return loss.detach()


def adversarial_step(
    model: MERModel,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y_emotions: torch.Tensor,
    *,
    config: TrainConfig,
) -> tuple[torch.Tensor, AttackResult]:
    """The extra step of adversarial training (docs/paper.md §6) on one batch.

    The model, in eval mode, attacks the batch with the attack of ``config.adv_attack``
    (built through the registry :func:`robustmer.attacks.build_attack`, so any registered
    attack works); back in train mode, one optimiser step on the adversarial batch with the
    emotion MSE only.

    Parameters
    ----------
    model : MERModel
    optimizer : torch.optim.Optimizer
    x : torch.Tensor, shape [B, 1, F, 149]
    y_emotions : torch.Tensor, shape [B, 8]
    config : TrainConfig

    Returns
    -------
    (torch.Tensor, AttackResult)
        The adversarial batch's emotion MSE (detached scalar) and the attack's result.
    """
    import torch
    import torch.nn.functional as F

    from robustmer.attacks import build_attack

    model.eval()
    result = build_attack(config.adv_attack, model)(x, y_emotions)
    model.train()
    x_adv = result.x_adv.detach().to(x.device)  # [B, 1, F, 149]
    x_adv = x_adv.contiguous(memory_format=_memory_format(config))
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=getattr(torch, AMP_DTYPE_NAME), enabled=config.amp):
        out = model(x_adv)  # emotions [B, 8]
    loss = F.mse_loss(out.emotions.float(), y_emotions)
    loss.backward()
    optimizer.step()
    return loss.detach(), result


@dataclass(frozen=True)
class _Job:
    """What one ``train`` call trains: fixed for the whole run.

    Attributes
    ----------
    out : Path
        Run directory.
    config : TrainConfig
    system : SystemSpec
    cache : Cache
    device : torch.device
    """

    out: Path
    config: TrainConfig
    system: SystemSpec
    cache: Cache
    device: torch.device

    @property
    def label(self) -> str:
        return f"{self.system.name} seed {self.config.seed}"

    @property
    def memory_format(self) -> torch.memory_format:
        return _memory_format(self.config)


@dataclass
class _TrainData:
    """The training and validation splits, on the run's device.

    Attributes
    ----------
    x_train : torch.Tensor, shape [n, 1, F, 149]
    y_train : torch.Tensor, shape [n, 8]
    m_train : torch.Tensor, shape [n, 7]
    x_val : torch.Tensor, shape [n_val, 1, F, 149]
    y_val : np.ndarray, float64, shape (n_val, 8)
    m_val : np.ndarray, float64, shape (n_val, 7)
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    m_train: torch.Tensor
    x_val: torch.Tensor
    y_val: np.ndarray
    m_val: np.ndarray


@dataclass
class TrainState:
    """Everything training changes, committed to ``state.pt`` after every epoch.

    Attributes
    ----------
    model : MERModel
    optimizer : torch.optim.Optimizer
    epoch : int
        Last completed (committed) epoch, 0 before the first.
    best_score : float
        Best monitored validation score so far.
    best_epoch : int
        Epoch of ``best_score`` (0 before the first epoch).
    elapsed : float
        Wall time of the completed epochs [s].
    counters : dict of str to int
        The :data:`COUNTERS`.
    rows : list of dict
        ``metrics.csv`` rows of the completed epochs.
    """

    model: MERModel
    optimizer: torch.optim.Optimizer
    epoch: int = 0
    best_score: float = -math.inf
    best_epoch: int = 0
    elapsed: float = 0.0
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    rows: list[dict[str, Any]] = field(default_factory=list)

    def stopped(self, config: TrainConfig) -> bool:
        """Whether early stopping ended the run after :attr:`epoch`."""
        return self.epoch > 0 and self.epoch - self.best_epoch >= config.patience

    def to_saved(self, config: TrainConfig) -> dict[str, Any]:
        """The content of ``state.pt`` (tensors and plain containers only)."""
        return {
            "format": STATE_FORMAT,
            "identity": json.dumps(config.identity(), sort_keys=True),
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "elapsed": self.elapsed,
            "counters": dict(self.counters),
            "rows": self.rows,
        }

    def restore(self, saved: dict[str, Any]) -> None:
        """Load a ``state.pt`` content written by :meth:`to_saved`."""
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.epoch, self.best_epoch = int(saved["epoch"]), int(saved["best_epoch"])
        self.best_score = float(saved["best_score"])
        self.elapsed = float(saved["elapsed"])
        self.counters.update({k: int(v) for k, v in saved["counters"].items()})
        self.rows = [dict(r) for r in saved["rows"]]


def _job(
    cache: str | os.PathLike[str] | Cache,
    out_dir: str | os.PathLike[str],
    config: TrainConfig,
    device: torch.device | None,
) -> _Job:
    """Check the output location, load the cache, pick the device."""
    from robustmer.data import Cache, load_cache

    system = get_system(config.system)
    out = check_writable(out_dir, "run directory")
    cache_obj = cache if isinstance(cache, Cache) else load_cache(cache)
    dev = device if device is not None else resolve_device(config.device)
    return _Job(out, config, system, cache_obj, dev)


def _train_data(job: _Job) -> _TrainData:
    """The train and validation splits on the device; checks the cache can train a model."""
    from robustmer.models.mer import MIN_FRAMES

    path, config = job.cache.path, job.config
    x_tr, y_tr, m_tr, _ = job.cache.arrays("train")
    x_va, y_va, m_va, _ = job.cache.arrays("validation")
    if x_tr.shape[0] < config.batch_size:
        raise RobustmerError(
            f"{path}: {x_tr.shape[0]} training clips; expected at least one full batch "
            f"of {config.batch_size}"
        )
    if x_va.shape[0] < 2:
        raise RobustmerError(f"{path}: {x_va.shape[0]} validation clips; expected at least 2")
    if x_tr.shape[2] < MIN_FRAMES:
        raise RobustmerError(
            f"{path}: excerpts of {x_tr.shape[2]} frames; expected at least {MIN_FRAMES}"
        )
    dev = job.device
    return _TrainData(
        x_tr.to(dev),  # [n, 1, F, 149]
        y_tr.to(dev),  # [n, 8]
        m_tr.to(dev),  # [n, 7]
        x_va.to(dev),  # [n_val, 1, F, 149]
        y_va.numpy().astype(np.float64),
        m_va.numpy().astype(np.float64),
    )


def _finished_or_start(job: _Job) -> dict[str, Any] | None:
    """``final.json`` of a finished run of this configuration; else start or check the run."""
    record = _run_record(job.config, job.system, job.cache, job.out)
    if not (job.out / CONFIG_FILE).is_file():
        write_json(job.out / CONFIG_FILE, record)
        return None
    _check_run_dir(job.out, record)
    if (job.out / FINAL_FILE).is_file():
        logger.info("%s: finished run found, skipping", job.out)
        return read_json(job.out / FINAL_FILE)
    return None


def _initial_state(job: _Job) -> TrainState:
    """A fresh model (seeded) and optimiser, or the state of the last committed epoch."""
    import torch

    from robustmer.models import build_model

    torch.manual_seed(job.config.seed)
    model = build_model(job.system.arch, width=job.config.width).to(job.device)
    model = model.to(memory_format=job.memory_format)
    state = TrainState(model, torch.optim.Adam(model.parameters(), lr=job.config.lr))
    saved = _load_state(job.out, job.device)
    if saved is None:
        return state
    if saved["identity"] != json.dumps(job.config.identity(), sort_keys=True):
        raise RobustmerError(
            f"{job.out / STATE_FILE}: resume state of another configuration; expected the "
            f"configuration of {job.out / CONFIG_FILE}"
        )
    state.restore(saved)
    on_disk = _best_epoch_on_disk(job.out)
    if on_disk != state.best_epoch:
        if state.best_epoch != state.epoch:
            raise RobustmerError(
                f"{job.out / BEST_FILE}: holds epoch {on_disk}, the resume state says best "
                f"epoch {state.best_epoch}; expected a consistent run: delete the run directory"
            )
        _save_best(job.out, model, job.config, job.cache, state.best_epoch, state.best_score)
    _write_metrics(job.out / METRICS_FILE, state.rows)
    logger.info(
        "%s: resuming after epoch %d (best %.4f at epoch %d)",
        job.out,
        state.epoch,
        state.best_score,
        state.best_epoch,
    )
    return state


def _adversarial_update(
    job: _Job, state: TrainState, xb: torch.Tensor, yb: torch.Tensor
) -> torch.Tensor:
    """The adversarial step on one batch; counts the attack's work. Returns its loss."""
    batch = xb.shape[0]
    adv_loss, result = adversarial_step(state.model, state.optimizer, xb, yb, config=job.config)
    iterations = int(result.iterations.sum())
    counters = state.counters
    counters["attack_calls"] += 1
    counters["attack_clip_iterations"] += iterations
    counters["forward_clip_passes"] += int(result.model_passes) + batch
    counters["backward_clip_passes"] += iterations + batch
    counters["optimizer_steps"] += 1
    counters["adversarial_steps"] += 1
    return adv_loss


def _train_batches(
    job: _Job, state: TrainState, data: _TrainData, epoch: int, bar: _Bars | None
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One pass over the shuffled training split; returns the step and adversarial losses."""
    import torch

    config, batch = job.config, job.config.batch_size
    n_train = data.x_train.shape[0]
    n_batches = n_train // batch  # the last incomplete batch is dropped
    adversarial = is_adversarial_epoch(job.system, config, epoch)
    shuffle = torch.Generator().manual_seed(epoch_seed(config.seed, epoch, _SHUFFLE_STREAM))
    perm = torch.randperm(n_train, generator=shuffle).to(job.device)  # [n_train]
    torch.manual_seed(epoch_seed(config.seed, epoch, _DROPOUT_STREAM))
    state.model.train()
    if bar is not None:
        bar.start_epoch(n_batches, adversarial)
    losses, adv_losses = [], []
    for b in range(n_batches):
        idx = perm[b * batch : (b + 1) * batch]  # [B]
        xb = data.x_train[idx].contiguous(memory_format=job.memory_format)  # [B, 1, F, 149]
        yb, mb = data.y_train[idx], data.m_train[idx]  # [B, 8], [B, 7]
        losses.append(
            training_step(
                state.model, state.optimizer, xb, yb, mb, system=job.system, config=config
            )
        )
        state.counters["forward_clip_passes"] += batch
        state.counters["backward_clip_passes"] += batch
        state.counters["optimizer_steps"] += 1
        if adversarial:
            adv_losses.append(_adversarial_update(job, state, xb, yb))
        if bar is not None:
            bar.batch_done()
    return losses, adv_losses


def _validate(job: _Job, state: TrainState, data: _TrainData) -> tuple[float, float, float]:
    """Validation emotion and mid-level average correlations and the monitored score."""
    p_emo, p_mid = predict(
        state.model,
        data.x_val,
        batch_size=job.config.eval_batch_size,
        channels_last=job.config.channels_last,
    )
    n_val = data.x_val.shape[0]
    state.counters["validation_clip_passes"] += n_val
    state.counters["forward_clip_passes"] += n_val
    emo_corr = average_correlation(data.y_val, p_emo)
    mid_corr = average_correlation(data.m_val, p_mid) if p_mid is not None else math.nan
    return emo_corr, mid_corr, _monitored(job.system, job.config, emo_corr, mid_corr)


def run_epoch(
    job: _Job, state: TrainState, data: _TrainData, epoch: int, bar: _Bars | None = None
) -> dict[str, Any]:
    """Train and validate 1-based ``epoch``; update ``state`` (not yet committed).

    Returns
    -------
    dict
        The epoch's ``metrics.csv`` row (:data:`METRICS_COLUMNS`).
    """
    import torch

    t0 = time.perf_counter()
    losses, adv_losses = _train_batches(job, state, data, epoch, bar)
    emo_corr, mid_corr, score = _validate(job, state, data)
    # The first epoch always counts (so a checkpoint exists); a NaN score never does.
    improved = state.best_epoch == 0 or (
        not math.isnan(score) and (math.isnan(state.best_score) or score > state.best_score)
    )
    if improved:
        state.best_score, state.best_epoch = score, epoch
    seconds = time.perf_counter() - t0
    state.elapsed += seconds
    state.epoch = epoch
    row = {
        "epoch": epoch,
        "train_loss": float(torch.stack(losses).mean()),
        "adv_loss": float(torch.stack(adv_losses).mean()) if adv_losses else math.nan,
        "val_avg_corr": emo_corr,
        "val_mid_corr": mid_corr,
        "monitored": score,
        "best": improved,
        "best_score": state.best_score,
        "seconds": seconds,
        "adversarial": is_adversarial_epoch(job.system, job.config, epoch),
    }
    state.rows.append(row)
    return row


def commit_epoch(job: _Job, state: TrainState, row: dict[str, Any]) -> None:
    """Write the epoch to disk: ``state.pt`` (the commit), the best checkpoint if it
    improved, then ``metrics.csv``."""
    _save_state(job.out, state.to_saved(job.config))
    if row["best"]:
        _save_best(job.out, state.model, job.config, job.cache, row["epoch"], state.best_score)
    _write_metrics(job.out / METRICS_FILE, state.rows)
    logger.info(
        "%s epoch %d%s: train loss %.5f, val corr %.4f, monitored %.4f%s (%.1f s)",
        job.label,
        row["epoch"],
        " (adversarial)" if row["adversarial"] else "",
        row["train_loss"],
        row["val_avg_corr"],
        row["monitored"],
        " *" if row["best"] else "",
        row["seconds"],
    )


class _Bars:
    """Progress display of a training run: epochs, and batches of the current epoch."""

    def __init__(self, bar: Any, job: _Job, state: TrainState) -> None:
        self.bar, self.label = bar, job.label
        self.epochs = bar.add_task(self.label, total=job.config.max_epochs, completed=state.epoch)
        self.batches = bar.add_task("  batches", total=0)

    def start_epoch(self, n_batches: int, adversarial: bool) -> None:
        text = "  adversarial batches" if adversarial else "  batches"
        self.bar.reset(self.batches, total=n_batches, description=text)

    def batch_done(self) -> None:
        self.bar.advance(self.batches)

    def epoch_done(self, state: TrainState) -> None:
        self.bar.update(
            self.epochs,
            completed=state.epoch,
            description=f"{self.label} val r={state.rows[-1]['val_avg_corr']:.3f} "
            f"best={state.best_score:.3f}@{state.best_epoch}",
        )


def _final_metrics(job: _Job) -> dict[str, Any]:
    """Regression reports of the best checkpoint on the three splits."""
    from robustmer.models import load_model

    best_model = load_model(job.out / BEST_FILE, device=job.device)
    best_model = best_model.to(memory_format=job.memory_format)
    return {
        split: _split_report(best_model, job.cache, split, job.config, job.device)
        for split in ("train", "validation", "test")
    }


def _final_record(job: _Job, state: TrainState, metrics: dict[str, Any]) -> FinalMetrics:
    """The content of ``final.json``."""
    import torch

    epochs_run, device = len(state.rows), job.device
    return FinalMetrics(
        system=job.system.name,
        seed=job.config.seed,
        arch=job.system.arch,
        width=job.config.width,
        monitor=job.config.monitor,
        best_epoch=state.best_epoch,
        best_score=state.best_score,
        epochs_run=epochs_run,
        stopped_early=epochs_run < job.config.max_epochs,
        metrics=metrics,
        cost=Cost(
            wall_seconds=state.elapsed,
            epochs_run=epochs_run,
            adversarial_epochs=sum(bool(r["adversarial"]) for r in state.rows),
            **state.counters,
            device=str(device),
            device_name=device_name(device),
            torch=torch.__version__,
        ),
    )


def train(
    cache: str | os.PathLike[str] | Cache,
    out_dir: str | os.PathLike[str],
    config: TrainConfig,
    *,
    device: torch.device | None = None,
    progress: bool = True,
    on_epoch_end: EpochHook | None = None,
) -> dict[str, Any]:
    """Train one system with one seed; resumable (docs/paper.md §6).

    Parameters
    ----------
    cache : str, PathLike or robustmer.data.Cache
        Prepared data cache (its train split is trained on, validation monitors early
        stopping, test is only evaluated at the end).
    out_dir : str or PathLike
        Run directory (see the module docstring). An existing run of the same configuration
        is resumed from its last completed epoch, or skipped if finished. Checked for
        writability before anything else.
    config : TrainConfig
    device : torch.device, optional
        Where to train (resolved by the caller); default: ``config.device`` resolved.
    progress : bool
        Show a progress bar (epochs, with the current validation correlation).
    on_epoch_end : callable, optional
        Called as ``on_epoch_end(epoch, row)`` after each epoch is committed to disk.

    Returns
    -------
    dict
        The content of ``final.json``: ``metrics`` (per split ``emotions`` and, for
        bottleneck models, ``midlevel`` regression reports of the best checkpoint),
        ``best_epoch``, ``best_score``, ``epochs_run``, ``stopped_early`` and ``cost``.

    Raises
    ------
    RobustmerError
        Unknown system, unwritable ``out_dir``, unusable cache, or ``out_dir`` holding a
        run of another configuration or other data.

    Notes
    -----
    Each epoch (:func:`run_epoch`): the training clips are shuffled with a generator seeded
    from ``(seed, epoch)``; dropout draws from the global RNG re-seeded from
    ``(seed, epoch)``; each full batch of ``batch_size`` clips takes one Adam step on the
    MSE loss. On adversarial epochs (adversarial systems, 1-based epoch divisible by
    ``adv_every``), after every such step the model, in eval mode, attacks the batch with
    the attack of ``adv_attack`` (default: the paper attack, 50 steps of size 0.002), and
    one more Adam step is taken, in train mode, on the adversarial batch with the emotion MSE only.
    Then :func:`commit_epoch` writes it to disk.
    """
    job = _job(cache, out_dir, config, device)
    data = _train_data(job)
    finished = _finished_or_start(job)
    if finished is not None:
        return finished
    state = _initial_state(job)
    bar_context = progress_bar() if progress else contextlib.nullcontext()
    with _deterministic(job.device), bar_context as bar:
        bars = _Bars(bar, job, state) if bar is not None else None
        for epoch in range(state.epoch + 1, config.max_epochs + 1):
            if state.stopped(config):
                break
            row = run_epoch(job, state, data, epoch, bars)
            commit_epoch(job, state, row)
            if bars is not None:
                bars.epoch_done(state)
            if on_epoch_end is not None:
                on_epoch_end(epoch, row)
        t0 = time.perf_counter()
        metrics = _final_metrics(job)
        state.elapsed += time.perf_counter() - t0
    _final_record(job, state, metrics).write(job.out / FINAL_FILE)
    logger.info(
        "%s: done, best epoch %d, test avg corr %.4f",
        job.label,
        state.best_epoch,
        metrics["test"]["emotions"]["avg_corr"],
    )
    return read_json(job.out / FINAL_FILE)


@dataclass
class Run:
    """A trained run, loaded by :func:`load_run`.

    Attributes
    ----------
    path : Path
        Run directory.
    model : MERModel
        Best checkpoint, in eval mode, on the requested device.
    config : TrainConfig
    system : SystemSpec
    cache : robustmer.data.Cache
        The data cache the run was trained on.
    final : dict or None
        Content of ``final.json`` (``None`` while the run is unfinished).
    """

    path: Path
    model: MERModel
    config: TrainConfig
    system: SystemSpec
    cache: Cache
    final: dict[str, Any] | None


def _recorded_cache_path(run_dir: Path, record: dict) -> Path:
    entry = record.get("cache", {})
    candidates = []
    if entry.get("relative_path"):
        candidates.append((run_dir / entry["relative_path"]).resolve())
    if entry.get("path"):
        candidates.append(Path(entry["path"]))
    for candidate in candidates:
        if (candidate / "manifest.json").is_file():
            return candidate
    raise RobustmerError(
        f"{run_dir / CONFIG_FILE}: the recorded data cache "
        f"({', '.join(str(c) for c in candidates) or 'none'}) was not found; expected it "
        "beside the run as when it was trained, or pass the cache explicitly"
    )


def load_run(
    run_dir: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    cache: str | os.PathLike[str] | Cache | None = None,
) -> Run:
    """Load a run's best model, configuration and data cache.

    Parameters
    ----------
    run_dir : str or PathLike
    device : str or torch.device
        Where to put the model (``"auto"``, ``"cpu"``, ``"cuda[:N]"``).
    cache : str, PathLike or Cache, optional
        Use this cache instead of the recorded one (its manifest hash must match).

    Raises
    ------
    RobustmerError
        Missing run directory, config or checkpoint, or a cache of other data.
    """
    from robustmer.data import Cache, load_cache
    from robustmer.models import ModelConfig, load_model

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RobustmerError(f"{run_dir}: run directory not found; expected a training run")
    record = read_json(run_dir / CONFIG_FILE)
    if record.get("format") != RUN_FORMAT:
        raise RobustmerError(
            f"{run_dir / CONFIG_FILE}: not a robustmer training run; expected format {RUN_FORMAT}"
        )
    config = TrainConfig.from_dict(record["train_config"])
    system = get_system(config.system)
    best = run_dir / BEST_FILE
    if not best.is_file():
        raise RobustmerError(
            f"{best}: no checkpoint; expected a run that completed at least one epoch"
        )
    dev = resolve_device(device) if isinstance(device, str) else device
    model = load_model(best, expected=ModelConfig(system.arch, config.width), device=dev)
    if cache is None:
        cache_obj = load_cache(_recorded_cache_path(run_dir, record))
    else:
        cache_obj = cache if isinstance(cache, Cache) else load_cache(cache)
    recorded_hash = record.get("cache", {}).get("manifest_hash")
    if cache_obj.manifest_hash != recorded_hash:
        raise RobustmerError(
            f"{cache_obj.path}: data cache differs from the one {run_dir} was trained on "
            f"(manifest hash {cache_obj.manifest_hash[:12]} vs {str(recorded_hash)[:12]}); "
            "expected the same cache"
        )
    final_path = run_dir / FINAL_FILE
    final = read_json(final_path) if final_path.is_file() else None
    return Run(
        path=run_dir, model=model, config=config, system=system, cache=cache_obj, final=final
    )
