"""Backbones without a framework: the taps a spec's backbone.features gives (timm's features_only
semantics), what summary reports of them, and the code both targets write for them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import resgen
from resgen import load
from resgen.graph import AvgPool
from resgen.spec import json_schema
from tests.helpers import assert_ruff_clean, backbone_spec

ALL = ["stem", 1, 2, 3, 4]


def test_resnet50d_taps_follow_timm() -> None:
    net = resgen.compile(backbone_spec("resnet50d", ALL))
    taps = net.graph.network.taps
    assert [t.name for t in taps] == ["stem", "stage1", "stage2", "stage3", "stage4"]
    assert [t.reduction for t in taps] == [2, 4, 8, 16, 32]  # timm's feature_info.reduction()
    assert taps[0].layer == "stem.relu"  # after the stem's activation, before its pool
    assert net.graph.outputs == [t.layer for t in taps]
    assert not [x for x in net.graph if x.scope.value == "head"]


@pytest.mark.parametrize(
    ("preset", "layer", "reduction"),
    [
        ("resnetrs50", "stem.relu", 2),  # before the strided-convolution pool
        ("resnetblur50", "stem.relu", 2),  # before the max-pool and its blur pool
        ("keras_resnet50v2", "stem.conv", 2),  # a stem without normalization: its convolution
        ("cifar_resnet20", "stem.relu", 1),  # no pool, no stride
        ("resnet10t", "stem.relu", 2),  # a tiered deep stem
    ],
)
def test_stem_tap_sits_before_the_pool(preset: str, layer: str, reduction: int) -> None:
    stages = len(resgen.compile(preset).graph.network.stages)
    net = resgen.compile(backbone_spec(preset, ["stem", stages]))
    stem, last = net.graph.network.taps
    assert (stem.layer, stem.reduction) == (layer, reduction)
    assert last.layer == net.graph.output.name


def test_summary_reports_each_tap() -> None:
    data = resgen.summary(backbone_spec("resnet50d", [1, 3, 4]))
    assert [(f["name"], f["channels"], f["reduction"], f["shape"]) for f in data["features"]] == [
        ("stage1", 256, 4, [256, 56, 56]),
        ("stage3", 1024, 16, [1024, 14, 14]),
        ("stage4", 2048, 32, [2048, 7, 7]),
    ]
    assert [f["torch"] for f in data["features"]] == ["layer1", "layer3", "layer4"]
    assert [f["keras"] for f in data["features"]] == [
        "conv2_block3_out",
        "conv4_block6_out",
        "conv5_block3_out",
    ]
    assert data["output_shape"] == [2048, 7, 7]
    # the classifier's figures are gone: resnet50d's minus its 2048 x 1000 dense layer and bias
    assert data["params"] == 25_576_264 - 2048 * 1000 - 1000
    assert resgen.summary("resnet50")["features"] == []


def test_torch_source_returns_the_taps(tmp_path: Path) -> None:
    spec = backbone_spec("resnet50d", ALL)
    source = resgen.render(spec, "torch")
    assert source == resgen.render(spec, "torch")  # byte-identical
    assert "def forward(self, x: Tensor) -> list[Tensor]:" in source
    assert source.count("features.append(x)") == 5 and "return features" in source
    assert '{"num_chs": 64, "reduction": 2, "module": "relu"},' in source
    assert '{"num_chs": 2048, "reduction": 32, "module": "layer4"},' in source
    assert "self.fc" not in source and "classifier" not in source
    (tmp_path / "backbone.py").write_text(source)
    assert_ruff_clean(tmp_path)


def test_keras_source_has_one_output_per_tap(tmp_path: Path) -> None:
    source = resgen.render(backbone_spec("resnet50d", [2, 3, 4]), "keras")
    assert source.count("features.append(x)") == 3
    assert "keras.Model(inputs=inputs, outputs=features," in source
    assert "predictions" not in source
    (tmp_path / "backbone.py").write_text(source)
    assert_ruff_clean(tmp_path)


def test_classifier_sources_are_unchanged_by_the_backbone_code() -> None:
    source = resgen.render("resnet18", "torch")
    assert "def forward(self, x: Tensor) -> Tensor:" in source and "features" not in source
    assert "outputs=x," in resgen.render("resnet18", "keras")


def test_graph_marks_every_tap() -> None:
    from resgen.pictures import block_picture, layer_picture, to_mermaid

    net = resgen.compile(backbone_spec("resnet18", ["stem", 2, 4]))
    for picture in (block_picture(net), layer_picture(net)):
        outputs = [n for n in picture.nodes if n.id.startswith("output")]
        assert [n.lines for n in outputs] == [
            ("feature stem", "reduction 2"),
            ("feature stage2", "reduction 8"),
            ("feature stage4", "reduction 32"),
        ]
        into = {e.target: e.label for e in picture.edges if e.target.startswith("output")}
        assert into == {"output_stem": "64×112×112", "output_stage2": "128×28×28", "output_stage4": "512×7×7"}
    assert 'stem -->|"64×112×112"| output_stem' in to_mermaid(block_picture(net))


def test_diff_reports_the_backbone_section() -> None:
    from resgen.diff_formats import to_json, to_text

    old, new = backbone_spec("resnet18", [2, 3, 4]), backbone_spec("resnet18", ["stem", 2, 3, 4])
    d = resgen.diff(old, new)
    assert not d.same and d.graph.empty
    assert [(c.where, c.old, c.new) for c in d.changes] == [
        ("backbone.features", (2, 3, 4), ("stem", 2, 3, 4))
    ]
    text = to_text(d)
    assert "backbone.features  [2, 3, 4] → [stem, 2, 3, 4]" in text
    assert "outputs: stage2 128ch /8, stage3 256ch /16, stage4 512ch /32 → stem 64ch /2, stage2" in text
    assert "do not affect this network" not in text
    data = to_json(d)
    assert [f["name"] for f in data["features"]["new"]] == ["stem", "stage2", "stage3", "stage4"]
    assert data["changes"][0]["new"] == ["stem", 2, 3, 4]
    classifier = resgen.diff("resnet18", old)
    assert "outputs: the head's output → stage2" in to_text(classifier)
    assert resgen.diff(old, old).same


def test_changed_taps_are_a_different_network_though_the_layers_are_equal() -> None:
    """The layer graph does not hold the taps: a diff of the taps alone must still say the networks
    differ (exit 1), not "same network"."""
    from resgen import diffs

    old = resgen.compile(backbone_spec("resnet50d", ["stem", 1, 2, 3, 4]))
    new = resgen.compile(backbone_spec("resnet50d", [2, 3, 4]))
    d = diffs.diff(old, new)
    assert d.graph.empty and not d.same
    assert "same network" not in diffs.verdict(d)
    assert not any(c.informational for c in d.changes)


def _dilated(preset: str, output_stride: int, **backbone: Any) -> dict[str, Any]:
    """A preset's classifier spec with backbone.output_stride (and other backbone fields)."""
    from resgen import load

    data = dict(load.load(preset).data)
    data["backbone"] = {"output_stride": output_stride, **backbone}
    return data


@pytest.mark.parametrize(
    ("preset", "output_stride", "size", "side"),
    [("resnet50", 8, 224, 28), ("resnet50", 16, 224, 14), ("resnet18", 8, 97, 13), ("resnet50d", 32, 224, 7)],
)
def test_output_stride_keeps_the_resolution(preset: str, output_stride: int, size: int, side: int) -> None:
    net = resgen.compile(_dilated(preset, output_stride), input_size=(size, size))
    (stage4,) = [t for t in net.graph.network.stages if t.index == 4]
    last = [x for x in net.graph if x.stage == 4][-1]
    assert net.analysis.shape(last.name)[1:] == (side, side)
    assert stage4.stride == (2 if output_stride == 32 else 1)


@pytest.mark.parametrize(
    ("rule", "first_dilations"),
    [("torchvision", [1, 2, 2, 2, 4, 4]), ("whole_stage", [2, 2, 2, 4, 4, 4])],
)
def test_dilation_rules_give_each_block_its_dilation(rule: str, first_dilations: list[int]) -> None:
    """torchvision's rule keeps the previous stage's dilation in a dilated stage's first block
    (replace_stride_with_dilation); detectron2's gives the whole stage the new one."""
    net = resgen.compile(_dilated("resnet50", 8, dilation=rule))
    records = [r for r in net.graph.blocks if r.stage >= 3 and r.block <= 3]
    assert [r.first_dilation for r in records] == first_dilations
    assert [r.dilation for r in records] == [2, 2, 2, 4, 4, 4]
    conv2 = [net.graph[f"{r.prefix}.conv2"].op for r in records]
    assert [getattr(op, "dilation", None) for op in conv2] == first_dilations
    assert [net.analysis[f"{r.prefix}.conv2"].padding for r in records] == [
        ((d, d), (d, d)) for d in first_dilations
    ]


def test_dilated_taps_report_the_output_stride() -> None:
    net = resgen.compile(backbone_spec("resnet50d", ALL, output_stride=16))
    assert [t.reduction for t in net.graph.network.taps] == [2, 4, 8, 16, 16]  # timm's, output_stride=16
    assert [f["shape"][1:] for f in resgen.summary(net)["features"]][-2:] == [[14, 14], [14, 14]]


def test_dilated_avg_down_shortcut_pools_without_striding() -> None:
    """timm's avg_down in a stage that dilates: AvgPool2dSame(2, 1), zeros at the bottom and right."""
    net = resgen.compile(backbone_spec("resnet50d", ALL, output_stride=8), input_size=(45, 39))
    pools = {
        r.prefix: net.graph[f"{r.prefix}.shortcut_pool"].op
        for r in net.graph.blocks
        if r.block == 1 and r.stage > 1
    }
    assert pools["stage2.block1"] == AvgPool(2, 2, ceil_mode=True)
    assert pools["stage3.block1"] == pools["stage4.block1"] == AvgPool(2, 1, pad_end=1)
    assert net.analysis.shape("stage4.block1.shortcut_pool") == (1024, 6, 5)
    torch_source = resgen.render(net, "torch")
    assert "nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.AvgPool2d(2, stride=1))" in torch_source
    keras_source = resgen.render(net, "keras")
    assert "padding=((0, 1), (0, 1))" in keras_source


def test_dilated_sources_are_clean_and_explicit(tmp_path: Path) -> None:
    net = resgen.compile(backbone_spec("resnet18", [2, 3, 4], output_stride=8))
    torch_source = resgen.render(net, "torch")
    assert "first_dilation=self.dilation,\n" in torch_source  # timm's BasicBlock
    assert "first_dilation=dilation, dilation=dilation" in torch_source
    assert "self._make_layer(512, 2, stride=1, dilation=4)" in torch_source
    keras_source = resgen.render(net, "keras")
    assert "dilation_rate=dilation" in keras_source and "dilation_rate=first_dilation" in keras_source
    assert "padding=((dilation, dilation), (dilation, dilation))" in keras_source
    assert 'padding="same",\n        dilation_rate' not in keras_source  # explicit ZeroPadding2D
    for target, source in (("torch", torch_source), ("keras", keras_source)):
        (tmp_path / f"{target}.py").write_text(source)
    assert_ruff_clean(tmp_path)


def test_diff_reports_output_stride() -> None:
    from resgen.diff_formats import to_text

    d = resgen.diff("resnet50", _dilated("resnet50", 8))
    assert not d.same
    assert ("backbone.output_stride", 32, 8) in [(c.where, c.old, c.new) for c in d.changes]
    assert "backbone.output_stride" in to_text(d)


# --- frozen stages and norm_eval ---------------------------------------------------------------------


def test_frozen_layers_are_the_stem_and_the_first_stages() -> None:
    graph = resgen.compile(backbone_spec("resnet50d", ALL, frozen_stages=2)).graph
    frozen = {x.name for x in graph if graph.frozen(x)}
    assert {"stem.conv1", "stem.bn", "stage1.block1.conv1", "stage2.block4.bn3"} <= frozen
    assert not {x for x in frozen if x.startswith(("stage3", "stage4", "head", "input"))}
    assert all(graph.frozen(x) for x in graph if x.scope.value == "stem")
    default = resgen.compile("resnet50d").graph
    assert not any(default.frozen(x) for x in default)  # the default: none


def test_torch_source_freezes_and_keeps_batchnorms_in_eval_mode(tmp_path: Path) -> None:
    source = resgen.render(backbone_spec("resnet50d", ALL, frozen_stages=2), "torch")
    assert "return [self.conv1, self.bn1, self.layer1, self.layer2]" in source
    assert "module.requires_grad_(False)" in source
    assert "def train(self, mode: bool = True) -> ResNet:" in source
    assert "for frozen in self.frozen_modules():" in source
    both = resgen.render(backbone_spec("resnet18", [1, 2, 3, 4], frozen_stages=1, norm_eval=True), "torch")
    norms = "(nn.BatchNorm2d, nn.SyncBatchNorm)"  # SyncBatchNorm: build_model(sync_batchnorm=True)
    assert f"for module in self.modules():\n            if isinstance(module, {norms}):" in both
    v2 = resgen.render(backbone_spec("keras_resnet50v2", [1, 2, 3, 4], frozen_stages=1), "torch")
    assert "return [self.conv1, self.layer1]" in v2  # a stem without normalization
    bit = dict(load.load("resnetv2_50x1_bit").data, backbone={"frozen_stages": 2})
    timm_v2 = resgen.render(bit, "torch")  # timm's ResNetV2 module paths
    assert "return [self.stem, self.stages[0], self.stages[1]]" in timm_v2
    for name, text in (("a", source), ("b", both), ("c", v2), ("d", timm_v2)):
        (tmp_path / f"{name}.py").write_text(text)
    assert_ruff_clean(tmp_path)


def test_keras_source_marks_frozen_layers_and_fixes_inference_mode(tmp_path: Path) -> None:
    source = resgen.render(backbone_spec("resnet50d", ALL, frozen_stages=2, norm_eval=True), "keras")
    assert 'FROZEN_PREFIXES = ("conv1_", "conv2_", "conv3_")' in source
    assert "        layer.trainable = False\n    return model" in source
    assert "class BatchNormEval(layers.BatchNormalization):" in source
    assert "layers.BatchNormalization(" not in source  # every BatchNorm is a BatchNormEval
    frozen_only = resgen.render(backbone_spec("cifar_resnet20", [1, 2, 3], frozen_stages=3), "keras")
    assert (
        "BatchNormEval" not in frozen_only
        and 'FROZEN_PREFIXES = ("conv1_", "conv2_", "conv3_", "conv4_")' in frozen_only
    )
    for name, text in (("a", source), ("b", frozen_only)):
        (tmp_path / f"{name}.py").write_text(text)
    assert_ruff_clean(tmp_path)


def test_frozen_stages_and_norm_eval_apply_to_classifiers_too() -> None:
    spec = dict(load.load("resnet18").data, backbone={"frozen_stages": 1, "norm_eval": True})
    source = resgen.render(spec, "torch")
    assert "return [self.conv1, self.bn1, self.layer1]" in source and "self.fc" in source


def test_diff_reports_frozen_stages_and_norm_eval() -> None:
    from resgen.diff_formats import to_text

    old = backbone_spec("resnet18", [1, 2, 3, 4])
    new = backbone_spec("resnet18", [1, 2, 3, 4], frozen_stages=1, norm_eval=True)
    d = resgen.diff(old, new)
    assert not d.same
    changes = [(c.where, c.old, c.new) for c in d.changes]
    assert ("backbone.frozen_stages", 0, 1) in changes and ("backbone.norm_eval", False, True) in changes
    assert "backbone.frozen_stages" in to_text(d) and "backbone.norm_eval" in to_text(d)


def test_schema_documents_frozen_stages_and_norm_eval() -> None:
    schema = json.dumps(json_schema())
    assert "mmdet's frozen_stages" in schema and "mmdet's norm_eval" in schema
