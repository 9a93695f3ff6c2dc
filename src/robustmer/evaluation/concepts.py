"""Concepts under attack: what an attack did to a bottleneck model's seven concepts.

A bottleneck model's emotions are a linear function of its seven bottleneck outputs
(``emotions = W · m + b``, ``W`` the ``fc2`` weight ``[8, 7]``; no activation in between), so
the change an attack causes in emotion ``e`` splits exactly into per-concept contributions:

    Δe = Σ_k W[e, k] · Δm_k,    contribution[e, k] = W[e, k] · Δm_k.

For A2M2E the concepts are the seven mid-level features; for A2B2E and aA2B2E the unnamed
units ``unit1`` ... ``unit7``. Concept changes are reported in units of the concept's
standard deviation on the training split (:func:`concept_std`): for A2M2E the standard
deviation of the mid-level annotations, for the unnamed units that of the model's own
outputs on the training excerpts. Each concept's *share* of an emotion's change is its
contribution divided by the sum of the absolute contributions to that emotion
(``c_k / Σ_j |c_j|``, so the absolute shares add up to 1 and the signs say which way each
concept pushed); it is NaN where nothing changed. Changes and contributions are on the
rating scale (1-9, i.e. training scale × 10).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from robustmer.errors import RobustmerError
from robustmer.names import EMOTIONS, MIDLEVEL_FEATURES, RATING_SCALE

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CONCEPT_COLUMNS",
    "concept_contributions",
    "concept_figure",
    "concept_names",
    "concept_shift_target",
    "concept_std",
    "concept_summary",
    "concept_table",
    "head_weight",
    "run_concepts",
]

CONCEPT_COLUMNS: tuple[str, ...] = (
    "clip_id",
    "concept",
    "emotion",
    "concept_clean",
    "concept_adv",
    "concept_change",
    "concept_change_std",
    "weight",
    "contribution",
    "emotion_change",
    "share",
)
"""Columns of :func:`concept_table`, one row per clip × concept × emotion."""


def concept_names(midlevel_loss: bool) -> tuple[str, ...]:
    """The mid-level feature names for A2M2E, else ``unit1`` ... ``unit7``."""
    if midlevel_loss:
        return MIDLEVEL_FEATURES
    return tuple(f"unit{k}" for k in range(1, len(MIDLEVEL_FEATURES) + 1))


def head_weight(model: Any) -> np.ndarray:
    """The emotion head ``W`` (``fc2.weight``) of a bottleneck model, float64 ``[8, 7]``.

    Raises
    ------
    RobustmerError
        For a model without a bottleneck.
    """
    fc2 = getattr(model, "fc2", None)
    if fc2 is None:
        raise RobustmerError(
            f"model {getattr(getattr(model, 'config', None), 'arch', type(model).__name__)}: "
            "has no bottleneck; expected A2B2E or A2M2E for a concept analysis"
        )
    return fc2.weight.detach().double().cpu().numpy()


def concept_contributions(
    mid_clean: np.ndarray, mid_adv: np.ndarray, weight: np.ndarray
) -> np.ndarray:
    """Per-concept contributions ``W[e, k] · Δm_k`` to each emotion change.

    Parameters
    ----------
    mid_clean, mid_adv : np.ndarray, shape [n, 7]
        Bottleneck outputs for the clean and the adversarial input.
    weight : np.ndarray, shape [8, 7]
        Emotion head.

    Returns
    -------
    np.ndarray, float64, shape [n, 8, 7]
        Summed over the last axis: the emotion change ``Δe [n, 8]`` (same scale as the inputs).
    """
    delta = np.asarray(mid_adv, np.float64) - np.asarray(mid_clean, np.float64)  # [n, 7]
    return np.asarray(weight, np.float64)[None, :, :] * delta[:, None, :]  # [n, 8, 7]


def concept_table(
    clip_ids: np.ndarray,
    mid_clean: np.ndarray,
    mid_adv: np.ndarray,
    weight: np.ndarray,
    std: np.ndarray,
    names: tuple[str, ...],
) -> pd.DataFrame:
    """Long table of concept changes and contributions (:data:`CONCEPT_COLUMNS`).

    Parameters
    ----------
    clip_ids : np.ndarray, shape [n]
    mid_clean, mid_adv : np.ndarray, shape [n, 7]
        Bottleneck outputs on the training scale (ratings / 10).
    weight : np.ndarray, shape [8, 7]
        Emotion head (:func:`head_weight`).
    std : np.ndarray, shape [7]
        Concepts' training-split standard deviations, training scale (:func:`concept_std`).
    names : tuple of str
        The 7 concept names.

    Returns
    -------
    pandas.DataFrame
        ``n · 8 · 7`` rows; ``concept_*``, ``contribution`` and ``emotion_change`` on the
        rating scale, ``concept_change_std`` in standard deviations.
    """
    import pandas as pd

    n, k, e = len(clip_ids), len(names), len(EMOTIONS)
    contrib = concept_contributions(mid_clean, mid_adv, weight) * RATING_SCALE  # [n, 8, 7]
    change = contrib.sum(axis=2)  # [n, 8]
    total = np.abs(contrib).sum(axis=2, keepdims=True)  # [n, 8, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, contrib / total, np.nan)  # [n, 8, 7]
    clean = np.asarray(mid_clean, np.float64) * RATING_SCALE  # [n, 7]
    adv = np.asarray(mid_adv, np.float64) * RATING_SCALE  # [n, 7]
    std_rating = np.asarray(std, np.float64) * RATING_SCALE  # [7]

    def grid(a: np.ndarray) -> np.ndarray:  # [n, 7] concept values -> rows (clip, concept, emo)
        return np.repeat(a[:, :, None], e, axis=2).ravel()

    def by_emotion(a: np.ndarray) -> np.ndarray:  # [n, 8, 7] -> rows (clip, concept, emo)
        return a.transpose(0, 2, 1).ravel()

    return pd.DataFrame(
        {
            "clip_id": np.repeat(np.asarray(clip_ids, np.int64), k * e),
            "concept": np.tile(np.repeat(np.array(names, dtype=object), e), n),
            "emotion": np.tile(np.array(EMOTIONS, dtype=object), n * k),
            "concept_clean": grid(clean),
            "concept_adv": grid(adv),
            "concept_change": grid(adv - clean),
            "concept_change_std": grid((adv - clean) / std_rating),
            "weight": np.tile(np.asarray(weight, np.float64).T.ravel(), n),
            "contribution": by_emotion(contrib),
            "emotion_change": by_emotion(np.repeat(change[:, :, None], k, axis=2)),
            "share": by_emotion(share),
        },
        columns=list(CONCEPT_COLUMNS),
    )


def concept_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean over clips per concept × emotion of :func:`concept_table`.

    Returns
    -------
    pandas.DataFrame
        Columns ``concept, emotion, concept_change_std`` (mean), ``concept_change_std_sd``
        (standard deviation over clips), ``contribution``, ``emotion_change``, ``share``
        (means; NaN shares skipped), ``clips`` (rows averaged: the clips of one attack, or
        clips × seeds of a table pooled over runs).
    """
    grouped = table.groupby(["concept", "emotion"], sort=False)
    out = grouped.agg(
        concept_change_std=("concept_change_std", "mean"),
        concept_change_std_sd=("concept_change_std", "std"),
        contribution=("contribution", "mean"),
        emotion_change=("emotion_change", "mean"),
        share=("share", "mean"),
        clips=("clip_id", "size"),
    )
    return out.reset_index()


def concept_std(run: Any, *, allow_constant: bool = False) -> np.ndarray:
    """The concepts' standard deviations on the training split (training scale), ``[7]``.

    A2M2E: of the mid-level annotations (``cache.midlevel``); A2B2E / aA2B2E: of the model's
    bottleneck outputs on the training excerpts. Sample standard deviation (ddof = 1). For the
    unnamed units, the value training recorded for the best checkpoint (``final.json``
    ``metrics.train.bottleneck_std``) is used when present; otherwise the outputs are
    computed (one forward pass over the training excerpts).

    Parameters
    ----------
    run : robustmer.training.Run
    allow_constant : bool
        Give a concept that is constant on the training split a NaN standard deviation
        (its changes in standard deviations are then NaN) instead of raising.

    Raises
    ------
    RobustmerError
        For a constant concept, unless ``allow_constant``.
    """
    recorded = ((run.final or {}).get("metrics", {}).get("train") or {}).get("bottleneck_std")
    if run.system.midlevel_loss:
        values = run.cache.midlevel[run.cache.rows("train")].astype(np.float64)  # [n, 7]
        std = values.std(axis=0, ddof=1)
    elif recorded is not None:
        std = np.asarray(recorded, np.float64)  # [7], recorded by training
    else:
        import torch

        x, _, _, _ = run.cache.arrays("train")  # [n, 1, F, 149]
        device = next(run.model.parameters()).device
        with torch.no_grad():
            values = run.model.eval()(x.to(device)).midlevel.double().cpu().numpy()  # [n, 7]
        std = values.std(axis=0, ddof=1)
    if allow_constant:
        return np.where(std > 0, std, np.nan)
    if not np.all(std > 0):
        raise RobustmerError(
            f"{run.path}: a concept is constant on the training split; expected some variation"
        )
    return std


def concept_shift_target(run: Any, shifts: dict[str, float]) -> str:
    """The ``target`` setting that shifts concepts by multiples of their training-set sd.

    Parameters
    ----------
    run : robustmer.training.Run
        A bottleneck run (its :func:`concept_std` sets the scale).
    shifts : dict of str to float
        Concept name (:func:`concept_names`) -> shift in standard deviations, e.g.
        ``{"dissonance": 2.0}``.

    Returns
    -------
    str
        E.g. ``"dissonance=+0.8321"`` (rating points; :func:`robustmer.attacks.goal.parse_target`).
    """
    names = concept_names(run.system.midlevel_loss)
    std = concept_std(run) * RATING_SCALE  # [7] rating points
    parts = []
    for name, amount in shifts.items():
        if name not in names:
            raise RobustmerError(
                f"concept {name!r}: unknown for {run.system.name}; expected one of "
                f"{', '.join(names)}"
            )
        parts.append(f"{name}={float(amount) * std[names.index(name)]:+.6g}")
    return ",".join(parts)


def run_concepts(
    run_dir: str | os.PathLike[str], clips: pd.DataFrame | str | os.PathLike[str]
) -> pd.DataFrame:
    """:func:`concept_table` of one attack on one trained bottleneck run.

    Parameters
    ----------
    run_dir : str or PathLike
        The attacked training run.
    clips : pandas.DataFrame or path
        The attack's per-clip table (``clips.parquet`` or a loaded DataFrame) with
        ``clip_id``, ``clean_mid_<feature>`` and ``adv_mid_<feature>`` columns.
    """
    import pandas as pd

    from robustmer.training import load_run

    run = load_run(run_dir)
    weight = head_weight(run.model)
    if not isinstance(clips, pd.DataFrame):
        clips = pd.read_parquet(Path(clips))
    cols = [f"{p}_{f}" for p in ("clean_mid", "adv_mid") for f in MIDLEVEL_FEATURES]
    missing = [c for c in cols if c not in clips.columns]
    if missing:
        raise RobustmerError(
            f"attack table: no columns {missing[:2]}...; expected an attack on a bottleneck model"
        )
    k = len(MIDLEVEL_FEATURES)
    values = clips[cols].to_numpy(np.float64)  # [n, 14]
    return concept_table(
        clips["clip_id"].to_numpy(),
        values[:, :k],
        values[:, k:],
        weight,
        concept_std(run),
        concept_names(run.system.midlevel_loss),
    )


def concept_figure(summary: pd.DataFrame, path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Bar chart of the concept changes and heat map of their contributions, as one image.

    Left: mean concept change per concept (standard deviations, ± 1 sd over clips). Right:
    mean contribution of each concept (rows) to each emotion's change (columns), rating
    scale, diverging colours centred at 0. Written atomically (PNG or SVG by suffix).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robustmer._io import atomic_path

    concepts = list(dict.fromkeys(summary["concept"]))
    first = summary.drop_duplicates("concept").set_index("concept").loc[concepts]
    grid = summary.pivot(index="concept", columns="emotion", values="contribution")
    grid = grid.loc[concepts, list(EMOTIONS)]
    fig, (ax_bar, ax_map) = plt.subplots(
        1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1, 1.6]}, layout="constrained"
    )
    ypos = np.arange(len(concepts))
    ax_bar.barh(ypos, first["concept_change_std"], xerr=first["concept_change_std_sd"])
    ax_bar.set_yticks(ypos, concepts)
    ax_bar.invert_yaxis()
    ax_bar.axvline(0, color="black", lw=0.8)
    ax_bar.set_xlabel("concept change (training-set sd)")
    limit = float(np.nanmax(np.abs(grid.to_numpy()))) or 1.0
    image = ax_map.imshow(grid.to_numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax_map.set_xticks(np.arange(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    ax_map.set_yticks(ypos, [""] * len(concepts))
    fig.colorbar(image, ax=ax_map, label="contribution to emotion change (rating)")
    if title:
        fig.suptitle(title)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)
    return path
