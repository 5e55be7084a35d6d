"""The code-generation strategy both targets share: literals, ruff-style layout, docstrings, and the
rule that one block definition must serve every block (no framework needed)."""

from __future__ import annotations

import ast
import dataclasses

import pytest

import resgen
from resgen import codegen
from resgen.backends import blocks, keras3, pytorch
from resgen.codegen import CodegenError, call_lines, derived_float, docstring, literal, string_constant
from resgen.graph import OPS, Conv2d, LayerGraph


def test_literals_are_exact_and_derived_floats_are_rounded() -> None:
    assert literal(1.001e-5) == "1.001e-05"
    assert literal(0.1234567890123456) == "0.1234567890123456"  # a spec value prints exactly
    assert literal((224, 224, 3)) == "(224, 224, 3)" and literal((1,)) == "(1,)"
    assert literal(True) == "True" and literal(None) == "None"
    assert derived_float(1 - 0.9) == "0.1" and derived_float(1 - 0.99) == "0.01"
    with pytest.raises(CodegenError):
        literal(object())


@pytest.mark.parametrize("text", ['a "quoted" text', "it's", "back\\slash", "tab\there", "both ' and \""])
def test_string_literals_round_trip(text: str) -> None:
    assert ast.literal_eval(literal(text)) == text


def test_long_string_constants_split_into_adjacent_literals() -> None:
    text = "word " * 40
    lines = string_constant("DESCRIPTION", text)
    assert lines[0] == "DESCRIPTION = (" and lines[-1] == ")"
    assert all(len(line) <= codegen.LINE_LENGTH for line in lines)
    assert ast.literal_eval("".join(line.strip() for line in lines[1:-1])) == text


def test_call_layout_follows_ruff() -> None:
    assert call_lines("x = f", ["a", "b"], 4) == ["x = f(a, b)"]
    many = ["a" * 38, "b" * 38]  # 78 characters: too long with the call, fit on a line of their own
    assert call_lines("x = f", many, 4) == ["x = f(", "    " + ", ".join(many), ")"]
    # a further call after the closing bracket: ruff puts one argument per line
    assert call_lines("x = f", many, 4, "(x)") == ["x = f(", *(f"    {a}," for a in many), ")(x)"]
    longer = [f"argument_number_{i}" for i in range(6)]
    assert call_lines("x = f", longer, 4)[-1] == ")"
    assert all(line.endswith(",") for line in call_lines("x = f", longer, 4)[1:-1])


def test_docstring_escapes_spec_text() -> None:
    text = "\n".join(docstring(['a """quoted""" \\ path ending in "x"'], 0))
    assert ast.literal_eval(text) == 'a """quoted""" \\ path ending in "x"'


def test_every_backend_handles_every_op() -> None:
    assert set(pytorch.HANDLERS) == set(OPS)
    assert set(keras3.HANDLERS) == set(OPS)


def test_backends_refuse_a_block_their_shared_definition_cannot_write() -> None:
    """Plant a graph whose second block carries a 5x5 convolution: both targets refuse to render."""
    compiled = resgen.compile("resnet18")
    graph = compiled.graph
    layers = []
    for layer in graph:
        if layer.name == "stage1.block2.conv2":
            assert isinstance(layer.op, Conv2d)
            layer = dataclasses.replace(layer, op=dataclasses.replace(layer.op, kernel_size=5))
        layers.append(layer)
    edges = [(u, v, i) for u, v, i in graph.nx.edges(data="index")]
    planted = LayerGraph(graph.network, layers, edges)
    with pytest.raises(CodegenError):
        pytorch.view_model(planted, compiled.analysis)
    with pytest.raises(CodegenError):
        keras3.view_model(planted, compiled.analysis)


def test_backends_refuse_a_block_with_other_channels_than_its_record() -> None:
    compiled = resgen.compile("resnet50")
    graph = compiled.graph
    records = list(graph.network.blocks)
    records[5] = dataclasses.replace(records[5], width=records[5].width + 1)
    network = dataclasses.replace(graph.network, blocks=tuple(records))
    planted = LayerGraph(network, list(graph), list(graph.nx.edges(data="index")))
    with pytest.raises(CodegenError, match="channels"):
        pytorch.view_model(planted, compiled.analysis)
    with pytest.raises(CodegenError, match="channels"):
        keras3.view_model(planted, compiled.analysis)


def test_block_parameters_follow_the_design() -> None:
    v1 = blocks.parameters(resgen.compile("keras_resnet50").graph)
    assert v1.width and v1.stride_roles == {"conv1", "shortcut_conv"}
    v2 = blocks.parameters(resgen.compile("keras_resnet50v2").graph)
    # the projection of a V2 stage's first block never strides: it is written with stride 1
    assert v2.stride_roles == {"conv2", "shortcut_pool"}
    basic = blocks.parameters(resgen.compile("cifar_resnet20").graph)
    assert not basic.width and basic.stride_roles == {"conv1", "shortcut_pad"}
