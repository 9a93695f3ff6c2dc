"""The typed run/attack records and the report's refusal to mix settings (issue 11).

Cases of issue 11 reproduced here: (1) another attack on a study's run does not touch the
study's results or report; (2) a run trained by hand with other settings is left out of the
study's report (and listed), unless asked for; (3) a report of another attack goes to its own
directory, says that attack's settings and draws its ΔMAE, and the paper's reference values
appear only for the paper's data and attack; (4) the report does not count checkpoint
hashes as attack settings. Case 12 (zero gradient) is in ``test_attack_cli.py``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import prepare_tiny_cache, tiny_profile
from test_report import ATTACK, make_study

from robustmer.attacks import PaperConfig, PGDConfig
from robustmer.errors import RobustmerError
from robustmer.records import (
    FORMAT_VERSION,
    AttackSummary,
    Cost,
    FinalMetrics,
    attack_dir,
    clip_columns,
    read_clips,
)
from robustmer.report import build_report

STUDY_ATTACK = PaperConfig(steps=3)
TRAIN = {"max_epochs": 2, "patience": 2, "width": 0.0625}


def cli(*args: str) -> int:
    from robustmer.cli import main

    with pytest.raises(SystemExit) as exc:
        main(list(args))
    return exc.value.code


# ----------------------------------------------------------------------------- records


def test_records_round_trip_and_version_checks(tmp_path: Path) -> None:
    cost = Cost(1.5, 10, 8, 8, "cpu", "cpu", "2.x", epochs_run=2)
    final = FinalMetrics("A2E", 6, "a2e", 0.25, "emotions", 2, 0.5, 2, False, {"test": {}}, cost)
    final.write(tmp_path / "final.json")
    doc = json.loads((tmp_path / "final.json").read_text())
    assert doc["format"] == "robustmer-final" and doc["version"] == FORMAT_VERSION
    assert doc["cost"]["epochs_run"] == 2 and doc["cost"]["attack_calls"] == 0
    assert FinalMetrics.read(tmp_path / "final.json") == final
    no_cost = FinalMetrics.from_dict({**doc, "cost": None})
    assert no_cost.cost is None  # a run with unknown cost (e.g. imported from logs)
    for bad, match in (
        ({**doc, "version": FORMAT_VERSION + 1}, "version"),
        ({**doc, "format": "robustmer-attack"}, "format 'robustmer-attack'"),
        ({k: v for k, v in doc.items() if k != "format"}, "format None"),
        ({k: v for k, v in doc.items() if k != "seed"}, "missing field 'seed'"),
        ({**doc, "adv_iters": 5}, "unknown field"),
    ):
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(RobustmerError, match=match) as info:
            FinalMetrics.read(tmp_path / "bad.json")
        assert "bad.json" in str(info.value)  # the error names the file
    # NaN round trips as JSON null
    summary = AttackSummary.from_dict(
        {**json.loads(json.dumps(_summary_doc())), "snr_db_mean": None}, where="x"
    )
    assert math.isnan(summary.snr_db_mean) and summary.zero_gradient_clips == (3,)


def _summary_doc() -> dict:
    cost = Cost(1.0, 4, 4, 4, "cpu", "cpu", "2.x")
    return AttackSummary(
        "r", "A2E", 6, ATTACK.to_dict(), ATTACK.key(), "test", 1, None, None,
        0.1, 0.2, 0.1, 0.2, 0.5, 0.1, 30.0, 30.0, 1, 5.0, 0.0, 1.0, 0.1, (3,), cost,
    ).to_dict()  # fmt: skip


def test_per_clip_reader_checks_the_columns(tmp_path: Path) -> None:
    from test_report import clip_rows

    df = clip_rows("A2M2E", 6)
    df.to_csv(tmp_path / "clips.csv", index=False)
    back = read_clips(tmp_path)  # CSV when there is no Parquet
    assert list(back.columns) == clip_columns(True) and len(back) == 5
    df.drop(columns=["attack_key"]).to_parquet(tmp_path / "clips.parquet", index=False)
    with pytest.raises(RobustmerError, match=r"clips\.parquet: columns differ .*attack_key"):
        read_clips(tmp_path)
    df.assign(source_db=1.0).to_parquet(tmp_path / "clips.parquet", index=False)
    assert list(read_clips(tmp_path).columns) == [*clip_columns(True), "source_db"]  # extras
    df.iloc[:0].to_parquet(tmp_path / "clips.parquet", index=False)
    with pytest.raises(RobustmerError, match="no rows"):
        read_clips(tmp_path)
    with pytest.raises(RobustmerError, match="file not found"):
        read_clips(tmp_path / "nowhere")


# ----------------------------------------------------------------------------- a real study


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A tiny real study: A2E and A2M2E, seed 6, the paper attack with 3 steps."""
    from robustmer.study import run_study

    root = tmp_path_factory.mktemp("records")
    cache = prepare_tiny_cache(root)
    profile = tiny_profile(train=TRAIN, attacks=(STUDY_ATTACK,))
    run_study(root / "study", data=cache, profile=profile, device="cpu", jobs=1, progress=False)
    return root / "study"


def _copy(study: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "study"
    shutil.copytree(study, copy)
    return copy


def _report(report_dir: Path) -> dict:
    return json.loads((report_dir / "summary.json").read_text())


def test_case1_another_attack_does_not_touch_the_studys_results(study, tmp_path):
    study = _copy(study, tmp_path)
    run = study / "runs" / "A2E-seed6"
    own = attack_dir(run, STUDY_ATTACK.key())
    stamp = (own / "clips.parquet").stat().st_mtime_ns
    before = _report(study / "report")
    # the case: another budget for one of the study's runs
    assert cli("attack", "--run", str(run), "--set", "steps=7", "--device", "cpu") == 0
    other = AttackSummary.read(attack_dir(run, PaperConfig(steps=7).key()) / "summary.json")
    assert other.attack["steps"] == 7
    assert (own / "clips.parquet").stat().st_mtime_ns == stamp  # untouched
    assert cli("report", str(study)) == 0
    after = _report(study / "report")
    assert after["delta_mae"] == before["delta_mae"] and after["attack"] == STUDY_ATTACK.key()
    assert after["provenance"]["attack_settings"]["steps"] == 3  # the settings used


def test_case2_a_run_trained_with_other_settings_is_left_out(study, tmp_path, caplog):
    from robustmer.evaluation import attack_run
    from robustmer.study.run import recorded_path
    from robustmer.training import make_config, train

    study = _copy(study, tmp_path)
    state = json.loads((study / "study.json").read_text())
    cache = recorded_path(state["data"]["cache"], study)
    # the case: a run trained by hand into the study with other settings, and attacked
    hand = study / "runs" / "A2E-seed99"
    config = make_config("A2E", 99, max_epochs=1, width=0.125, device="cpu")
    train(cache, hand, config, progress=False)
    attack_run(hand, STUDY_ATTACK, device=None, progress=False)
    caplog.set_level(logging.WARNING)
    report = _report(build_report(study))
    assert [r["run"] for r in report["runs"]] == ["A2E-seed6", "A2M2E-seed6"]
    seeds = {r["system"]: r["n_seeds"] for r in report["table1"]}
    assert (seeds["A2E"], seeds["A2M2E"]) == (1, 1)  # A2E-seed99 is not pooled into A2E
    (entry,) = report["excluded"]
    assert entry["run"] == "A2E-seed99" and entry["what"] == "run" and not entry["included"]
    for detail in ("max_epochs 1 (study: 2)", "width 0.125 (study: 0.0625)", "patience 50"):
        assert detail in entry["reason"]
    assert any(n.startswith("A2E-seed99: run left out:") for n in report["notes"])
    warnings = [r for r in caplog.records if "A2E-seed99" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    # the report lists it and the settings actually used
    md = (study / "report" / "report.md").read_text(encoding="utf-8")
    assert "A2E-seed99: run left out" in md and "training settings used:" in md
    assert report["provenance"]["train_settings"][0]["width"] == 0.0625
    # explicitly asked for: included, and said so
    out = build_report(study, include_mismatched=True, out=tmp_path / "all")
    everything = _report(out)
    assert {r["run"] for r in everything["runs"]} == {"A2E-seed6", "A2E-seed99", "A2M2E-seed6"}
    assert any("A2E-seed99: run included although" in n for n in everything["notes"])
    assert len(everything["provenance"]["train_settings"]) == 2
    assert cli("report", str(study), "--include-mismatched", "--out", str(tmp_path / "cli")) == 0
    assert len(_report(tmp_path / "cli")["runs"]) == 3


def test_case3_report_of_another_attack_is_its_own(study, tmp_path):
    from robustmer.evaluation import attack_run

    study = _copy(study, tmp_path)
    pgd = PGDConfig(epsilon=0.05, steps=2)
    summaries = {
        run.name: attack_run(run, pgd, device=None, progress=False)
        for run in sorted((study / "runs").iterdir())
    }
    paper_report = (study / "report" / "summary.json").read_bytes()
    # the case: the report of the PGD results
    args = ("report", str(study), "--attack", "pgd", "--set", "epsilon=0.05", "--set", "steps=2")
    assert cli(*args) == 0
    pgd_dir = study / f"report-{pgd.key()}"
    report = _report(pgd_dir)
    assert (study / "report" / "summary.json").read_bytes() == paper_report  # not overwritten
    assert report["attack"] == pgd.key()
    assert report["provenance"]["attack_settings"] == pgd.to_dict()
    md = (pgd_dir / "report.md").read_text(encoding="utf-8")
    assert f"attack '{pgd.key()}' settings used: attack=pgd, norm=linf, epsilon=0.05" in md
    # Figure 3 and the ΔMAE table are the PGD results
    assert (pgd_dir / "figures" / "fig3_delta_mae.png").is_file()
    got = {(r["system"], r["seed"]): r["delta_mae"] for r in report["delta_mae"]}
    for name, summary in summaries.items():
        assert got[(summary.system, summary.seed)] == pytest.approx(summary.delta_mae), name
    clips = pd.read_csv(pgd_dir / "clips.csv")
    assert set(clips["attack_key"]) == {pgd.key()} and (clips["linf"] <= 0.05).all()
    # by storage key, and into a directory of one's choice
    assert cli("report", str(study), "--attack", pgd.key(), "--out", str(tmp_path / "r")) == 0
    assert _report(tmp_path / "r")["delta_mae"] == report["delta_mae"]
    # the paper's values: not for these synthetic-cache data
    assert all(r["paper_avg_corr"] is None for r in report["table1"])


def test_case3_paper_values_only_for_the_papers_data_and_attack(tmp_path):
    study = make_study(tmp_path)  # the paper attack's settings, hand-made numbers
    doc = json.loads((study / "study.json").read_text())
    doc["data"]["kind"] = "real"
    (study / "study.json").write_text(json.dumps(doc))
    t1 = {r["system"]: r for r in _report(build_report(study))["table1"]}
    assert t1["A2E"]["paper_avg_corr"] == 0.73 and t1["A2E"]["paper_delta_mae_median"] == 1.6
    # the same data, another attack (its results stored under its key): clean values only
    other = PaperConfig(steps=100)
    for run in (study / "runs").iterdir():
        src = attack_dir(run, ATTACK.key())
        if src.is_dir():
            dst = attack_dir(run, other.key())
            shutil.copytree(src, dst)
            summary = AttackSummary.read(dst / "summary.json")
            changed = dataclasses.replace(summary, attack=other.to_dict(), key=other.key())
            changed.write(dst / "summary.json")
    t1 = {r["system"]: r for r in _report(build_report(study, attack=other))["table1"]}
    assert t1["A2E"]["paper_avg_corr"] == 0.73 and t1["A2E"]["paper_delta_mae_median"] is None


def test_case4_checkpoint_hashes_are_not_attack_settings(tmp_path):
    study = make_study(tmp_path)  # every run's summary has its own checkpoint hash
    report = _report(build_report(study))
    assert report["provenance"]["attack_remarks"] == []
    assert not any("different attack settings" in n for n in report["notes"])
    md = (study / "report" / "report.md").read_text(encoding="utf-8")
    assert "different attack settings" not in md
    # a result whose checkpoint no longer matches the run's is left out, named
    run = study / "runs" / "A2E-seed6"
    (run / "best.safetensors").write_bytes(b"a retrained checkpoint")
    report = _report(build_report(study))
    (entry,) = report["excluded"]
    assert entry["run"] == "A2E-seed6" and entry["what"] == "attack"
    assert "another checkpoint" in entry["reason"]
    assert {r["seed"] for r in report["delta_mae"] if r["system"] == "A2E"} == {21}
    # results of other settings filed under the study's key are left out as well
    summary = AttackSummary.read(attack_dir(run, ATTACK.key()) / "summary.json")
    (run / "best.safetensors").unlink()
    changed = {**summary.to_dict(), "attack": {**ATTACK.to_dict(), "steps": 999}}
    (attack_dir(run, ATTACK.key()) / "summary.json").write_text(json.dumps(changed))
    (entry,) = _report(build_report(study))["excluded"]
    assert "steps 999 (study: 1000)" in entry["reason"]


def test_system_names_are_validated_and_missing_cost_is_one_note(tmp_path):
    study = make_study(tmp_path)
    for run in (study / "runs").iterdir():
        final = run / "final.json"
        if final.is_file():
            doc = json.loads(final.read_text())
            final.write_text(json.dumps({**doc, "cost": None}))
    notes = _report(build_report(study))["notes"]
    cost_notes = [n for n in notes if "training cost unknown" in n]
    assert len(cost_notes) == 1 and "(9 run(s))" in cost_notes[0]
    final = study / "runs" / "A2E-seed6" / "final.json"
    final.write_text(final.read_text().replace('"A2E"', '"A2X"'))
    config = study / "runs" / "A2E-seed6" / "config.json"
    config.write_text(config.read_text().replace('"A2E"', '"A2X"'))
    with pytest.raises(RobustmerError, match=r"system 'A2X'"):
        build_report(study)


def test_significance_test_with_no_pairs_is_an_error(tmp_path):
    study = make_study(tmp_path)
    for run in ("A2M2E-seed6", "A2M2E-seed21"):
        directory = attack_dir(study / "runs" / run, ATTACK.key())
        df = pd.read_parquet(directory / "clips.parquet")
        df["clip_id"] = df["clip_id"] + 1000  # clips that do not pair with A2E's
        df.to_parquet(directory / "clips.parquet", index=False)
        (directory / "clips.csv").unlink()
    with pytest.raises(RobustmerError, match="A2E vs A2M2E: no clips pair up"):
        build_report(study)
