"""Pictures of a compiled network as Mermaid or Graphviz DOT text, and SVG/PNG through Graphviz.

Two levels of detail, both read from the layer graph and its analysis:

- ``blocks``: the input, the stem, one node per residual block (grouped by stage), the head and the
  output; each edge carries the shape of the tensor it moves, channels first (``512×28×28``).
- ``layers``: one node per layer (name, op and key attributes), grouped by stage and block; each
  edge carries its tensor's shape.

Node identifiers are sanitized to ``[A-Za-z0-9_]`` and every label is escaped for its format, so
the text is valid whatever the names. Output is deterministic: it follows the graph's build order.
This module is named so that it does not shadow the ``graphviz`` package.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resgen.compiler import Compiled
from resgen.graph import OPS, BlockRecord, Conv2d, Layer, LayerGraph, Scope, Shape, format_shape
from resgen.naming import torch_block_path

TEXT_FORMATS = ("mermaid", "dot")
IMAGE_FORMATS = ("svg", "png")
DETAILS = ("blocks", "layers")
DOT_TIMEOUT_S = 300


@dataclass(frozen=True)
class Node:
    id: str
    lines: tuple[str, ...]
    clusters: tuple[str, ...] = ()  # ids of the enclosing clusters, outermost first


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str


@dataclass(frozen=True)
class Picture:
    """A format-neutral drawing: nodes in order, shape-labelled edges, titled clusters."""

    title: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    cluster_titles: dict[str, str]


class GraphvizError(Exception):
    """Graphviz is missing or failed; the message says what to do."""


# --- text for each op ---------------------------------------------------------------------------


def _kxk(k: int) -> str:
    return f"{k}×{k}"


def _conv_text(op: Conv2d, in_shape: Shape) -> str:
    text = f"conv {_kxk(op.kernel_size)}/{op.stride} {op.in_channels}→{op.out_channels}"
    text += f" groups={op.groups}" if op.groups > 1 else ""
    return text + (" +bias" if op.bias else "")


# Each op's label from the op and the shape of its (first) input; () for the input layer.
OP_TEXT: dict[str, Callable[[Any, Shape], str]] = {
    "input": lambda op, x: "input",
    "conv2d": _conv_text,
    "batch_norm": lambda op, x: f"batch_norm {op.channels}",
    "group_norm": lambda op, x: f"group_norm {op.channels}/{op.groups}",
    "relu": lambda op, x: "relu",
    "max_pool": lambda op, x: f"max_pool {_kxk(op.kernel_size)}/{op.stride}",
    "avg_pool": lambda op, x: (
        f"avg_pool {_kxk(op.kernel_size)}/{op.stride}" + (" ceil" if op.ceil_mode else "")
    ),
    "blur_pool": lambda op, x: f"blur_pool {_kxk(op.filter_size)}/{op.stride} reflect",
    "global_avg_pool": lambda op, x: "global_avg_pool",
    "flatten": lambda op, x: "flatten",
    "dropout": lambda op, x: f"dropout {op.rate}",
    "drop_path": lambda op, x: f"drop_path {op.rate:.4g}",
    "dense": lambda op, x: f"dense {x[0]}→{op.out_features}",
    "softmax": lambda op, x: "softmax",
    "sigmoid": lambda op, x: "sigmoid",
    "scale": lambda op, x: "scale",
    "channel_conv1d": lambda op, x: f"conv1d across channels k={op.kernel_size}",
    "add": lambda op, x: "add",
    "zero_pad_shortcut": lambda op, x: f"zero_pad /{op.stride} +{op.pad_before + op.pad_after} channels",
}
assert set(OP_TEXT) == set(OPS), "every op needs a picture label"


def op_text(compiled: Compiled, layer: Layer) -> str:
    """A layer's op and key settings, e.g. "conv 3×3/2 16→32"."""
    inputs = compiled.graph.inputs(layer.name)
    in_shape = compiled.analysis.shape(inputs[0]) if inputs else ()
    return OP_TEXT[layer.kind](layer.op, in_shape)


def _shape_of(compiled: Compiled, name: str) -> str:
    """The shape of a layer's output as edges show it: ``512×28×28``."""
    return format_shape(compiled.analysis.shape(name), "×")


# --- building pictures --------------------------------------------------------------------------


def picture(compiled: Compiled, detail: str = "blocks") -> Picture:
    """The picture of `compiled` at `detail` ("blocks" or "layers")."""
    if detail == "layers":
        return layer_picture(compiled)
    if detail == "blocks":
        return block_picture(compiled)
    raise ValueError(f"unknown detail {detail!r}; choose one of: {', '.join(DETAILS)}")


def sanitize_id(name: str) -> str:
    """An identifier safe in DOT and Mermaid: letters, digits, underscores, never a keyword."""
    text = re.sub(r"[^A-Za-z0-9_]", "_", name) or "_"
    return f"n_{text}" if text[0].isdigit() or text.lower() in _RESERVED else text


_RESERVED = frozenset(
    {
        "end",
        "graph",
        "digraph",
        "subgraph",
        "node",
        "edge",
        "strict",
        "flowchart",
        "style",
        "class",
        "classdef",
        "click",
        "default",
        "linkstyle",
        "direction",
    }
)


def _unit(layer: Layer) -> str:
    """The block-level node a layer belongs to: input, stem, stageS.blockB or head."""
    if layer.scope is Scope.STAGE:
        return f"stage{layer.stage}.block{layer.block}"
    return str(layer.scope)


def _block_label(compiled: Compiled, record: BlockRecord) -> str:
    """E.g. "layer2.0 bottleneck 256→512 /2 projection" (the torch module path first)."""
    design = compiled.graph.network.design(record.stage)
    parts = [
        torch_block_path(compiled.graph, record.stage, record.block),
        ("preact " if design.preactivation else "") + str(design.kind),
        f"{record.in_channels}→{record.out_channels}",
    ]
    parts += [f"/{record.stride}"] if record.stride > 1 else []
    parts.append(str(record.shortcut))
    parts += [f"groups={design.groups}"] if design.groups > 1 else []
    parts += [f"se {record.reduced}"] if record.reduced is not None else []
    parts += [f"eca k={record.eca_kernel}"] if record.eca_kernel is not None else []
    return " ".join(parts)


def block_picture(compiled: Compiled) -> Picture:
    """Input, stem, one node per block, head, output; edges carry the shapes between them."""
    graph = compiled.graph
    records = {b.prefix: b for b in graph.blocks}
    units: dict[str, list[Layer]] = {}
    for layer in graph:
        units.setdefault(_unit(layer), []).append(layer)
    nodes = []
    for unit, members in units.items():
        if unit in records:
            record = records[unit]
            nodes.append(
                Node(sanitize_id(unit), (_block_label(compiled, record),), (f"stage{record.stage}",))
            )
        elif unit == "input":
            nodes.append(Node("input", ("input",)))
        else:
            ops = ", ".join(op_text(compiled, m) for m in members)
            nodes.append(Node(sanitize_id(unit), (unit, ops)))
    edges: list[Edge] = []
    for source, target in _edges_in_order(graph):
        a, b = _unit(graph[source]), _unit(graph[target])
        edge = Edge(sanitize_id(a), sanitize_id(b), _shape_of(compiled, source))
        if a != b and edge not in edges:
            edges.append(edge)
    outputs, output_edges = _outputs(compiled, lambda x: sanitize_id(_unit(x)))
    nodes += outputs
    edges += output_edges
    stages = {f"stage{b.stage}": f"stage {b.stage}" for b in records.values()}
    return Picture(compiled.name, tuple(nodes), tuple(_in_order(edges, nodes)), stages)


def _outputs(compiled: Compiled, node_of: Callable[[Layer], str]) -> tuple[list[Node], list[Edge]]:
    """The output node and the edge into it; a backbone has one per feature tap (name, reduction)."""
    taps = compiled.graph.network.taps
    ends = [(f"output_{t.name}", (f"feature {t.name}", f"reduction {t.reduction}"), t.layer) for t in taps]
    ends = ends or [("output", ("output",), compiled.graph.output.name)]
    edges = [Edge(node_of(compiled.graph[x]), id, _shape_of(compiled, x)) for id, _, x in ends]
    return [Node(id, lines) for id, lines, _ in ends], edges


def layer_picture(compiled: Compiled) -> Picture:
    """One node per layer, grouped by stage and block; every edge carries its tensor's shape."""
    graph = compiled.graph
    nodes = []
    titles: dict[str, str] = {}
    for layer in graph:
        name = layer.name
        clusters: tuple[str, ...] = ()
        if layer.scope in (Scope.STEM, Scope.HEAD):
            clusters = (f"cluster_{layer.scope}",)
            titles[clusters[0]] = str(layer.scope)
        elif layer.scope is Scope.STAGE:
            unit = _unit(layer)
            stage, block = f"cluster_stage{layer.stage}", f"cluster_{sanitize_id(unit)}"
            titles[stage], titles[block] = f"stage {layer.stage}", unit
            clusters = (stage, block)
        text = op_text(compiled, layer)
        nodes.append(Node(sanitize_id(name), (name,) if text == name else (name, text), clusters))
    edges = [Edge(sanitize_id(u), sanitize_id(v), _shape_of(compiled, u)) for u, v in _edges_in_order(graph)]
    outputs, output_edges = _outputs(compiled, lambda x: sanitize_id(x.name))
    nodes += outputs
    edges += output_edges
    return Picture(compiled.name, tuple(nodes), tuple(edges), titles)


def _edges_in_order(graph: LayerGraph) -> list[tuple[str, str]]:
    """Edges by consumer in build order, then argument index: the same on every run."""
    return [(u, layer.name) for layer in graph for u in graph.inputs(layer.name)]


def _in_order(edges: list[Edge], nodes: Sequence[Node]) -> list[Edge]:
    """Edges sorted by their target's position (a stable order that reads top to bottom)."""
    position = {n.id: i for i, n in enumerate(nodes)}
    return sorted(edges, key=lambda e: (position[e.target], position[e.source]))


# --- DOT ----------------------------------------------------------------------------------------


def _dot_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _dot_label(lines: Sequence[str]) -> str:
    return _dot_string("\n".join(lines))


def _cluster_id(cluster: str) -> str:
    return cluster if cluster.startswith("cluster_") else f"cluster_{cluster}"


def _nested(
    picture: Picture,
    open_cluster: Callable[[str, int], str],
    close_cluster: Callable[[int], str],
    node_line: Callable[[Node, int], str],
) -> list[str]:
    """Node lines wrapped in cluster open/close lines. Members of a cluster are consecutive."""
    lines: list[str] = []
    stack: list[str] = []
    for node in picture.nodes:
        while stack and tuple(stack) != node.clusters[: len(stack)]:
            stack.pop()
            lines.append(close_cluster(len(stack)))
        for cluster in node.clusters[len(stack) :]:
            lines.append(open_cluster(cluster, len(stack)))
            stack.append(cluster)
        lines.append(node_line(node, len(stack)))
    while stack:
        stack.pop()
        lines.append(close_cluster(len(stack)))
    return lines


def to_dot(picture: Picture) -> str:
    """Graphviz DOT text."""
    pad = "  "

    def open_cluster(cluster: str, depth: int) -> str:
        title = _dot_string(picture.cluster_titles.get(cluster, cluster))
        return f"{pad * (depth + 1)}subgraph {_dot_string(_cluster_id(cluster))} {{ label={title};"

    def close_cluster(depth: int) -> str:
        return f"{pad * (depth + 1)}}}"

    def node_line(node: Node, depth: int) -> str:
        return f"{pad * (depth + 1)}{_dot_string(node.id)} [label={_dot_label(node.lines)}];"

    lines = [
        f"digraph {_dot_string(picture.title)} {{",
        f'{pad}graph [label={_dot_string(picture.title)}, labelloc=t, rankdir=TB, fontname="Helvetica"];',
        f'{pad}node [shape=box, style=rounded, fontname="Helvetica"];',
        f'{pad}edge [fontname="Helvetica", fontsize=10];',
        *_nested(picture, open_cluster, close_cluster, node_line),
        *(
            f"{pad}{_dot_string(e.source)} -> {_dot_string(e.target)} [label={_dot_string(e.label)}];"
            for e in picture.edges
        ),
        "}",
    ]
    return "\n".join(lines) + "\n"


# --- Mermaid ------------------------------------------------------------------------------------

_MERMAID_ESCAPES = str.maketrans({"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "\n": " "})


def _mermaid_text(text: str) -> str:
    return text.translate(_MERMAID_ESCAPES)


def _mermaid_label(lines: Sequence[str]) -> str:
    return '"' + "<br>".join(_mermaid_text(line) for line in lines) + '"'


def to_mermaid(picture: Picture) -> str:
    """Mermaid flowchart text (renders in GitHub markdown inside a ```mermaid block)."""
    pad = "  "

    def open_cluster(cluster: str, depth: int) -> str:
        title = _mermaid_label([picture.cluster_titles.get(cluster, cluster)])
        return f"{pad * (depth + 1)}subgraph {sanitize_id(_cluster_id(cluster))}[{title}]"

    def close_cluster(depth: int) -> str:
        return f"{pad * (depth + 1)}end"

    def node_line(node: Node, depth: int) -> str:
        return f"{pad * (depth + 1)}{node.id}[{_mermaid_label(node.lines)}]"

    lines = [
        "---",
        f"title: {sanitize_id(picture.title)}",
        "---",
        "flowchart TD",
        *_nested(picture, open_cluster, close_cluster, node_line),
        *(f"{pad}{e.source} -->|{_mermaid_label([e.label])}| {e.target}" for e in picture.edges),
    ]
    return "\n".join(lines) + "\n"


# --- images through Graphviz --------------------------------------------------------------------


def missing_graphviz_message(spec: str, fmt: str) -> str:
    """What to say when `dot` is not on PATH."""
    stem = Path(spec).stem or "model"
    return (
        f"Graphviz is not installed (no `dot` program on PATH), so --format {fmt} cannot be drawn. "
        "Install it (https://graphviz.org/download/; e.g. `apt-get install graphviz` or "
        "`brew install graphviz`), or write the DOT text and render it elsewhere: "
        f"resgen graph {spec} --format dot -o {stem}.dot"
    )


def render_image(dot_text: str, fmt: str, *, spec: str = "SPEC") -> bytes:
    """Run Graphviz `dot` on DOT text; raise `GraphvizError` if it is missing or fails."""
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"unknown image format {fmt!r}; choose one of: {', '.join(IMAGE_FORMATS)}")
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizError(missing_graphviz_message(spec, fmt))
    try:
        result = subprocess.run(
            [dot, f"-T{fmt}"],
            input=dot_text.encode("utf-8"),
            capture_output=True,
            timeout=DOT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        message = f"Graphviz `dot` took longer than {DOT_TIMEOUT_S} s; try --detail blocks"
        raise GraphvizError(message) from None
    except OSError as exc:
        raise GraphvizError(f"cannot run Graphviz `dot` ({dot}): {exc.strerror or exc}") from None
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip()
        raise GraphvizError(f"Graphviz `dot -T{fmt}` failed (exit {result.returncode}): {message}")
    return result.stdout
