"""The torch target: generated modules compute what the graph says, and equal torchvision where they should.

Each preset's rendered module is imported (in memory, resgen.generated_module) and checked against the graph:
per-layer output shapes (forward hooks), parameter and BatchNorm-statistics counts per layer, and the
settings of every layer (epsilon, momentum, bias, groups, padding). The ten torchvision presets load
torchvision's state dicts with ``strict=True`` and give the same outputs. Specs that no preset covers
(other shortcut, stride and bias rules) are rendered from variants written here.
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import resgen
from resgen import load
from resgen.backends import pytorch
from resgen.compiler import Compiled, compile_document, compile_spec
from resgen.generate import render
from resgen.generated_module import import_generated
from resgen.graph import BatchNorm, Conv2d, Dense, Dropout, GroupNorm, Layer, MaxPool, PadMode, PadValue
from resgen.naming import torch_module, torch_path
from tests.helpers import (
    TORCHVISION_RESNETS,
    assert_ruff_clean,
    preset_params,
    randomize_torch_batch_norm,
    render_in_subprocess,
)

torch = pytest.importorskip("torch")

PRESETS = load.preset_names()
SMALL_SIDE = 64  # ImageNet-sized specs with a global-pool head are checked at 64x64 to keep CPU time low
# ops written as expressions in forward, not modules (squeeze-and-excitation pools with x.mean)
FUNCTIONAL = {"input", "add", "flatten", "softmax", "sigmoid", "scale", "global_avg_pool"}


@pytest.fixture(autouse=True, scope="module")
def _deterministic() -> None:
    torch.manual_seed(0)


# --- helpers ------------------------------------------------------------------------------------------


@cache
def preset_module(name: str) -> ModuleType:
    return import_generated(render(compile_spec(name), "torch"), f"resgen_generated_{name}")


def resized(compiled: Compiled, side: int) -> Compiled:
    """The same spec at another input size, compiled again (shapes and padding follow the size)."""
    return resgen.compile(compiled, input_size=(side, side))


def check_graph(compiled: Compiled) -> Compiled:
    """A preset, at a smaller input where the network does not depend on the size."""
    spec = compiled.spec
    if spec.head.kind == "global_pool" and spec.input.height > SMALL_SIDE and spec.input.width > SMALL_SIDE:
        return resized(compiled, SMALL_SIDE)
    return compiled


def assert_matches_graph(model: Any, module: ModuleType, compiled: Compiled, batch: int = 1) -> None:
    """Shapes (hooks), counts and per-layer settings of `model` are the ones the graph predicts."""
    graph, analysis = compiled.graph, compiled.analysis
    modules = dict(model.named_modules())
    expected: dict[str, list[tuple[int, ...]]] = defaultdict(list)
    for layer in graph:
        path = torch_module(graph, layer.name)
        if path is None:
            assert layer.kind in FUNCTIONAL, f"{layer.name}: no module"
            continue
        assert path in modules, f"{layer.name}: no module at {path}"
        shape = analysis.shape(layer.name)
        if layer.kind == "global_avg_pool" and len(shape) == 1:
            shape = (*shape, 1, 1)  # torchvision pools to (C, 1, 1) and flattens in forward
        if layer.kind == "channel_conv1d":
            shape = (1, shape[0])  # ECA's Conv1d sees the channels as a sequence of one feature
        expected[path].append(shape)
        check_settings(compiled, layer, modules[path], module)
        own = sum(p.numel() for p in modules[path].parameters())
        facts = analysis[layer.name]
        assert own == facts.params, f"{layer.name} ({path}): {own} parameters, graph says {facts.params}"

    seen: dict[str, list[tuple[int, ...]]] = defaultdict(list)

    def hook(path: str) -> Any:
        return lambda mod, args, out: seen[path].append(tuple(out.shape[1:]))

    handles = [modules[p].register_forward_hook(hook(p)) for p in expected]
    height, width, channels = graph.input_hwc
    x = torch.randn(batch, channels, height, width)
    try:
        with torch.no_grad():
            out = model.eval()(x)
    finally:
        for h in handles:
            h.remove()
    assert dict(seen) == dict(expected)
    assert tuple(out.shape[1:]) == analysis.shape(graph.output.name)

    counts = analysis.totals()
    assert sum(p.numel() for p in model.parameters()) == counts["params"]
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    assert stats == counts["non_trainable_params"]
    with_params = {p for p, m in modules.items() if any(True for _ in m.parameters(recurse=False))}
    graph_params = {torch_path(graph, x.name) for x in graph if analysis[x.name].params}
    assert with_params == graph_params


def check_settings(compiled: Compiled, layer: Layer, mod: Any, module: ModuleType) -> None:
    nn = torch.nn
    op = layer.op
    norm = compiled.graph.network.norm
    if isinstance(op, BatchNorm):
        assert isinstance(mod, nn.BatchNorm2d)
        assert mod.eps == norm.epsilon
        assert mod.momentum == pytest.approx(1 - norm.momentum, abs=1e-12)
        assert repr(mod.momentum) == repr(float(f"{1 - norm.momentum:.12g}"))
    elif isinstance(op, GroupNorm):
        assert isinstance(mod, nn.GroupNorm)
        assert (mod.num_groups, mod.num_channels, mod.eps) == (op.groups, op.channels, norm.epsilon)
    elif isinstance(op, Conv2d):
        k, s = op.kernel_size, op.stride
        assert isinstance(mod, nn.Conv2d)
        assert (mod.kernel_size, mod.stride, mod.groups) == ((k, k), (s, s), op.groups)
        assert (mod.bias is not None) == op.bias
        same = op.padding is PadMode.TF_SAME and k > 1
        if op.standardize is not None:  # weight standardization (BiT): one epsilon for the network
            assert type(mod) is module.StdConv2d and mod.eps == op.standardize
        else:
            assert isinstance(mod, module.Conv2dSame) if same else type(mod) is nn.Conv2d
        if not same:
            assert mod.padding == (k // 2, k // 2)
    elif isinstance(op, MaxPool):
        if op.padding and not op.input_nonnegative and op.pad_value is PadValue.ZEROS:
            assert isinstance(mod[0], nn.ZeroPad2d) and isinstance(mod[1], nn.MaxPool2d)
        else:
            assert isinstance(mod, nn.MaxPool2d) and mod.padding == op.padding
    elif isinstance(op, Dropout):
        assert mod.p == op.rate
    elif isinstance(op, Dense):
        (source,) = compiled.graph.inputs(layer.name)
        assert (mod.in_features, mod.out_features) == (compiled.analysis.shape(source)[0], op.out_features)
        assert (mod.bias is not None) == op.bias


def sgd_step(model: Any, module: ModuleType, compiled: Compiled) -> None:
    """One training step: every parameter gets a finite gradient and the weights move."""
    height, width, channels = compiled.graph.input_hwc
    x = torch.randn(2, channels, height, width)
    model.train()
    groups = module.param_groups(model) if hasattr(module, "param_groups") else model.parameters()
    optimizer = torch.optim.SGD(groups, lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    out = model(x)
    loss = (out * torch.randn_like(out)).sum()
    optimizer.zero_grad()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
    optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


# --- the backend ---------------------------------------------------------------------------------------


def test_allowed_imports_are_torch_and_stdlib() -> None:
    assert "torch" in pytorch.allowed_imports
    assert not {"keras", "tensorflow", "torchvision", "numpy"} & pytorch.allowed_imports


# --- every preset -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", preset_params(PRESETS))
def test_preset_matches_graph(name: str) -> None:
    compiled = compile_spec(name)
    module = preset_module(name)
    model = module.build_model()
    assert type(model).__name__ == "ResNet"
    assert_matches_graph(model, module, check_graph(compiled))


def test_output_grows_with_stages_not_depth() -> None:
    short = render(compile_spec("cifar_resnet20"), "torch").count("\n")
    deep = render(compile_spec("cifar_resnet1202"), "torch").count("\n")
    assert deep < 300 and abs(deep - short) <= 2
    assert resgen.render("resnet200d", "torch").count("\n") == resgen.render("resnet50d", "torch").count("\n")
    for name in PRESETS:
        assert render(compile_spec(name), "torch").count("\n") < 300, name


def test_generated_imports_only_torch_and_stdlib() -> None:
    for name in PRESETS:
        text = render(compile_spec(name), "torch")
        imports = [line for line in text.splitlines() if line.startswith(("import ", "from "))]
        assert imports[0] == "from __future__ import annotations"
        # copy: fuse_batchnorm returns a folded copy; math: ECA's kernel rule and the blur filter;
        # collections: OrderedDict for timm's ResNetV2 module names
        allowed = {"__future__", "collections", "copy", "math", "torch"}
        assert all(line.split()[1].split(".")[0] in allowed for line in imports), imports


# --- torchvision ---------------------------------------------------------------------------------------


def torchvision_diff(name: str, side: int = SMALL_SIDE) -> float:
    """Max |generated - torchvision| in eval mode after a strict state-dict load."""
    torchvision = pytest.importorskip("torchvision")
    reference = getattr(torchvision.models, name)().eval()
    randomize_torch_batch_norm(reference)
    model = preset_module(name).build_model().eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = reference(x)
        assert torch.isfinite(expected).all() and expected.std() > 1e-3  # a meaningful comparison
        return float((model(x) - expected).abs().max())


@pytest.mark.parametrize("name", preset_params(TORCHVISION_RESNETS))
def test_torchvision_weights_load_and_outputs_match(name: str) -> None:
    assert torchvision_diff(name) <= 1e-5


def test_torchvision_resnet18_at_full_size() -> None:
    assert torchvision_diff("resnet18", side=224) <= 1e-5


# --- determinism ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rosebrock_cifar10", "keras_resnet50v2"])
def test_render_is_byte_identical_under_hash_seeds(name: str) -> None:
    outputs = [render_in_subprocess(name, "torch", seed) for seed in ("0", "1")]
    assert outputs[0] == outputs[1] == render(compile_spec(name), "torch").encode()


# --- training and export -------------------------------------------------------------------------------

# One preset per code path: each block class, shortcut rule, stem and head.
TRAINED = [
    "resnet18",
    "resnext50_32x4d",
    "keras_resnet50",
    "keras_resnet50v2",
    "cifar_resnet20",
    "preact_resnet164",
    "rosebrock_cifar10",
    "rosebrock_tiny_imagenet",
]


@pytest.mark.parametrize("name", TRAINED)
def test_sgd_step_reaches_every_parameter(name: str) -> None:
    module = preset_module(name)
    sgd_step(module.build_model(), module, check_graph(compile_spec(name)))


@pytest.mark.parametrize("name", ["cifar_resnet20", "rosebrock_cifar10"])
def test_torch_export(name: str) -> None:
    model = preset_module(name).build_model().eval()
    x = torch.randn(1, 3, 32, 32)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        assert torch.allclose(exported.module()(x), model(x), atol=1e-6)


# --- what the spec states ------------------------------------------------------------------------------


def test_l2_param_groups_decay_exactly_the_kernels_by_role() -> None:
    """One group per distinct decay: 2r on each kernel with its role's r, none on anything else."""
    module = preset_module("rosebrock_cifar10")
    model = module.build_model()
    groups = {g["weight_decay"]: {id(p) for p in g["params"]} for g in module.param_groups(model)}
    assert len(groups) == len(module.param_groups(model))  # distinct decays
    l2 = compile_spec("rosebrock_cifar10").spec.regularization
    assert module.WEIGHT_DECAY == {"stem": 0.001, "blocks": 0.0002, "shortcuts": 0.0002, "head": 0.001}
    assert (l2.stem, l2.blocks, l2.shortcuts, l2.head) == (5e-4, None, None, 5e-4) and l2.l2 == 1e-4
    kernels = {
        name: m.weight
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
    }
    stem_head = {id(kernels["conv1"]), id(kernels["fc"])}
    assert groups[0.001] == stem_head
    assert groups[0.0002] == {id(w) for w in kernels.values()} - stem_head  # blocks and shortcuts
    assert groups[0.0] == {id(p) for p in model.parameters()} - {id(w) for w in kernels.values()}
    assert not hasattr(preset_module("resnet50"), "param_groups")  # no l2, no helper


def test_option_a_shortcut_equals_reference() -> None:
    shortcut = preset_module("cifar_resnet20").ZeroPadShortcut(2, 1, 2)
    x = torch.arange(2 * 2 * 5 * 5, dtype=torch.float32).reshape(2, 2, 5, 5)
    expected = torch.zeros(2, 5, 3, 3)
    for n in range(2):
        for c in range(2):
            for i in range(3):
                for j in range(3):
                    expected[n, 1 + c, i, j] = x[n, c, 2 * i, 2 * j]
    assert torch.equal(shortcut(x), expected)
    block = preset_module("cifar_resnet20").build_model().layer2[0].downsample
    assert (block.stride, block.pad_before, block.pad_after) == (2, 8, 8)
    assert not list(block.parameters())


@pytest.mark.parametrize("side", [7, 8, 9, 32])
def test_tf_same_padding_puts_the_odd_pixel_bottom_right(side: int) -> None:
    conv_cls = preset_module("rosebrock_cifar10").Conv2dSame
    conv = conv_cls(2, 3, kernel_size=3, stride=2, bias=False)
    x = torch.randn(1, 2, side, side)
    total = max((-(-side // 2) - 1) * 2 + 3 - side, 0)
    padded = torch.nn.functional.pad(x, (total // 2, total - total // 2, total // 2, total - total // 2))
    expected = torch.nn.functional.conv2d(padded, conv.weight, stride=2)
    assert conv(x).shape[-1] == -(-side // 2)
    assert torch.equal(conv(x), expected)
    if side % 2 == 0:
        assert total == 1  # (0, 1, 0, 1), as TensorFlow does


def test_max_pool_pads_with_zeros_where_input_can_be_negative() -> None:
    model = preset_module("keras_resnet50v2").build_model()  # stem: conv (no BN/ReLU), then pool
    out = model.maxpool(-torch.ones(1, 1, 4, 4))
    assert torch.equal(out, torch.tensor([[[[0.0, 0.0], [0.0, -1.0]]]]))


def test_softmax_where_the_spec_asks() -> None:
    with torch.no_grad():
        probs = preset_module("rosebrock_cifar10").build_model().eval()(torch.randn(2, 3, 32, 32))
        logits = preset_module("cifar_resnet20").build_model().eval()(torch.randn(2, 3, 32, 32))
    assert torch.allclose(probs.sum(dim=1), torch.ones(2)) and (probs >= 0).all()
    assert not torch.allclose(logits.sum(dim=1), torch.ones(2))


def test_generated_text_names_its_departures() -> None:
    resnet50 = render(compile_spec("resnet50"), "torch")
    assert "ResNet v1.5" in resnet50
    cifar = render(compile_spec("cifar_resnet20"), "torch")
    assert "Option A" in cifar
    seed = render(compile_spec("rosebrock_cifar10"), "torch")
    assert 'TensorFlow "same"' in seed and "channels last" in seed
    assert (
        '"stem": 0.001, "blocks": 0.0002' in seed
    )  # Rosebrock's build(reg=0.0005) and residual_module's 1e-4
    assert "BN_MOMENTUM = 0.1\n" in seed and "1 - m" in seed


# --- variants no preset covers -------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "format_version": 1,
    "input": {"height": 32, "width": 32, "channels": 3},
    "stem": {"kind": "conv", "filters": 16, "kernel_size": 3, "stride": 1},
    "block": {"kind": "basic"},
    "stages": [
        {"blocks": 2, "filters": 16, "stride": 1},
        {"blocks": 2, "filters": 32, "stride": 2},
    ],
    "head": {"kind": "global_pool", "classes": 5},
}


def variant(name: str, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["name"] = name
    data.update(changes)
    return data


VARIANTS = [
    # pre-activation basic blocks, option A, stride on the last block, TF padding, a zero-padded pool
    variant(
        "preact_basic_zero_pad_last",
        stem={
            "kind": "conv",
            "filters": 16,
            "kernel_size": 5,
            "stride": 2,
            "norm": False,
            "pool": {"kernel_size": 3, "stride": 2, "padding": 1},
        },
        input={"height": 45, "width": 38, "channels": 3},
        block={"kind": "basic", "preactivation": True, "stride_block": "last"},
        stages=[
            {"blocks": 2, "filters": 16, "stride": 2},
            {"blocks": 3, "filters": 24, "stride": 2},
            {"blocks": 1, "filters": 40, "stride": 1},
        ],
        shortcut={"kind": "zero_pad"},
        padding="tf_same",
        conv_bias="all",
        head={"kind": "global_pool", "norm": True, "dropout": 0.25, "classes": 7},
    ),
    # keras V1-style bottleneck with groups, stride on conv1 and the last block, max-pool shortcuts
    variant(
        "grouped_first_block_last_stride",
        block={
            "kind": "bottleneck",
            "stride_on": "conv1",
            "stride_block": "last",
            "groups": 4,
            "width_per_group": 16,
            "expansion": 2,
        },
        stages=[
            {"blocks": 2, "filters": 16, "stride": 2},
            {"blocks": 1, "filters": 32, "stride": 2},
            {"blocks": 2, "filters": 32, "stride": 1},
        ],
        shortcut={"kind": "projection", "when": "first_block", "stride_only": "max_pool"},
        conv_bias="unnormalized",
        head={"kind": "global_pool", "norm": True, "classes": 3, "output": "softmax"},
    ),
    # basic post-activation: max-pool where only the resolution changes, projection without BN, L2
    variant(
        "basic_max_pool_shortcut",
        input={"height": 40, "width": 24, "channels": 1},
        stages=[
            {"blocks": 1, "filters": 16, "stride": 1},
            {"blocks": 2, "filters": 16, "stride": 2},
            {"blocks": 2, "filters": 32, "stride": 2},
        ],
        shortcut={"kind": "projection", "norm": False, "stride_only": "max_pool"},
        regularization={"l2": 5e-4},
        norm={"epsilon": 1e-3, "momentum": 0.97},
    ),
    # pre-activation bottleneck whose projection reads the raw input; BN on the input; flatten head
    variant(
        "preact_bottleneck_input_projection",
        stem={
            "kind": "conv",
            "filters": 16,
            "kernel_size": 3,
            "stride": 1,
            "norm": False,
            "input_norm": True,
        },
        block={"kind": "bottleneck", "preactivation": True, "expansion": 2},
        shortcut={"kind": "projection", "source": "input"},
        head={"kind": "pool_flatten", "pool_size": 4, "norm": True, "classes": 4, "output": "softmax"},
        padding="tf_same",
        conv_bias="unnormalized",
    ),
    # option A with post-activation bottlenecks and the stride on the last block
    variant(
        "bottleneck_zero_pad_last",
        block={"kind": "bottleneck", "stride_block": "last", "expansion": 2},
        shortcut={"kind": "zero_pad"},
    ),
]


def compile_variant(data: dict[str, Any]) -> Compiled:
    raw = json.dumps(data).encode()
    return compile_document(load.parse(raw, f"{data['name']}.json", json_input=True))


@pytest.mark.parametrize("data", VARIANTS, ids=[v["name"] for v in VARIANTS])
def test_variant_matches_graph_and_trains(data: dict[str, Any]) -> None:
    compiled = compile_variant(data)
    text = render(compiled, "torch")
    module = import_generated(text, f"resgen_generated_{data['name']}")
    assert_matches_graph(module.build_model(), module, compiled, batch=2)
    sgd_step(module.build_model(), module, compiled)


def test_variants_are_ruff_clean(tmp_path: Path) -> None:
    pytest.importorskip("ruff")
    for data in VARIANTS:
        (tmp_path / f"{data['name']}.py").write_text(render(compile_variant(data), "torch"), encoding="utf-8")
    assert_ruff_clean(tmp_path)


@pytest.mark.parametrize(("name", "classifier"), [("cifar_resnet20", "fc"), ("resnetv2_50", "head.fc")])
def test_build_model_takes_num_classes_as_torchvision_does(name: str, classifier: str) -> None:
    module = preset_module(name)
    default = module.build_model()
    spec_classes = compile_spec(name).spec.head.classes
    assert default.get_submodule(classifier).weight.shape[0] == spec_classes
    model = module.build_model(num_classes=7)
    assert model.get_submodule(classifier).weight.shape[0] == 7
    assert model.get_submodule(classifier).bias.shape == (7,)
    height, _, channels = compile_spec(name).graph.input_hwc
    side = min(height, 32)
    with torch.no_grad():
        out = model.eval()(torch.randn(2, channels, side, side))
    assert tuple(out.shape) == (2, 7)
    # fine-tuning: every weight but the classifier's loads from the spec's own model
    other = {k: v for k, v in default.state_dict().items() if not k.startswith(classifier + ".")}
    missing, unexpected = model.load_state_dict(other, strict=False)
    assert sorted(missing) == [f"{classifier}.bias", f"{classifier}.weight"] and not unexpected
