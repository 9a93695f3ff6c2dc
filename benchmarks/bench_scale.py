"""The whole paper study's cost on the device at hand, from measured throughputs.

Measures, for each architecture of the study (``a2e``, ``a2b2e``, ``a2m2e``, full width,
313 x 149 inputs, random weights and inputs):

- training clips/s: :func:`robustmer.training.loop.training_step` (forward, loss,
  backward, Adam) at the paper's batch size 8;
- prediction clips/s: :func:`robustmer.training.loop.predict` (validation each epoch);
- attack clip-iterations/s of the paper attack with early stopping off, at batch 8 (the
  attack inside adversarial training) and at batch 36 (one model's test split);

then estimates the paper study (docs/paper.md §6-7 as the profile ``paper`` encodes it: 5
systems x 10 seeds, 288/36/36 clips, at most 199 epochs, adversarial epochs every 5th for
the two adversarial systems with a 50-iteration attack per batch plus one extra step, and
a 1000-iteration attack on each model's 36 test clips) as one unit after another, and
divided by ``--workers`` parallel units (each measured rate is per unit, with this
process's torch threads).

Each rate is given per wall second and per CPU second of this process (``..._per_cpu_s``);
on a machine shared with other work, the CPU-second rates with ``--threads 1`` are what a
free core would do, and ``--per cpu_s --workers N`` estimates N single-threaded units on N
free cores.

The estimate is an upper bound: every run is charged all 199 epochs (early stopping with
patience 50 ends most sooner) and every attacked clip all 1000 iterations (the attack
drops clips that reached the lowest threshold).

Usage::

    nice -n 10 python benchmarks/bench_scale.py --device cpu --threads 1 --workers 2 \
        --per cpu_s --out bench_scale_cpu.json
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from robustmer._io import write_json
from robustmer.attacks import PaperAttack, PaperConfig
from robustmer.models import build_model
from robustmer.study.profiles import PAPER
from robustmer.training import SYSTEMS, TrainConfig, resolve_device
from robustmer.training.loop import predict, training_step

N_TRAIN, N_VAL, N_TEST = 288, 36, 36
"""The paper's split of its 360 clips (train / validation / test)."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds(fn: Callable[[], object], repeat: int, device: torch.device) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds of this process (all its threads) of
    ``repeat`` calls of ``fn``, after one warm-up call."""
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return sorted(wall)[len(wall) // 2], sorted(cpu)[len(cpu) // 2]


def _rates(name: str, work: float, seconds: tuple[float, float]) -> dict[str, float]:
    """``name`` per wall second, and per CPU second (``name`` + ``_per_cpu_s``)."""
    wall, cpu = seconds
    return {f"{name}_per_s": work / wall, f"{name}_per_cpu_s": work / cpu}


def rates(arch: str, device: torch.device, repeat: int, attack_iters: int) -> dict[str, float]:
    """Measured throughputs of one architecture (see the module docstring)."""
    system = next(s for s in SYSTEMS.values() if s.arch == arch)
    config = TrainConfig(system=system.name, seed=0)
    torch.manual_seed(0)
    model = build_model(arch, width=config.width).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N_TEST, 1, PAPER.frames, 149, generator=g).to(device)  # [36, 1, 313, 149]
    y = (0.1 + 0.8 * torch.rand(N_TEST, 8, generator=g)).to(device)  # [36, 8]
    m = torch.rand(N_TEST, 7, generator=g).to(device)  # [36, 7]
    b = config.batch_size

    def train_step() -> None:
        model.train()
        training_step(model, optimizer, x[:b], y[:b], m[:b], system=system, config=config)

    def validate() -> None:
        model.eval()
        predict(model, x, batch_size=config.eval_batch_size)

    out = {
        **_rates("train_clips", b, _seconds(train_step, repeat, device)),
        **_rates("predict_clips", N_TEST, _seconds(validate, repeat, device)),
    }
    model.eval()
    for batch in (b, N_TEST):
        attack = PaperAttack(model, PaperConfig(steps=attack_iters, early_stop=False))
        secs = _seconds(lambda n=batch, a=attack: a(x[:n], y[:n]), 1, device)
        out.update(_rates(f"attack{batch}_clip_iters", batch * attack_iters, secs))
    return out


def estimate(
    per_arch: dict[str, dict[str, float]], workers: int, per: str = "s"
) -> dict[str, float]:
    """Upper-bound seconds of the paper study from the rates (module docstring).

    ``per="cpu_s"`` uses the rates per CPU second instead of per wall second: the
    study's CPU time, which ``workers`` single-threaded units on as many free cores
    divide."""
    per_arch = {
        arch: {k.removesuffix(f"_per_{per}"): v for k, v in r.items() if k.endswith(f"_per_{per}")}
        for arch, r in per_arch.items()
    }
    config = TrainConfig(system="A2E", seed=0)
    epochs = config.max_epochs
    adv_epochs = epochs // config.adv_every
    attack = PAPER.attacks[0].steps
    seeds = len(PAPER.seeds)
    train = adv = evaluation = 0.0
    for name in PAPER.systems:
        spec = SYSTEMS[name]
        r = per_arch[spec.arch]
        per_epoch = N_TRAIN / r["train_clips"] + N_VAL / r["predict_clips"]
        final = (N_TRAIN + N_VAL + N_TEST) / r["predict_clips"]
        train += seeds * (epochs * per_epoch + final)
        if spec.adversarial:
            per_adv_epoch = (
                N_TRAIN * config.adv_attack.steps / r[f"attack{config.batch_size}_clip_iters"]
                + N_TRAIN / r["train_clips"]
            )
            adv += seeds * adv_epochs * per_adv_epoch
        evaluation += seeds * N_TEST * attack / r[f"attack{N_TEST}_clip_iters"]
    total = train + adv + evaluation
    return {
        "models": len(PAPER.systems) * seeds,
        "epochs_per_model": epochs,
        "adversarial_epochs_per_adversarial_model": adv_epochs,
        "standard_training_s": train,
        "adversarial_training_extra_s": adv,
        "evaluation_attack_s": evaluation,
        "total_one_unit_at_a_time_s": total,
        "workers": workers,
        "total_wall_s": total / workers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per unit")
    parser.add_argument("--workers", type=int, default=1, help="units running at once")
    parser.add_argument(
        "--per",
        choices=["s", "cpu_s"],
        default="s",
        help="estimate from rates per wall second, or per CPU second (a shared machine)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per rate")
    parser.add_argument("--attack-iters", type=int, default=5, help="iterations timed")
    parser.add_argument("--archs", nargs="+", default=["a2e", "a2b2e", "a2m2e"])
    parser.add_argument("--out", type=Path, default=Path("bench_scale.json"))
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    hardware = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs"
    )
    print(f"device {device} ({hardware}), torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")  # fmt: skip
    per_arch = {}
    for arch in args.archs:
        per_arch[arch] = rates(arch, device, args.repeat, args.attack_iters)
        print(arch, {k: round(v, 2) for k, v in per_arch[arch].items()})
    needed = {SYSTEMS[s].arch for s in PAPER.systems}
    result = {
        "device": str(device),
        "hardware": hardware,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "rates": per_arch,
    }
    if needed <= set(per_arch):
        result["paper_study"] = est = estimate(per_arch, args.workers, args.per)
        est["rates_per"] = args.per
        hours = est["total_wall_s"] / 3600
        print(
            f"paper study ({est['models']} models, at most {est['epochs_per_model']} epochs, "
            f"1000-iteration attacks), {args.workers} unit(s) at a time: at most "
            f"{hours:.1f} h = {hours / 24:.1f} days "
            f"(training {est['standard_training_s'] / 3600:.1f} h, adversarial extra "
            f"{est['adversarial_training_extra_s'] / 3600:.1f} h, evaluation attacks "
            f"{est['evaluation_attack_s'] / 3600:.1f} h, one unit at a time)"
        )
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
