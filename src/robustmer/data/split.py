"""The train/validation/test split of the paper (docs/paper.md §4)."""

from __future__ import annotations

import numpy as np


def paper_split(n: int, seed: int = 42) -> dict[str, np.ndarray]:
    """Split ``n`` items, ordered as the rows of ``mean_ratings_set1.csv``.

    ``perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))``;
    train = ``perm[:int(0.8 n)]``, test_size = ``int((n - train_size) * 0.5)``,
    validation = ``perm[train_size : n - test_size]``, test = the last ``test_size``.
    For ``n = 360`` this gives 288/36/36 and the paper's test clips (rows 145, 309, 334, ...,
    i.e. Set-1 numbers 146, 310, 335, 329, 57 first).

    Parameters
    ----------
    n : int
        Number of items.
    seed : int
        Seed of the torch generator (42 in the paper).

    Returns
    -------
    dict of str to np.ndarray of int64
        Row indices for ``"train"``, ``"validation"`` and ``"test"``, in permutation order.
    """
    import torch

    if n < 3:
        from robustmer.errors import RobustmerError

        raise RobustmerError(f"cannot split {n} clips; expected at least 3")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    train_size = int(0.8 * n)
    test_size = int((n - train_size) * 0.5)
    split = {
        "train": perm[:train_size],
        "validation": perm[train_size : n - test_size],
        "test": perm[n - test_size :],
    }
    assert sum(len(v) for v in split.values()) == n
    return {k: v.astype(np.int64) for k, v in split.items()}
