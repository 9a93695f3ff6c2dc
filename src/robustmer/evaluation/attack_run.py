"""Attack one trained run and log the per-clip results (docs/paper.md §7, §8).

``attack_run(RUN_DIR, config)`` loads the run's best checkpoint and its data cache, attacks
every clip of a split (the first ``config.max_clips`` when set) in batches with the attack of
``config`` (any
:class:`robustmer.attacks.AttackConfig`) and writes, in ``RUN_DIR/attacks/<config.key()>/``
(:func:`robustmer.records.attack_dir`; the key is derived from the full settings, so two
attacks never share a directory):

``clips.parquet`` / ``clips.csv``
    One row per clip, the columns of :data:`robustmer.records.CLIP_COLUMNS`. ``adv_*`` is
    :attr:`AttackResult.pred`, the prediction the paper logs (for the paper attack's
    reference mode that of the last iteration, not of the returned example).
``summary.json``
    A :class:`robustmer.records.AttackSummary`: the settings, the data and checkpoint it
    was run on, the aggregate results and the cost. Its presence with the same identity
    means the attack is done: a re-run returns it without attacking again.
``examples.npy`` (with ``save_examples``)
    float32 ``[n, 1, frames, 149]``, the adversarial examples in the table's row order.

``attack_runs(RUN_DIRS, config, execution=Execution(stack_runs=True))`` does the same for
several runs, attacking the clips of runs of one architecture together in one batch
(:mod:`robustmer.attacks.stack`; each run's files exactly as ``attack_run`` writes them, its
numbers those of attacking it alone up to float rounding).

Clips whose input gradient of the MSE is exactly zero at the start (e.g. a label equal to
the prediction) cannot be moved by a gradient attack: they are flagged in the table
(``zero_gradient``) and named in one logged warning.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from robustmer._io import atomic_path, check_writable, sha256_file, to_jsonable
from robustmer.errors import RobustmerError
from robustmer.names import EMOTIONS, MIDLEVEL_FEATURES
from robustmer.provenance import device_name
from robustmer.records import (
    BEST_FILE,
    CLIPS_STEM,
    EXAMPLES_FILE,
    SUMMARY_FILE,
    AttackSummary,
    Cost,
    attack_dir,
    clip_columns,
    write_clips,
)

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from robustmer.attacks import AttackConfig, AttackResult
    from robustmer.attacks.execution import Execution
    from robustmer.training import Run

__all__ = ["attack_run", "attack_runs"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class _Outcome:
    """The concatenated per-clip results of all batches (numpy, in clip order)."""

    arrays: dict[str, np.ndarray]
    zero_gradient: np.ndarray  # [n] bool
    seconds: float
    model_passes: int
    execution: str = "eager"


@dataclasses.dataclass
class _Job:
    """One run to attack: its model and inputs in the attack's domain, and where to write."""

    run: Run
    model: torch.nn.Module
    x: torch.Tensor  # [n, 1, F, 149] or audio [n, samples]
    y: torch.Tensor  # [n, 8]
    ids: list[int]
    out_dir: Path
    identity: dict[str, Any]
    done: AttackSummary | None

    @property
    def label(self) -> str:
        return f"{self.run.system.name}-seed{self.run.config.seed}"


def attack_run(
    run_dir: str | os.PathLike[str],
    config: AttackConfig,
    *,
    split: str = "test",
    batch_size: int = 36,
    device: torch.device | str | None = None,
    save_examples: bool = False,
    progress: bool = True,
    out: str | os.PathLike[str] | None = None,
    save_audio: str | os.PathLike[str] | None = None,
    execution: Execution | None = None,
) -> AttackSummary:
    """Attack a trained run's split; write ``clips.{parquet,csv}`` and ``summary.json``.

    Parameters
    ----------
    run_dir : str or PathLike
        A training run (``robustmer.training.load_run``).
    config : AttackConfig
        The attack and its settings (``robustmer.attacks.attack_config(name, ...)``).
    split : str
        ``"test"`` (the paper's 36 clips), ``"validation"`` or ``"train"``.
    batch_size : int
        Clips attacked together (results do not depend on it).
    device : torch.device, optional
        Where to attack; default CUDA when available, else the CPU.
    save_examples : bool
        Also write the adversarial examples as ``examples.npy``.
    progress : bool
        Show a progress bar per iteration block with the current mean correlation.
    out : str or PathLike, optional
        Output directory; default ``RUN_DIR/attacks/<config.key()>``
        (:func:`robustmer.records.attack_dir`).
    save_audio : str or PathLike, optional
        Waveform domain: also write each clip's clean and adversarial audio (FLAC) and a
        JSON side-car to this directory (:func:`robustmer.evaluation.audio.write_listening`).
    execution : Execution, optional
        How to compute it (:mod:`robustmer.attacks.execution`; its ``compile`` applies
        here, ``stack_runs`` only to :func:`attack_runs`); default eager. Not part of the
        storage key: the numbers change only by float rounding.

    Returns
    -------
    AttackSummary
        The content of ``summary.json``.

    Raises
    ------
    RobustmerError
        Unknown split, an empty split, invalid settings, or a run without a checkpoint.
    """
    from robustmer.evaluation.audio import has_listening, write_listening

    _check_options(config, batch_size)
    check_writable(out if out is not None else Path(run_dir) / "attacks", "attack output directory")
    if save_audio is not None and config.domain != "waveform":
        raise RobustmerError(
            f"attack save_audio {str(save_audio)!r}: listening files need an attack in the "
            f"waveform domain; expected domain 'waveform', got {config.domain!r}"
        )
    job = _job(run_dir, config, split, device, out, save_examples)
    if execution is not None:  # e.g. CUDA graphs on the CPU: an error even if done
        execution.check_device(next(job.model.parameters()).device)
    if job.done is not None and (save_audio is None or has_listening(save_audio, job.ids)):
        logger.info("%s: attack already done with these settings; skipped", job.out_dir)
        return job.done
    label = f"{job.label} {config.name}"
    (outcome,) = _attack_batches([job], config, batch_size, progress, label, execution)
    summary = _finish(job, config, outcome, save_examples)
    if save_audio is not None:
        write_listening(save_audio, job.run, config, job.ids, job.x, job.y, outcome.arrays)
    return summary


def attack_runs(
    run_dirs: Sequence[str | os.PathLike[str]],
    config: AttackConfig,
    *,
    split: str = "test",
    batch_size: int = 36,
    device: torch.device | str | None = None,
    save_examples: bool = False,
    progress: bool = True,
    execution: Execution | None = None,
) -> list[AttackSummary]:
    """Attack several runs with one attack; with ``execution.stack_runs``, together.

    Each run's results go to its own ``RUN/attacks/<key>/`` exactly as :func:`attack_run`
    writes them, and a run whose attack is already done is skipped. With stacking, the runs
    still to attack are grouped by architecture (same parameter shapes), clip count and data
    cache; each group of two or more is attacked in one batch of ``R · batch_size`` clips
    (:class:`robustmer.attacks.stack.StackedModel`), which gives every clip the numbers of
    attacking its run alone up to float rounding.

    Parameters
    ----------
    run_dirs : sequence of str or PathLike
        Training runs.
    config, split, device, save_examples, progress
        As for :func:`attack_run`.
    batch_size : int
        Clips of each run per batch (a stacked batch has ``R · batch_size`` clips).
    execution : Execution, optional
        ``stack_runs`` and ``compile`` (:mod:`robustmer.attacks.execution`); default eager,
        one run at a time.

    Returns
    -------
    list of AttackSummary
        One per run, in the order of ``run_dirs``.
    """
    from robustmer.attacks.execution import Execution

    _check_options(config, batch_size)
    execution = execution or Execution()
    jobs = []
    for run_dir in run_dirs:
        check_writable(Path(run_dir) / "attacks", "attack output directory")
        jobs.append(_job(run_dir, config, split, device, None, save_examples))
        execution.check_device(next(jobs[-1].model.parameters()).device)
    for job in jobs:
        if job.done is not None:
            logger.info("%s: attack already done with these settings; skipped", job.out_dir)
    for group in _groups([j for j in jobs if j.done is None], execution.stack_runs):
        label = f"{_group_label(group)} {config.name}"
        outcomes = _attack_batches(group, config, batch_size, progress, label, execution)
        for job, outcome in zip(group, outcomes, strict=True):
            job.done = _finish(job, config, outcome, save_examples)
    return [job.done for job in jobs if job.done is not None]


def _job(
    run_dir: str | os.PathLike[str],
    config: AttackConfig,
    split: str,
    device: torch.device | str | None,
    out: str | os.PathLike[str] | None,
    save_examples: bool,
) -> _Job:
    """Load a run, its split in the attack's domain and a finished result, if any."""
    from robustmer.evaluation.audio import domain_inputs
    from robustmer.training import load_run

    run = load_run(run_dir, device="auto" if device is None else device)
    x, y, ids = _split_arrays(run, split, config.max_clips)
    model, x = domain_inputs(run, config, x, ids)  # waveform domain: audio [n, samples]
    out_dir = Path(out) if out is not None else attack_dir(run.path, config.key(), split)
    identity = _identity(run, config, split, len(ids))
    done = _finished(out_dir, identity, save_examples)
    return _Job(run, model, x, y, ids, out_dir, identity, done)


def _groups(jobs: list[_Job], stack: bool) -> list[list[_Job]]:
    """Runs attacked together: one each, or (``stack``) by architecture, clips and cache."""
    if not stack:
        return [[job] for job in jobs]
    groups: dict[tuple, list[_Job]] = {}
    for job in jobs:
        shapes = tuple((k, tuple(v.shape)) for k, v in job.model.state_dict().items())
        cache = getattr(job.run.cache, "manifest_hash", None)
        groups.setdefault((shapes, len(job.ids), cache), []).append(job)
    return list(groups.values())


def _group_label(group: list[_Job]) -> str:
    if len(group) == 1:
        return group[0].label
    systems = sorted({job.run.system.name for job in group})
    seeds = ",".join(str(job.run.config.seed) for job in group)
    return f"{'+'.join(systems)} seeds {seeds}"


def _finish(
    job: _Job, config: AttackConfig, outcome: _Outcome, save_examples: bool
) -> AttackSummary:
    """Write one run's per-clip table, examples and summary; log the outcome."""
    table = _clip_table(job.run, config, job.ids, job.y, outcome)
    _write_outputs(job.out_dir, table, outcome, save_examples)
    summary = _summary(job.run, config, job.identity, table, outcome)
    summary.write(job.out_dir / SUMMARY_FILE)
    label = f"{job.label} {config.name}"
    _warn_zero_gradient(label, table)
    logger.info(
        "%s: MAE %.4f -> %.4f (ΔMAE %+.4f), avg corr %.3f -> %.3f, %.1f s",
        label,
        summary.mae_clean,
        summary.mae_adv,
        summary.delta_mae,
        summary.avg_corr_clean,
        summary.avg_corr_adv,
        summary.cost.wall_seconds,
    )
    return summary


def _check_options(config: object, batch_size: int) -> None:
    from robustmer.attacks import AttackConfig

    if not isinstance(config, AttackConfig):
        raise RobustmerError(
            f"attack settings {config!r}: expected an AttackConfig "
            "(robustmer.attacks.attack_config(name, ...))"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise RobustmerError(f"attack batch_size {batch_size!r}: invalid; expected an int >= 1")


def _split_arrays(
    run: Run, split: str, max_clips: int | None
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """``x [n, 1, F, 149]``, ``y [n, 8]`` and the clip ids of a split (RobustmerError if
    empty), its first ``max_clips`` clips only when that is set (the attack's setting)."""
    x, y, _mid, ids = run.cache.arrays(split)
    if len(ids) == 0:
        raise RobustmerError(
            f"{run.cache.path}: split {split!r} is empty; expected clips to attack"
        )
    n = len(ids) if max_clips is None else min(max_clips, len(ids))
    return x[:n], y[:n], list(ids)[:n]


def _identity(run: Run, config: AttackConfig, split: str, n: int) -> dict[str, Any]:
    """What a finished result must match to be reused (:meth:`AttackSummary.identity`)."""
    best = Path(run.path) / BEST_FILE
    return to_jsonable(
        {
            "attack": config.to_dict(),
            "split": split,
            "n_clips": n,
            "checkpoint_sha256": sha256_file(best) if best.is_file() else None,
            "cache_manifest_sha256": getattr(run.cache, "manifest_hash", None),
        }
    )


def _finished(out_dir: Path, identity: dict[str, Any], save_examples: bool) -> AttackSummary | None:
    """The summary of a finished identical attack in ``out_dir``, else None."""
    path = out_dir / SUMMARY_FILE
    if not (path.is_file() and (out_dir / f"{CLIPS_STEM}.parquet").is_file()):
        return None
    try:
        previous = AttackSummary.read(path)
    except RobustmerError as exc:  # another version or a damaged file: redo it
        logger.info("%s: %s; attacking again", path, exc)
        return None
    if to_jsonable(previous.identity()) != identity:
        return None
    if save_examples and not (out_dir / EXAMPLES_FILE).is_file():
        return None
    return previous


def _attack_batches(
    jobs: list[_Job],
    config: AttackConfig,
    batch_size: int,
    progress: bool,
    label: str,
    execution: Execution | None,
) -> list[_Outcome]:
    """Attack the jobs' clips in batches (one run: its own model; several: stacked, batch
    ``r`` rows ``r · b ... (r + 1) · b - 1``); flag zero-gradient clips first."""
    import torch

    from robustmer.attacks import build_attack, zero_gradient
    from robustmer.attacks.execution import Execution, prepare_model
    from robustmer.attacks.stack import StackedModel, split_result, stack_rows
    from robustmer.progress import progress_bar

    execution, runs = execution or Execution(), len(jobs)
    model = jobs[0].model if runs == 1 else StackedModel([j.model for j in jobs])
    dev = next(jobs[0].model.parameters()).device
    model = prepare_model(model, execution, dev)
    attack = build_attack(config, model, normalization=jobs[0].run.cache.normalization)
    n, per_batch = len(jobs[0].x), config.max_iterations()
    batches = [(lo, min(lo + batch_size, n)) for lo in range(0, n, batch_size)]
    results: list[list[AttackResult]] = [[] for _ in jobs]
    zero: list[list[torch.Tensor]] = [[] for _ in jobs]
    logger.info("%s: attacking %d clips x %d run(s) on %s", label, n, runs, dev)
    with progress_bar(enabled=progress) as bar:
        task = bar.add_task(label, total=len(batches) * per_batch)
        for b_idx, (lo, hi) in enumerate(batches):
            base = b_idx * per_batch

            def report(it: int, n_active: int, mean_r: float, base: int = base) -> None:
                bar.update(
                    task,
                    completed=base + min(it, per_batch),
                    description=f"{label} [{n_active} active, mean r {mean_r:+.3f}]",
                )

            xb = stack_rows([j.x[lo:hi] for j in jobs]).to(dev)  # [R·b, 1, F, 149]
            yb = stack_rows([j.y[lo:hi] for j in jobs]).to(dev)  # [R·b, 8]
            flags = zero_gradient(model.eval(), xb, yb).reshape(runs, -1)  # [R, b]
            parts = split_result(attack(xb, yb, callback=report), runs)
            for r in range(runs):
                zero[r].append(flags[r])
                results[r].append(parts[r])
            bar.update(task, completed=base + per_batch)
    how = execution.label(runs)
    return [_concat(results[r], torch.cat(zero[r]).numpy(), how) for r in range(runs)]


def _concat(results: list[AttackResult], zero: np.ndarray, execution: str) -> _Outcome:
    import torch

    names = ["x_adv", "pred_clean", "pred", "pred_of_x_adv", "iterations", "converged"]
    names += ["threshold", "l2", "linf", "snr_db"]
    if results[0].midlevel_clean is not None:
        names += ["midlevel_clean", "midlevel_adv"]
    arrays = {k: torch.cat([getattr(r, k) for r in results]).numpy() for k in names}
    return _Outcome(
        arrays=arrays,
        zero_gradient=zero,
        seconds=float(sum(r.seconds for r in results)),
        model_passes=int(sum(r.model_passes for r in results)),
        execution=execution,
    )


def _clip_table(
    run: Run, config: AttackConfig, ids: list[int], y: torch.Tensor, outcome: _Outcome
) -> pd.DataFrame:
    """The per-clip table (:data:`robustmer.records.CLIP_COLUMNS`)."""
    import pandas as pd

    a, n = outcome.arrays, len(ids)
    y_np = y.numpy().astype(np.float64)  # [n, 8]
    epsilon = getattr(config, "epsilon", None)  # the common name of the threat radius
    table: dict[str, Any] = {
        "clip_id": np.asarray(ids, dtype=np.int64),
        "system": [run.system.name] * n,
        "seed": np.full(n, int(run.config.seed), dtype=np.int64),
        "attack": [config.name] * n,
        "attack_key": [config.key()] * n,
        "epsilon": np.full(n, math.nan if epsilon is None else float(epsilon)),
        "iterations": a["iterations"],
        "converged": a["converged"],
        "threshold": a["threshold"],
        "l2": a["l2"].astype(np.float64),
        "linf": a["linf"].astype(np.float64),
        "snr_db": a["snr_db"],
        "zero_gradient": outcome.zero_gradient,
        "mae_clean": np.abs(y_np - a["pred_clean"]).mean(axis=1),
        "mae_adv": np.abs(y_np - a["pred"]).mean(axis=1),
    }
    for prefix, values in (("true", y_np), ("clean", a["pred_clean"]), ("adv", a["pred"])):
        for j, emotion in enumerate(EMOTIONS):
            table[f"{prefix}_{emotion}"] = values[:, j].astype(np.float64)
    bottleneck = "midlevel_clean" in a
    if bottleneck:
        for prefix, name in (("clean_mid", "midlevel_clean"), ("adv_mid", "midlevel_adv")):
            for j, feature in enumerate(MIDLEVEL_FEATURES):
                table[f"{prefix}_{feature}"] = a[name][:, j].astype(np.float64)
    return pd.DataFrame(table, columns=clip_columns(bottleneck))


def _write_outputs(
    out_dir: Path, table: pd.DataFrame, outcome: _Outcome, save_examples: bool
) -> None:
    write_clips(table, out_dir)
    if save_examples:
        with atomic_path(out_dir / EXAMPLES_FILE) as tmp, open(tmp, "wb") as fh:
            np.save(fh, outcome.arrays["x_adv"].astype(np.float32))


def _finite_stats(values: np.ndarray) -> tuple[float, float, int]:
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return math.nan, math.nan, 0
    return float(finite.mean()), float(np.median(finite)), int(finite.size)


def _attack_cost(run: Run, table: pd.DataFrame, outcome: _Outcome) -> Cost:
    """The attack's cost; the zero-gradient check adds one forward and backward per clip."""
    import torch

    dev = next(run.model.parameters()).device
    iterations, n = int(table["iterations"].sum()), len(table)
    return Cost(
        wall_seconds=outcome.seconds,
        forward_clip_passes=outcome.model_passes + n,
        backward_clip_passes=iterations + n,
        attack_clip_iterations=iterations,
        device=str(dev),
        device_name=device_name(dev),
        torch=torch.__version__,
        execution=outcome.execution,
    )


def _summary(
    run: Run,
    config: AttackConfig,
    identity: dict[str, Any],
    table: pd.DataFrame,
    outcome: _Outcome,
) -> AttackSummary:
    from robustmer import metrics

    y = table[[f"true_{e}" for e in EMOTIONS]].to_numpy()  # [n, 8]
    clean, adv = outcome.arrays["pred_clean"], outcome.arrays["pred"]  # [n, 8]
    mae_clean, mae_adv = metrics.mae(y, clean), metrics.mae(y, adv)
    snr_mean, snr_median, snr_finite = _finite_stats(table["snr_db"].to_numpy())
    return AttackSummary(
        run=str(run.path),
        system=run.system.name,
        seed=int(run.config.seed),
        attack=identity["attack"],
        key=config.key(),
        split=identity["split"],
        n_clips=identity["n_clips"],
        checkpoint_sha256=identity["checkpoint_sha256"],
        cache_manifest_sha256=identity["cache_manifest_sha256"],
        mae_clean=mae_clean,
        mae_adv=mae_adv,
        delta_mae=mae_adv - mae_clean,
        mae_adv_of_x_adv=metrics.mae(y, outcome.arrays["pred_of_x_adv"]),
        avg_corr_clean=metrics.average_correlation(y, clean),
        avg_corr_adv=metrics.average_correlation(y, adv),
        snr_db_mean=snr_mean,
        snr_db_median=snr_median,
        snr_db_finite_clips=snr_finite,
        iterations_mean=float(table["iterations"].mean()),
        converged_fraction=float(table["converged"].mean()),
        l2_mean=float(table["l2"].mean()),
        linf_max=float(table["linf"].max()),
        zero_gradient_clips=tuple(int(c) for c in table.loc[table["zero_gradient"], "clip_id"]),
        cost=_attack_cost(run, table, outcome),
    )


def _warn_zero_gradient(label: str, table: pd.DataFrame) -> None:
    """One warning naming the clips a gradient attack could not move from the start."""
    clips = [int(c) for c in table.loc[table["zero_gradient"], "clip_id"]]
    if clips:
        logger.warning(
            "%s: %d clip(s) have an exactly zero input gradient of the MSE at the start "
            "(e.g. prediction equal to the label), so a gradient attack cannot move them: "
            "clip(s) %s (flagged zero_gradient in the per-clip table)",
            label,
            len(clips),
            ", ".join(map(str, clips)),
        )
