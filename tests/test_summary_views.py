"""`resgen summary --names torch|keras` and `--depth blocks`: the table as torchinfo users expect it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_cli as run


def _rows(out: str) -> list[list[str]]:
    """The table's body rows as lists of cells (rich draws cells between │)."""
    return [[c.strip() for c in line.strip("│ \n").split("│")] for line in out.splitlines() if "│" in line]


def test_names_torch_shows_module_paths_and_a_dash_for_functions() -> None:
    code, out, _ = run("summary", "resnet18", "--names", "torch")
    assert code == 0
    assert "torch module" in out
    rows = {row[0]: row for row in _rows(out)}
    assert {"conv1", "bn1", "maxpool", "layer2.0.downsample.0", "layer4.1.conv2", "fc"} <= set(rows)
    assert rows["layer2.0.downsample.0"][1:4] == ["conv2d", "128 x 28 x 28", "8,192"]
    dashes = [row[1] for row in _rows(out) if row[0] == "-"]
    assert sorted(set(dashes)) == ["add", "input"]  # computed by functions in torch
    assert "stage2.block1" not in out  # resgen's own names are replaced


def test_names_keras_shows_keras_layer_names() -> None:
    code, out, _ = run("summary", "keras_resnet50", "--names", "keras")
    assert code == 0
    names = [row[0] for row in _rows(out)]
    assert "Keras layer" in out
    assert names[:3] == ["input", "conv1_conv", "conv1_bn"]
    assert {"conv3_block1_0_conv", "conv3_block1_3_bn", "conv5_block3_out", "predictions"} <= set(names)
    assert "-" not in names  # every layer is a Keras layer (the softmax is the classifier's)


def test_depth_blocks_has_one_row_per_stem_block_and_head_with_totals() -> None:
    code, out, _ = run("summary", "cifar_resnet20", "--depth", "blocks")
    assert code == 0
    rows = _rows(out)
    assert [row[0] for row in rows] == [
        "stem",
        *(f"stage{s}.block{b}" for s in (1, 2, 3) for b in (1, 2, 3)),
        "head",
    ]
    by_name = {row[0]: row for row in rows}
    assert by_name["stage2.block1"][2:] == [
        "basic, stride 2, zero pad",
        "32 x 16 x 16",
        "13,952",
        "3,538,944",
    ]
    assert by_name["head"][-3:] == ["10", "650", "640"]
    assert "269,722" in out  # the totals stay
    code, out, _ = run("summary", "cifar_resnet20", "--format", "json")
    data = json.loads(out)
    params = [int(row[-2].replace(",", "") or 0) for row in rows]
    assert sum(params) == data["params"]


@pytest.mark.parametrize(
    ("names", "header", "block"),
    [("torch", "torch module", "layer3.0"), ("keras", "Keras names", "conv4_block1")],
)
def test_depth_blocks_with_names(names: str, header: str, block: str) -> None:
    code, out, _ = run("summary", "resnet50", "--depth", "blocks", "--names", names)
    assert code == 0 and header in out
    rows = {row[0]: row for row in _rows(out)}
    assert rows["stage3.block1"][1] == block
    assert rows["stem"][1] == rows["head"][1] == "-"  # no single module holds them


def test_depth_blocks_json_adds_blocks_and_keeps_layers() -> None:
    code, out, _ = run("summary", "resnet18", "--depth", "blocks", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert len(data["layers"]) > len(data["blocks"]) == 1 + 8 + 1
    block = data["blocks"][3]
    assert (block["name"], block["torch"], block["keras"]) == ("stage2.block1", "layer2.0", "conv3_block1")
    assert block["output_shape"] == [128, 28, 28]
    assert sum(b["params"] for b in data["blocks"]) == data["params"]
    assert sum(b["macs"] for b in data["blocks"]) == data["macs"]


BACKBONE = """\
format_version: 1
name: tiny_backbone
input: {height: 32, width: 32}
stem: {kind: conv, filters: 8, kernel_size: 3, stride: 1}
block: {kind: basic}
stages: [{blocks: 1, filters: 8, stride: 1}, {blocks: 1, filters: 16, stride: 2}]
head: {kind: none}
backbone: {features: [1, 2]}
"""


def test_depth_blocks_of_a_backbone_has_no_head_row(tmp_path: Path) -> None:
    spec = tmp_path / "backbone.yaml"
    spec.write_text(BACKBONE, encoding="utf-8")
    code, out, err = run("summary", str(spec), "--depth", "blocks")
    assert code == 0, err
    assert [row[0] for row in _rows(out)] == ["stem", "stage1.block1", "stage2.block1"]
