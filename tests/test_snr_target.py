"""The SNR needed to reach a target (:mod:`robustmer.evaluation.snr_target`): known answers on
hand-made per-clip rows, the SNR grid of a study profile, and which attacks keep audio."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from robustmer.attacks import APGDConfig, NoiseConfig, PaperConfig, PGDConfig
from robustmer.attacks.goal import EMOTION_PROFILES
from robustmer.errors import RobustmerError
from robustmer.evaluation.curves import at_epsilons, transfer_keys
from robustmer.evaluation.snr_target import (
    SnrTargetSettings,
    at_snrs,
    attack_family,
    listen_keys,
    lower_median,
    snr_needed,
    snr_to_target,
)
from robustmer.names import EMOTIONS
from robustmer.study import StudyProfile

SAD = np.array(EMOTION_PROFILES["sad"]) / 10  # training scale
OFF = np.array([5.0, 6.0, 4.0, 5.0, 6.0, 5.0, 4.0, 5.0]) / 10  # r with sad = -0.47

WAVE = PGDConfig(epsilon=0.05, steps=5, domain="waveform", snr_db=30.0, target="sad")


def _rows(system: str, hits: dict[int, dict[float, bool]], clean_hit: set[int]) -> pd.DataFrame:
    """One row per clip and SNR budget; the prediction is the target itself (reached) or
    ``OFF`` (not reached)."""
    family, label, _ = attack_family(WAVE.to_dict())
    rows = []
    for clip, by_snr in hits.items():
        for snr, hit in by_snr.items():
            row = {"system": system, "seed": 6, "clip_id": clip, "family": family,
                   "label": label, "target": "sad", "snr_budget_db": snr}
            clean = SAD if clip in clean_hit else OFF
            adv = SAD + 0.01 * np.arange(8) / 8 if hit else OFF
            row.update({f"clean_{e}": v for e, v in zip(EMOTIONS, clean, strict=True)})
            row.update({f"adv_{e}": v for e, v in zip(EMOTIONS, adv, strict=True)})
            rows.append(row)
    return pd.DataFrame(rows)


def test_snr_needed_known_answers() -> None:
    rows = _rows("A2E", {
        1: {40.0: False, 30.0: True, 20.0: True},   # -> 30
        2: {40.0: False, 30.0: False, 20.0: True},  # -> 20
        3: {40.0: False, 30.0: False, 20.0: False},  # never -> -inf
        4: {40.0: True, 30.0: True, 20.0: True},    # clean already at the target -> +inf
        5: {40.0: True, 30.0: False, 20.0: True},   # not monotone: the highest budget counts
    }, clean_hit={4})  # fmt: skip
    per_clip = snr_needed(rows).set_index("clip_id")
    assert per_clip["snr_needed_db"].to_dict() == {
        1: 30.0, 2: 20.0, 3: -math.inf, 4: math.inf, 5: 40.0
    }
    assert per_clip["reached"].to_dict() == {1: True, 2: True, 3: False, 4: True, 5: True}
    assert per_clip["reached_clean"].sum() == 1 and (per_clip["n_snrs"] == 3).all()
    assert per_clip.loc[3, "corr_best"] == pytest.approx(np.corrcoef(OFF, SAD)[0, 1])
    _, summary = snr_to_target(rows)
    row = summary.iloc[0]
    # sorted: -inf, 20, 30, 40, +inf -> lower median 30
    assert row["median_snr_db"] == 30.0 and row["snrs_db"] == "40,30,20"
    assert (row["n_clips"], row["reached_clean"], row["never_reached"]) == (5, 1, 1)
    assert row["ci_low_db"] <= 30.0 <= row["ci_high_db"]
    assert {row["ci_low_db"], row["ci_high_db"]} <= {-math.inf, 20.0, 30.0, 40.0, math.inf}


def test_criterion_and_lower_median() -> None:
    assert lower_median(np.array([3.0, 1.0, 2.0, 4.0])) == 2.0  # not 2.5
    assert lower_median(np.array([-math.inf, math.inf])) == -math.inf
    rows = _rows("A2E", {1: {30.0: True}}, clean_hit=set())
    r = float(np.corrcoef(SAD + 0.01 * np.arange(8) / 8, SAD)[0, 1])
    strict = SnrTargetSettings(min_corr=min(1.0, r + 1e-9))
    assert snr_needed(rows)["snr_needed_db"].item() == 30.0
    assert snr_needed(rows, strict)["snr_needed_db"].item() == -math.inf
    with pytest.raises(RobustmerError, match="min_corr"):
        SnrTargetSettings(min_corr=1.5)


def test_profile_grid_only_targeted_waveform_attacks() -> None:
    untargeted = PGDConfig(epsilon=0.05, steps=5, domain="waveform", snr_db=30.0)
    attacks = (PaperConfig(steps=3), APGDConfig(epsilon=0.1), NoiseConfig(epsilon=0.1), WAVE,
               untargeted)
    profile = StudyProfile(name="t", attacks=attacks, epsilons=(0.01, 0.1),
                           snrs_db=(40, 20))
    got = profile.evaluation_attacks()
    waves = [c for c in got if c.domain == "waveform"]
    # the waveform attack's ε (an amplitude) is not on the ε grid; its SNR is on the SNR grid
    assert [(c.epsilon, c.snr_db, c.target) for c in waves] == [
        (0.05, 40.0, "sad"), (0.05, 20.0, "sad"), (0.05, 30.0, None)]
    assert [c.epsilon for c in got if c.name == "apgd"] == [0.01, 0.1]
    assert at_snrs(attacks, ()) == attacks and at_epsilons(attacks, ()) == attacks
    # audio kept for the lowest SNR of each waveform family; no transfer examples of them
    assert listen_keys(got) == {waves[1].key(), untargeted.key()}
    assert transfer_keys(got) == {APGDConfig(epsilon=0.1).key()}
    assert attack_family(untargeted.to_dict()) is None
    assert attack_family(WAVE.replace(target="dissonance=+1").to_dict()) is None
    family, label, snr = attack_family(WAVE.to_dict())
    assert snr == 30.0 and "snr_db" not in label and "target=sad" in label
    assert family == attack_family(WAVE.replace(snr_db=10.0).to_dict())[0]
    with pytest.raises(RobustmerError, match="snrs_db"):
        StudyProfile(name="t", snrs_db=(math.inf,))


def test_max_clips_is_a_setting() -> None:
    limited = WAVE.replace(max_clips=4)
    assert limited.to_dict()["max_clips"] == 4 and limited.key() != WAVE.key()
    assert "max_clips" not in WAVE.to_dict()  # unchanged keys for attacks of every clip
    assert PGDConfig.parse(["epsilon=0.1", "max_clips=2"]).max_clips == 2
    with pytest.raises(RobustmerError, match="max_clips"):
        WAVE.replace(max_clips=0)
    from robustmer.training import TrainConfig

    with pytest.raises(RobustmerError, match="adv_attack max_clips"):
        TrainConfig(system="aA2E", seed=0, adv_attack=PaperConfig(max_clips=2))


def test_study_snr_grid_option(tmp_path, capsys) -> None:
    from robustmer.cli import main
    from robustmer.cli.study import _parse_snrs
    from robustmer.study.profiles import QUICK

    assert _parse_snrs("40, 30,20") == (40.0, 30.0, 20.0) and _parse_snrs(None) is None
    assert QUICK.with_overrides(snrs_db=(10.0,)).snrs_db == (10.0,)
    with pytest.raises(SystemExit) as exc:
        main(["study", "--out", str(tmp_path / "s"), "--snrs-db", "40,loud"])
    assert exc.value.code == 2 and "--snrs-db '40,loud'" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_study_keeps_audio_for_the_loudest_attack_of_the_smallest_seed(tmp_path) -> None:
    import torch

    from robustmer.study.run import StudyRequest, _units

    profile = StudyProfile(name="t", systems=("A2E", "A2M2E"), seeds=(21, 6),
                           attacks=(PaperConfig(steps=3), WAVE), snrs_db=(40, 20))
    req = StudyRequest(out=tmp_path, profile=profile, data=None, soundtracks=None,
                       midlevel=None, device=torch.device("cpu"), jobs=1, threads=1)
    units = _units(req, tmp_path / "cache", 1)
    keeping = sorted(u.name for u in units if u.kwargs.get("save_audio"))
    loud = WAVE.replace(snr_db=20.0).key()
    assert keeping == [f"attack/A2E-seed6/{loud}", f"attack/A2M2E-seed6/{loud}"]
    assert len([u for u in units if u.name.startswith("attack/")]) == 2 * 2 * 3
