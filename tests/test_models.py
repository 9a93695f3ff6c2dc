"""Tests of robustmer.models: architecture (docs/paper.md §5), initialisation, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from robustmer.errors import RobustmerError
from robustmer.models import (
    ARCHITECTURES,
    MERModel,
    ModelConfig,
    build_model,
    count_parameters,
    load_model,
    load_state_dict_by_position,
    read_metadata,
    save_model,
)

# The paper (docs/paper.md §5): parameter counts of the published architectures.
PAPER_PARAMETERS = {"a2e": 3_937_864, "a2b2e": 3_937_671, "a2m2e": 3_937_671}

# (name, in, out, kernel, stride, padding, pool after) straight from the docs/paper.md §5 table.
TABLE = [
    ("1", 1, 64, 5, 2, 2, False),
    ("2", 64, 64, 3, 1, 1, True),
    ("3", 64, 128, 3, 1, 1, False),
    ("4", 128, 128, 3, 1, 1, True),
    ("5", 128, 256, 3, 1, 1, False),
    ("6", 256, 256, 3, 1, 1, False),
    ("7", 256, 384, 3, 1, 1, False),
    ("7b", 384, 512, 3, 1, 1, False),
    ("11", 512, 256, 1, 1, 0, False),
]


@pytest.fixture(scope="module")
def full_models() -> dict[str, MERModel]:
    torch.manual_seed(0)
    return {arch: build_model(arch).eval() for arch in ARCHITECTURES}


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_parameter_count_matches_paper(full_models, arch):
    model = full_models[arch]
    assert count_parameters(model) == PAPER_PARAMETERS[arch]
    # Independent count from the table: conv weights + conv biases + BN weight and bias.
    backbone = sum(k * k * i * o + o + 2 * o for _, i, o, k, _, _, _ in TABLE)
    head = 256 * 8 + 8 if arch == "a2e" else (256 * 7 + 7) + (7 * 8 + 8)
    assert backbone + head == PAPER_PARAMETERS[arch]


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize("frames", [313, 16])
def test_output_shapes(full_models, arch, frames):
    out = full_models[arch](torch.randn(2, 1, frames, 149))
    assert out.emotions.shape == (2, 8)
    assert out.emotions.dtype == torch.float32
    if arch == "a2e":
        assert out.midlevel is None
    else:
        assert out.midlevel.shape == (2, 7)


@pytest.mark.parametrize(
    "shape", [(2, 1, 15, 149), (2, 2, 313, 149), (2, 313, 149), (2, 1, 313, 148)]
)
def test_wrong_input_shape_raises(full_models, shape):
    with pytest.raises(RobustmerError, match="expected"):
        full_models["a2e"](torch.randn(*shape))


def _reference_features(model: MERModel, x: torch.Tensor) -> torch.Tensor:
    """Eval-mode backbone written with torch.nn.functional from the docs/paper.md §5 table."""
    sd = model.state_dict()
    h = x
    for name, _, _, _, stride, padding, pool in TABLE:
        h = F.conv2d(
            h, sd[f"conv{name}.weight"], sd[f"conv{name}.bias"], stride=stride, padding=padding
        )
        h = F.batch_norm(
            h,
            sd[f"bn{name}.running_mean"],
            sd[f"bn{name}.running_var"],
            sd[f"bn{name}.weight"],
            sd[f"bn{name}.bias"],
            training=False,
            eps=1e-5,
        )
        h = F.relu(h)
        if pool:
            h = F.max_pool2d(h, 2)
    return h.mean(dim=(2, 3))


def _randomise_bn(model: MERModel, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_forward_matches_functional_reference(arch):
    torch.manual_seed(1)
    model = build_model(arch, width=0.25).eval()
    _randomise_bn(model, 2)
    x = torch.randn(3, 1, 40, 149)
    with torch.no_grad():
        out = model(x)
        feats = model.features(x)
        ref = _reference_features(model, x)
        torch.testing.assert_close(feats, ref, rtol=1e-5, atol=1e-5)
        if ARCHITECTURES[arch].bottleneck:
            mid = feats @ model.fc1.weight.T + model.fc1.bias
            torch.testing.assert_close(out.midlevel, mid, rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(out.emotions, model.fc2(model.fc1(feats)))
            torch.testing.assert_close(
                out.emotions, mid @ model.fc2.weight.T + model.fc2.bias, rtol=1e-5, atol=1e-6
            )
        else:
            torch.testing.assert_close(
                out.emotions, feats @ model.fc.weight.T + model.fc.bias, rtol=1e-5, atol=1e-6
            )


def test_dropout_only_in_training_mode():
    torch.manual_seed(3)
    model = build_model("a2e", width=0.25)
    x = torch.randn(2, 1, 32, 149)
    with torch.no_grad():
        model.eval()
        a, b = model(x).emotions, model(x).emotions
        assert torch.equal(a, b)
        model.train()
        c, d = model(x).emotions, model(x).emotions
        assert not torch.equal(c, d)  # different Dropout2d masks


def test_initialisation_statistics(full_models):
    model = full_models["a2m2e"]
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)
            assert torch.all(module.running_mean == 0) and torch.all(module.running_var == 1)
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            assert torch.all(module.bias == 0)
    # Kaiming normal, fan_in, ReLU gain: std = sqrt(2 / fan_in), mean 0.
    for conv, fan_in in ((model.conv7b, 384 * 9), (model.conv6, 256 * 9), (model.fc1, 256)):
        w = conv.weight.detach().double()
        expected = math.sqrt(2.0 / fan_in)
        n = w.numel()
        assert abs(w.std().item() - expected) < 5 * expected / math.sqrt(2 * n)
        assert abs(w.mean().item()) < 5 * expected / math.sqrt(n)


def test_seeded_construction_is_reproducible():
    torch.manual_seed(11)
    a = build_model("a2b2e", width=0.25)
    torch.manual_seed(11)
    b = build_model("a2b2e", width=0.25)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_registration_order(full_models):
    expected = []
    for name, *_ in TABLE:
        expected += [
            f"conv{name}.weight",
            f"conv{name}.bias",
            f"bn{name}.weight",
            f"bn{name}.bias",
            f"bn{name}.running_mean",
            f"bn{name}.running_var",
            f"bn{name}.num_batches_tracked",
        ]
    assert list(full_models["a2e"].state_dict()) == expected + ["fc.weight", "fc.bias"]
    assert list(full_models["a2b2e"].state_dict()) == expected + [
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
    ]
    shapes = [tuple(p.shape) for p in full_models["a2e"].parameters()]
    assert shapes[:4] == [(64, 1, 5, 5), (64,), (64,), (64,)]
    assert shapes[-2:] == [(8, 256), (8,)]


def test_width_scales_channels():
    model = build_model("a2m2e", width=0.25)
    assert model.conv1.in_channels == 1 and model.conv1.out_channels == 16
    assert model.conv7b.out_channels == 128 and model.conv11.out_channels == 64
    assert model.fc1.in_features == 64 and model.fc1.out_features == 7
    assert model.fc2.out_features == 8
    tiny = build_model("a2e", width=0.001)  # every layer keeps at least one channel
    assert tiny.conv1.out_channels == 1 and tiny.fc.in_features == 1


def test_foreign_state_dict_maps_by_position():
    torch.manual_seed(5)
    source = build_model("a2m2e", width=0.125).eval()
    _randomise_bn(source, 6)
    foreign = {
        f"layer{i:02d}": v
        for i, (k, v) in enumerate(source.state_dict().items())
        if not k.endswith("num_batches_tracked")
    }
    target = build_model("a2m2e", width=0.125).eval()
    load_state_dict_by_position(target, foreign)
    x = torch.randn(2, 1, 20, 149)
    with torch.no_grad():
        torch.testing.assert_close(target(x).emotions, source(x).emotions, rtol=0, atol=0)
    wrong = build_model("a2m2e", width=0.25)
    with pytest.raises(RobustmerError, match="expected shape"):
        load_state_dict_by_position(wrong, foreign)
    with pytest.raises(RobustmerError, match="tensors"):
        load_state_dict_by_position(build_model("a2e", width=0.125), foreign)


def test_unknown_architecture():
    with pytest.raises(RobustmerError, match="a2e, a2b2e, a2m2e"):
        build_model("resnet")
    with pytest.raises(RobustmerError, match="width"):
        ModelConfig("a2e", width=0.0)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(7)
    model = build_model("a2b2e", width=0.25)
    model.train()
    model(torch.randn(4, 1, 24, 149))  # update BatchNorm running statistics
    model.eval()
    path = save_model(tmp_path / "m.safetensors", model, extra={"epoch": 3, "note": "x"})
    config, extra = read_metadata(path)
    assert config == ModelConfig("a2b2e", 0.25)
    assert extra == {"epoch": 3, "note": "x"}
    loaded = load_model(path, expected=ModelConfig("a2b2e", 0.25))
    assert not loaded.training
    for (k, v), (k2, v2) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert k == k2 and torch.equal(v, v2), k
    assert loaded.bn1.num_batches_tracked.item() == 1
    x = torch.randn(2, 1, 30, 149)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert torch.equal(a.emotions, b.emotions) and torch.equal(a.midlevel, b.midlevel)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temporary file


def test_checkpoint_bytes_depend_only_on_weights_and_metadata(tmp_path):
    """safetensors writes its metadata in hash-map order, different from one save to the
    next; save_model writes it sorted, so equal models give byte-identical files."""
    import hashlib
    import json

    from safetensors.torch import load_file

    torch.manual_seed(3)
    model = build_model("a2m2e", width=0.125)
    extra = {"epoch": 2, "train_config": {"seed": 6, "amp": True}}
    blobs = {
        save_model(tmp_path / f"m{i}.safetensors", model, extra=extra).read_bytes()
        for i in range(8)
    }
    assert len(blobs) == 1, [hashlib.sha256(b).hexdigest()[:12] for b in blobs]
    blob = blobs.pop()
    size = int.from_bytes(blob[:8], "little")
    assert size % 8 == 0
    metadata = json.loads(blob[8 : 8 + size])["__metadata__"]
    assert list(metadata) == sorted(metadata)
    assert json.loads(metadata["robustmer.extra"]) == extra
    weights = load_file(str(tmp_path / "m0.safetensors"))
    assert weights.keys() == model.state_dict().keys()
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())


def test_load_wrong_architecture_names_both(tmp_path):
    path = save_model(tmp_path / "m.safetensors", build_model("a2e", width=0.125))
    with pytest.raises(RobustmerError) as info:
        load_model(path, expected=ModelConfig("a2m2e", 0.125))
    assert "a2e" in str(info.value) and "a2m2e" in str(info.value)
    with pytest.raises(RobustmerError, match=r"width=0\.125.*width=1\.0"):
        load_model(path, expected=ModelConfig("a2e", 1.0))


def test_load_bad_files(tmp_path):
    with pytest.raises(RobustmerError, match="not found"):
        load_model(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(RobustmerError, match="safetensors"):
        load_model(junk)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(RobustmerError, match="not a robustmer model checkpoint"):
        load_model(foreign)
