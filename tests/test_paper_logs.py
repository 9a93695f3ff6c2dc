"""Tests of importing the authors' published attack logs (robustmer.evaluation.paper_logs).

The two published logs in the shared fixtures are imported and reported; the report's ΔMAE
and clean average correlation are checked against values computed here from the CSV with the
``csv`` module and NumPy alone. Tiny hand-written logs check the parser's values and its
errors (file, row and line named).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from robustmer.attacks import PaperConfig, attack_config
from robustmer.errors import RobustmerError
from robustmer.evaluation.paper_logs import (
    PAPER_RUNS,
    find_paper_logs,
    import_paper_logs,
    read_hparams,
    read_log_csv,
    read_paper_log,
)
from robustmer.names import EMOTIONS, PAPER_SEEDS, SYSTEM_NAMES
from robustmer.records import AttackSummary, FinalMetrics, attack_dir, clip_columns, read_clips

FIXTURE_LOGS = {
    ("A2E", 6): "6_7470d_2024-03-21_18-18-51_0.001_corr_0.002_test",
    ("A2M2E", 6): "6_ce53b_2024-03-21_18-11-21_0.001_corr_0.002_test",
}
HPARAMS = (
    "alpha: null\narchitecture: {arch}\nclip_eps: 0.001\nconv_method: corr\nlr: 0.002\n"
    "max_iters: 1000\nmode: untargeted\nmodel: {hash}_2024-03-21_18-18-51\noptimiser: Adam\n"
    "sign: true\ntarget: random\n"
)
HEADER = "file,epoch,db,norm,converged,true-label,orig-pred,new-pred,adv-target"


def _hand_metrics(log_csv: Path) -> dict[str, float]:
    """MAE, ΔMAE and average correlations of a log, by hand from the CSV text."""

    def vec(text: str) -> list[float]:
        return [float(v) for v in text.replace("[", " ").replace("]", " ").split()]

    with open(log_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    y, clean, adv = (  # [36, 8] each
        np.array([vec(r[c]) for r in rows]) for c in ("true-label", "orig-pred", "new-pred")
    )
    assert y.shape == (36, 8)

    def avg_corr(p: np.ndarray) -> float:
        return float(np.mean([np.corrcoef(y[:, j], p[:, j])[0, 1] for j in range(8)]))

    mae_clean, mae_adv = float(np.abs(y - clean).mean()), float(np.abs(y - adv).mean())
    return {
        "mae_clean": mae_clean,
        "mae_adv": mae_adv,
        "delta_mae": mae_adv - mae_clean,
        "avg_corr_clean": avg_corr(clean),
        "avg_corr_adv": avg_corr(adv),
    }


def test_fixture_logs_reported_as_computed_by_hand(shared_dir: Path, tmp_path: Path) -> None:
    from robustmer.report import build_report

    logs = shared_dir / "fixtures" / "paper_logs"
    study = tmp_path / "paper"
    runs = import_paper_logs(logs, study)
    assert sorted(p.name for p in runs) == ["A2E-seed6", "A2M2E-seed6"]
    summary = json.loads((build_report(study) / "summary.json").read_text())
    delta = {(r["system"], r["seed"]): r for r in summary["delta_mae"]}
    table1 = {r["system"]: r for r in summary["table1"]}
    for (system, seed), folder in FIXTURE_LOGS.items():
        hand = _hand_metrics(logs / folder / "log.csv")
        row = delta[(system, seed)]
        assert row["n_clips"] == 36
        for key, value in hand.items():
            assert row[key] == pytest.approx(value, abs=1e-9), (system, key)
        assert table1[system]["avg_corr_mean"] == pytest.approx(hand["avg_corr_clean"], abs=1e-9)
        assert table1[system]["mae_mean"] == pytest.approx(hand["mae_clean"], abs=1e-9)
        assert table1[system]["delta_mae_median"] == pytest.approx(hand["delta_mae"], abs=1e-9)
        assert row["iterations_mean"] == 1000 and row["converged_rate"] == 0
        assert row["snr_db_median"] is None  # the authors' SNR is not robustmer's: NaN
    # no training cost in the logs: one note for all runs, none left out
    assert [n for n in summary["notes"] if "cost" in n] == [
        "training cost unknown: A2E-seed6, A2M2E-seed6 (2 run(s))"
    ]
    assert summary["excluded"] == []
    # the numbers the documentation quotes (docs/paper-logs.md)
    assert delta[("A2E", 6)]["delta_mae"] == pytest.approx(1.304, abs=5e-4)
    assert delta[("A2M2E", 6)]["delta_mae"] == pytest.approx(1.497, abs=5e-4)
    assert table1["A2E"]["avg_corr_mean"] == pytest.approx(0.733, abs=5e-4)
    assert table1["A2M2E"]["avg_corr_mean"] == pytest.approx(0.720, abs=5e-4)


def test_fixture_log_columns_and_records(shared_dir: Path, tmp_path: Path) -> None:
    folder = shared_dir / "fixtures" / "paper_logs" / FIXTURE_LOGS[("A2E", 6)]
    log = read_paper_log(folder)
    assert (log.run_id, log.system, log.seed) == ("6_7470d", "A2E", 6)
    first = log.clips.iloc[0]
    assert first["clip_id"] == 146 and first["iterations"] == 1000 and not first["converged"]
    assert first["l2"] == pytest.approx(13.997110366821289)
    assert first["paper_db"] == pytest.approx(38.660324)
    assert first["threshold"] == pytest.approx(-0.8)
    assert math.isnan(first["snr_db"]) and math.isnan(first["linf"])
    assert first["adv_tender"] == pytest.approx(5.753818)
    # a single log folder imports too, as records the report reads; no checkpoint, no cost
    runs = import_paper_logs(folder, tmp_path / "one")
    config = json.loads((runs[0] / "config.json").read_text())
    assert config["format"] == "robustmer-imported-run" and config["checkpoint"] is None
    assert config["imported"]["run_id"] == "6_7470d"
    final = FinalMetrics.read(runs[0] / "final.json")
    assert final.cost is None and (final.system, final.seed) == ("A2E", 6)
    key = PaperConfig().key()  # lr 0.002, 1000 iterations, reference mode: the paper's
    summary = AttackSummary.read(attack_dir(runs[0], key) / "summary.json")
    assert summary.key == key and summary.n_clips == 36 and summary.split == "test"
    assert summary.cost.attack_clip_iterations == 36 * 1000
    assert math.isnan(summary.cost.wall_seconds)
    clips = read_clips(attack_dir(runs[0], key))  # checks the columns
    assert list(clips.columns) == [*clip_columns(False), "paper_db"] and len(clips) == 36
    np.testing.assert_array_equal(clips["paper_db"], log.clips["paper_db"])
    assert (runs[0] / "paper_log" / "log.csv").read_bytes() == (folder / "log.csv").read_bytes()


def test_paper_run_table() -> None:
    assert len(PAPER_RUNS) == 50
    for system in SYSTEM_NAMES:
        seeds = sorted(int(r.split("_")[0]) for r, s in PAPER_RUNS.items() if s == system)
        assert seeds == sorted(PAPER_SEEDS), system


# ----------------------------------------------------------------------------- tiny logs


def _vec(values: list[float]) -> str:
    """Like numpy's print of a [1, 8] array, wrapped over two lines."""
    return "[[" + " ".join(f"{v:.5f}" for v in values[:5]) + "\n  " + " ".join(
        f"{v:.5f}" for v in values[5:]
    ) + "]]"


def _write_log(
    root: Path,
    name: str = "7_abcde_2024-01-01_00-00-00_0.001_corr_0.002_test",
    *,
    arch: str = "a2e",
    rows: list[list[str]] | None = None,
    hparams: str | None = None,
) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "hparams.yaml").write_text(
        hparams if hparams is not None else HPARAMS.format(arch=arch, hash=name.split("_")[1])
    )
    if rows is None:
        rows = [
            _row(101, [0.1 * (j + 1) for j in range(8)], 0.05, 1.0),
            _row(102, [0.5] * 8, -0.05, -1.0),
        ]
    with open(folder / "log.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER.split(","))
        writer.writerows(rows)
    return folder


def _row(clip: int, true: list[float], clean_off: float, adv_off: float, **over: str) -> list[str]:
    fields = {
        "file": f"['{clip}.mp3.spec']",
        "epoch": "1000",
        "db": "40.5",
        "norm": "12.25",
        "converged": "False",
        "true-label": _vec(true),
        "orig-pred": _vec([t + clean_off for t in true]),
        "new-pred": _vec([t + adv_off for t in true]),
        "adv-target": "-0.7999999999999998",
    }
    fields.update(over)
    return list(fields.values())


def test_tiny_log_values(tmp_path: Path) -> None:
    folder = _write_log(tmp_path)
    log = read_paper_log(folder, system="aA2E")
    df = log.clips
    assert (log.system, log.seed) == ("aA2E", 7)
    assert list(df["clip_id"]) == [101, 102]
    # every emotion is off by the same amount: per-clip MAE is that amount
    np.testing.assert_allclose(df["mae_clean"], [0.05, 0.05], atol=1e-12)
    np.testing.assert_allclose(df["mae_adv"], [1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(df[[f"true_{e}" for e in EMOTIONS]].iloc[0], np.arange(1, 9) / 10)
    assert set(df["system"]) == {"aA2E"} and set(df["seed"]) == {7}
    assert log.attack == attack_config("paper", mode="reference", steps=1000, step_size=0.002)
    assert set(df["attack"]) == {"paper"} and set(df["attack_key"]) == {log.attack.key()}
    assert df["epsilon"].isna().all() and df["snr_db"].isna().all()
    assert not df["zero_gradient"].any()
    assert list(df["paper_db"]) == [40.5, 40.5] and list(df["l2"]) == [12.25, 12.25]


def test_hparams_scalars_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "hparams.yaml"
    path.write_text(
        "# comment\na: null\nb: true\nc: 12\nd: 0.002\ne: a2e\nf: 'x y'\n\ng:\nh: -0.5\n"
    )
    assert read_hparams(path) == {
        "a": None, "b": True, "c": 12, "d": 0.002, "e": "a2e", "f": "x y", "g": None, "h": -0.5
    }
    for text, line in (
        ("a: 1\nnested:\n  b: 2\n", 3),
        ("a: 1\nb: [1, 2]\n", 2),
        ("a: 1\na: 2\n", 2),
        ("just text\n", 1),
    ):
        path.write_text(text)
        with pytest.raises(RobustmerError, match=rf"hparams.yaml line {line}:"):
            read_hparams(path)


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"file": "146.mp3"}, r"file '146.mp3'"),
        ({"epoch": "ten"}, r"epoch 'ten'"),
        ({"converged": "maybe"}, r"converged 'maybe'"),
        ({"norm": "-1"}, r"norm '-1'"),
        ({"db": "loud"}, r"db 'loud'"),
        ({"new-pred": "[[0.1 0.2 0.3]]"}, r"new-pred has 3 value"),
        ({"orig-pred": "[[0.1 0.2 0.3 0.4 0.5 0.6 0.7 nan]]"}, r"orig-pred has 8 value"),
        ({"true-label": "0.1 0.2"}, r"true-label '0.1 0.2'"),
        ({"file": "['101.mp3.spec']"}, r"clip 101 already logged in row 1"),
    ],
)
def test_malformed_row_names_file_row_and_line(tmp_path: Path, over: dict, match: str) -> None:
    good = _row(101, [0.5] * 8, 0.1, 1.0)
    bad = _row(102, [0.5] * 8, 0.1, 1.0, **over)
    folder = _write_log(tmp_path, rows=[good, bad])
    # row 1 spans lines 2-5 (its three vectors are wrapped), so row 2 starts on line 6
    with pytest.raises(RobustmerError, match=rf"log.csv row 2 \(line 6\): {match}"):
        read_log_csv(folder / "log.csv")


def test_malformed_files(tmp_path: Path) -> None:
    folder = _write_log(tmp_path)
    log_csv = folder / "log.csv"
    text = log_csv.read_text()
    log_csv.write_text(text.replace("adv-target", "target"))
    with pytest.raises(RobustmerError, match=r"log.csv: missing column\(s\) \['adv-target'\]"):
        read_log_csv(log_csv)
    log_csv.write_text(HEADER + "\n")
    with pytest.raises(RobustmerError, match=r"log.csv: no rows"):
        read_log_csv(log_csv)
    log_csv.write_text(HEADER + "\n['5.mp3.spec'],1000,40\n")
    with pytest.raises(RobustmerError, match=r"log.csv row 1 \(line 2\): 3 field\(s\); expected 9"):
        read_log_csv(log_csv)
    with pytest.raises(RobustmerError, match=r"nope/log.csv: file not found"):
        read_log_csv(tmp_path / "nope" / "log.csv")


def test_system_and_settings_errors(tmp_path: Path) -> None:
    unlisted = _write_log(tmp_path / "a")
    with pytest.raises(RobustmerError, match=rf"{unlisted.name}: run 7_abcde is not one of"):
        read_paper_log(unlisted)
    with pytest.raises(RobustmerError, match=r"architecture is 'a2e'; expected 'a2m2e'"):
        read_paper_log(unlisted, system="A2M2E")
    with pytest.raises(RobustmerError, match=r"system 'B2E': unknown"):
        read_paper_log(unlisted, system="B2E")
    listed = _write_log(tmp_path / "b", "6_7470d_2024-03-21_18-18-51_0.001_corr_0.002_test")
    assert read_paper_log(listed).system == "A2E"
    with pytest.raises(RobustmerError, match=r"run 6_7470d is A2E in the authors' list"):
        read_paper_log(listed, system="aA2E")
    for change, match in (
        (("mode: untargeted", "mode: targeted"), r"mode is 'targeted'; expected 'untargeted'"),
        (("lr: 0.002", "lr: fast"), r"lr is 'fast'; expected a number > 0"),
        (("max_iters: 1000", "max_iters: 500"), r"clip\(s\) \[101, 102\] logged more iterations"),
    ):
        hp = HPARAMS.format(arch="a2e", hash="abcde").replace(*change)
        folder = _write_log(tmp_path / change[1].split(":")[0], hparams=hp)
        with pytest.raises(RobustmerError, match=match):
            read_paper_log(folder, system="A2E")
    with pytest.raises(RobustmerError, match=r"folder name 'run1'"):
        read_paper_log(_write_log(tmp_path / "c", "run1", hparams=""), system="A2E")


def test_import_output_rules(tmp_path: Path) -> None:
    logs = tmp_path / "adversaries"
    _write_log(logs)
    (logs / "notes").mkdir()  # folders without a log.csv are not logs
    assert [p.name for p in find_paper_logs(logs)] == [
        "7_abcde_2024-01-01_00-00-00_0.001_corr_0.002_test"
    ]
    with pytest.raises(RobustmerError, match=r"no log.csv in it or its sub-folders"):
        find_paper_logs(logs / "notes")
    study = tmp_path / "study"
    first = import_paper_logs(logs, study, system="A2E")
    key = PaperConfig().key()
    clips = pd.read_parquet(attack_dir(first[0], key) / "clips.parquet")
    again = import_paper_logs(logs, study, system="A2E")  # re-import: same files
    again_clips = pd.read_parquet(attack_dir(again[0], key) / "clips.parquet")
    pd.testing.assert_frame_equal(clips, again_clips)
    # the same system and seed twice
    other = logs / "7_fffff_2024-01-02_00-00-00_0.001_corr_0.002_test"
    shutil.copytree(next(logs.glob("7_abcde_*")), other)
    with pytest.raises(RobustmerError, match=r"A2E-seed7 is also the model of"):
        import_paper_logs(logs, study, system="A2E")
    # a trained study is not written into
    trained = tmp_path / "trained"
    (trained / "runs" / "A2E-seed7").mkdir(parents=True)
    (trained / "runs" / "A2E-seed7" / "config.json").write_text('{"format": "robustmer-run"}')
    with pytest.raises(RobustmerError, match=r"A2E-seed7: exists and was not imported"):
        import_paper_logs(other, trained, system="A2E")
    (trained / "study.json").write_text('{"settings": {}}')
    with pytest.raises(RobustmerError, match=r"study.json: a study that was not imported"):
        import_paper_logs(other, trained, system="A2E")


def _cli(args: list[str]) -> int:
    from robustmer.cli import main

    with pytest.raises(SystemExit) as info:
        main(args)
    return int(info.value.code or 0)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    logs = tmp_path / "adversaries"
    folder = _write_log(logs)
    study = tmp_path / "study"
    cases = [
        ["import-paper-logs", str(logs), "--out", str(study)],  # unlisted, no system
        ["import-paper-logs", str(logs), "--out", str(study), "--system", "X"],
        ["import-paper-logs", str(tmp_path / "missing"), "--out", str(study)],
        ["import-paper-logs", str(folder), "--out", str(folder / "log.csv" / "x")],
    ]
    for args in cases:
        assert _cli(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("robustmer: error:") and "\n" not in err, (args, err)
    assert "log.csv/x: cannot be created" in err
    assert _cli(["import-paper-logs", str(folder), "--out", str(study), "--system", "aA2E"]) == 0
    assert "imported 1 run(s)" in capsys.readouterr().out
    results = attack_dir(study / "runs" / "aA2E-seed7", PaperConfig().key())
    assert (results / "summary.json").is_file()
