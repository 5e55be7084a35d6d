"""Lowering: the structure each preset must have, and names that match both references."""

from __future__ import annotations

from collections import Counter

import pytest

from resgen import lower
from resgen.compiler import compile_spec
from resgen.lower import inputs_of
from resgen.naming import keras_name, torch_path


def blocks(name: str) -> list[lower.BlockInfo]:
    return compile_spec(name).graph.graph["blocks"]


def test_torchvision_resnet50_structure() -> None:
    graph = compile_spec("resnet50").graph
    info = graph.graph["blocks"]
    assert [b.stage for b in info] == [1] * 3 + [2] * 4 + [3] * 6 + [4] * 3
    assert [b.stride for b in info if b.stride != 1] == [2, 2, 2]
    assert [b.shortcut for b in info].count("projection") == 4  # first block of every stage
    # v1.5: the stride sits on the 3x3
    assert graph.nodes["stage2.block1.conv2"]["stride"] == 2
    assert graph.nodes["stage2.block1.conv1"]["stride"] == 1
    assert all(not d["bias"] for _, d in graph.nodes(data=True) if d["op"] == "conv2d")


def test_keras_v1_stride_on_first_1x1_and_bias_everywhere() -> None:
    graph = compile_spec("keras_resnet50").graph
    assert graph.nodes["stage2.block1.conv1"]["stride"] == 2
    assert graph.nodes["stage2.block1.conv2"]["stride"] == 1
    assert all(d["bias"] for _, d in graph.nodes(data=True) if d["op"] == "conv2d")


def test_keras_v2_stride_on_last_block_with_max_pool_shortcut() -> None:
    info = blocks("keras_resnet50v2")
    by_stage = {s: [b for b in info if b.stage == s] for s in (1, 2, 3, 4)}
    assert [b.stride for b in by_stage[1]] == [1, 1, 2]
    assert [b.shortcut for b in by_stage[1]] == ["projection", "identity", "max_pool"]
    assert [b.stride for b in by_stage[4]] == [1, 1, 1]
    graph = compile_spec("keras_resnet50v2").graph
    # the projection reads the pre-activated input, the max-pool the raw block input
    assert inputs_of(graph, "stage1.block1.shortcut_conv") == ["stage1.block1.preact_relu"]
    assert inputs_of(graph, "stage1.block3.shortcut_pool") == ["stage1.block2.add"]
    # bias only where no BatchNorm follows: stem, conv3, projection
    bias = {n: d["bias"] for n, d in graph.nodes(data=True) if d["op"] == "conv2d"}
    assert bias["stem.conv"] and bias["stage1.block1.conv3"] and bias["stage1.block1.shortcut_conv"]
    assert not bias["stage1.block1.conv1"] and not bias["stage1.block1.conv2"]


def test_cifar_option_a_pads_channels_evenly() -> None:
    graph = compile_spec("cifar_resnet20").graph
    pad = graph.nodes["stage2.block1.shortcut_pad"]
    assert (pad["stride"], pad["pad_before"], pad["pad_after"]) == (2, 8, 8)
    assert Counter(b.shortcut for b in blocks("cifar_resnet20")) == {"identity": 7, "zero_pad": 2}


def test_seed_projects_on_every_first_block_from_the_preactivation() -> None:
    graph = compile_spec("rosebrock_cifar10").graph
    info = blocks("rosebrock_cifar10")
    assert [b.shortcut for b in info if b.block == 1] == ["projection"] * 3
    assert info[0].in_channels == info[0].out_channels == 64  # projected although the shape is unchanged
    assert inputs_of(graph, "stage1.block1.shortcut_conv") == ["stage1.block1.preact_relu"]
    assert "stage1.block1.shortcut_bn" not in graph
    assert graph.nodes["stage2.block1.conv2"]["padding_mode"] == "tf_same"
    assert graph.nodes["stage2.block1.conv2"]["padding"] == ((0, 1), (0, 1))
    assert graph.nodes["stem.input_bn"]["epsilon"] == 2e-5
    assert graph.nodes["head.fc"]["l2"] == 1e-4


def test_wide_and_resnext_inner_widths() -> None:
    assert blocks("wide_resnet50_2")[0].width == 128
    assert blocks("resnext50_32x4d")[0].width == 128
    assert blocks("resnext101_32x8d")[0].width == 256
    graph = compile_spec("resnext101_64x4d").graph
    assert graph.nodes["stage1.block1.conv2"]["groups"] == 64


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "keras_resnet50v2", "rosebrock_tiny_imagenet"])
def test_names_are_unique_per_target(name: str) -> None:
    compiled = compile_spec(name)
    graph = compiled.graph
    pre = compiled.spec.block.preactivation
    weighted = [d for _, d in graph.nodes(data=True) if d["params"]]
    assert len({torch_path(d) for d in weighted}) == len(weighted)
    assert len({keras_name(d, preactivation=pre) for _, d in graph.nodes(data=True)}) == len(graph)


def test_reference_names() -> None:
    graph = compile_spec("resnet50").graph
    assert torch_path(graph.nodes["stage2.block1.shortcut_bn"]) == "layer2.0.downsample.1"
    assert torch_path(graph.nodes["stem.conv"]) == "conv1"
    assert keras_name(graph.nodes["stage2.block1.shortcut_conv"]) == "conv3_block1_0_conv"
    assert keras_name(graph.nodes["stage2.block1.bn2"]) == "conv3_block1_2_bn"
    assert keras_name(graph.nodes["head.fc"]) == "predictions"
    v2 = compile_spec("keras_resnet50v2").graph
    assert keras_name(v2.nodes["stage1.block1.add"], preactivation=True) == "conv2_block1_out"
    assert keras_name(v2.nodes["head.bn"]) == "post_bn"


def test_lowering_is_deterministic() -> None:
    a = compile_spec("resnet101").graph
    b = compile_spec("resnet101").graph
    assert list(a.nodes(data="op")) == list(b.nodes(data="op"))
    assert list(a.edges) == list(b.edges)
