"""A stage's own block kind (``stages[i].block``): lowered, counted, rendered with one block class or
function per kind, and a changed stage kind is a network change. No framework is imported here;
tests/test_stage_blocks_frameworks.py runs the generated code against timm and across frameworks."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import resgen
from resgen.graph import BlockKind

# timm's test_resnet (timm/models/resnet.py): BasicBlock, BasicBlock, Bottleneck, BasicBlock, one block
# each, a deep stem 16-16-32, avg_down shortcuts and channels (32, 48, 48, 96).
MIXED: dict[str, Any] = {
    "format_version": 1,
    "name": "mixed_blocks",
    "input": {"height": 160, "width": 160, "channels": 3},
    "stem": {
        "kind": "deep",
        "widths": [16, 16, 32],
        "stride": 2,
        "pool": {"kernel_size": 3, "stride": 2, "padding": 1, "pad_with": "-inf"},
    },
    "block": {"kind": "basic"},
    "stages": [
        {"blocks": 1, "filters": 32, "stride": 1},
        {"blocks": 1, "filters": 48, "stride": 2},
        {"blocks": 1, "filters": 48, "stride": 2, "block": "bottleneck"},
        {"blocks": 1, "filters": 96, "stride": 2},
    ],
    "shortcut": {"kind": "projection", "downsample": "avg_pool"},
    "init": {"zero_init_last": True},
    "head": {"kind": "global_pool", "classes": 1000, "output": "logits"},
}


def with_stages(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(MIXED)
    for index, block in changes.items():
        stage = data["stages"][int(index.removeprefix("s"))]
        if block is None:
            stage.pop("block", None)
        else:
            stage["block"] = block
    return data


def test_each_stage_is_built_from_its_own_kind() -> None:
    net = resgen.compile(MIXED)
    network = net.graph.network
    assert [network.design(s.index).kind for s in network.stages] == [
        BlockKind.BASIC,
        BlockKind.BASIC,
        BlockKind.BOTTLENECK,
        BlockKind.BASIC,
    ]
    roles = {(stage, x.role) for (stage, _), layers in net.graph.block_layers().items() for x in layers}
    assert (3, "conv3") in roles and (2, "conv3") not in roles and (4, "conv3") not in roles
    # the bottleneck stage outputs filters * 4, and the next basic stage reads them
    assert [(b.in_channels, b.width, b.out_channels) for b in net.graph.blocks] == [
        (32, 32, 32),
        (32, 48, 48),
        (48, 48, 192),
        (192, 96, 96),
    ]


def test_counts_add_the_bottleneck_stage() -> None:
    mixed = resgen.summary(MIXED)
    plain = resgen.summary(with_stages(s2=None))
    # layer3.0 as a bottleneck: 1x1 48->48, 3x3 48->48, 1x1 48->192, BN 48+48+192, projection 48->192 + BN
    # against a basic block's 3x3 48->48 twice, BN 48+48, projection 48->48 + BN
    bottleneck = 48 * 48 + 9 * 48 * 48 + 48 * 192 + 2 * (48 + 48 + 192) + 48 * 192 + 2 * 192
    basic = 2 * 9 * 48 * 48 + 2 * (48 + 48) + 48 * 48 + 2 * 48
    # layer4.0 reads 192 channels instead of 48: its first 3x3 and its projection widen
    reader = 9 * 144 * 96 + 144 * 96
    assert mixed["params"] - plain["params"] == bottleneck - basic + reader


def test_one_spec_of_one_kind_renders_as_before() -> None:
    torch_text = resgen.render(with_stages(s2=None), "torch")
    assert "class Bottleneck" not in torch_text and "block_class" not in torch_text


def test_torch_target_writes_both_block_classes() -> None:
    text = resgen.render(MIXED, "torch")
    assert text.count("class BasicBlock(nn.Module):") == 1 and text.count("class Bottleneck(nn.Module):") == 1
    assert "block_class: type[BasicBlock | Bottleneck]," in text
    assert "self.layer3 = self._make_layer(Bottleneck, 48, 1, stride=2)" in text
    assert "self.layer4 = self._make_layer(BasicBlock, 96, 1, stride=2)" in text
    # zero_init_last: each class zeroes its own last norm
    assert "if isinstance(m, BasicBlock):\n                nn.init.zeros_(m.bn2.weight)" in text
    assert "elif isinstance(m, Bottleneck):\n                nn.init.zeros_(m.bn3.weight)" in text


def test_keras_target_writes_both_block_functions() -> None:
    text = resgen.render(MIXED, "keras")
    assert "def basic_block(" in text and "def bottleneck_block(" in text
    assert text.count("x = bottleneck_block(") == 1 and text.count("x = basic_block(") == 3


def test_a_changed_stage_kind_is_a_network_change() -> None:
    d = resgen.diff(with_stages(s2=None), MIXED)
    assert not d.same
    (change,) = d.network_changes
    assert change.path == ("stages", 2, "block") and change.new == "bottleneck"
    assert "stage 3 block (absent) → bottleneck" in resgen.diffs.verdict(d)


def test_summary_and_picture_name_each_blocks_kind() -> None:
    from resgen import pictures, report_views

    compiled = resgen.compile(MIXED)
    rows = {row["torch"]: row for row in report_views.blocks(compiled) if row.get("torch")}
    assert rows["layer3.0"]["what"].startswith("bottleneck") and rows["layer4.0"]["what"].startswith("basic")
    labels = " ".join(str(node) for node in pictures.block_picture(compiled).nodes)
    assert "layer3.0 bottleneck 48→192" in labels and "layer4.0 basic 192→96" in labels


@pytest.mark.parametrize("kind", ["basic", "bottleneck"])
def test_a_stage_of_the_same_kind_is_refused(kind: str) -> None:
    from resgen.errors import SpecErrors

    data = copy.deepcopy(MIXED)
    data["block"] = {"kind": kind}
    data["stages"][1]["block"] = kind
    data["stages"][2].pop("block")
    with pytest.raises(SpecErrors, match=r"is already block.kind"):
        resgen.compile(data)
