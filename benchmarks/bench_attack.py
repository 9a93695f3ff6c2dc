"""Throughput of the paper attack (docs/paper.md §7): batched implementation vs the paper's loop.

Measures clip-iterations per second (one clip through one attack iteration: forward, Pearson
correlation, threshold bookkeeping, backward to the input, Adam step) of
:class:`robustmer.attacks.PaperAttack` at several batch sizes, with early stopping disabled so
every run does a fixed amount of work, against a baseline loop built like the paper's code:
one clip at a time, ``torch.optim.Adam`` on δ, model parameters left with
``requires_grad=True`` (so the backward pass also computes weight gradients), ``F.mse_loss``,
and ``scipy.stats.pearsonr`` on CPU copies of the prediction each iteration. Both skip the
backward pass of the final iteration (its δ is never evaluated).

Then the bf16 autocast speed-up at the largest batch, and how far bf16 moves ΔMAE and the
final thresholds on the same clips (same number of iterations, early stopping on).

The model is the real architecture (``--arch``, ``--width``, default A2M2E at width 1.0) on
``--frames`` x 149 inputs; with ``--run`` a trained run's model and test clips are used,
otherwise random weights, random normalised inputs and random targets.

Usage::

    python benchmarks/bench_attack.py --device cpu --iters 3 --batch-sizes 1 8 36 \
        --out bench_attack_cpu.json
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import pearsonr

from robustmer._io import write_json
from robustmer.attacks import PaperAttack, PaperConfig
from robustmer.training import resolve_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def baseline_clip(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, iters: int, lr: float = 0.002
) -> None:
    """The paper's per-clip loop (no early stop), parameters with requires_grad=True."""
    delta = torch.zeros_like(x, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    best = delta.detach().cpu().clone()
    tau = None
    for it in range(1, iters + 1):
        pred = model(x + delta).emotions
        r, _ = pearsonr(
            y.cpu().squeeze().numpy().astype(np.float64),
            pred.detach().cpu().squeeze().numpy().astype(np.float64),
        )
        if not tau:
            tau = math.ceil(r * 10) / 10
        if r <= tau:
            best = delta.detach().cpu().clone()
            if tau >= -0.9:
                tau -= 0.1
        if it == iters:
            break
        opt.zero_grad()
        F.mse_loss(pred, y).backward()
        delta.grad = -torch.sign(delta.grad)
        opt.step()
    del best


def time_call(fn, device: torch.device, repeat: int = 1) -> float:
    """Best wall time of ``repeat`` calls (seconds)."""
    times = []
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--iters", type=int, default=20, help="attack iterations per run")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 36])
    parser.add_argument("--baseline-clips", type=int, default=2)
    parser.add_argument("--frames", type=int, default=313)
    parser.add_argument("--arch", default="a2m2e")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--run", type=Path, default=None, help="use a trained run instead")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench_attack.json"))
    args = parser.parse_args()

    device = resolve_device(args.device)
    n = max(args.batch_sizes)
    if args.run is not None:
        from robustmer.training import load_run

        run = load_run(args.run, device=device)
        model = run.model
        x_all, y_all, _, _ = run.cache.arrays("test")
        reps = math.ceil(n / len(x_all))
        x_all, y_all = x_all.repeat(reps, 1, 1, 1)[:n], y_all.repeat(reps, 1)[:n]
        source = str(args.run)
    else:
        from robustmer.models import build_model

        torch.manual_seed(0)
        model = build_model(args.arch, width=args.width)
        g = torch.Generator().manual_seed(1)
        x_all = torch.randn(n, 1, args.frames, 149, generator=g)
        y_all = 0.1 + 0.8 * torch.rand(n, 8, generator=g)
        source = f"random {args.arch} width {args.width}"
    model = model.to(device).eval()
    x_all, y_all = x_all.to(device), y_all.to(device)
    print(
        f"device {device}, model {source}, input {tuple(x_all.shape[1:])}, "
        f"{args.iters} iterations, torch threads {torch.get_num_threads()}"
    )

    # warm-up (allocator, kernels)
    PaperAttack(model, PaperConfig(steps=2, early_stop=False))(x_all[:1], y_all[:1])

    rows = []
    for b in args.batch_sizes:
        attack = PaperAttack(model, PaperConfig(steps=args.iters, early_stop=False))
        secs = time_call(
            lambda b=b, attack=attack: attack(x_all[:b], y_all[:b]), device, args.repeat
        )
        rows.append(
            {
                "impl": "batched",
                "batch": b,
                "seconds": secs,
                "clip_iters_per_s": b * args.iters / secs,
            }
        )

    for p in model.parameters():
        p.requires_grad_(True)
    k = min(args.baseline_clips, n)

    def run_baseline() -> None:
        for c in range(k):
            baseline_clip(model, x_all[c : c + 1], y_all[c : c + 1], args.iters)

    secs = time_call(run_baseline, device, args.repeat)
    base_rate = k * args.iters / secs
    rows.append({"impl": "paper-loop", "batch": 1, "seconds": secs, "clip_iters_per_s": base_rate})
    model.zero_grad(set_to_none=True)
    for row in rows:
        row["speedup_vs_paper_loop"] = row["clip_iters_per_s"] / base_rate

    result: dict = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": source,
        "input": list(x_all.shape[1:]),
        "iters": args.iters,
        "rows": rows,
    }

    if not args.no_bf16:
        fp32 = PaperAttack(model, PaperConfig(steps=args.iters, early_stop=False))
        bf16 = PaperAttack(model, PaperConfig(steps=args.iters, early_stop=False, precision="bf16"))
        bf16(x_all[:1], y_all[:1])  # warm-up of the autocast kernels
        same = [r["seconds"] for r in rows if r["impl"] == "batched" and r["batch"] == n]
        t32 = same[0] if same else time_call(lambda: fp32(x_all, y_all), device, args.repeat)
        t16 = time_call(lambda: bf16(x_all, y_all), device, args.repeat)
        # effect on results: the normal attack (early stop on), same clips, same iterations
        r32 = PaperAttack(model, PaperConfig(steps=args.iters))(x_all, y_all)
        r16 = PaperAttack(model, PaperConfig(steps=args.iters, precision="bf16"))(x_all, y_all)
        y_cpu = y_all.cpu()

        def dmae(res) -> float:
            return float((res.pred - y_cpu).abs().mean() - (res.pred_clean - y_cpu).abs().mean())

        result["bf16"] = {
            "batch": n,
            "fp32_seconds": t32,
            "bf16_seconds": t16,
            "speedup": t32 / t16,
            "delta_mae_fp32": dmae(r32),
            "delta_mae_bf16": dmae(r16),
            "delta_mae_abs_diff": abs(dmae(r32) - dmae(r16)),
            "pred_clean_max_abs_diff": float((r32.pred_clean - r16.pred_clean).abs().max()),
            "threshold_equal_fraction": float((r32.threshold == r16.threshold).double().mean()),
            "threshold_mean_abs_diff": float((r32.threshold - r16.threshold).abs().mean()),
        }

    print(f"{'impl':<12}{'batch':>6}{'seconds':>10}{'clip-it/s':>12}{'vs paper':>10}")
    for row in rows:
        print(
            f"{row['impl']:<12}{row['batch']:>6}{row['seconds']:>10.2f}"
            f"{row['clip_iters_per_s']:>12.2f}{row['speedup_vs_paper_loop']:>10.2f}"
        )
    if "bf16" in result:
        b = result["bf16"]
        print(
            f"bf16 at batch {b['batch']}: {b['speedup']:.2f}x "
            f"(fp32 {b['fp32_seconds']:.2f} s, bf16 {b['bf16_seconds']:.2f} s); "
            f"ΔMAE fp32 {b['delta_mae_fp32']:+.4f} vs bf16 {b['delta_mae_bf16']:+.4f}; "
            f"thresholds equal for {100 * b['threshold_equal_fraction']:.0f}% of clips "
            f"(mean |Δτ| {b['threshold_mean_abs_diff']:.3f})"
        )
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
