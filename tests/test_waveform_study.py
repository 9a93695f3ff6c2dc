"""A tiny study that runs a targeted waveform attack at a grid of SNR budgets: the report's
SNR-to-target table against a brute-force computation from the runs' own files, the concepts
under attack against the runs' checkpoints, and the listening section."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_profile

from robustmer.attacks import PaperConfig, PGDConfig
from robustmer.attacks.goal import EMOTION_PROFILES
from robustmer.evaluation.concepts import concept_std, concept_summary, concept_table, head_weight
from robustmer.evaluation.snr_target import SnrTargetSettings
from robustmer.names import EMOTIONS, MIDLEVEL_FEATURES
from robustmer.report.robustness import load_attacks
from robustmer.report.targets import snr_target_section
from robustmer.study import run_study
from robustmer.training import load_run

WAVE = PGDConfig(
    epsilon=0.05, steps=4, domain="waveform", snr_db=30.0, target="sad", max_clips=2
)
SNRS = (40.0, 25.0, 10.0)
PROFILE = tiny_profile(
    systems=("A2E", "A2B2E", "A2M2E"),
    attacks=(PaperConfig(steps=3), WAVE),
    snrs_db=SNRS,
)


@pytest.fixture(scope="module")
def study(tiny_cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wave-study") / "study"
    run_study(out, data=tiny_cache, profile=PROFILE, device="cpu", jobs=1, threads=1,
              progress=False)
    return out


def _attack_dirs(study: Path) -> list[tuple[dict, Path]]:
    found = []
    for summary in sorted(study.glob("runs/*/attacks/*/summary.json")):
        found.append((json.loads(summary.read_text())["attack"], summary.parent))
    return found


def _brute_force(study: Path, min_corr: float = 0.9) -> dict[str, tuple[float, int, int, int]]:
    """Per system: (lower median SNR needed, clips, reached clean, never reached), looping
    over the stored attack tables clip by clip."""
    target = np.array(EMOTION_PROFILES["sad"])
    needed: dict[str, dict[tuple[int, int], float]] = {}
    clean_hit: dict[str, set[tuple[int, int]]] = {}
    for settings, where in _attack_dirs(study):
        if settings.get("domain") != "waveform":
            continue
        for _, row in pd.read_csv(where / "clips.csv").iterrows():
            clip = (int(row["seed"]), int(row["clip_id"]))
            adv = np.array([row[f"adv_{e}"] for e in EMOTIONS]) * 10
            clean = np.array([row[f"clean_{e}"] for e in EMOTIONS]) * 10
            per = needed.setdefault(row["system"], {})
            per.setdefault(clip, -math.inf)
            if np.corrcoef(clean, target)[0, 1] >= min_corr:
                clean_hit.setdefault(row["system"], set()).add(clip)
            if np.corrcoef(adv, target)[0, 1] >= min_corr:
                per[clip] = max(per[clip], settings["snr_db"])
    out = {}
    for system, per in needed.items():
        hits = clean_hit.get(system, set())
        values = sorted(math.inf if c in hits else v for c, v in per.items())
        never = sum(v == -math.inf for v in values)
        out[system] = (values[(len(values) - 1) // 2], len(values), len(hits), never)
    return out


def test_snr_to_target_table_against_brute_force(study: Path) -> None:
    report = study / "report"
    table = pd.read_csv(report / "snr_to_target.csv")
    expected = _brute_force(study)
    assert sorted(table["system"]) == sorted(expected) == ["A2B2E", "A2E", "A2M2E"]
    for row in table.itertuples():
        median, n, clean, never = expected[row.system]
        assert (row.n_clips, row.reached_clean, row.never_reached) == (n, clean, never)
        assert n == 2 and row.snrs_db == "40,25,10" and row.min_corr == 0.9
        assert row.median_snr_db == median
        assert row.ci_low_db <= row.median_snr_db <= row.ci_high_db
    summary = json.loads((report / "summary.json").read_text())["snr_to_target"]
    assert len(summary["table"]) == 3 and summary["settings"]["min_corr"] == 0.9
    text = (report / "report.md").read_text()
    assert "## SNR needed to reach the target" in text
    # the SNR budgets are met: every waveform clip is at or above its attack's budget
    for settings, where in _attack_dirs(study):
        if settings.get("domain") == "waveform":
            snr = pd.read_csv(where / "clips.csv")["snr_db"]
            assert len(snr) == 2 and (snr >= settings["snr_db"] - 1e-3).all()  # max_clips


def test_snr_to_target_at_thresholds_the_clips_straddle(study: Path, tmp_path: Path) -> None:
    """The same check at thresholds between the observed correlations, so that some clips
    reach the target at some budgets and not at others (the tiny models rarely reach 0.9)."""
    per_clip = pd.read_csv(study / "report" / "snr_to_target_clips.csv")
    observed = np.sort(np.concatenate([per_clip["corr_clean"], per_clip["corr_best"]]))
    clips = load_attacks(study)
    nontrivial = 0
    for min_corr in np.quantile(observed, [0.2, 0.5, 0.8]):
        settings = SnrTargetSettings(min_corr=float(min_corr))
        section = snr_target_section(clips, tmp_path, settings)
        table = pd.DataFrame(section.summary["table"])
        expected = _brute_force(study, float(min_corr))
        for row in table.itertuples():
            median, n, clean, never = expected[row.system]
            assert (row.n_clips, row.reached_clean, row.never_reached) == (n, clean, never)
            assert row.median_snr_db == median
            nontrivial += math.isfinite(median)
    assert nontrivial > 0  # some median is a budget of the grid


def test_concepts_in_the_report_equal_the_runs_own_numbers(study: Path) -> None:
    report = study / "report"
    table = pd.read_csv(report / "concepts.csv")
    assert set(table["system"]) == {"A2B2E", "A2M2E"}  # bottleneck runs only
    paper_key = PaperConfig(steps=3).key()
    run = study / "runs" / "A2M2E-seed6"
    clips = pd.read_parquet(run / "attacks" / paper_key / "clips.parquet")
    loaded = load_run(run, device="cpu")
    mid = clips[[f"{p}_{f}" for p in ("clean_mid", "adv_mid") for f in MIDLEVEL_FEATURES]]
    mid = mid.to_numpy(np.float64)  # [n, 14]
    mine = concept_summary(concept_table(
        clips["clip_id"].to_numpy(), mid[:, :7], mid[:, 7:], head_weight(loaded.model),
        concept_std(loaded, allow_constant=True), MIDLEVEL_FEATURES))
    got = table[(table["system"] == "A2M2E") & (table["key"] == paper_key)]
    assert list(got["concept"].unique()) == list(MIDLEVEL_FEATURES)
    merged = got.merge(mine, on=["concept", "emotion"], suffixes=("", "_mine"))
    assert len(merged) == 56
    for column in ("concept_change_std", "contribution", "emotion_change", "share"):
        np.testing.assert_allclose(merged[column], merged[f"{column}_mine"], rtol=1e-9)
    # per-concept contributions add up to the emotion change the attack recorded
    for (system, key), g in table.groupby(["system", "key"]):
        runs = sorted(study.glob(f"runs/{system}-seed*/attacks/{key}/clips.parquet"))
        attacked = pd.concat([pd.read_parquet(p) for p in runs])
        for emotion, e in g.groupby("emotion"):
            change = 10 * (attacked[f"adv_{emotion}"] - attacked[f"clean_{emotion}"]).mean()
            assert e["contribution"].sum() == pytest.approx(change, abs=1e-4)
    assert set(table[table["system"] == "A2B2E"]["concept"]) == {f"unit{k}" for k in range(1, 8)}
    # the unnamed units' scale recorded by training equals their sd on the training excerpts
    unnamed = load_run(study / "runs" / "A2B2E-seed6", device="cpu")
    assert len(unnamed.final["metrics"]["train"]["bottleneck_std"]) == 7
    recorded = concept_std(unnamed)
    unnamed.final = None  # forces the forward pass over the training excerpts
    np.testing.assert_allclose(recorded, concept_std(unnamed), rtol=1e-5)
    text = (report / "report.md").read_text()
    assert "## Concepts under attack" in text
    for system in ("A2B2E", "A2M2E"):
        assert (report / "figures" / f"concepts_{system}.png").is_file()
    # the tiny data's 7th mid-level annotation is constant: its sd change is undefined
    assert got.set_index("concept").loc["minorness", "concept_change_std"].isna().all()
    assert "minorness constant on the training split" in text


def test_listening_section_from_the_study(study: Path) -> None:
    report = study / "report"
    lowest = WAVE.replace(snr_db=min(SNRS)).key()
    audio = sorted(p.relative_to(study).parts[3] for p in study.glob("runs/*/attacks/*/audio"))
    assert audio == [lowest] * 3  # the loudest attack of the grid keeps its audio, per run
    html = (report / "report.html").read_text()
    assert html.count("<audio") == 3 * 2 * 2  # 3 systems x 2 clips x (clean, adversarial)
    assert "Listening: waveform attacks" in (report / "report.md").read_text()
    # the waveform attack's ε is an amplitude, not a spectrogram radius: no robustness curves
    assert not (report / "robustness_runs.csv").exists()
