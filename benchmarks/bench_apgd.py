"""Throughput of APGD next to the paper attack, in clip-iterations per second.

One clip-iteration is one clip through one gradient step of the attack (forward pass, loss,
backward pass to the input, update). APGD runs ``--iters`` steps (one restart, MSE loss, L∞);
the paper attack runs ``--iters`` iterations with early stopping off, so both do a fixed
amount of work. The clean and final forward passes are included in both timings.

The model is the real architecture (``--arch``, ``--width``, default A2M2E at width 1.0) with
random weights on random ``--frames`` x 149 inputs.

Usage::

    nice -n 10 python benchmarks/bench_apgd.py --iters 10 --batch-sizes 1 8 36 \
        --out bench_apgd_cpu.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from robustmer._io import write_json
from robustmer.attacks import build_attack
from robustmer.attacks.apgd import APGDConfig


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 36])
    parser.add_argument("--frames", type=int, default=313)
    parser.add_argument("--arch", default="a2m2e")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--epsilon", type=float, default=0.1)
    parser.add_argument("--out", type=Path, default=Path("bench_apgd.json"))
    args = parser.parse_args()

    from robustmer.attacks import attack_config
    from robustmer.models import build_model

    torch.manual_seed(0)
    model = build_model(args.arch, width=args.width).eval()
    n = max(args.batch_sizes)
    g = torch.Generator().manual_seed(1)
    x_all = torch.randn(n, 1, args.frames, 149, generator=g)
    y_all = 0.1 + 0.8 * torch.rand(n, 8, generator=g)
    configs = {
        "apgd": APGDConfig(epsilon=args.epsilon, steps=args.iters),
        "paper": attack_config("paper", steps=args.iters, early_stop=False),  # fixed work
    }
    attacks = {name: build_attack(cfg, model) for name, cfg in configs.items()}
    for attack in attacks.values():  # warm-up
        attack(x_all[:1], y_all[:1])
    rows = []
    for b in args.batch_sizes:
        for name, attack in attacks.items():
            secs = _timed(lambda attack=attack, b=b: attack(x_all[:b], y_all[:b]))
            rows.append({"attack": name, "batch": b, "seconds": secs,
                         "clip_iters_per_s": b * args.iters / secs})
    print(f"model {args.arch} width {args.width}, input (1, {args.frames}, 149), "
          f"{args.iters} iterations, torch threads {torch.get_num_threads()}")
    print(f"{'attack':<8}{'batch':>6}{'seconds':>10}{'clip-it/s':>12}")
    for r in rows:
        print(f"{r['attack']:<8}{r['batch']:>6}{r['seconds']:>10.2f}{r['clip_iters_per_s']:>12.2f}")
    write_json(args.out, {"arch": args.arch, "width": args.width, "frames": args.frames,
                          "iters": args.iters, "threads": torch.get_num_threads(),
                          "torch": torch.__version__, "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
