"""The training-time sections of the spec, lowered (no framework imported): drop-path's schedule,
which layers zero_init_last marks, L2 by role, initialization defaults per preset family."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import resgen
from resgen.graph import Distribution, L2Settings
from resgen.load import load
from tests.helpers import assert_clean_failure, cli


def spec_with(name: str, **sections: Any) -> dict[str, Any]:
    data = copy.deepcopy(load(name).data)
    data.update(sections)
    return data


def test_drop_path_rates_follow_timms_linear_rule_over_all_blocks() -> None:
    net = resgen.compile(spec_with("resnet50d", regularization={"drop_path": 0.1}))
    layers = net.graph.of_kind("drop_path")
    assert len(layers) == 16 == len(net.graph.blocks)
    assert [x.op.rate for x in layers] == [0.1 * i / 15 for i in range(16)]  # type: ignore[union-attr]
    # after attention, before the addition: the residual branch's input 0
    for x in layers:
        assert net.graph.consumers(x.name) == [x.name.replace("drop_path", "add")]
    assert not resgen.compile("resnet50d").graph.of_kind("drop_path")  # none unless asked for


def test_drop_path_needs_two_blocks(tmp_path: Any) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(
        "format_version: 1\nname: one\ninput: {height: 32, width: 32}\n"
        "stem: {kind: conv, filters: 8, kernel_size: 3, stride: 1}\nblock: {kind: basic}\n"
        "stages:\n  - {blocks: 1, filters: 8, stride: 1}\nregularization: {drop_path: 0.1}\n"
        "head: {kind: global_pool, classes: 10}\n"
    )
    (line,) = assert_clean_failure(cli("validate", str(path)))
    assert line.endswith(
        ":8:29: error: regularization.drop_path: drop_path's schedule needs at least 2 blocks "
        "(block 0 always has rate 0)"
    )


@pytest.mark.parametrize(
    ("name", "role"),
    [("resnet50d", "bn3"), ("resnet18d", "bn2"), ("seresnet50", "bn3"), ("resnet50_gn", "bn3")],
)
def test_zero_init_last_marks_the_last_norm_of_every_branch(name: str, role: str) -> None:
    graph = resgen.compile(name).graph
    assert graph.network.init.zero_init_last
    assert {x.name for x in graph if x.zero_init} == {f"{r.prefix}.{role}" for r in graph.blocks}


def test_zero_init_last_marks_the_last_convolution_of_a_preactivation_branch() -> None:
    graph = resgen.compile(spec_with("preact_resnet164", init={"zero_init_last": True})).graph
    assert {x.name for x in graph if x.zero_init} == {f"{r.prefix}.conv3" for r in graph.blocks}


def test_initialization_defaults_by_preset_family() -> None:
    def init(name: str) -> tuple[str, str, str, bool]:
        i = resgen.compile(name).graph.network.init
        return i.conv, i.dense, i.bias, i.zero_init_last

    torchvision = (Distribution.HE_NORMAL_FAN_OUT, Distribution.UNIFORM_FAN_IN, Distribution.UNIFORM_FAN_IN)
    keras = (Distribution.GLOROT_UNIFORM, Distribution.GLOROT_UNIFORM, Distribution.ZEROS)
    for name in ("resnet50", "wide_resnet50_2", "cifar_resnet20", "preact_resnet164"):
        assert init(name) == (*torchvision, False), name
    for name in ("resnet50d", "resnet10t", "seresnet50", "ecaresnet26t", "resnetrs50", "resnet50_gn"):
        assert init(name) == (*torchvision, True), name
    for name in ("keras_resnet50", "keras_resnet50v2", "rosebrock_cifar10", "rosebrock_tiny_imagenet"):
        assert init(name) == (*keras, False), name


def test_l2_by_role() -> None:
    graph = resgen.compile("rosebrock_tiny_imagenet").graph
    assert graph.network.l2 == L2Settings(stem=5e-4, blocks=1e-4, shortcuts=1e-4, head=5e-4)
    roles = {x.name: x.l2_role for x in graph.of_kind("conv2d", "dense")}
    assert roles["stem.conv"] == "stem" and roles["head.fc"] == "head"
    assert roles["stage2.block1.shortcut_conv"] == "shortcuts" and roles["stage2.block1.conv2"] == "blocks"
    torch_text = resgen.render("rosebrock_tiny_imagenet", "torch")
    assert (
        'WEIGHT_DECAY = {"stem": 0.001, "blocks": 0.0002, "shortcuts": 0.0002, "head": 0.001}' in torch_text
    )
    keras_text = resgen.render("rosebrock_tiny_imagenet", "keras")
    assert keras_text.count("keras.regularizers.L2(0.0005)") == 2  # conv1_conv and predictions
