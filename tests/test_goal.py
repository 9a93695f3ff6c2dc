"""Attack goals (:mod:`robustmer.attacks.goal`): target parsing and the objectives' values."""

from __future__ import annotations

import pytest
import torch

from robustmer.attacks.goal import (
    EMOTION_PROFILES,
    ConceptShift,
    EmotionTarget,
    Untargeted,
    parse_target,
)
from robustmer.errors import RobustmerError


def test_parse_target() -> None:
    assert parse_target(None) == Untargeted()
    assert parse_target("Sad") == EmotionTarget(EMOTION_PROFILES["sad"])
    assert parse_target("1,2,3,4,5,6,7,8.5") == EmotionTarget((1, 2, 3, 4, 5, 6, 7, 8.5))
    assert parse_target("dissonance=+2, melodiousness=-1.5") == ConceptShift((4, 0), (2.0, -1.5))
    assert parse_target("unit3=1") == ConceptShift((2,), (1.0,))
    for bad, match in [
        ("gloomy", "profile name"),
        ("1,2,3", "profile name"),
        ("loudness=+1", "unknown"),
        ("dissonance=lots", "concept=amount"),
        ("dissonance=1,dissonance=2", "twice"),
        ("", "non-empty"),
    ]:
        with pytest.raises(RobustmerError, match=match):
            parse_target(bad)
    for ratings in EMOTION_PROFILES.values():
        assert len(ratings) == 8 and all(1 <= r <= 9 for r in ratings)


def test_objectives_by_hand() -> None:
    y = torch.tensor([[0.5] * 8, [0.2] * 8])
    pred = torch.tensor([[0.6] * 8, [0.2] * 8])
    mid_clean = torch.tensor([[0.1] * 7, [0.3] * 7])
    untargeted = Untargeted().bind(pred, mid_clean, y)
    torch.testing.assert_close(untargeted(pred, None), torch.tensor([0.01, 0.0]))
    target = parse_target("sad")
    sad = torch.tensor(EMOTION_PROFILES["sad"]) / 10
    objective = target.bind(pred, mid_clean, y)
    torch.testing.assert_close(objective(pred, None), -((pred - sad) ** 2).mean(dim=1))
    assert float(objective(sad.repeat(2, 1), None).abs().max()) == 0.0
    shift = parse_target("dissonance=+2").bind(pred, mid_clean, y)
    moved = mid_clean.clone()
    moved[:, 4] += 0.2  # +2 on the rating scale = +0.2 on the training scale
    torch.testing.assert_close(shift(pred, moved), torch.zeros(2))
    torch.testing.assert_close(shift(pred, mid_clean), torch.full((2,), -0.04))
    with pytest.raises(RobustmerError, match="bottleneck"):
        parse_target("dissonance=+2").bind(pred, None, y)
