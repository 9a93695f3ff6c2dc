"""Attack-step speed options: cross-run stacking, bf16 autocast, torch.compile, CUDA graphs.

Measures the attack clip-iterations per second (one clip through one attack iteration) of
R runs of one architecture (random weights, one per seed; full width, 313 x 149 inputs by
default), each attacked on its own B clips, computed in these ways:

``eager``
    One run after the other, as ``robustmer attack`` does by default.
``stacked``
    All R runs in one batch of R · B clips (:class:`robustmer.attacks.stack.StackedModel`,
    ``--stack-runs``); the same numbers up to float rounding.
``bf16``
    One run after the other with ``precision="bf16"`` (a setting: other numbers).
``compile``
    One run after the other through ``torch.compile`` (``--compile default``); the first
    call's compilation is timed separately and left out of the rate. (The R calls use one
    compiled model, i.e. the same weights: the work per call is the same.)
``compile+stacked``
    The stacked batch through ``torch.compile``.
``cuda-graphs`` / ``cuda-graphs+stacked``
    ``--compile cuda-graphs`` (CUDA only; skipped on other devices).

Attacks: the paper attack with early stopping off (a fixed amount of work) and PGD (L∞).
Each rate is given per wall second and per CPU second of this process (``_per_cpu_s``; on a
shared machine, with ``--threads 1``, what one free core does).

With ``--scale bench_scale.json`` (the output of ``bench_scale.py`` on the same device) the
paper study's estimate is repeated with the evaluation attacks computed the fastest measured
way that keeps the paper attack's settings (stacking and/or compiling; bf16 is a different
setting and is not used for the estimate).

Usage::

    nice -n 10 python benchmarks/bench_attack_speed.py --device cpu --threads 1 \
        --runs 4 --clips 8 --iters 2 --scale bench_scale_cpu.json --out bench_speed_cpu.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from robustmer._io import write_json
from robustmer.attacks import attack_config, build_attack
from robustmer.attacks.execution import Execution, prepare_model
from robustmer.attacks.stack import StackedModel, stack_rows
from robustmer.models import build_model
from robustmer.training import resolve_device

OPTIONS = ("eager", "stacked", "bf16", "compile", "compile+stacked")
CUDA_OPTIONS = ("cuda-graphs", "cuda-graphs+stacked")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """Wall and CPU seconds (this process) of one call of ``fn``."""
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def _plan(option: str, models: list, xs: list, ys: list, config, device: torch.device):
    """``(warm-up call or None, timed call)`` for one option."""
    compile_mode = {"compile": "default", "cuda-graphs": "cuda-graphs"}.get(
        option.removesuffix("+stacked"), "none"
    )
    if option == "bf16":
        config = config.replace(precision="bf16")
    if option.endswith("stacked"):
        model = prepare_model(StackedModel(models), Execution(compile=compile_mode), device)
        attack = build_attack(config, model)
        x, y = stack_rows(xs), stack_rows(ys)  # [R·B, 1, F, 149], [R·B, 8]
        call = lambda: attack(x, y)  # noqa: E731
        return (call if compile_mode != "none" else None), call
    if compile_mode != "none":  # one compiled model (the same weights) for the R calls
        compiled = prepare_model(models[0], Execution(compile=compile_mode), device)
        attack = build_attack(config, compiled)

        def call() -> None:
            for x, y in zip(xs, ys, strict=True):
                attack(x, y)

        return (lambda: attack(xs[0], ys[0])), call
    attacks = [build_attack(config, m) for m in models]

    def call() -> None:
        for attack, x, y in zip(attacks, xs, ys, strict=True):
            attack(x, y)

    return None, call


def measure(args: argparse.Namespace, device: torch.device) -> list[dict]:
    """One row per attack and option: rates, and the compile time where compiled."""
    models = []
    for seed in range(args.runs):
        torch.manual_seed(seed)
        models.append(build_model(args.arch, width=args.width).to(device).eval())
    g = torch.Generator().manual_seed(100)
    shape = (args.clips, 1, args.frames, 149)
    xs = [torch.randn(shape, generator=g).to(device) for _ in models]  # R x [B, 1, F, 149]
    ys = [(0.1 + 0.8 * torch.rand(args.clips, 8, generator=g)).to(device) for _ in models]
    configs = {
        "paper": attack_config("paper", steps=args.iters, early_stop=False),
        "pgd": attack_config("pgd", epsilon=0.1, steps=args.iters),
    }
    options = [o for o in args.options if o in OPTIONS or device.type == "cuda"]
    work = args.runs * args.clips * args.iters  # clip-iterations per timed call
    rows = []
    for name in args.attacks:
        for option in options:
            warm, call = _plan(option, models, xs, ys, configs[name], device)
            compile_s = _timed(warm, device)[0] if warm is not None else None
            if warm is None:  # allocator and kernel warm-up: a 1-clip call
                build_attack(configs[name].replace(steps=1), models[0])(xs[0][:1], ys[0][:1])
            wall, cpu = _timed(call, device)
            row = {
                "attack": name,
                "option": option,
                "clip_iters": work,
                "wall_s": wall,
                "cpu_s": cpu,
                "clip_iters_per_s": work / wall,
                "clip_iters_per_cpu_s": work / cpu,
                "first_call_s": compile_s,
            }
            rows.append(row)
            print(
                f"{name:<6}{option:<22}{row['clip_iters_per_s']:>9.2f}/s "
                f"{row['clip_iters_per_cpu_s']:>9.2f}/cpu-s"
                + (f"  first call {compile_s:.0f} s" if compile_s is not None else "")
            )
    for row in rows:
        base = next(r for r in rows if r["attack"] == row["attack"] and r["option"] == "eager")
        for per in ("s", "cpu_s"):
            row[f"speedup_per_{per}"] = row[f"clip_iters_per_{per}"] / base[f"clip_iters_per_{per}"]
    return rows


def revised_estimate(scale: dict, rows: list[dict], per: str) -> dict:
    """The paper study's estimate of ``bench_scale.py`` with its evaluation attacks sped up
    by the best measured option that keeps the paper attack's settings."""
    est = dict(scale["paper_study"])
    same = [r for r in rows if r["attack"] == "paper" and r["option"] != "bf16"]
    best = max(same, key=lambda r: r[f"speedup_per_{per}"])
    factor = best[f"speedup_per_{per}"]
    est["evaluation_attack_option"] = best["option"]
    est["evaluation_attack_speedup"] = factor
    est["evaluation_attack_s"] = est["evaluation_attack_s"] / factor
    total = est["standard_training_s"] + est["adversarial_training_extra_s"]
    total += est["evaluation_attack_s"]
    est["total_one_unit_at_a_time_s"] = total
    est["total_wall_s"] = total / est["workers"]
    return est


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--arch", default="a2e")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--frames", type=int, default=313)
    parser.add_argument("--runs", type=int, default=4, help="runs (seeds) R")
    parser.add_argument("--clips", type=int, default=8, help="clips per run B")
    parser.add_argument("--iters", type=int, default=2, help="attack iterations timed")
    parser.add_argument("--attacks", nargs="+", default=["paper", "pgd"])
    parser.add_argument("--options", nargs="+", default=[*OPTIONS, *CUDA_OPTIONS])
    parser.add_argument("--scale", type=Path, default=None, help="bench_scale.py's output")
    parser.add_argument("--out", type=Path, default=Path("bench_attack_speed.json"))
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {device} ({name}), torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}, {args.arch} width {args.width}, R={args.runs} runs x "
          f"B={args.clips} clips x {args.frames} frames, {args.iters} iterations")  # fmt: skip
    rows = measure(args, device)
    result = {
        "device": str(device),
        "device_name": name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "scale")},
        "rows": rows,
    }
    if args.scale is not None:
        scale = json.loads(args.scale.read_text())
        per = scale["paper_study"].get("rates_per", "s")
        result["paper_study"] = est = revised_estimate(scale, rows, per)
        hours = est["total_wall_s"] / 3600
        print(
            f"paper study with evaluation attacks {est['evaluation_attack_option']} "
            f"(x{est['evaluation_attack_speedup']:.2f}): at most {hours:.0f} h = "
            f"{hours / 24:.1f} days on {est['workers']} unit(s) at a time (evaluation attacks "
            f"{est['evaluation_attack_s'] / 3600:.1f} h of one unit)"
        )
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
