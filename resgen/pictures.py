"""Pictures of a compiled network as Mermaid or Graphviz DOT text, and SVG/PNG through Graphviz.

Two levels of detail, both read from the annotated layer graph:

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

import networkx as nx

from resgen.compiler import Compiled
from resgen.lower import OPS, BlockInfo, layers

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


def _conv_text(n: dict[str, Any]) -> str:
    text = f"conv {_kxk(n['kernel_size'])}/{n['stride']} {n['in_channels']}→{n['out_channels']}"
    text += f" groups={n['groups']}" if n["groups"] > 1 else ""
    return text + (" +bias" if n["bias"] else "")


OP_TEXT: dict[str, Callable[[dict[str, Any]], str]] = {
    "input": lambda n: "input",
    "conv2d": _conv_text,
    "batch_norm": lambda n: f"batch_norm {n['channels']}",
    "relu": lambda n: "relu",
    "max_pool": lambda n: f"max_pool {_kxk(n['kernel_size'])}/{n['stride']}",
    "avg_pool": lambda n: f"avg_pool {_kxk(n['kernel_size'])}/{n['stride']}",
    "global_avg_pool": lambda n: "global_avg_pool",
    "flatten": lambda n: "flatten",
    "dropout": lambda n: f"dropout {n['rate']}",
    "dense": lambda n: f"dense {n['in_features']}→{n['out_features']}",
    "softmax": lambda n: "softmax",
    "add": lambda n: "add",
    "zero_pad_shortcut": lambda n: f"zero_pad /{n['stride']} +{n['pad_before'] + n['pad_after']} channels",
}
assert set(OP_TEXT) == set(OPS), "every op needs a picture label"


def shape_text(shape: Sequence[int]) -> str:
    return "×".join(str(d) for d in shape)


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


def _unit(node: dict[str, Any]) -> str:
    """The block-level node a layer belongs to: input, stem, stageS.blockB or head."""
    if node["scope"] == "stage":
        return f"stage{node['stage']}.block{node['block']}"
    return str(node["scope"])


def _block_label(compiled: Compiled, info: BlockInfo) -> str:
    """E.g. "layer2.0 bottleneck 256→512 /2 projection" (torchvision's module path first)."""
    block = compiled.spec.block
    parts = [
        f"layer{info.stage}.{info.block - 1}",
        ("preact " if block.preactivation else "") + block.kind,
        f"{info.in_channels}→{info.out_channels}",
    ]
    parts += [f"/{info.stride}"] if info.stride > 1 else []
    parts.append(info.shortcut)
    groups = getattr(block, "groups", 1)
    parts += [f"groups={groups}"] if groups > 1 else []
    return " ".join(parts)


def block_picture(compiled: Compiled) -> Picture:
    """Input, stem, one node per block, head, output; edges carry the shapes between them."""
    graph = compiled.graph
    infos = {b.prefix: b for b in graph.graph["blocks"]}
    units: dict[str, list[str]] = {}
    for name in layers(graph):
        units.setdefault(_unit(graph.nodes[name]), []).append(name)
    nodes = []
    for unit, members in units.items():
        if unit in infos:
            info = infos[unit]
            nodes.append(Node(sanitize_id(unit), (_block_label(compiled, info),), (f"stage{info.stage}",)))
        elif unit == "input":
            nodes.append(Node("input", ("input",)))
        else:
            ops = ", ".join(OP_TEXT[graph.nodes[m]["op"]](graph.nodes[m]) for m in members)
            nodes.append(Node(sanitize_id(unit), (unit, ops)))
    nodes.append(Node("output", ("output",)))
    edges: list[Edge] = []
    for source, target in graph.edges:
        a, b = _unit(graph.nodes[source]), _unit(graph.nodes[target])
        edge = Edge(sanitize_id(a), sanitize_id(b), shape_text(graph.nodes[source]["shape"]))
        if a != b and edge not in edges:
            edges.append(edge)
    edges.append(_output_edge(graph, sanitize_id(_unit(graph.nodes[layers(graph)[-1]]))))
    stages = {f"stage{b.stage}": f"stage {b.stage}" for b in infos.values()}
    return Picture(compiled.name, tuple(nodes), tuple(_in_order(edges, nodes)), stages)


def _output_edge(graph: nx.DiGraph, source: str) -> Edge:
    """The edge into the picture's output node, labelled with the network's output shape."""
    return Edge(source, "output", shape_text(graph.nodes[layers(graph)[-1]]["shape"]))


def layer_picture(compiled: Compiled) -> Picture:
    """One node per layer, grouped by stage and block; every edge carries its tensor's shape."""
    graph = compiled.graph
    nodes = []
    titles: dict[str, str] = {}
    for name in layers(graph):
        node = graph.nodes[name]
        clusters: tuple[str, ...] = ()
        if node["scope"] in ("stem", "head"):
            clusters = (f"cluster_{node['scope']}",)
            titles[clusters[0]] = str(node["scope"])
        elif node["scope"] == "stage":
            unit = _unit(node)
            stage, block = f"cluster_stage{node['stage']}", f"cluster_{sanitize_id(unit)}"
            titles[stage], titles[block] = f"stage {node['stage']}", unit
            clusters = (stage, block)
        text = OP_TEXT[node["op"]](node)
        nodes.append(Node(sanitize_id(name), (name,) if text == name else (name, text), clusters))
    nodes.append(Node("output", ("output",)))
    edges = [
        Edge(sanitize_id(u), sanitize_id(v), shape_text(graph.nodes[u]["shape"]))
        for u, v in _edges_in_order(graph)
    ]
    edges.append(_output_edge(graph, sanitize_id(layers(graph)[-1])))
    return Picture(compiled.name, tuple(nodes), tuple(edges), titles)


def _edges_in_order(graph: nx.DiGraph) -> list[tuple[str, str]]:
    """Edges by consumer in build order, then argument index: the same on every run."""
    return [
        (u, v)
        for v in layers(graph)
        for u, _, _ in sorted(graph.in_edges(v, data="index"), key=lambda e: e[2])
    ]


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
