"""Training throughput: clips per second of standard and adversarial training steps.

Measures the same step functions :func:`robustmer.training.train` uses
(:func:`robustmer.training.loop.training_step` and
:func:`robustmer.training.loop.adversarial_step` with the real paper attack) on random
313×149 excerpts, for the full-width model (3.9 M parameters) at batch sizes 8 and 32, and
optionally with the channels-last memory format and bfloat16 autocast.

An adversarial step is what one batch costs on an adversarial epoch: the normal step, the
paper attack (``--adv-iters`` iterations, 50 in the paper) and the extra step on the
adversarial batch. Its clips/second is clips of the batch divided by that time.

Usage::

    python benchmarks/bench_train.py --device cpu --steps 3 --adv-iters 5
    python benchmarks/bench_train.py --device cuda --out bench_train_cuda.json
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from robustmer._io import write_json
from robustmer.attacks import PaperConfig
from robustmer.models import build_model
from robustmer.training import SYSTEMS, make_config, resolve_device
from robustmer.training.loop import adversarial_step, training_step

VARIANTS = {
    "default": {},
    "channels_last": {"channels_last": True},
    "amp": {"amp": True},
}
"""Speed options compared (fields of TrainConfig)."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, steps: int, warmup: int, device: torch.device) -> float:
    """Median seconds per call of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def bench(
    *,
    device: torch.device,
    batch: int,
    variant: str,
    system: str,
    steps: int,
    warmup: int,
    adv_steps: int,
    adv_iters: int,
    width: float,
    frames: int,
) -> dict:
    """Time one configuration; returns a JSON-ready row."""
    config = make_config(
        system,
        0,
        width=width,
        batch_size=batch,
        adv_attack=PaperConfig(steps=adv_iters),
        **VARIANTS[variant],
    )
    spec = SYSTEMS[system]
    torch.manual_seed(0)
    model = build_model(spec.arch, width=width).to(device).train()
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    x = torch.randn(batch, 1, frames, 149, device=device)  # [B, 1, F, 149]
    if config.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.rand(batch, 8, device=device)  # [B, 8]
    m = torch.rand(batch, 7, device=device)  # [B, 7]

    def standard() -> None:
        training_step(model, optimizer, x, y, m, system=spec, config=config)

    iterations = []

    def adversarial() -> None:
        training_step(model, optimizer, x, y, m, system=spec, config=config)
        _, result = adversarial_step(model, optimizer, x, y, config=config)
        iterations.append(int(result.iterations.sum()))

    t_std = _time(standard, steps, warmup, device)
    row = {
        "device": str(device),
        "system": system,
        "batch": batch,
        "variant": variant,
        "width": width,
        "frames": frames,
        "standard_step_s": t_std,
        "standard_clips_per_s": batch / t_std,
    }
    if adv_steps > 0:
        t_adv = _time(adversarial, adv_steps, 0, device)
        row.update(
            {
                "adv_iters": adv_iters,
                "adversarial_step_s": t_adv,
                "adversarial_clips_per_s": batch / t_adv,
                "attack_clip_iterations_per_s": iterations[-1] / max(t_adv - 2 * t_std, 1e-9),
            }
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--variants", nargs="+", default=["default"], choices=list(VARIANTS))
    parser.add_argument("--system", default="A2E", choices=list(SYSTEMS))
    parser.add_argument("--steps", type=int, default=5, help="timed standard steps")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--adv-steps", type=int, default=1, help="timed adversarial steps")
    parser.add_argument("--adv-iters", type=int, default=50, help="attack iterations")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--frames", type=int, default=313)
    parser.add_argument("--out", type=Path, default=Path("bench_train.json"))
    args = parser.parse_args()

    device = resolve_device(args.device)
    rows = []
    header = (
        f"{'batch':>5} {'variant':>14} {'std clips/s':>12} {'adv clips/s':>12} {'adv iters':>9}"
    )
    print(
        f"device {device} ({platform.processor() or platform.machine()}), torch "
        f"{torch.__version__}, threads {torch.get_num_threads()}, system {args.system}, "
        f"width {args.width}, input {args.frames}x149"
    )
    print(header)
    for batch in args.batch_sizes:
        for variant in args.variants:
            row = bench(
                device=device, batch=batch, variant=variant, system=args.system,
                steps=args.steps, warmup=args.warmup, adv_steps=args.adv_steps,
                adv_iters=args.adv_iters, width=args.width, frames=args.frames,
            )  # fmt: skip
            rows.append(row)
            adv = (
                f"{row['adversarial_clips_per_s']:12.3f}"
                if "adversarial_clips_per_s" in row
                else (f"{'-':>12}")
            )
            print(f"{batch:>5} {variant:>14} {row['standard_clips_per_s']:12.2f} {adv} "
                  f"{row.get('adv_iters', '-'):>9}")  # fmt: skip
    write_json(
        args.out,
        {
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
            else platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "rows": rows,
        },
    )  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
