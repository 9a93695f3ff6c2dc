"""Concepts under attack (:mod:`robustmer.evaluation.concepts`): the per-concept contributions
add up to the emotion change, the table's numbers are recomputed by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from robustmer.errors import RobustmerError
from robustmer.evaluation.concepts import (
    CONCEPT_COLUMNS,
    concept_contributions,
    concept_figure,
    concept_std,
    concept_summary,
    concept_table,
    head_weight,
    run_concepts,
)
from robustmer.models import build_model
from robustmer.names import EMOTIONS, MIDLEVEL_FEATURES


def _perturbed(run) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """The training clips and the model's outputs for them clean and with added noise."""
    x, _, _, ids = run.cache.arrays("train")
    noise = 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return ids, run.model(x), run.model(x + noise)


def test_contributions_sum_to_the_emotion_change(audio_run) -> None:
    ids, clean, adv = _perturbed(audio_run)
    weight = head_weight(audio_run.model)
    contrib = concept_contributions(clean.midlevel.numpy(), adv.midlevel.numpy(), weight)
    change = (adv.emotions - clean.emotions).double().numpy()  # [n, 8], the model's own outputs
    assert contrib.shape == (len(ids), 8, 7)
    assert np.abs(change).max() > 1e-3  # the noise did move the emotions
    np.testing.assert_allclose(contrib.sum(axis=2), change, atol=2e-6)


def test_table_numbers_by_hand(audio_run) -> None:
    ids, clean, adv = _perturbed(audio_run)
    weight, std = head_weight(audio_run.model), concept_std(audio_run)
    train_mid = audio_run.cache.midlevel[audio_run.cache.rows("train")].astype(np.float64)
    np.testing.assert_allclose(std, np.std(train_mid, axis=0, ddof=1))
    mc, ma = clean.midlevel.double().numpy(), adv.midlevel.double().numpy()
    table = concept_table(np.array(ids), mc, ma, weight, std, MIDLEVEL_FEATURES)
    assert list(table.columns) == list(CONCEPT_COLUMNS) and len(table) == len(ids) * 7 * 8
    pick = (table.clip_id == ids[1]) & (table.concept == "dissonance") & (table.emotion == "sad")
    row = table[pick]
    k, e = MIDLEVEL_FEATURES.index("dissonance"), EMOTIONS.index("sad")
    d = ma[1, k] - mc[1, k]
    assert row.concept_change.item() == pytest.approx(10 * d)
    assert row.concept_change_std.item() == pytest.approx(d / std[k])
    assert row.weight.item() == pytest.approx(weight[e, k])
    assert row.contribution.item() == pytest.approx(10 * weight[e, k] * d)
    emo = (adv.emotions - clean.emotions).double().numpy()[1, e] * 10
    assert row.emotion_change.item() == pytest.approx(emo, abs=2e-5)
    total = np.abs(10 * weight[e, :] * (ma[1] - mc[1])).sum()
    assert row.share.item() == pytest.approx(10 * weight[e, k] * d / total)
    per = table.groupby(["clip_id", "emotion"])
    np.testing.assert_allclose(per.share.apply(lambda s: s.abs().sum()), 1.0)
    np.testing.assert_allclose(per.contribution.sum(), per.emotion_change.first(), atol=1e-9)
    summary = concept_summary(table)
    assert len(summary) == 56 and (summary.clips == len(ids)).all()
    mine = table[(table.concept == "dissonance") & (table.emotion == "sad")]
    got = summary[(summary.concept == "dissonance") & (summary.emotion == "sad")]
    assert got.contribution.item() == pytest.approx(mine.contribution.mean())
    assert got.concept_change_std.item() == pytest.approx(mine.concept_change_std.mean())


def test_run_concepts_reads_an_attack_table(audio_run, audio_run_dir: Path, tmp_path: Path) -> None:
    ids, clean, adv = _perturbed(audio_run)
    clips = {"clip_id": ids}
    for prefix, out in (("clean_mid", clean), ("adv_mid", adv)):
        for j, feature in enumerate(MIDLEVEL_FEATURES):
            clips[f"{prefix}_{feature}"] = out.midlevel[:, j].double().numpy()
    pd.DataFrame(clips).to_parquet(tmp_path / "clips.parquet")
    table = run_concepts(audio_run_dir, tmp_path / "clips.parquet")
    direct = concept_table(
        np.array(ids),
        clean.midlevel.double().numpy(),
        adv.midlevel.double().numpy(),
        head_weight(audio_run.model),
        concept_std(audio_run),
        MIDLEVEL_FEATURES,
    )
    pd.testing.assert_frame_equal(table, direct)
    png = concept_figure(concept_summary(table), tmp_path / "concepts.png", title="noise")
    assert png.stat().st_size > 5000 and png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(RobustmerError, match="bottleneck"):
        run_concepts(audio_run_dir, pd.DataFrame({"clip_id": ids}))


def test_black_box_has_no_concepts() -> None:
    with pytest.raises(RobustmerError, match="no bottleneck"):
        head_weight(build_model("a2e", width=0.0625))
