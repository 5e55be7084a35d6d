"""Lowering: the structure each preset must have, typed, and names that match both references."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

import resgen
from resgen.graph import (
    BatchNorm,
    BlockDim,
    BlockRecord,
    Conv2d,
    L2Settings,
    LayerGraph,
    PadMode,
    ShortcutKind,
    ShortcutRule,
    ShortcutSource,
)
from resgen.naming import keras_name, torch_module, torch_path


def blocks(name: str) -> tuple[BlockRecord, ...]:
    return resgen.compile(name).graph.blocks


def conv(graph: LayerGraph, name: str) -> Conv2d:
    op = graph[name].op
    assert isinstance(op, Conv2d)
    return op


def test_torchvision_resnet50_structure() -> None:
    graph = resgen.compile("resnet50").graph
    info = graph.blocks
    assert [b.stage for b in info] == [1] * 3 + [2] * 4 + [3] * 6 + [4] * 3
    assert [b.stride for b in info if b.stride != 1] == [2, 2, 2]
    assert [b.shortcut for b in info].count(ShortcutKind.PROJECTION) == 4  # first block of every stage
    # v1.5: the stride sits on the 3x3
    assert conv(graph, "stage2.block1.conv2").stride == 2
    assert conv(graph, "stage2.block1.conv1").stride == 1
    assert graph["stage2.block1.conv2"].carries_stride and not graph["stage2.block1.conv1"].carries_stride
    assert all(not x.op.bias for x in graph.of_kind("conv2d"))  # type: ignore[union-attr]


def test_keras_v1_stride_on_first_1x1_and_bias_everywhere() -> None:
    graph = resgen.compile("keras_resnet50").graph
    assert conv(graph, "stage2.block1.conv1").stride == 2
    assert conv(graph, "stage2.block1.conv2").stride == 1
    assert graph.network.block.stride_on == "conv1"
    assert all(x.op.bias for x in graph.of_kind("conv2d"))  # type: ignore[union-attr]


def test_keras_v2_stride_on_last_block_with_max_pool_shortcut() -> None:
    info = blocks("keras_resnet50v2")
    by_stage = {s: [b for b in info if b.stage == s] for s in (1, 2, 3, 4)}
    assert [b.stride for b in by_stage[1]] == [1, 1, 2]
    assert [b.shortcut for b in by_stage[1]] == ["projection", "identity", "max_pool"]
    assert [b.stride for b in by_stage[4]] == [1, 1, 1]
    graph = resgen.compile("keras_resnet50v2").graph
    # the projection reads the pre-activated input, the max-pool the raw block input
    assert graph.inputs("stage1.block1.shortcut_conv") == ["stage1.block1.preact_relu"]
    assert graph.inputs("stage1.block3.shortcut_pool") == ["stage1.block2.add"]
    # bias only where no BatchNorm follows: stem, conv3, projection
    bias = {x.name: x.op.bias for x in graph.of_kind("conv2d")}  # type: ignore[union-attr]
    assert bias["stem.conv"] and bias["stage1.block1.conv3"] and bias["stage1.block1.shortcut_conv"]
    assert not bias["stage1.block1.conv1"] and not bias["stage1.block1.conv2"]


def test_cifar_option_a_pads_channels_evenly() -> None:
    graph = resgen.compile("cifar_resnet20").graph
    pad = graph["stage2.block1.shortcut_pad"].op
    assert (pad.stride, pad.pad_before, pad.pad_after) == (2, 8, 8)  # type: ignore[union-attr]
    assert Counter(b.shortcut for b in blocks("cifar_resnet20")) == {"identity": 7, "zero_pad": 2}


def test_rosebrock_projects_on_every_first_block_from_the_preactivation() -> None:
    compiled = resgen.compile("rosebrock_cifar10")
    graph = compiled.graph
    info = graph.blocks
    assert [b.shortcut for b in info if b.block == 1] == ["projection"] * 3
    assert info[0].in_channels == info[0].out_channels == 64  # projected although the shape is unchanged
    assert graph.inputs("stage1.block1.shortcut_conv") == ["stage1.block1.preact_relu"]
    assert "stage1.block1.shortcut_bn" not in graph
    assert conv(graph, "stage2.block1.conv2").padding is PadMode.TF_SAME
    assert compiled.analysis["stage2.block1.conv2"].padding == ((0, 1), (0, 1))
    # network-wide settings are stated once, on the network
    assert graph.network.norm.epsilon == 2e-5 and graph.network.norm.momentum == 0.9
    # Rosebrock's build(reg=0.0005) reaches only the stem and the classifier; the blocks keep 1e-4
    assert graph.network.l2 == L2Settings(stem=5e-4, blocks=1e-4, shortcuts=1e-4, head=5e-4)
    assert graph.network.shortcut == ShortcutRule(
        changing=ShortcutKind.PROJECTION,
        stride_only=ShortcutKind.PROJECTION,
        first_block_projects=True,
        norm=False,
        source=ShortcutSource.PREACTIVATED,
    )


def test_wide_and_resnext_inner_widths() -> None:
    assert blocks("wide_resnet50_2")[0].width == 128
    assert blocks("resnext50_32x4d")[0].width == 128
    assert blocks("resnext101_32x8d")[0].width == 256
    graph = resgen.compile("resnext101_64x4d").graph
    assert conv(graph, "stage1.block1.conv2").groups == 64


def test_block_layers_state_their_block_dimensions() -> None:
    graph = resgen.compile("resnet50").graph
    dims = {x.role: x.dims for x in graph.block_layers()[(2, 1)] if x.dims}
    IN, WIDTH, OUT = BlockDim.IN, BlockDim.WIDTH, BlockDim.OUT
    assert dims == {
        "conv1": (IN, WIDTH),
        "bn1": (WIDTH, WIDTH),
        "conv2": (WIDTH, WIDTH),
        "bn2": (WIDTH, WIDTH),
        "conv3": (WIDTH, OUT),
        "bn3": (OUT, OUT),
        "shortcut_conv": (IN, OUT),
        "shortcut_bn": (OUT, OUT),
    }


@pytest.mark.parametrize(
    ("block", "cin", "cout", "stride", "expected"),
    [
        (1, 64, 64, 1, ShortcutKind.IDENTITY),
        (1, 64, 128, 1, ShortcutKind.PROJECTION),
        (2, 64, 64, 2, ShortcutKind.MAX_POOL),
        (3, 64, 128, 2, ShortcutKind.PROJECTION),
    ],
)
def test_the_shortcut_rule_chooses_by_shape_change(
    block: int, cin: int, cout: int, stride: int, expected: ShortcutKind
) -> None:
    rule = ShortcutRule(ShortcutKind.PROJECTION, ShortcutKind.MAX_POOL, False, True, ShortcutSource.INPUT)
    assert rule.choose(block=block, in_channels=cin, out_channels=cout, stride=stride) is expected
    first = dataclasses.replace(rule, first_block_projects=True)
    assert first.choose(block=1, in_channels=64, out_channels=64, stride=1) is ShortcutKind.PROJECTION


def test_layers_are_frozen() -> None:
    graph = resgen.compile("resnet18").graph
    with pytest.raises(dataclasses.FrozenInstanceError):
        graph["stem.bn"].op.channels = 3  # type: ignore[misc, union-attr]
    assert isinstance(graph["stem.bn"].op, BatchNorm)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "keras_resnet50v2", "rosebrock_tiny_imagenet"])
def test_names_are_unique_per_target(name: str) -> None:
    compiled = resgen.compile(name)
    graph = compiled.graph
    weighted = [x for x in graph if compiled.analysis[x.name].params]
    assert len({torch_path(graph, x.name) for x in weighted}) == len(weighted)
    names = [keras_name(graph, x.name) for x in graph if x.kind != "softmax"]
    assert len(set(names)) == len(names)


def test_reference_names() -> None:
    graph = resgen.compile("resnet50").graph
    assert torch_path(graph, "stage2.block1.shortcut_bn") == "layer2.0.downsample.1"
    assert torch_path(graph, "stem.conv") == "conv1"
    assert keras_name(graph, "stage2.block1.shortcut_conv") == "conv3_block1_0_conv"
    assert keras_name(graph, "stage2.block1.bn2") == "conv3_block1_2_bn"
    assert keras_name(graph, "head.fc") == "predictions"
    v2 = resgen.compile("keras_resnet50v2").graph
    assert keras_name(v2, "stage1.block1.add") == "conv2_block1_out"
    assert keras_name(v2, "head.bn") == "post_bn"


def test_functional_and_fused_layers_have_no_module_or_layer_of_their_own() -> None:
    graph = resgen.compile("keras_resnet50").graph
    assert torch_module(graph, "stage1.block1.add") is None
    assert torch_module(graph, "head.softmax") is None
    assert keras_name(graph, "head.softmax") == keras_name(graph, "head.fc") == "predictions"
    with pytest.raises(ValueError, match="function"):
        torch_path(graph, "stage1.block1.add")


def test_lowering_is_deterministic() -> None:
    a = resgen.compile("resnet101").graph
    b = resgen.compile("resnet101").graph
    assert list(a) == list(b)
    assert list(a.nx.edges(data="index")) == list(b.nx.edges(data="index"))


@pytest.mark.parametrize(
    ("channels", "ratio", "divisor", "reduced"),
    [
        (256, 1 / 16, 8, 16),
        (2048, 1 / 16, 8, 128),
        (64, 0.25, 8, 16),
        (36, 1 / 16, 8, 8),
        (100, 1 / 16, 8, 8),
    ],
)
def test_squeeze_excite_width_rounds_as_timm(channels: int, ratio: float, divisor: int, reduced: int) -> None:
    from resgen.graph import SqueezeExciteDesign

    assert SqueezeExciteDesign(ratio, divisor).reduced(channels) == reduced


def test_squeeze_excite_is_lowered_before_the_addition() -> None:
    graph = resgen.compile("seresnet50").graph
    roles = [x.role for x in graph.block_layers()[(1, 1)]]
    se = ["se_pool", "se_fc1", "se_act", "se_fc2", "se_gate", "se_scale"]
    assert [r for r in roles if r.startswith("se_")] == se
    assert roles.index("bn3") < roles.index("se_pool") < roles.index("add")
    assert graph.inputs("stage1.block1.add")[0] == "stage1.block1.se_scale"
    assert graph.inputs("stage1.block1.se_scale") == ["stage1.block1.bn3", "stage1.block1.se_gate"]
    assert all(graph[f"stage1.block1.se_fc{i}"].op.bias for i in (1, 2))  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("channels", "kernel"), [(64, 3), (128, 5), (256, 5), (1024, 5), (2048, 7), (100, 3)]
)
def test_eca_kernel_size_follows_timm(channels: int, kernel: int) -> None:
    from resgen.graph import EcaDesign

    assert EcaDesign(gamma=2, beta=1).kernel_size(channels) == kernel
