"""Cross-run attack batching (robustmer.attacks.stack): R runs attacked in one batch.

Every registered attack, on R = 3 models of the real architecture (BatchNorm with running
statistics), gives each clip the same numbers whether the runs are attacked one at a time
or stacked into one batch of R · B clips (to float rounding: the stacked convolutions are
grouped convolutions); the paper attack's early stopping is checked with a raised threshold
floor so that clips converge at different iterations.
"""

from __future__ import annotations

import pytest
import torch

from robustmer.attacks import ATTACKS, AttackConfig, attack_config, build_attack
from robustmer.attacks import paper as paper_module
from robustmer.attacks.base import fixed_shape
from robustmer.attacks.stack import StackedModel, split_result, stack_rows
from robustmer.errors import RobustmerError
from robustmer.models import build_model

R, B = 3, 4

CONFIGS: dict[str, list[AttackConfig]] = {
    "paper": [
        attack_config("paper", steps=6),
        attack_config("paper", steps=5, mode="bounded", epsilon=0.05),
    ],
    "pgd": [
        attack_config("pgd", epsilon=0.05, steps=4, restarts=2, random_start=True),
        attack_config("pgd", epsilon=0.5, norm="l2", steps=3),
    ],
    "apgd": [attack_config("apgd", epsilon=0.05, steps=5, restarts=2)],
    "noise": [attack_config("noise", epsilon=0.05, restarts=3)],
}
"""Settings tested per attack; every registered attack must be here."""


def _runs(arch: str = "a2b2e") -> list[torch.nn.Module]:
    models = []
    for seed in range(R):
        torch.manual_seed(seed)
        model = build_model(arch, width=0.125)
        with torch.no_grad():  # non-trivial running statistics, as after training
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.3, 0.3)
                    m.running_var.uniform_(0.5, 2.0)
        models.append(model)
    return models


def _data() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    g = torch.Generator().manual_seed(5)
    xs = [torch.randn(B, 1, 16, 149, generator=g) for _ in range(R)]
    ys = [0.2 + 0.6 * torch.rand(B, 8, generator=g) for _ in range(R)]
    return xs, ys


def _compare(one, stacked) -> None:
    for name in ("iterations", "converged"):
        assert torch.equal(getattr(one, name), getattr(stacked, name)), name
    close = {"rtol": 1e-4, "atol": 1e-5}
    for name in ("pred_clean", "pred", "pred_of_x_adv", "midlevel_clean", "midlevel_adv"):
        a, b = getattr(one, name), getattr(stacked, name)
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(a, b, **close, msg=name)
    torch.testing.assert_close(one.x_adv, stacked.x_adv, **close)
    torch.testing.assert_close(one.l2, stacked.l2, **close)
    torch.testing.assert_close(one.linf, stacked.linf, **close)
    torch.testing.assert_close(one.threshold, stacked.threshold, equal_nan=True)
    if one.loss is not None:
        torch.testing.assert_close(one.loss, stacked.loss, **close)


def _both(config: AttackConfig, models, xs, ys):
    alone = [build_attack(config, m)(x, y) for m, x, y in zip(models, xs, ys, strict=True)]
    stacked = StackedModel(models)
    together = build_attack(config, stacked)(stack_rows(xs), stack_rows(ys))
    return alone, together


def test_every_registered_attack_is_tested() -> None:
    assert set(CONFIGS) == set(ATTACKS)


@pytest.mark.parametrize(
    "config", [c for configs in CONFIGS.values() for c in configs], ids=lambda c: c.label()
)
def test_stacked_equals_one_run_at_a_time(config: AttackConfig) -> None:
    models = _runs()
    xs, ys = _data()
    alone, together = _both(config, models, xs, ys)
    parts = split_result(together, R)
    assert len(parts) == R and all(len(p) == B for p in parts)
    for one, part in zip(alone, parts, strict=True):
        _compare(one, part)
    assert sum(p.model_passes for p in parts) == together.model_passes


def test_paper_early_stopping_masked_not_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clips converging at different iterations: frozen in the stacked batch, dropped alone."""
    monkeypatch.setattr(paper_module, "THRESHOLD_FLOOR", 0.35)
    models = _runs("a2e")
    xs, ys = _data()
    config = attack_config("paper", steps=8)
    alone, together = _both(config, models, xs, ys)
    its = torch.cat([a.iterations for a in alone])
    assert bool(torch.cat([a.converged for a in alone]).any()) and len(set(its.tolist())) > 1
    for one, part in zip(alone, split_result(together, R), strict=True):
        _compare(one, part)


def test_stacked_model_outputs_and_checks() -> None:
    models = _runs("a2m2e")
    stacked = StackedModel(models)
    assert fixed_shape(stacked) and not fixed_shape(models[0])
    assert not stacked.training and all(m.training for m in models)  # models untouched
    xs, _ = _data()
    emotions, mid = stacked(stack_rows(xs))
    for r, (m, x) in enumerate(zip(models, xs, strict=True)):
        out = m.eval()(x)
        torch.testing.assert_close(emotions[r * B : (r + 1) * B], out.emotions, atol=1e-5, rtol=0)
        torch.testing.assert_close(mid[r * B : (r + 1) * B], out.midlevel, atol=1e-5, rtol=0)
    assert stacked(torch.randn(R, 1, 16, 149))[1] is not None
    assert StackedModel(_runs("a2e"))(stack_rows(xs))[1] is None
    with pytest.raises(RobustmerError, match="multiple of the 3 stacked runs"):
        stacked(torch.randn(R * B - 1, 1, 16, 149))
    with pytest.raises(RobustmerError, match="differ in parameters"):
        StackedModel([models[0], build_model("a2e", width=0.125)])
    with pytest.raises(RobustmerError, match="cannot be trained"):
        stacked.train()
    with pytest.raises(RobustmerError, match="same number of clips"):
        stack_rows([torch.zeros(2, 3), torch.zeros(3, 3)])


# ------------------------------------------------------------ runs, CLI and study
SEEDS = (6, 7)


@pytest.fixture(scope="module")
def stacked_study(tiny_cache, tmp_path_factory: pytest.TempPathFactory):
    """One tiny study of A2E with two seeds, its attacks stacked, with the paper attack and
    PGD with random starts."""
    from conftest import tiny_profile

    from robustmer.attacks.execution import Execution
    from robustmer.study import run_study

    profile = tiny_profile(
        systems=("A2E",),
        seeds=SEEDS,
        attacks=(
            attack_config("paper", steps=3),
            attack_config("pgd", epsilon=0.05, steps=2, random_start=True),
        ),
    )
    out = tmp_path_factory.mktemp("stacked") / "study"
    run_study(
        out, data=tiny_cache, profile=profile, device="cpu", jobs=1, threads=1, progress=False,
        execution=Execution(stack_runs=True),
    )
    return out, profile


def test_study_stacks_a_systems_seeds(stacked_study, tmp_path) -> None:
    from robustmer._io import read_json
    from robustmer.evaluation import attack_run
    from robustmer.records import AttackSummary, attack_dir, read_clips

    out, profile = stacked_study
    doc = read_json(out / "study.json")
    keys = [a.key() for a in profile.attacks]
    assert [u for u in doc["plan"] if u.startswith("attack/")] == [f"attack/A2E/{k}" for k in keys]
    assert doc["settings"]["execution"] == {"stack_runs": True, "compile": "none"}
    assert all(doc["units"][u]["state"] == "done" for u in doc["plan"])
    for seed in SEEDS:
        run = out / "runs" / f"A2E-seed{seed}"
        for config in profile.attacks:
            stacked = AttackSummary.read(attack_dir(run, config.key()) / "summary.json")
            assert stacked.cost.execution == "stacked x2"
            alone = attack_run(
                run, config, device="cpu", progress=False, out=tmp_path / f"{seed}-{config.name}"
            )
            assert alone.cost.execution == "eager"
            a = read_clips(attack_dir(run, config.key()))
            b = read_clips(tmp_path / f"{seed}-{config.name}")
            assert list(a.columns) == list(b.columns) and a["clip_id"].tolist() == b[
                "clip_id"
            ].tolist()
            numeric = a.select_dtypes("number").columns
            assert (a[numeric] - b[numeric]).abs().max().max() < 1e-4
            assert stacked.identity() == alone.identity()


def test_study_resumes_and_refuses_other_execution(stacked_study) -> None:
    from robustmer.attacks.execution import Execution
    from robustmer.study import run_study

    out, profile = stacked_study
    before = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/attacks/*/summary.json")}
    run_study(
        out, profile=profile, device="cpu", jobs=1, threads=1, progress=False,
        execution=Execution(stack_runs=True), data=_cache_of(out),
    )
    after = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/attacks/*/summary.json")}
    assert before == after and len(before) == 4  # nothing attacked again
    with pytest.raises(RobustmerError, match="execution"):
        run_study(
            out, profile=profile, device="cpu", jobs=1, threads=1, progress=False,
            data=_cache_of(out),
        )


def _cache_of(study):
    from robustmer._io import read_json
    from robustmer.study.run import recorded_path

    return recorded_path(read_json(study / "study.json")["data"]["cache"], study)


def test_cli_attack_several_runs(stacked_study, capsys: pytest.CaptureFixture) -> None:
    from robustmer.cli import main
    from robustmer.records import AttackSummary, attack_dir

    out, _ = stacked_study
    runs = [str(out / "runs" / f"A2E-seed{seed}") for seed in SEEDS]
    args = ["attack", "--set", "steps=2", "--device", "cpu", "--stack-runs"]
    for run in runs:
        args += ["--run", run]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code in (0, None)
    text = capsys.readouterr().out
    assert text.count("(stacked x2)") == 2
    for run in runs:
        summary = AttackSummary.read(
            attack_dir(run, attack_config("paper", steps=2).key()) / "summary.json"
        )
        assert summary.cost.execution == "stacked x2"
    for bad in (["--out", "x"], ["--compile", "cuda-graphs"], ["--compile", "fast"]):
        with pytest.raises(SystemExit) as info:
            main([*args, *bad])
        assert info.value.code == 2


def test_stacked_waveform_models() -> None:
    """Runs wrapped as waveform models (front end inside) stack too: an SNR-bounded PGD."""
    from robustmer.audio import FrontEndConfig, Normalization
    from robustmer.models import WaveformModel

    models = []
    for seed in range(2):
        torch.manual_seed(seed)
        net = build_model("a2e", width=0.0625)
        models.append(WaveformModel(net, FrontEndConfig(), Normalization(0.4, 0.25), 16))
    g = torch.Generator().manual_seed(0)
    xs = [0.3 * torch.rand(2, models[0].samples, generator=g) - 0.15 for _ in models]
    ys = [torch.rand(2, 8, generator=g) for _ in models]
    config = attack_config("pgd", epsilon=0.01, steps=2, domain="waveform", snr_db=30.0)
    alone = [build_attack(config, m)(x, y) for m, x, y in zip(models, xs, ys, strict=True)]
    together = build_attack(config, StackedModel(models))(stack_rows(xs), stack_rows(ys))
    for one, part in zip(alone, split_result(together, 2), strict=True):
        _compare(one, part)
        torch.testing.assert_close(one.snr_db, part.snr_db)
