"""Backbones without a framework: the taps a spec's backbone.features gives (timm's features_only
semantics), what summary reports of them, and the code both targets write for them."""

from __future__ import annotations

from pathlib import Path

import pytest

import resgen
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
