"""Time of the quick study, stage by stage, from an empty directory and an empty data store.

Runs ``robustmer study`` exactly as a new user does (no arguments: the quick profile on the
built-in synthetic data), in a temporary study directory with a temporary shared data store
(``ROBUSTMER_CACHE``), so nothing is reused, and reports per stage the wall time and the CPU
time (user + system, of this process and of the study's worker processes):

- ``synthesis``: :func:`robustmer.data.generate_synthetic`;
- ``spectrograms``: :func:`robustmer.data.prepare` (decoding, front end, excerpts, cache);
- ``units``: training every system x seed and attacking it (worker processes); the sums
  of the units' own ``train_seconds`` and ``attack_seconds`` split it into training and
  attacks (summed over units that ran in parallel, so they exceed the phase's wall time);
- ``report``: :func:`robustmer.report.build_report`;
- ``total``: the whole :func:`robustmer.study.run_study` call.

With ``--again`` a second study into a new directory follows, reusing the stored data (the
time a returning user sees).

Usage::

    python benchmarks/bench_quick.py --out bench_quick.json
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its reaped children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Stages:
    """Wall and CPU seconds accumulated per named stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, dict[str, float]] = {}

    def wrap(self, name: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            w0, c0 = time.perf_counter(), _cpu()
            try:
                return fn(*args, **kwargs)
            finally:
                entry = self.seconds.setdefault(name, {"wall": 0.0, "cpu": 0.0})
                entry["wall"] += time.perf_counter() - w0
                entry["cpu"] += _cpu() - c0

        return timed


def timed_study(out: Path) -> dict:
    """Run the quick study into ``out``; per-stage wall and CPU seconds."""
    import importlib

    # (robustmer.data re-exports the function ``prepare`` under its module's name)
    prepare_module = importlib.import_module("robustmer.data.prepare")
    synth = importlib.import_module("robustmer.data.synth")
    report_module = importlib.import_module("robustmer.report")
    from robustmer.study import run_study

    stages = Stages()
    originals = (synth.generate_synthetic, prepare_module.prepare, report_module.build_report)
    synth.generate_synthetic = stages.wrap("synthesis", originals[0])
    prepare_module.prepare = stages.wrap("spectrograms", originals[1])
    report_module.build_report = stages.wrap("report", originals[2])
    try:
        stages.wrap("total", run_study)(out, progress=False)
    finally:
        synth.generate_synthetic, prepare_module.prepare, report_module.build_report = originals
    state = json.loads((out / "study.json").read_text())
    units = [u for name, u in state["units"].items() if name.startswith(("train/", "attack/"))]
    s = stages.seconds
    data = {k: s.get(k, {"wall": 0.0, "cpu": 0.0}) for k in ("synthesis", "spectrograms")}
    other = {
        k: s["total"][k] - sum(v[k] for v in data.values()) - s["report"][k]
        for k in ("wall", "cpu")
    }
    return {
        **data,
        "units": {
            **{k: round(v, 1) for k, v in other.items()},
            "train_seconds_summed": round(sum(u.get("train_seconds", 0.0) for u in units), 1),
            "attack_seconds_summed": round(sum(u.get("attack_seconds", 0.0) for u in units), 1),
            "units": len(units),
        },
        "report": s["report"],
        "total": s["total"],
        "data_reused": bool(state["data"].get("reused")),
        "profile": state["settings"]["profile"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="write the timings as JSON here")
    parser.add_argument("--again", action="store_true", help="also time a second study")
    parser.add_argument(
        "--keep", type=Path, help="work in this new directory and leave the studies there"
    )
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True)
    context = tempfile.TemporaryDirectory(prefix="bench-quick-") if args.keep is None else None
    with context or contextlib.nullcontext(str(args.keep)) as tmp:
        os.environ["ROBUSTMER_CACHE"] = str(Path(tmp) / "store")
        result = {
            "machine": {"cpus": os.cpu_count(), "processor": platform.processor()},
            "first": timed_study(Path(tmp) / "study1"),
        }
        if args.again:
            result["again"] = timed_study(Path(tmp) / "study2")
    for run in ("first", "again"):
        if run in result:
            print(run)
            for stage in ("synthesis", "spectrograms", "units", "report", "total"):
                t = result[run][stage]
                print(f"  {stage:13s} wall {t['wall']:7.1f} s   cpu {t['cpu']:7.1f} s")
            u = result[run]["units"]
            print(
                f"  (units: training {u['train_seconds_summed']} s + attacks "
                f"{u['attack_seconds_summed']} s, summed over {u['units']} units)"
            )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
