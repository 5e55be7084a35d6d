"""Stage 4: analyses over the layer graph: shapes, parameter counts, multiply-accumulates.

Each pass takes the graph and annotates its nodes; none reads the spec file. Shapes are channels
first: ``(C, H, W)`` for feature maps and ``(F,)`` for vectors. A pass that finds a problem raises
`GraphErrors`, each naming the layer and the spec field responsible (the node's ``origin``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import networkx as nx

from resgen.errors import Path
from resgen.lower import OPS, inputs_of, layers

Shape = tuple[int, ...]


@dataclass(frozen=True)
class GraphError:
    layer: str
    origin: Path
    message: str


class GraphErrors(Exception):
    def __init__(self, errors: list[GraphError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.layer}: {e.message}" for e in errors))


def fmt(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def conv_out(size: int, kernel: int, stride: int, pad_total: int) -> int:
    """Output side of a convolution or pooling window (floor mode)."""
    return (size + pad_total - kernel) // stride + 1


def tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" padding along one axis: the odd pixel goes after (bottom/right)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


# --- shape rules, one per op ------------------------------------------------------------------------


class _ShapeError(Exception):
    """A shape rule failed; `field` names the spec field to blame, when the rule knows it better."""

    def __init__(self, message: str, field: Path | None = None) -> None:
        super().__init__(message)
        self.field = field


def _check_stride(h: int, w: int, stride: int, what: str) -> None:
    if stride > 1 and (h < stride or w < stride):
        raise _ShapeError(
            f"{what} with stride {stride} gets a {h}x{w} map: the spatial size has collapsed; "
            "use a larger input or fewer strides",
            ("stride",),
        )


def _spatial(shape: Shape, op: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise _ShapeError(f"{op} needs a feature map, got a vector of {fmt(shape)}")
    c, h, w = shape
    return c, h, w


def _shape_input(attrs: dict[str, Any], ins: list[Shape]) -> Shape:
    return (attrs["channels"], attrs["height"], attrs["width"])


def _shape_conv2d(attrs: dict[str, Any], ins: list[Shape]) -> Shape:
    c, h, w = _spatial(ins[0], "conv2d")
    k, s, g = attrs["kernel_size"], attrs["stride"], attrs["groups"]
    if c != attrs["in_channels"]:
        raise _ShapeError(f"expects {attrs['in_channels']} input channels, gets {c}")
    if c % g or attrs["out_channels"] % g:
        raise _ShapeError(
            f"groups={g} must divide both {c} input and {attrs['out_channels']} output channels",
            ("groups",),
        )
    _check_stride(h, w, s, f"a {k}x{k} convolution")
    if attrs["padding_mode"] == "tf_same":
        pads = (tf_same_pads(h, k, s), tf_same_pads(w, k, s))
    else:
        pads = ((k // 2, k // 2), (k // 2, k // 2))
    attrs["padding"] = pads  # for the spec's input size; "tf_same" layers recompute it at run time
    oh, ow = conv_out(h, k, s, sum(pads[0])), conv_out(w, k, s, sum(pads[1]))
    if oh < 1 or ow < 1:
        raise _ShapeError(f"a {k}x{k}/{s} convolution collapses the {h}x{w} input to {oh}x{ow}")
    return (attrs["out_channels"], oh, ow)


def _same(attrs: dict[str, Any], ins: list[Shape]) -> Shape:
    return ins[0]


def _shape_batch_norm(attrs: dict[str, Any], ins: list[Shape]) -> Shape:
    if ins[0][0] != attrs["channels"]:
        raise _ShapeError(f"normalizes {attrs['channels']} channels, gets {ins[0][0]}")
    return ins[0]


def _shape_max_pool(attrs: dict[str, Any], ins: list[Shape]) -> Shape:
    c, h, w = _spatial(ins[0], "max_pool")
    k, s, p = attrs["kernel_size"], attrs["stride"], attrs["padding"]
    _check_stride(h, w, s, f"a {k}x{k} max-pool")
    oh, ow = conv_out(h, k, s, 2 * p), conv_out(w, k, s, 2 * p)
    if oh < 1 or ow < 1:
        raise _ShapeError(f"a {k}x{k}/{s} max-pool collapses the {h}x{w} input to {max(oh, 0)}x{max(ow, 0)}")
    return (c, oh, ow)


def _shape_avg_pool(attrs: dict[str, Any], ins: list[Shape]) -> Shape:
    c, h, w = _spatial(ins[0], "avg_pool")
    k, s = attrs["kernel_size"], attrs["stride"]
    oh, ow = conv_out(h, k, s, 0), conv_out(w, k, s, 0)
    if oh < 1 or ow < 1:
        raise _ShapeError(f"a {k}x{k} average pool does not fit the {h}x{w} feature map")
    return (c, oh, ow)


def _shape_global_avg_pool(attrs: dict[str, Any], ins: list[Shape]) -> Shape:
    return (_spatial(ins[0], "global_avg_pool")[0],)


def _shape_flatten(attrs: dict[str, Any], ins: list[Shape]) -> Shape:
    return (math.prod(ins[0]),)


def _shape_dense(attrs: dict[str, Any], ins: list[Shape]) -> Shape:
    if len(ins[0]) != 1:
        raise _ShapeError(f"dense needs a vector, got {fmt(ins[0])}")
    attrs["in_features"] = ins[0][0]
    return (attrs["out_features"],)


def _shape_add(attrs: dict[str, Any], ins: list[Shape]) -> Shape:
    if ins[0] != ins[1]:
        raise _ShapeError(
            f"residual branch gives {fmt(ins[0])} but the shortcut gives {fmt(ins[1])}; they must match"
        )
    return ins[0]


def _shape_zero_pad_shortcut(attrs: dict[str, Any], ins: list[Shape]) -> Shape:
    c, h, w = _spatial(ins[0], "zero_pad_shortcut")
    s = attrs["stride"]
    return (c + attrs["pad_before"] + attrs["pad_after"], math.ceil(h / s), math.ceil(w / s))


SHAPE_RULES: dict[str, Callable[[dict[str, Any], list[Shape]], Shape]] = {
    "input": _shape_input,
    "conv2d": _shape_conv2d,
    "batch_norm": _shape_batch_norm,
    "relu": _same,
    "max_pool": _shape_max_pool,
    "avg_pool": _shape_avg_pool,
    "global_avg_pool": _shape_global_avg_pool,
    "flatten": _shape_flatten,
    "dropout": _same,
    "dense": _shape_dense,
    "softmax": _same,
    "add": _shape_add,
    "zero_pad_shortcut": _shape_zero_pad_shortcut,
}
assert set(SHAPE_RULES) == set(OPS), "every op needs a shape rule"


def _blame(origin: Path, field: Path | None) -> Path:
    """The spec field behind a failed rule: a stage's or the stem's own field where there is one."""
    if field == ("groups",):
        return ("block", "groups")
    if field and origin[:1] in (("stages",), ("stem",)) and len(origin) <= 2:
        return (*origin, *field)
    return origin


def infer_shapes(graph: nx.DiGraph) -> nx.DiGraph:
    """Annotate every node with ``shape``; raise `GraphErrors` at the first layer that cannot work."""
    for name in layers(graph):
        node = graph.nodes[name]
        ins = [graph.nodes[u]["shape"] for u in inputs_of(graph, name)]
        try:
            node["shape"] = SHAPE_RULES[node["op"]](node, ins)
        except _ShapeError as exc:
            origin = _blame(node["origin"], exc.field)
            raise GraphErrors([GraphError(name, origin, f"layer {name}: {exc}")]) from None
    return graph


# --- parameters and MACs ------------------------------------------------------------------------------


def count(graph: nx.DiGraph) -> nx.DiGraph:
    """Annotate ``params`` (learnable), ``non_trainable`` (BN running statistics) and ``macs``.

    MACs count multiply-accumulates of convolutions and dense layers only, as torchvision publishes
    them; normalization, activation, pooling and additions are not counted.
    """
    for name in layers(graph):
        node = graph.nodes[name]
        op = node["op"]
        params = non_trainable = macs = 0
        if op == "conv2d":
            k, g = node["kernel_size"], node["groups"]
            weights = node["out_channels"] * (node["in_channels"] // g) * k * k
            params = weights + (node["out_channels"] if node["bias"] else 0)
            _, oh, ow = node["shape"]
            macs = weights * oh * ow
        elif op == "batch_norm":
            params = non_trainable = 2 * node["channels"]
        elif op == "dense":
            weights = node["in_features"] * node["out_features"]
            params = weights + (node["out_features"] if node["bias"] else 0)
            macs = weights
        node["params"], node["non_trainable"], node["macs"] = params, non_trainable, macs
    return graph


def totals(graph: nx.DiGraph) -> dict[str, int]:
    nodes = graph.nodes.values()
    return {
        "params": sum(n["params"] for n in nodes),
        "non_trainable_params": sum(n["non_trainable"] for n in nodes),
        "macs": sum(n["macs"] for n in nodes),
    }


def run_all(graph: nx.DiGraph) -> nx.DiGraph:
    return count(infer_shapes(graph))
