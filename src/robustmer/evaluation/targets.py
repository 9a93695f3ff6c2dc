"""How close a targeted attack came to its target, per clip.

For an emotion target (a profile name or 8 ratings; :mod:`robustmer.attacks.goal`) success is
measured as the distance to the target (root mean square difference over the 8 emotions,
rating points on the 1-9 scale) and the Pearson correlation with it across the 8 emotions,
before (``clean``) and after (``adv``) the attack. For a concept shift, per clip and moved
concept: the intended shift, how far the concept moved, and what is left to the target
(rating points).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from robustmer.attacks.goal import ConceptShift, EmotionTarget, Goal, parse_target
from robustmer.errors import RobustmerError
from robustmer.names import EMOTIONS, MIDLEVEL_FEATURES, RATING_SCALE

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TARGET_TABLES", "target_table"]


def _pearson(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of ``p [n, 8]`` with ``t [8]`` (NaN for constant rows)."""
    pc = p - p.mean(axis=1, keepdims=True)
    tc = t - t.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pc @ tc) / (np.linalg.norm(pc, axis=1) * np.linalg.norm(tc))


def _emotion_table(clips: pd.DataFrame, goal: EmotionTarget) -> pd.DataFrame:
    import pandas as pd

    t = np.asarray(goal.ratings, np.float64)  # [8], 1-9 scale
    out = {"clip_id": clips["clip_id"].to_numpy()}
    for name in ("clean", "adv"):
        p = clips[[f"{name}_{e}" for e in EMOTIONS]].to_numpy(np.float64) * RATING_SCALE
        out[f"distance_{name}"] = np.sqrt(((p - t) ** 2).mean(axis=1))
        out[f"corr_{name}"] = _pearson(p, t)
    return pd.DataFrame(out)


def _concept_table(clips: pd.DataFrame, goal: ConceptShift) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for k, shift in zip(goal.index, goal.shift, strict=True):
        feature = MIDLEVEL_FEATURES[k]
        column = f"clean_mid_{feature}"
        if column not in clips.columns:
            raise RobustmerError(
                f"attack table: no column {column!r}; expected an attack on a bottleneck model"
            )
        clean = clips[column].to_numpy(np.float64) * RATING_SCALE
        adv = clips[f"adv_mid_{feature}"].to_numpy(np.float64) * RATING_SCALE
        rows.append(
            pd.DataFrame(
                {
                    "clip_id": clips["clip_id"].to_numpy(),
                    "concept_index": k,
                    "target_shift": shift,
                    "moved": adv - clean,
                    "remaining": clean + shift - adv,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


TARGET_TABLES: dict[type[Goal], Callable[..., pd.DataFrame]] = {
    EmotionTarget: _emotion_table,
    ConceptShift: _concept_table,
}
"""Per goal type: ``(clips, goal) -> per-clip success table``."""


def target_table(clips: pd.DataFrame, target: str) -> pd.DataFrame:
    """Per-clip success of a targeted attack (see the module docstring).

    Parameters
    ----------
    clips : pandas.DataFrame
        The attack's per-clip table (``clips.parquet``).
    target : str
        The attack's ``target`` setting.

    Returns
    -------
    pandas.DataFrame
        Emotion target: ``clip_id, distance_clean, corr_clean, distance_adv, corr_adv``.
        Concept shift: ``clip_id, concept_index, target_shift, moved, remaining`` (one row per
        clip and concept).

    Raises
    ------
    RobustmerError
        For an untargeted setting.
    """
    goal = parse_target(target)
    table = TARGET_TABLES.get(type(goal))
    if table is None:
        raise RobustmerError(f"attack target {target!r}: expected a targeted attack's target")
    return table(clips, goal)
