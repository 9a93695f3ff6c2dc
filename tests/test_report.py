"""Tests of the significance tests and the study report (docs/paper.md §8).

A hand-made study directory (4 systems x 2-3 seeds, 5 test clips each, numbers chosen by hand)
is reported, and Table 1, ΔMAE, the paired tests and the cost table are checked against values
computed here by hand or by independent formulas.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from robustmer.attacks import PaperConfig
from robustmer.errors import RobustmerError
from robustmer.evaluation.stats import paired_tests
from robustmer.names import EMOTIONS, MIDLEVEL_FEATURES
from robustmer.records import AttackSummary, Cost, FinalMetrics, attack_dir, clip_columns
from robustmer.report import build_report, cost_ratios, cost_table, table1
from robustmer.report.render import fmt_p

CLIP_IDS = [146, 310, 335, 329, 57]

# (system, seed) -> per-clip MAE before/after attack (rating/10 scale), chosen by hand
ATTACKED: dict[tuple[str, int], tuple[list[float], list[float]]] = {
    ("A2E", 6): ([0.10, 0.12, 0.08, 0.11, 0.09], [1.70, 1.50, 1.90, 1.60, 1.80]),
    ("A2E", 21): ([0.09, 0.11, 0.10, 0.12, 0.13], [1.20, 1.41, 1.30, 1.50, 1.09]),
    ("A2B2E", 6): ([0.11, 0.10, 0.12, 0.10, 0.12], [1.60, 1.40, 1.50, 1.30, 1.70]),
    ("A2B2E", 21): ([0.12, 0.12, 0.11, 0.10, 0.10], [1.35, 1.55, 1.45, 1.25, 1.40]),
    ("A2M2E", 6): ([0.12, 0.10, 0.11, 0.13, 0.09], [1.02, 1.10, 0.90, 1.05, 0.93]),
    ("A2M2E", 21): ([0.10, 0.11, 0.12, 0.09, 0.13], [1.18, 0.85, 1.35, 0.80, 0.92]),
    ("aA2E", 6): ([0.10, 0.10, 0.10, 0.10, 0.10], [1.00, 1.10, 0.90, 1.00, 1.00]),
    ("aA2E", 21): ([0.09, 0.10, 0.11, 0.10, 0.10], [0.95, 1.05, 1.00, 0.90, 1.10]),
}
# (system, seed) -> clean test avg corr, MAE (final.json), wall s, epochs, fwd, bwd passes
FINAL: dict[tuple[str, int], tuple[float, float, float, int, int, int]] = {
    ("A2E", 6): (0.73, 0.10, 100.0, 10, 1000, 1000),
    ("A2E", 21): (0.70, 0.11, 120.0, 12, 1200, 1200),
    ("A2E", 42): (0.76, 0.09, 110.0, 11, 1100, 1100),  # finished, not attacked
    ("A2B2E", 6): (0.70, 0.11, 90.0, 9, 900, 900),
    ("A2B2E", 21): (0.68, 0.11, 110.0, 11, 1100, 1100),
    ("A2M2E", 6): (0.67, 0.11, 95.0, 9, 900, 900),
    ("A2M2E", 21): (0.65, 0.12, 105.0, 11, 1100, 1100),
    ("aA2E", 6): (0.67, 0.10, 300.0, 10, 3000, 2600),
    ("aA2E", 21): (0.66, 0.10, 340.0, 12, 3400, 3000),
}
ATTACK_SECONDS = {
    "A2E": (30.0, 40.0),
    "A2B2E": (20.0, 22.0),
    "A2M2E": (25.0, 27.0),
    "aA2E": (50.0, 60.0),
}
BOTTLENECK = {"A2B2E", "A2M2E"}
ATTACK = PaperConfig()  # the study's evaluation attack (the paper's settings)


def _write(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")


def _metrics(avg_corr: float, mae: float) -> dict:
    corr = dict.fromkeys(EMOTIONS, avg_corr)
    return {
        "avg_corr": avg_corr,
        "corr": corr,
        "mae": mae,
        "rmse": mae * 1.2,
        "r2": dict.fromkeys(EMOTIONS, 0.3),
        "r2_mean": 0.3,
    }


def clip_rows(system: str, seed: int) -> pd.DataFrame:
    """Per-clip rows whose emotion columns are consistent with the hand-chosen MAEs.

    Every emotion's prediction is off by exactly the clip's MAE (random sign), so the mean
    absolute error over the 8 emotions equals ``mae_clean`` / ``mae_adv``.
    """
    mae_clean, mae_adv = ATTACKED[(system, seed)]
    rng = np.random.default_rng(seed * 7 + len(system))
    true = rng.uniform(0.1, 0.9, size=(5, 8))  # [clips, 8]
    sign_c = rng.choice([-1.0, 1.0], size=(5, 8))
    sign_a = rng.choice([-1.0, 1.0], size=(5, 8))
    clean = true + sign_c * np.asarray(mae_clean)[:, None]
    adv = true + sign_a * np.asarray(mae_adv)[:, None]
    df = pd.DataFrame(
        {
            "clip_id": CLIP_IDS,
            "system": system,
            "seed": seed,
            "attack": "paper",
            "attack_key": ATTACK.key(),
            "epsilon": np.nan,
            "iterations": [100, 200, 300, 400, 1000],
            "converged": [True, True, True, True, False],
            "threshold": -1.0,
            "l2": 10.0,
            "linf": 0.5,
            "snr_db": [30.0, 31.0, 32.0, 33.0, np.inf],  # inf: an unperturbed clip
            "zero_gradient": False,
            "mae_clean": mae_clean,
            "mae_adv": mae_adv,
        }
    )
    for prefix, values in (("true", true), ("clean", clean), ("adv", adv)):
        for j, e in enumerate(EMOTIONS):
            df[f"{prefix}_{e}"] = values[:, j]
    if system in BOTTLENECK:
        for f in MIDLEVEL_FEATURES:
            df[f"clean_mid_{f}"] = 0.5
        for f in MIDLEVEL_FEATURES:
            df[f"adv_mid_{f}"] = 0.6
    assert list(df.columns) == clip_columns(system in BOTTLENECK)
    return df


def attack_summary(system: str, seed: int, clips: pd.DataFrame, seconds: float) -> AttackSummary:
    """The summary.json of a hand-made attack (numbers consistent with ``clips``)."""
    return AttackSummary(
        run=f"runs/{system}-seed{seed}",
        system=system,
        seed=seed,
        attack=ATTACK.to_dict(),
        key=ATTACK.key(),
        split="test",
        n_clips=len(clips),
        checkpoint_sha256=f"sha-{system}-{seed}",  # differs per run, as in a real study
        cache_manifest_sha256="abc123",
        mae_clean=float(clips["mae_clean"].mean()),
        mae_adv=float(clips["mae_adv"].mean()),
        delta_mae=float((clips["mae_adv"] - clips["mae_clean"]).mean()),
        mae_adv_of_x_adv=float(clips["mae_adv"].mean()),
        avg_corr_clean=0.7,
        avg_corr_adv=-0.5,
        snr_db_mean=32.0,
        snr_db_median=32.0,
        snr_db_finite_clips=4,
        iterations_mean=400.0,
        converged_fraction=0.8,
        l2_mean=10.0,
        linf_max=0.5,
        zero_gradient_clips=(),
        cost=Cost(
            wall_seconds=seconds,
            forward_clip_passes=2000,
            backward_clip_passes=2000,
            attack_clip_iterations=2000,
            device="cpu",
            device_name="cpu",
            torch="2.x",
        ),
    )


def make_study(root: Path) -> Path:
    """Write the hand-made study directory and return it."""
    study = root / "study"
    _write(
        study / "study.json",
        {
            "profile": "quick",
            "data": {"kind": "synthetic", "manifest_hash": "abc123", "cache": "cache"},
            "shrunk": {
                "seeds": {"paper": 10, "used": 2},
                "train.max_epochs": {"paper": 199, "used": 12},
            },
            "attacks": [ATTACK.to_dict()],
            "device": "cpu",
            "versions": {"python": "3.11", "torch": "2.x"},
        },
    )
    for (system, seed), (corr, mae, wall, epochs, fwd, bwd) in FINAL.items():
        run = study / "runs" / f"{system}-seed{seed}"
        # the layout robustmer.training writes: system and seed in final.json and in
        # config.json["train_config"], config.json["system"] a dict, *_clip_* counters
        metrics = {"emotions": _metrics(corr, mae)}
        if system in BOTTLENECK:
            metrics["midlevel"] = _metrics(0.5, 0.12)
        train_attack_iterations = 500 if system.startswith("a") else 0
        config = {
            "train_config": {"system": system, "seed": seed, "device": "cpu"},
            "system": {"name": system, "adversarial": system.startswith("a")},
        }
        final = FinalMetrics(
            system=system,
            seed=seed,
            arch="a2e",
            width=1.0,
            monitor="emotions",
            best_epoch=epochs - 2,
            best_score=corr,
            epochs_run=epochs,
            stopped_early=True,
            metrics={"train": metrics, "validation": metrics, "test": metrics},
            cost=Cost(
                wall_seconds=wall,
                epochs_run=epochs,
                forward_clip_passes=fwd,
                backward_clip_passes=bwd,
                attack_clip_iterations=train_attack_iterations,
                device="cpu",
                device_name="cpu",
                torch="2.x",
            ),
        )
        _write(run / "config.json", config)
        final.write(run / "final.json")
        if (system, seed) in ATTACKED:
            out = attack_dir(run, ATTACK.key())
            out.mkdir(parents=True)
            clips = clip_rows(system, seed)
            if system == "A2M2E":  # another clip order: tests must pair by (seed, clip_id)
                clips = clips.iloc[[3, 0, 4, 1, 2]]
            clips.to_parquet(out / "clips.parquet", index=False)
            clips.to_csv(out / "clips.csv", index=False)
            seconds = ATTACK_SECONDS[system][[6, 21].index(seed)]
            attack_summary(system, seed, clips, seconds).write(out / "summary.json")
    # a run that has not finished: config only
    _write(
        study / "runs" / "A2M2E-seed42" / "config.json",
        {"train_config": {"system": "A2M2E", "seed": 42}, "system": {"name": "A2M2E"}},
    )
    return study


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    study = make_study(tmp_path_factory.mktemp("report"))
    build_report(study)
    return study


# ------------------------------------------------------------------------ paired_tests


def test_paired_tests_small_case_by_hand() -> None:
    a = np.array([3.0, 4.0, 5.0, 6.0, 0.0])
    b = np.array([2.0, 2.0, 2.0, 2.0, 5.0])
    # d = a - b = [1, 2, 3, 4, -5]: |d| ranks 1..5, negative rank sum 5, positive 10
    res = paired_tests(a, b)
    assert res["n"] == 5 and res["n_dropped"] == 0
    assert res["mean_diff"] == pytest.approx(1.0)
    sd = math.sqrt((0 + 1 + 4 + 9 + 36) / 4)  # std of d with ddof=1
    t = 1.0 / (sd / math.sqrt(5))
    assert res["t"] == pytest.approx(t, rel=1e-12)
    assert res["t_p"] == pytest.approx(2 * stats.t.sf(abs(t), df=4), rel=1e-10)
    assert res["cohen_dz"] == pytest.approx(1.0 / sd, rel=1e-12)
    assert res["wilcoxon"] == 5.0
    # exact two-sided p: 2 * P(W <= 5) over the 32 equally likely sign patterns; the rank
    # subsets with sum <= 5 are {}, {1}, {2}, {3}, {1,2}, {4}, {1,3}, {5}, {1,4}, {2,3}: 10
    assert res["wilcoxon_p"] == pytest.approx(2 * 10 / 32)


def test_paired_tests_nan_safe_and_errors() -> None:
    a = np.array([3.0, 4.0, np.nan, 5.0, 6.0, 0.0, 7.0])
    b = np.array([2.0, 2.0, 1.0, 2.0, 2.0, 5.0, np.nan])
    res = paired_tests(a, b)
    ref = paired_tests([3.0, 4.0, 5.0, 6.0, 0.0], [2.0, 2.0, 2.0, 2.0, 5.0])
    assert res["n"] == 5 and res["n_dropped"] == 2
    for key in ("t", "t_p", "wilcoxon", "wilcoxon_p", "cohen_dz", "mean_a", "mean_b"):
        assert res[key] == pytest.approx(ref[key])
    with pytest.raises(RobustmerError, match="differ in length"):
        paired_tests([1.0, 2.0], [1.0, 2.0, 3.0])
    one = paired_tests([1.0], [2.0])
    assert one["n"] == 1 and math.isnan(one["t"]) and math.isnan(one["wilcoxon"])
    zero = paired_tests([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert zero["mean_diff"] == 0.0 and math.isnan(zero["t"]) and math.isnan(zero["wilcoxon_p"])


# ------------------------------------------------------------------------ report


def _read(study: Path, name: str) -> pd.DataFrame:
    df = pd.read_parquet(study / "report" / f"{name}.parquet")
    csv = pd.read_csv(study / "report" / f"{name}.csv")
    assert list(csv.columns) == list(df.columns) and len(csv) == len(df)
    return df


def test_report_files_exist(study: Path) -> None:
    report = study / "report"
    for name in (
        "report.md",
        "report.html",
        "summary.json",
        "figures/fig3_delta_mae.png",
        "figures/fig3_delta_mae.svg",
        "figures/fig4_true_vs_pred.png",
        "figures/fig4_true_vs_pred.svg",
    ):
        assert (report / name).is_file() and (report / name).stat().st_size > 0, name
    for table in ("table1", "delta_mae", "clips", "tests", "cost"):
        assert (report / f"{table}.parquet").is_file() and (report / f"{table}.csv").is_file()
    assert (report / "figures/fig3_delta_mae.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(study.glob(".report.*")), "temporary directory left behind"


def test_table1_by_hand(study: Path) -> None:
    t1 = _read(study, "table1").set_index("system")
    assert list(t1.index) == ["A2E", "A2B2E", "A2M2E", "aA2E"]  # paper order
    a2e = t1.loc["A2E"]
    assert a2e["n_seeds"] == 3 and a2e["n_attacked"] == 2
    assert a2e["avg_corr_mean"] == pytest.approx(0.73)
    # seeds 0.73, 0.70, 0.76: deviations 0, -0.03, +0.03; sample std sqrt(0.0018 / 2)
    assert a2e["avg_corr_std"] == pytest.approx(0.03)
    assert a2e["mae_mean"] == pytest.approx(0.10)
    assert a2e["mae_std"] == pytest.approx(0.01)
    # ΔMAE per model: seed 6 1.70 - 0.10 = 1.60; seed 21 1.30 - 0.11 = 1.19
    assert a2e["delta_mae_mean"] == pytest.approx((1.60 + 1.19) / 2)
    assert a2e["delta_mae_median"] == pytest.approx((1.60 + 1.19) / 2)
    # synthetic data: the paper's values do not compare and are not shown
    assert math.isnan(a2e["paper_avg_corr"]) and math.isnan(a2e["paper_delta_mae_median"])
    a2m2e = t1.loc["A2M2E"]  # A2M2E-seed42 is unfinished: 2 seeds
    assert a2m2e["n_seeds"] == 2
    assert a2m2e["avg_corr_mean"] == pytest.approx(0.66)
    assert a2m2e["avg_corr_std"] == pytest.approx(math.sqrt(2 * 0.01**2))  # |dev| 0.01 each
    assert a2m2e["delta_mae_mean"] == pytest.approx(((1.00 - 0.11) + (1.02 - 0.11)) / 2)


def test_delta_mae_per_model_by_hand(study: Path) -> None:
    delta = _read(study, "delta_mae")
    assert len(delta) == 8  # one row per attacked model
    got = {(r.system, r.seed): r for r in delta.itertuples()}
    expected = {
        ("A2E", 6): 1.60,
        ("A2E", 21): 1.19,
        ("A2B2E", 6): 1.39,
        ("A2B2E", 21): 1.29,
        ("A2M2E", 6): 0.89,
        ("A2M2E", 21): 0.91,
        ("aA2E", 6): 0.90,
        ("aA2E", 21): 0.90,
    }
    for key, value in expected.items():
        assert got[key].delta_mae == pytest.approx(value), key
        assert got[key].n_clips == 5
    # SNR median of the finite 30..33 dB, mean iterations (100+200+300+400+1000)/5, 4 of 5
    # converged
    assert got[("A2E", 6)].snr_db_median == pytest.approx(31.5)
    assert got[("A2E", 6)].iterations_mean == pytest.approx(400.0)
    assert got[("A2E", 6)].converged_rate == pytest.approx(0.8)
    # adversarial average correlation against np.corrcoef per emotion
    clips = _read(study, "clips")
    g = clips[(clips["system"] == "A2M2E") & (clips["seed"] == 21)]
    r = [np.corrcoef(g[f"true_{e}"], g[f"adv_{e}"])[0, 1] for e in EMOTIONS]
    assert got[("A2M2E", 21)].avg_corr_adv == pytest.approx(np.mean(r), rel=1e-10)
    assert len(clips) == 40 and set(clips["clip_id"]) == set(CLIP_IDS)


def _clip_deltas(a: str, b: str) -> np.ndarray:
    """Per-clip ΔMAE of ``a`` minus that of ``b``, paired by (seed, clip), seeds 6 then 21."""
    return np.array(
        [
            (adv_a - clean_a) - (adv_b - clean_b)
            for seed in (6, 21)
            for clean_a, adv_a, clean_b, adv_b in zip(
                *ATTACKED[(a, seed)], *ATTACKED[(b, seed)], strict=True
            )
        ]
    )


def _exact_wilcoxon(d: np.ndarray) -> tuple[float, float]:
    """W and the exact two-sided p by enumerating all 2**n sign patterns (distinct |d|)."""
    ranks = stats.rankdata(np.abs(d))
    w = min(ranks[d > 0].sum(), ranks[d < 0].sum())
    sums = [
        sum(r for r, s in zip(ranks, signs, strict=True) if s)
        for signs in itertools.product([0, 1], repeat=d.size)
    ]
    return w, min(1.0, 2 * float(np.mean(np.array(sums) <= w)))


def test_significance_tests_by_hand(study: Path) -> None:
    tests = _read(study, "tests").set_index(["a", "b"])
    systems = ["A2E", "A2B2E", "A2M2E", "aA2E"]  # every pair, in the paper's order
    assert list(tests.index) == list(itertools.combinations(systems, 2))
    assert (tests["column"] == "delta_mae").all()
    d = _clip_deltas("A2E", "A2M2E")
    row = tests.loc[("A2E", "A2M2E")]
    assert row["n"] == 10 and row["n_seeds"] == 2
    t = d.mean() / (d.std(ddof=1) / math.sqrt(10))
    assert row["t"] == pytest.approx(t, rel=1e-10)
    assert row["t_p"] == pytest.approx(2 * stats.t.sf(abs(t), df=9), rel=1e-8)
    assert row["cohen_dz"] == pytest.approx(d.mean() / d.std(ddof=1), rel=1e-10)
    assert row["dz_ci_low"] < row["cohen_dz"] < row["dz_ci_high"]
    assert row["median_diff"] == pytest.approx(np.median(d))
    w, p_exact = _exact_wilcoxon(d)
    assert row["wilcoxon"] == pytest.approx(w) and row["wilcoxon_p"] == pytest.approx(p_exact)
    row2 = tests.loc[("A2B2E", "A2M2E")]
    w2, p2 = _exact_wilcoxon(_clip_deltas("A2B2E", "A2M2E"))
    assert row2["wilcoxon"] == pytest.approx(w2) and row2["wilcoxon_p"] == pytest.approx(p2)
    # Holm over the 6 pairs, per family, by hand: sort, scale by 6, 5, ..., running maximum
    for column in ("t_p", "wilcoxon_p"):
        p = tests[column].to_numpy()
        order = np.argsort(p)
        adjusted = np.empty(6)
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (6 - rank) * p[i]))
            adjusted[i] = running
        np.testing.assert_allclose(tests[f"{column}_holm"].to_numpy(), adjusted)
    # power of the paired t-test at n = 10 for d_z = 0.3 (noncentral t)
    nc, crit = 0.3 * math.sqrt(10), stats.t.ppf(0.975, 9)
    power = stats.nct.sf(crit, 9, nc) + stats.nct.cdf(-crit, 9, nc)
    assert row["power"] == pytest.approx(power)


def test_cost_table_by_hand(study: Path) -> None:
    cost = _read(study, "cost").set_index("system")
    a2e, aa2e = cost.loc["A2E"], cost.loc["aA2E"]
    assert a2e["wall_seconds"] == pytest.approx(110.0)  # (100 + 120 + 110) / 3
    assert a2e["train_passes"] == pytest.approx(2200.0)
    assert a2e["attack_seconds"] == pytest.approx(35.0)  # seed 42 was not attacked
    assert aa2e["train_passes"] == pytest.approx((5600 + 6400) / 2)
    assert aa2e["train_attack_iterations"] == pytest.approx(500.0)
    assert aa2e["attack_seconds"] == pytest.approx(55.0)  # summary.json "attack_seconds"
    assert aa2e["epochs"] == pytest.approx(11.0)  # final.json cost "epochs_run"
    ratios = _read(study, "cost_ratios").set_index("adversarial")
    assert list(ratios.index) == ["aA2E"]  # no aA2B2E in this study
    assert ratios.loc["aA2E", "passes_ratio"] == pytest.approx(6000 / 2200)
    assert ratios.loc["aA2E", "wall_ratio"] == pytest.approx(320 / 110)
    assert ratios.loc["aA2E", "passes_per_epoch_ratio"] == pytest.approx((6000 / 11) / (2200 / 11))


def test_summary_json_matches_tables(study: Path) -> None:
    summary = json.loads((study / "report" / "summary.json").read_text())
    for name in ("table1", "delta_mae", "tests", "cost", "cost_ratios"):
        df = _read(study, name)
        assert len(summary[name]) == len(df), name
        for record, row in zip(summary[name], df.to_dict(orient="records"), strict=True):
            for key, value in row.items():
                if isinstance(value, float) and math.isnan(value):
                    assert record[key] is None, (name, key)
                elif isinstance(value, float):
                    assert record[key] == pytest.approx(value), (name, key)
                else:
                    assert record[key] == value, (name, key)
    assert summary["figure_seed"] == 6
    # the same specs make the Markdown tables and describe them in summary.json
    md = (study / "report" / "report.md").read_text(encoding="utf-8")
    for name in ("table1", "delta_mae", "tests", "cost", "cost_ratios"):
        columns = summary["table_specs"][name]["columns"]
        header = "| " + " | ".join(c["header"] for c in columns) + " |"
        assert header in md, name
        assert all(c["key"] in summary[name][0] for c in columns), name
    assert "paper_avg_corr" not in [c["key"] for c in summary["table_specs"]["table1"]["columns"]]
    assert any("A2M2E-seed42" in n and "not finished" in n for n in summary["notes"])
    assert any("A2E-seed42" in n and "attack" in n for n in summary["notes"])
    prov = summary["provenance"]
    assert prov["data"]["kind"] == "synthetic" and prov["data"]["manifest_hash"] == "abc123"
    assert prov["shrunk"]["seeds"] == {"paper": 10, "used": 2} and prov["profile"] == "quick"
    assert prov["attack_settings"] == ATTACK.to_dict() and prov["attack"] == ATTACK.key()
    assert prov["attack_remarks"] == []  # one attack setting (checkpoint hashes differ)
    assert set(prov["report_environment"]) >= {"python", "numpy", "torch", "robustmer"}


def test_report_markdown_content(study: Path) -> None:
    md = (study / "report" / "report.md").read_text(encoding="utf-8")
    # synthetic data: no paper columns; the conclusion comes first
    assert "| A2E | 3 | 0.730 ± 0.030 | 0.100 ± 0.010 | 2 | 1.395 | 1.395 |" in md
    assert "(paper)" not in md and "Red diamonds" not in md
    assert md.index("## Conclusion") < md.index("## Table 1")
    assert "rating/10 scale" in md
    assert "figures/fig3_delta_mae.png" in md and "figures/fig4_true_vs_pred.svg" in md
    assert "A2M2E-seed42: not finished" in md
    assert "manifest_hash=abc123" in md
    assert "seeds 2 (paper: 10), train.max_epochs 12 (paper: 199)" in md


def test_table1_pure_ddof0_and_missing_attack() -> None:
    runs = pd.DataFrame(
        {
            "system": ["A2M2E", "A2E", "A2E"],
            "seed": [1, 1, 2],
            "test_avg_corr": [0.5, 0.6, 0.8],
            "test_mae": [0.2, 0.1, 0.3],
        }
    )
    t1 = table1(runs, None, ddof=0).set_index("system")
    assert list(t1.index) == ["A2E", "A2M2E"]
    assert t1.loc["A2E", "avg_corr_std"] == pytest.approx(0.1)  # population std of 0.6, 0.8
    assert t1.loc["A2M2E", "avg_corr_std"] == 0.0
    assert math.isnan(table1(runs).set_index("system").loc["A2M2E", "avg_corr_std"])
    assert math.isnan(t1.loc["A2E", "delta_mae_mean"]) and t1.loc["A2E", "n_attacked"] == 0
    cost = cost_table(runs)  # no cost columns: NaN, and no ratio rows
    assert cost["wall_seconds"].isna().all() and cost_ratios(cost).empty


def test_report_figure_seed_option(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    build_report(study, figure_seed=21)
    summary = json.loads((study / "report" / "summary.json").read_text())
    assert summary["figure_seed"] == 21
    with pytest.raises(RobustmerError, match=r"--seed 7: .*expected one of \[6, 21\]"):
        build_report(study, figure_seed=7)
    assert (study / "report" / "report.html").is_file()  # the previous report is kept


def test_malformed_final_json_names_the_file(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    final = study / "runs" / "A2E-seed6" / "final.json"
    obj = json.loads(final.read_text())
    del obj["metrics"]["test"]
    final.write_text(json.dumps(obj))
    with pytest.raises(
        RobustmerError,
        match=r"A2E-seed6/final\.json: missing key "
        r"'metrics\.test\.emotions\.avg_corr'",
    ):
        build_report(study)


def test_report_without_attacks(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    for run in (study / "runs").iterdir():
        for path in sorted((run / "attacks").rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
    build_report(study)
    summary = json.loads((study / "report" / "summary.json").read_text())
    assert any(f"no run has results of attack {ATTACK.key()}" in n for n in summary["notes"])
    assert summary["delta_mae"] == [] and summary["figure_seed"] is None
    assert summary["tests"] == []  # no attacked system: no test, one note per pair
    assert any("test A2E vs A2M2E not computed" in n for n in summary["notes"])
    t1 = {r["system"]: r for r in summary["table1"]}
    assert t1["A2E"]["avg_corr_mean"] == pytest.approx(0.73) and t1["A2E"]["n_attacked"] == 0
    md = (study / "report" / "report.md").read_text(encoding="utf-8")
    assert "Figure 3 not drawn" in md and "Figure 4 not drawn" in md
    assert not (study / "report" / "figures" / "fig3_delta_mae.png").exists()


def test_inconsistent_seed_is_an_error(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    config = study / "runs" / "aA2E-seed6" / "config.json"
    obj = json.loads(config.read_text())
    obj["train_config"]["seed"] = 7  # final.json says 6
    config.write_text(json.dumps(obj))
    with pytest.raises(RobustmerError, match=r"aA2E-seed6/config\.json: system/seed aA2E/7 differ"):
        build_report(study)


def test_cli_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from robustmer.cli import main

    study = make_study(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["report", str(study), "--seed", "21"])
    assert exc.value.code == 0
    assert json.loads((study / "report" / "summary.json").read_text())["figure_seed"] == 21
    empty = tmp_path / "empty"
    (empty / "runs" / "A2E-seed6").mkdir(parents=True)  # an unfinished run only
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["report", str(empty)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "robustmer: error:" in err and "no finished runs" in err
    assert "Traceback" not in err


def _edit_study_json(study: Path, **changes: object) -> None:
    path = study / "study.json"
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


def test_paper_values_only_for_paper_data_and_attack(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    _edit_study_json(study, data={"kind": "real", "manifest_hash": "abc123"})
    md = (build_report(study) / "report.md").read_text(encoding="utf-8")
    assert "| A2E | 3 | 0.730 ± 0.030 | 0.73 ± 0.02 | 0.100 ± 0.010 | 0.10 ± 0.01 |" in md
    assert "ΔMAE median (paper, approx.)" in md and "Red diamonds" in md
    # the paper's ΔMAE values apply to the paper's attack settings only
    from types import SimpleNamespace

    from robustmer.attacks import attack_config
    from robustmer.report.build import paper_reference
    from robustmer.report.figures import paper_median_note
    from robustmer.report.sections import table1_spec

    real = {"data": {"kind": "real"}}
    for settings, expected in (
        (ATTACK.to_dict(), (True, True)),
        (PaperConfig(steps=50).to_dict(), (True, False)),
        (PaperConfig(mode="bounded", epsilon=0.01).to_dict(), (True, False)),
        (attack_config("pgd", epsilon=0.1).to_dict(), (True, False)),
    ):
        assert paper_reference(SimpleNamespace(study=real, attack_settings=settings)) == expected
    keys = [c.key for c in table1_spec(paper_data=True, paper_attack=False).columns]
    assert "paper_avg_corr" in keys and "paper_delta_mae_median" not in keys
    assert "not the paper's unbounded 1000-iteration one" in paper_median_note(True, False)


def test_figure3_axis_from_zero_and_legend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from robustmer.report import figures

    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, stem: drawn.append(fig) or {})
    delta = pd.DataFrame(
        {"system": ["A2E", "A2E", "A2M2E", "aA2E"], "delta_mae": [0.5, 0.6, 0.3, 0.35]}
    )
    figures.figure_delta_mae(delta, tmp_path / "f", show_paper=False)
    figures.figure_delta_mae(delta, tmp_path / "g", show_paper=True)
    plain, with_paper = (fig.axes[0] for fig in drawn)
    assert plain.get_ylim()[0] == 0.0 and plain.get_ylim()[1] > 0.6
    labels = [t.get_text() for t in drawn[0].legends[0].get_texts()]
    assert "not interpretable: A2E" in labels
    assert "interpretable (mid-level bottleneck): A2M2E" in labels
    assert "adversarially trained: aA2E" in labels
    assert not any("paper" in label for label in labels)
    labels = [t.get_text() for t in drawn[1].legends[0].get_texts()]
    assert any("paper median" in label and "1000-iteration" in label for label in labels)
    assert with_paper.get_ylim()[0] == 0.0 and with_paper.get_ylim()[1] > 1.6  # paper's A2E


def test_stage_seconds_in_cost_section(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    stages = {"synthesis": 20.0, "spectrograms": 10.0, "training": 150.0, "attacks": 15.0}
    _edit_study_json(study, stage_seconds={**stages, "report": 5.0})
    build_report(study)
    table = _read(study, "stages")
    assert list(table["stage"]) == [*stages, "report", "total"]
    assert table["seconds"].iloc[-1] == pytest.approx(200.0)
    assert table.set_index("stage").loc["training", "share"] == pytest.approx(0.75)
    md = (study / "report" / "report.md").read_text(encoding="utf-8")
    assert "| training | 150.0 | 0.75 |" in md and "| total | 200.0 | 1.00 |" in md
    summary = json.loads((study / "report" / "summary.json").read_text())
    assert summary["stages"][2] == {"stage": "training", "seconds": 150.0, "share": 0.75}
    _edit_study_json(study, stage_seconds={"training": "slow"})
    with pytest.raises(RobustmerError, match=r"study\.json: 'stage_seconds\.training' is 'slow'"):
        build_report(study)


def test_baseline_row_in_table1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ridge baseline result becomes a labelled Table 1 row without seeds or ΔMAE."""
    import types

    import robustmer.evaluation.baseline

    study = make_study(tmp_path)
    (study / "cache").mkdir()  # study.json: data.cache = "cache", relative to the study
    result = {"avg_corr": 0.512, "mae": 0.125, "alpha": 10.0, "n_test": 36, "frames": 32}
    seen = []
    monkeypatch.setattr(
        robustmer.evaluation.baseline,
        "ridge_baseline",
        lambda cache: seen.append(cache) or types.SimpleNamespace(to_dict=lambda: dict(result)),
    )
    build_report(study)
    assert seen == [str(study / "cache")]
    t1 = _read(study, "table1").set_index("system")
    row = t1.loc["ridge baseline"]
    assert row["kind"] == "baseline" and (t1.drop("ridge baseline")["kind"] == "system").all()
    assert row["avg_corr_mean"] == pytest.approx(0.512) and row["mae_mean"] == pytest.approx(0.125)
    assert math.isnan(row["n_seeds"]) and math.isnan(row["delta_mae_mean"])
    md = (study / "report" / "report.md").read_text(encoding="utf-8")
    assert "| ridge baseline | – | 0.512 | 0.125 | – | – | – | – |" in md
    assert "penalty 10 chosen on the validation clips, scored on 36 test clips" in md
    assert "The ridge baseline on per-band statistics reaches 0.512; every system beats it." in md
    summary = json.loads((study / "report" / "summary.json").read_text())
    assert summary["baseline"] == result


def _clips_for(deltas: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per-clip rows with the given ΔMAE per system (2 seeds x n/2 clips each)."""
    frames = []
    for system, delta in deltas.items():
        n = delta.size
        frames.append(
            pd.DataFrame(
                {
                    "system": system,
                    "seed": np.repeat([1, 2], n // 2),
                    "clip_id": np.tile(np.arange(n // 2), 2),
                    "mae_clean": 0.1,
                    "mae_adv": 0.1 + delta,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _conclusion_for(clips: pd.DataFrame, data_kind: str = "synthetic") -> tuple[str, pd.DataFrame]:
    from robustmer.report.conclusion import conclusion
    from robustmer.report.tables import power_summary, significance_tests

    tests = significance_tests(clips)
    runs = pd.DataFrame(
        {
            "system": sorted(set(clips["system"])),
            "seed": 1,
            "test_avg_corr": 0.6,
            "test_mae": 0.1,
        }
    )
    t1 = table1(runs)
    ratios = pd.DataFrame(columns=["adversarial", "standard", "passes_ratio", "wall_ratio"])
    text = conclusion(
        t1, tests, ratios, power_summary(tests), data_kind=data_kind, profile="quick"
    )
    return text, tests


def test_conclusion_states_a_clear_difference_with_its_p() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(1.0, 0.1, size=120)
    # A2M2E's ΔMAE is lower by 0.3 on every clip, plus noise: clearly more robust
    clips = _clips_for({"A2E": base, "A2M2E": base - 0.3 + rng.normal(0, 0.05, size=120)})
    text, tests = _conclusion_for(clips)
    row = tests.iloc[0]
    assert text.startswith("These results come from **synthetic** data (profile quick)")
    assert "**A2M2E is more robust than A2E**" in text
    assert f"Holm-adjusted p = {fmt_p(row['t_p_holm'])} t-test, " in text
    assert f"{fmt_p(row['wilcoxon_p_holm'])} Wilcoxon)" in text
    assert f"lower by {abs(row['mean_diff']):.3f} on average" in text
    assert "No significant difference" not in text
    assert "n = 120 paired clips" in text and "90 pairs give power 0.8." in text


def test_conclusion_equal_systems_no_significant_difference() -> None:
    rng = np.random.default_rng(1)
    clips = _clips_for({"A2E": rng.normal(1.0, 0.1, 40), "A2B2E": rng.normal(1.0, 0.1, 40)})
    text, tests = _conclusion_for(clips, data_kind="real")
    assert tests.iloc[0]["t_p_holm"] > 0.05
    assert "**No significant difference** in robustness" in text and "more robust" not in text
    assert "A2E vs A2B2E (p = " in text
    assert text.startswith("On the real Soundtracks data (profile quick):")
    # n = 40 < 90: the paragraph says the test has little power
    assert "weak evidence of equal robustness" in text


def test_readme_block_has_conclusion_table1_and_figures(study: Path) -> None:
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "scripts" / "update_readme.py"
    spec = importlib.util.spec_from_file_location("_update_readme", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    block = module.quick_block(study)
    md = (study / "report" / "report.md").read_text(encoding="utf-8")
    assert block.startswith(module.START) and block.endswith(module.END)
    assert module.section(md, "Conclusion") in block and "**A2M2E is more robust" in block
    assert "| A2E | 3 | 0.730 ± 0.030 | 0.100 ± 0.010 |" in block
    assert "docs/images/quick-fig3.png" in block and "docs/images/quick-fig4.png" in block
    assert "seeds 10 → 2, train.max_epochs 199 → 12" in block


def test_the_papers_own_tests_on_mae_after_attack(study: Path) -> None:
    """The paper tested per-clip MAE after attack for A2E vs A2M2E and A2B2E vs A2M2E."""
    from scipy import stats

    paper = _read(study, "paper_tests")
    pairs = [tuple(r) for r in paper[["a", "b"]].to_numpy()]
    assert pairs == [("A2E", "A2M2E"), ("A2B2E", "A2M2E")]
    assert set(paper["column"]) == {"mae_adv"}
    for row in paper.itertuples():
        a = np.concatenate([ATTACKED[(row.a, s)][1] for s in (6, 21)])
        b = np.concatenate([ATTACKED[(row.b, s)][1] for s in (6, 21)])
        expected = stats.ttest_rel(a, b)
        assert row.n == 10
        assert row.t == pytest.approx(expected.statistic)
        assert row.t_p == pytest.approx(expected.pvalue)
    assert "The paper's own tests" in (study / "report" / "report.md").read_text(encoding="utf-8")


def test_accuracy_sentence_names_the_systems_below_the_baseline() -> None:
    from robustmer.report.conclusion import _accuracy_sentence

    t1 = pd.DataFrame(
        {"system": ["A2E", "A2B2E", "A2M2E"], "avg_corr_mean": [0.7, 0.5, 0.4], "kind": "system"}
    )
    one = _accuracy_sentence(t1, {"avg_corr": 0.45})
    assert "reaches 0.450; A2M2E does not beat it. Robustness differences involving A2M2E " in one
    two = _accuracy_sentence(t1, {"avg_corr": 0.6})
    assert "A2B2E and A2M2E do not beat it. Robustness differences involving A2B2E and A2M2E" in two
    assert two.endswith("also has little to lose under attack.")
    assert _accuracy_sentence(t1, {"avg_corr": 0.3}).endswith("every system beats it.")
