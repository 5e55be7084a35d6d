"""`resgen diff`: exit codes, content on real pairs, and "same network" whatever the spelling."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from resgen import diffs as specdiff
from resgen.compiler import compile_spec
from resgen.diffs import ABSENT, Change, field_changes
from resgen.graph import LayerGraph
from resgen.load import presets_dir
from tests.helpers import assert_clean_failure, cli, run_cli

# Reference parameter counts, published by the frameworks (also in shared/reference/params.json):
RESNET50 = 25_557_032  # torchvision 0.29.1 models.resnet50
RESNET101 = 44_549_160  # torchvision 0.29.1 models.resnet101
KERAS_RESNET50 = 25_583_592  # keras 3.15.1 applications.ResNet50(weights=None)
CIFAR_RESNET20 = 269_722  # He et al. 2015, CIFAR-10 6n+2 with option A shortcuts
CIFAR_RESNET56 = 853_018  # same source


def run(*args: str) -> tuple[int, str, str]:
    return run_cli("diff", *args)


def run_json(old: str, new: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run(old, new, "--format", "json")
    return code, json.loads(out)


def network_changes(data: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {c["path"]: (c["old"], c["new"]) for c in data["changes"] if not c["informational"]}


# --- real pairs ---------------------------------------------------------------------------------


def test_resnet50_vs_resnet101_text() -> None:
    code, out, err = run("resnet50", "resnet101")
    assert code == 1 and err == ""
    delta = RESNET101 - RESNET50
    assert delta == 18_992_128
    assert out.splitlines()[0] == (
        f"resnet50 → resnet101: stage 3 blocks 6 → 23, +{delta:,} params (+74.3%), +3.71 GMACs"
    )
    assert "stages[2].blocks  6 → 23" in out
    assert "name              resnet50 → resnet101  (informational)" in out
    assert "6 → 23  1024      14×14" in out  # the per-stage table
    assert "blocks added (17): stage3.block7–23" in out


def test_resnet50_vs_resnet101_json() -> None:
    code, data = run_json("resnet50", "resnet101")
    assert code == 1 and data["same"] is False
    assert data["params"] == {
        "old": RESNET50,
        "new": RESNET101,
        "delta": RESNET101 - RESNET50,
        "percent": round(100 * (RESNET101 - RESNET50) / RESNET50, 3),
    }
    assert network_changes(data) == {"stages[2].blocks": (6, 23)}
    assert {
        "path": "name",
        "old": "resnet50",
        "new": "resnet101",
        "change": "changed",
        "informational": True,
    } in data["changes"]
    assert data["blocks"]["added"] == [f"stage3.block{i}" for i in range(7, 24)]
    assert data["blocks"]["removed"] == []
    assert data["stages"][2] == {
        "stage": 3,
        "old": {"blocks": 6, "channels": 1024, "resolution": [14, 14]},
        "new": {"blocks": 23, "channels": 1024, "resolution": [14, 14]},
    }
    assert data["output_shape"] == {"old": [1000], "new": [1000]}
    assert data["macs"]["delta"] == data["macs"]["new"] - data["macs"]["old"] > 0
    assert data["layers"]["changed"] == 0 and data["layers"]["added"] == 17 * 10


def test_resnet50_vs_keras_resnet50() -> None:
    code, data = run_json("resnet50", "keras_resnet50")
    assert code == 1
    assert network_changes(data) == {
        "block.stride_on": ("conv2", "conv1"),
        "shortcut.when": ("needed", "first_block"),
        "norm.epsilon": (1e-5, 1.001e-5),
        "norm.momentum": (0.9, 0.99),
        "conv_bias": ("none", "all"),
        "head.output": ("logits", "softmax"),
        # initialization: torchvision's rule versus Keras' defaults
        "init.conv": ("he_normal_fan_out", "glorot_uniform"),
        "init.dense": ("uniform_fan_in", "glorot_uniform"),
        "init.bias": ("uniform_fan_in", "zeros"),
    }
    assert (data["params"]["old"], data["params"]["new"]) == (RESNET50, KERAS_RESNET50)
    assert data["params"]["delta"] == KERAS_RESNET50 - RESNET50 == 26_560  # one bias per conv channel
    assert data["verdict"].startswith("resnet50 → keras_resnet50: block.stride_on conv2 → conv1, ")
    by_change = {g["change"]: g for g in data["layers"]["changed_by_attr"]}
    assert by_change["stride 1 → 2"]["examples"] == [f"stage{s}.block1.conv1" for s in (2, 3, 4)]
    assert by_change["stride 2 → 1"]["examples"] == [f"stage{s}.block1.conv2" for s in (2, 3, 4)]
    assert by_change["bias false → true"]["count"] == 53  # every convolution
    assert data["layers"]["examples"]["added"] == ["head.softmax"]


def test_cifar_resnet20_vs_56() -> None:
    code, data = run_json("cifar_resnet20", "cifar_resnet56")
    assert code == 1
    assert network_changes(data) == {f"stages[{i}].blocks": (3, 9) for i in range(3)}
    assert [(s["old"]["blocks"], s["new"]["blocks"]) for s in data["stages"]] == [(3, 9)] * 3
    assert [s["new"]["channels"] for s in data["stages"]] == [16, 32, 64]
    assert [s["new"]["resolution"] for s in data["stages"]] == [[32, 32], [16, 16], [8, 8]]
    assert (data["params"]["old"], data["params"]["new"]) == (CIFAR_RESNET20, CIFAR_RESNET56)
    assert len(data["blocks"]["added"]) == 18
    delta = CIFAR_RESNET56 - CIFAR_RESNET20
    verdict = f"cifar_resnet20 → cifar_resnet56: stages 1–3 blocks 3 → 9, +{delta:,} params (+216.3%), "
    assert data["verdict"].startswith(verdict)
    assert data["verdict"].endswith("MMACs")


def test_markdown_is_a_pull_request_comment() -> None:
    code, out, _ = run("resnet50", "keras_resnet50", "--format", "markdown")
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "### Architecture diff: `resnet50` → `keras_resnet50`"
    assert lines[2].startswith("**resnet50 → keras_resnet50: ") and lines[2].endswith("**")
    assert "| field | old | new |" in lines and "|---|---|---|" in lines
    assert "| `block.stride_on` | `conv2` | `conv1` |" in lines
    assert "| `conv_bias` | `none` | `all` |" in lines
    assert "| stage | blocks | output channels | output resolution |" in lines
    assert "| params | 25,557,032 | 25,583,592 | +26,560 (+0.1%) |" in lines
    assert_tables_well_formed(lines)


def assert_tables_well_formed(lines: list[str]) -> None:
    """Every row of a markdown table has as many (unescaped) cell separators as its header."""
    tables: list[list[int]] = [[]]
    for line in lines:
        if line.startswith("|"):
            tables[-1].append(len(re.findall(r"(?<!\\)\|", line)))
        elif tables[-1]:
            tables.append([])
    assert len(tables) >= 3
    for counts in tables:
        assert len(set(counts)) <= 1, counts


def test_stage_removed_and_added(tmp_path: Path) -> None:
    data = compile_spec("resnet18").spec.model_dump(mode="json")
    data["stages"] = data["stages"][:3]
    data["name"] = "resnet18_short"
    short = tmp_path / "short.json"
    short.write_text(json.dumps(data))
    code, out, _ = run("resnet18", str(short))
    assert code == 1
    assert out.startswith("resnet18 → resnet18_short: stage 4 removed, ")
    assert "4      2 → —   512 → —   7×7 → —" in out
    code, result = run_json(str(short), "resnet18")
    assert {
        "path": "stages[3]",
        "old": None,
        "new": {"blocks": 2, "filters": 512, "stride": 2},
        "change": "added",
        "informational": False,
    } in result["changes"]
    assert result["output_shape"] == {"old": [1000], "new": [1000]}


# --- the same network, written differently ------------------------------------------------------


def _reordered(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reordered(value[k]) for k in sorted(value, reverse=True)}
    return [_reordered(v) for v in value] if isinstance(value, list) else value


def test_reformatted_spec_is_the_same_network(tmp_path: Path) -> None:
    spec = compile_spec("resnet50").spec
    spelled_out = tmp_path / "resnet50.json"
    spelled_out.write_text(json.dumps(_reordered(spec.model_dump(mode="json")), indent=1))
    minimal = tmp_path / "resnet50.yaml"
    with minimal.open("w") as handle:
        YAML(typ="safe", pure=True).dump(spec.model_dump(mode="json", exclude_defaults=True), handle)
    assert "conv_bias" not in minimal.read_text()  # defaults really are left out
    pairs = [("resnet50", str(spelled_out)), (str(minimal), "resnet50"), (str(spelled_out), str(minimal))]
    for old, new in pairs:
        code, out, err = run(old, new)
        assert (code, err) == (0, ""), out
        assert out.splitlines()[0] == "resnet50: same network (25,557,032 params, 4.09 GMACs)"
        assert "Changed fields" not in out
    code, data = run_json(str(minimal), str(spelled_out))
    assert code == 0 and data["same"] is True and data["changes"] == [] and data["params"]["delta"] == 0


def test_description_and_name_are_informational(tmp_path: Path) -> None:
    data = compile_spec("resnet18").spec.model_dump(mode="json")
    data.update(name="renamed", description="Same network | other words")
    path = tmp_path / "renamed.json"
    path.write_text(json.dumps(data))
    code, out, _ = run("resnet18", str(path), "--format", "markdown")
    assert code == 0
    assert "**resnet18 → renamed: same network (11,689,512 params, 1.81 GMACs)**" in out
    assert "| `name` _(informational)_ | `resnet18` | `renamed` |" in out
    assert "Same network \\| other words" in out  # a pipe cannot break the table
    assert_tables_well_formed(out.splitlines())


def test_field_change_without_effect_on_the_graph(tmp_path: Path) -> None:
    data = compile_spec("resnet50").spec.model_dump(mode="json")
    data["shortcut"]["stride_only"] = "max_pool"  # resnet50 never changes resolution alone
    path = tmp_path / "maxpool.json"
    path.write_text(json.dumps(data))
    code, out, _ = run("resnet50", str(path))
    assert code == 0  # identical layer graphs are the same network, whatever the fields say
    assert out.startswith("resnet50: same network (25,557,032 params, 4.09 GMACs)")
    assert "shortcut.stride_only  project → max_pool  (informational)" in out
    assert "the layer graph is identical" in out
    code, out, _ = run("resnet50", str(path), "--format", "json")
    assert code == 0 and json.loads(out)["same"] is True


@pytest.mark.parametrize(("preset", "same"), [("resnet50d", True), ("resnetv2_50", False)])
def test_max_pool_padding_value_matters_only_before_a_relu(tmp_path: Path, preset: str, same: bool) -> None:
    # torchvision's and timm's nn.MaxPool2d pads with -inf, keras.applications with zeros: after the
    # stem's ReLU the two pool the same values (resnet50d); timm's ResNetV2 stem pools the convolution's
    # output directly, where a negative value meets the padding (resnetv2_50).
    data = compile_spec(preset).spec.model_dump(mode="json")
    flipped = {"zeros": "-inf", "-inf": "zeros"}
    data["stem"]["pool"]["pad_with"] = flipped[data["stem"]["pool"]["pad_with"]]
    path = tmp_path / "flipped.json"
    path.write_text(json.dumps(data))
    code, out, _ = run(preset, str(path))
    assert code == (0 if same else 1), out
    assert ("same network" in out) is same
    assert "stem.pool.pad_with" in out


def test_graph_change_without_field_change_is_caught() -> None:
    old, new = compile_spec("resnet18"), compile_spec("resnet18")
    # As if lowering had changed: one convolution's stride, and the classifier gone. The analysis is
    # kept as it was (as the old annotated graph kept its shapes), so only these two changes show.
    graph = new.graph
    conv = graph["stage2.block1.conv1"]
    strided = dataclasses.replace(conv, op=dataclasses.replace(conv.op, stride=1))
    layers = [strided if layer is conv else layer for layer in graph if layer.name != "head.fc"]
    edges = [
        (source, layer.name, index)
        for layer in layers
        for index, source in enumerate(graph.inputs(layer.name))
        if source != "head.fc"
    ]
    new = dataclasses.replace(new, graph=LayerGraph(graph.network, layers, edges))
    result = specdiff.diff(old, new)
    assert not result.same and not result.network_changes
    assert result.graph.removed == ("head.fc",)
    assert [c.name for c in result.graph.changed] == ["stage2.block1.conv1"]
    assert specdiff.verdict(result).startswith(
        "resnet18: layer graph differs with no field change (layers 0 added, 1 removed, 1 changed)"
    )


# --- errors and units ---------------------------------------------------------------------------


def test_invalid_spec_is_a_located_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((presets_dir() / "resnet18.yaml").read_text().replace("stride: 2", "stride: 0", 1))
    lines = assert_clean_failure(cli("diff", "resnet18", str(bad)))
    assert lines[0].startswith(f"{bad}:") and ": error: " in lines[0]
    lines = assert_clean_failure(cli("diff", "nosuch", str(bad), "--format", "json"))
    assert len(lines) == 2  # both specs' problems, one line each


def test_field_changes_order_and_absent_values() -> None:
    old = {"a": 1, "b": {"x": 1, "kind": "p"}, "c": [1, 2]}
    new = {"b": {"kind": "q", "y": 2}, "a": 1, "c": [1], "d": None}
    assert field_changes(old, new) == [
        Change(("b", "x"), 1, ABSENT),
        Change(("b", "kind"), "p", "q"),
        Change(("b", "y"), ABSENT, 2),
        Change(("c", 1), 2, ABSENT),
        Change(("d",), ABSENT, None),
    ]
    assert field_changes({"v": 1}, {"v": 1.0}) == [Change(("v",), 1, 1.0)]
    assert field_changes({"v": True}, {"v": 1}) == [Change(("v",), True, 1)]


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_output_is_deterministic(fmt: str) -> None:
    first = run("resnet50", "keras_resnet50", "--format", fmt)
    assert run("resnet50", "keras_resnet50", "--format", fmt) == first
