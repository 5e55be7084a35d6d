"""`resgen graph`: Mermaid and DOT text of the block and layer graphs, images through Graphviz."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from resgen import pictures
from resgen.compiler import compile_spec
from tests.helpers import assert_clean_failure, cli, run_cli

HAVE_DOT = shutil.which("dot") is not None


def run(*args: str) -> tuple[int, str, str]:
    return run_cli("graph", *args)


def no_graphviz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pictures.shutil, "which", lambda name: None)


# --- block level --------------------------------------------------------------------------------


def test_mermaid_blocks_resnet50() -> None:
    code, out, err = run("resnet50")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:4] == ["---", "title: resnet50", "---", "flowchart TD"]
    assert '    stage2_block1["layer2.0 bottleneck 256→512 /2 projection"]' in lines
    assert '    stage2_block2["layer2.1 bottleneck 512→512 identity"]' in lines
    assert '  subgraph cluster_stage3["stage 3"]' in lines
    assert '  input -->|"3×224×224"| stem' in lines
    assert '  stem -->|"64×56×56"| stage1_block1' in lines
    assert '  stage2_block1 -->|"512×28×28"| stage2_block2' in lines
    assert '  stage4_block3 -->|"2048×7×7"| head' in lines
    assert '  head -->|"1000"| output' in lines
    assert len(re.findall(r"^\s+stage\d_block\d+\[", out, flags=re.M)) == 16
    assert out.count("subgraph") == out.count("\n  end") == 4


def test_dot_blocks_resnet50() -> None:
    code, out, _ = run("resnet50", "--format", "dot")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == 'digraph "resnet50" {' and lines[-1] == "}"
    assert '    "stage2_block1" [label="layer2.0 bottleneck 256→512 /2 projection"];' in lines
    assert '  "stage2_block1" -> "stage2_block2" [label="512×28×28"];' in lines
    assert '  "stem" -> "stage1_block1" [label="64×56×56"];' in lines
    assert '  "head" -> "output" [label="1000"];' in lines
    assert '  subgraph "cluster_stage1" { label="stage 1";' in lines
    assert out.count("{") == out.count("}")


def test_cifar_blocks_show_zero_pad_shortcuts() -> None:
    code, out, _ = run("cifar_resnet20")
    assert code == 0
    assert 'stage2_block1["layer2.0 basic 16→32 /2 zero_pad"]' in out
    assert 'stage3_block3 -->|"64×8×8"| head' in out


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
@pytest.mark.parametrize("detail", ["blocks", "layers"])
def test_output_is_deterministic(fmt: str, detail: str) -> None:
    first = run("keras_resnet50v2", "--format", fmt, "--detail", detail)
    assert first[0] == 0
    assert run("keras_resnet50v2", "--format", fmt, "--detail", detail) == first


def test_same_bytes_under_two_hash_seeds() -> None:
    outputs = set()
    for seed in ("0", "1"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        args = ["graph", "resnext50_32x4d", "--format", "dot", "--detail", "layers"]
        cmd = [sys.executable, "-m", "resgen", *args]
        outputs.add(subprocess.run(cmd, capture_output=True, check=True, env=env).stdout)
    assert len(outputs) == 1


# --- layer level --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_layers_lists_every_layer_and_edge(fmt: str) -> None:
    graph = compile_spec("cifar_resnet20").graph
    code, out, _ = run("cifar_resnet20", "--format", fmt, "--detail", "layers")
    assert code == 0
    quote = '"' if fmt == "dot" else ""
    for name in graph.names:
        assert re.search(rf"^\s+{quote}{pictures.sanitize_id(name)}{quote}\s?\[", out, flags=re.M), name
    arrow = "->" if fmt == "dot" else "-->"
    edge_lines = [line for line in out.splitlines() if arrow in line]
    n_edges = sum(len(graph.inputs(name)) for name in graph.names)
    assert len(edge_lines) == n_edges + 1  # and the edge into "output"
    if fmt == "dot":
        assert '  "stage2_block1_conv2" -> "stage2_block1_bn2" [label="32×16×16"];' in edge_lines
        assert '  "stage1_block3_out_relu" -> "stage2_block1_shortcut_pad" [label="16×32×32"];' in edge_lines
        assert '"stage2_block1_conv1" [label="stage2.block1.conv1\\nconv 3×3/2 16→32"];' in out
    else:
        assert '  head_fc -->|"10"| output' in edge_lines
        assert 'stage2_block1_shortcut_pad["stage2.block1.shortcut_pad<br>zero_pad /2 +16 channels"]' in out
        assert '    subgraph cluster_stage2_block1["stage2.block1"]' in out


def test_every_op_has_a_label() -> None:
    picture = pictures.picture(compile_spec("rosebrock_tiny_imagenet"), "layers")
    assert all(len(node.lines) in (1, 2) for node in picture.nodes)


# --- escaping -----------------------------------------------------------------------------------


def test_sanitize_id() -> None:
    assert pictures.sanitize_id("stage2.block1.conv2") == "stage2_block1_conv2"
    assert pictures.sanitize_id('a-b c"d') == "a_b_c_d"
    assert pictures.sanitize_id("end") == "n_end"
    assert pictures.sanitize_id("Graph") == "n_Graph"
    assert pictures.sanitize_id("2x") == "n_2x"
    assert pictures.sanitize_id("") == "_"


def test_labels_are_escaped() -> None:
    picture = pictures.Picture(
        title='we"ird\\name',
        nodes=(pictures.Node("a", ('say "hi"', "a<b> #1")), pictures.Node("b", ("b",), ("c1",))),
        edges=(pictures.Edge("a", "b", 'x"y'),),
        cluster_titles={"c1": 'cl"uster'},
    )
    dot = pictures.to_dot(picture)
    assert 'digraph "we\\"ird\\\\name" {' in dot
    assert '"a" [label="say \\"hi\\"\\na<b> #1"];' in dot
    assert 'subgraph "cluster_c1" { label="cl\\"uster";' in dot
    assert '"a" -> "b" [label="x\\"y"];' in dot
    mermaid = pictures.to_mermaid(picture)
    assert "title: we_ird_name" in mermaid
    assert 'a["say #quot;hi#quot;<br>a#lt;b#gt; #35;1"]' in mermaid
    assert 'subgraph cluster_c1["cl#quot;uster"]' in mermaid
    assert 'a -->|"x#quot;y"| b' in mermaid


# --- images -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_image_without_graphviz_is_a_clear_error(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_graphviz(monkeypatch)
    target = tmp_path / f"out.{fmt}"
    err = "\n".join(assert_clean_failure(cli("graph", "resnet18", "--format", fmt, "-o", str(target))))
    assert "Graphviz is not installed" in err and "`dot`" in err
    assert "resgen graph resnet18 --format dot -o resnet18.dot" in err
    assert not target.exists()


def test_png_needs_an_output_file() -> None:
    code, _, err = run("resnet18", "--format", "png")
    assert code == 2 and "give -o FILE" in err


def test_graphviz_failure_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    failing = shutil.which("false")
    assert failing is not None
    monkeypatch.setattr(pictures.shutil, "which", lambda name: failing)
    target = tmp_path / "out.svg"
    code, _, err = run("resnet18", "--format", "svg", "-o", str(target))
    assert code == 2 and "Graphviz `dot -Tsvg` failed (exit 1)" in err and not target.exists()


@pytest.mark.skipif(not HAVE_DOT, reason="Graphviz `dot` is not installed")
def test_svg_with_graphviz(tmp_path: Path) -> None:
    target = tmp_path / "resnet18.svg"
    code, _, err = run("resnet18", "--format", "svg", "-o", str(target))
    assert code == 0 and f"wrote {target}" in err
    svg = target.read_text(encoding="utf-8")
    assert "<svg" in svg and "layer2.0 basic 64→128 /2 projection" in svg and "128×28×28" in svg


@pytest.mark.skipif(not HAVE_DOT, reason="Graphviz `dot` is not installed")
def test_png_with_graphviz(tmp_path: Path) -> None:
    target = tmp_path / "resnet18.png"
    assert run("resnet18", "--format", "png", "-o", str(target))[0] == 0
    assert target.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


# --- files and errors ---------------------------------------------------------------------------


def test_text_to_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "resnet18.mmd"
    code, out, _ = run("resnet18", "-o", str(target))
    assert (code, out) == (0, "")
    assert target.read_text(encoding="utf-8") == run("resnet18")[1]


def test_invalid_spec_is_a_located_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("format_version: 1\nname: x\n")
    lines = assert_clean_failure(cli("graph", str(bad), "--format", "dot"))
    assert lines[0].startswith(f"{bad}:") and ": error: " in lines[0]
