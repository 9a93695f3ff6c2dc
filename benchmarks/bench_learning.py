"""Learning curves of one system on a prepared cache: test accuracy against CPU seconds.

The evidence behind docs/quick-profile.md ("What the accuracy targets would cost"): how many
epochs, and so how many CPU seconds, a quick-width model needs before its clean test
average correlation (Table 1's measure) reaches a level. It trains with the project's own
:func:`robustmer.training.loop.training_step` (the system's loss, Adam, optional bfloat16
autocast) and evaluates with :func:`robustmer.training.loop.predict`, but keeps its own
epoch loop so that it can also try what the study does not do:

- ``--excerpts fixed``: every epoch sees the cache's one excerpt per training clip (the
  paper's procedure and what ``robustmer train`` does);
- ``--excerpts random``: every epoch cuts a new excerpt of the same length from each
  training clip's full spectrogram (the cache's ``spectrograms/``), offsets drawn from
  ``numpy.random.default_rng([seed, epoch])``. Validation and test always use the cache's
  fixed excerpts.

Best epoch = highest validation average correlation; the test score of that epoch and of
the last epoch are printed as one JSON line, with the per-epoch validation curve.

Usage::

    python benchmarks/bench_learning.py CACHE --system A2M2E --epochs 80 --batch-size 16 \\
        --lr 2e-3 --excerpts random
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from robustmer.data import load_cache
from robustmer.models import build_model
from robustmer.training import make_config
from robustmer.training.loop import predict, training_step


def average_correlation(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean over columns of the Pearson correlation across clips; arrays [N, K]."""
    p, t = pred - pred.mean(0), target - target.mean(0)
    return float(((p * t).sum(0) / np.sqrt((p * p).sum(0) * (t * t).sum(0))).mean())


def random_excerpts(cache, rows: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """One random excerpt of ``cache.frames`` frames per clip row, normalised; [B, 1, F, 149]."""
    out = []
    for r in rows:
        spec = np.load(cache.path / "spectrograms" / f"{cache.ids[r]:03d}.npy")  # [T, 149]
        start = int(rng.integers(0, len(spec) - cache.frames + 1))
        out.append(cache.normalization.normalize(spec[start : start + cache.frames]))
    return torch.from_numpy(np.stack(out).astype(np.float32)).unsqueeze(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cache")
    ap.add_argument("--system", default="A2E")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--excerpts", choices=("fixed", "random"), default="fixed")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cache = load_cache(args.cache)
    config = make_config(
        args.system, args.seed, profile="quick", lr=args.lr, batch_size=args.batch_size,
        width=args.width, device="cpu",
    )
    torch.manual_seed(args.seed)
    model = build_model(config.spec.arch, width=args.width)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    train_rows = cache.rows("train")
    x_train, emo, mid, _ = cache.arrays("train")
    x_val, emo_val, _, _ = cache.arrays("validation")
    x_test, emo_test, _, _ = cache.arrays("test")
    start, curve, best = time.process_time(), [], (-2.0, 0, 0.0)
    for epoch in range(1, args.epochs + 1):
        rng = np.random.default_rng([args.seed, epoch])
        order = rng.permutation(len(train_rows))
        model.train()
        for i in range(0, len(order) - args.batch_size + 1, args.batch_size):
            b = order[i : i + args.batch_size]
            fixed = args.excerpts == "fixed"
            x = x_train[b] if fixed else random_excerpts(cache, train_rows[b], rng)
            training_step(model, optimizer, x, emo[b], mid[b], system=config.spec, config=config)
        val = average_correlation(predict(model, x_val)[0], emo_val.numpy())
        test = average_correlation(predict(model, x_test)[0], emo_test.numpy())
        curve.append(round(val, 3))
        if val > best[0]:
            best = (val, epoch, test)
    print(json.dumps({
        **vars(args), "best_epoch": best[1], "test_at_best": round(best[2], 3),
        "test_last": round(test, 3), "cpu_s": round(time.process_time() - start, 1),
        "validation_curve": curve,
    }))


if __name__ == "__main__":
    main()
