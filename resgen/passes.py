"""Stage 4: analyses of the layer graph: shapes, padding, parameter counts, multiply-accumulates.

`analyse(graph)` computes every layer's facts once and returns them as a frozen `Analysis`; the graph
itself is never changed. Shapes are channels first: ``(C, H, W)`` for feature maps and ``(F,)`` for
vectors. A rule that finds a problem raises `GraphErrors`, each naming the layer and the spec field
responsible (the layer's ``origin``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from resgen.errors import Path
from resgen.graph import (
    OPS,
    AvgPool,
    BatchNorm,
    BlurPool,
    ChannelConv1d,
    Conv2d,
    Dense,
    GlobalAvgPool,
    GroupNorm,
    Input,
    Layer,
    LayerGraph,
    MaxPool,
    PadMode,
    Shape,
    ZeroPadShortcut,
    format_shape,
)

Pads = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))


@dataclass(frozen=True)
class LayerFacts:
    shape: Shape  # output shape
    params: int  # learnable
    non_trainable: int  # BatchNorm running mean and variance
    macs: int  # multiply-accumulates (convolutions and dense layers)
    padding: Pads | None = None  # convolutions and max-pools, at the spec's input size


@dataclass(frozen=True)
class Analysis:
    """Facts of every layer, by name."""

    facts: Mapping[str, LayerFacts]

    def __getitem__(self, name: str) -> LayerFacts:
        return self.facts[name]

    def shape(self, name: str) -> Shape:
        return self.facts[name].shape

    def totals(self) -> dict[str, int]:
        facts = self.facts.values()
        return {
            "params": sum(f.params for f in facts),
            "non_trainable_params": sum(f.non_trainable for f in facts),
            "macs": sum(f.macs for f in facts),
        }


@dataclass(frozen=True)
class GraphError:
    layer: str
    origin: Path
    message: str


class GraphErrors(Exception):
    def __init__(self, errors: list[GraphError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.layer}: {e.message}" for e in errors))


def conv_out(size: int, kernel: int, stride: int, pad_total: int) -> int:
    """Output side of a convolution or pooling window (floor mode)."""
    return (size + pad_total - kernel) // stride + 1


def tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" padding along one axis: the odd pixel goes after (bottom/right)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


# --- shape rules, one per op: (op, input shapes) -> (output shape, padding) ---------------------------


class _ShapeError(Exception):
    """A shape rule failed; `field` names the spec field to blame, when the rule knows it better."""

    def __init__(self, message: str, field: Path | None = None) -> None:
        super().__init__(message)
        self.field = field


Rule = Callable[[Any, list[Shape]], tuple[Shape, Pads | None]]


def _check_collapse(what: str, h: int, w: int, oh: int, ow: int) -> None:
    """Refuse a window that leaves no pixel: only a computed output side below 1 has collapsed (a 64x1
    map through a stride-2 convolution is a 32x1 map in torch and Keras alike)."""
    if oh < 1 or ow < 1:
        raise _ShapeError(
            f"{what} gets a {h}x{w} map and would output {max(oh, 0)}x{max(ow, 0)}: the spatial size "
            "has collapsed; use a larger input or fewer strides",
            ("stride",),
        )


def _spatial(shape: Shape, kind: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise _ShapeError(f"{kind} needs a feature map, got a vector of {format_shape(shape)}")
    c, h, w = shape
    return c, h, w


def _input(op: Input, ins: list[Shape]) -> tuple[Shape, None]:
    return (op.channels, op.height, op.width), None


def conv_padding(op: Conv2d, h: int, w: int) -> Pads:
    """A convolution's padding for an h x w input: half the window it reads on every side
    (dilation times k // 2), or TensorFlow's "same"."""
    k, s = op.reach, op.stride
    if op.padding is PadMode.TF_SAME:
        return tf_same_pads(h, k, s), tf_same_pads(w, k, s)
    return (k // 2, k // 2), (k // 2, k // 2)


def _conv2d(op: Conv2d, ins: list[Shape]) -> tuple[Shape, Pads]:
    c, h, w = _spatial(ins[0], "conv2d")
    k, s, g = op.kernel_size, op.stride, op.groups
    if c != op.in_channels:
        raise _ShapeError(f"expects {op.in_channels} input channels, gets {c}")
    if op.out_channels < 1:
        raise _ShapeError("outputs 0 channels: widen the stage (filters) or lower the divisors")
    if c % g or op.out_channels % g:
        raise _ShapeError(
            f"groups={g} must divide both {c} input and {op.out_channels} output channels", ("groups",)
        )
    if op.standardize is not None and c // g * k * k == 1:
        raise _ShapeError(
            f"a weight-standardized {k}x{k} convolution of {c // g} input channel has one weight per "
            "output channel, which standardization sets to 0 (torch's batch_norm then refuses it): "
            "use conv: {kind: plain}, or more input channels or a larger kernel there",
            ("conv", "kind"),
        )
    pads = conv_padding(op, h, w)
    # floor((H + 2p - d(k - 1) - 1) / s) + 1, the window being d(k - 1) + 1 wide
    oh, ow = conv_out(h, op.reach, s, sum(pads[0])), conv_out(w, op.reach, s, sum(pads[1]))
    _check_collapse(f"a {k}x{k} convolution with stride {s}", h, w, oh, ow)
    return (op.out_channels, oh, ow), pads


def _same(op: Any, ins: list[Shape]) -> tuple[Shape, None]:
    return ins[0], None


def _batch_norm(op: BatchNorm, ins: list[Shape]) -> tuple[Shape, None]:
    if ins[0][0] != op.channels:
        raise _ShapeError(f"normalizes {op.channels} channels, gets {ins[0][0]}")
    return ins[0], None


def _group_norm(op: GroupNorm, ins: list[Shape]) -> tuple[Shape, None]:
    if ins[0][0] != op.channels:
        raise _ShapeError(f"normalizes {op.channels} channels, gets {ins[0][0]}")
    if op.channels % op.groups:
        message = f"GroupNorm's {op.groups} groups do not divide {op.channels} channels"
        raise _ShapeError(message, ("norm", "groups"))
    return ins[0], None


def _max_pool(op: MaxPool, ins: list[Shape]) -> tuple[Shape, Pads]:
    c, h, w = _spatial(ins[0], "max_pool")
    k, s, p = op.kernel_size, op.stride, op.padding
    oh, ow = conv_out(h, k, s, 2 * p), conv_out(w, k, s, 2 * p)
    _check_collapse(f"a {k}x{k} max-pool with stride {s} and padding {p}", h, w, oh, ow)
    return (c, oh, ow), ((p, p), (p, p))


def _avg_pool(op: AvgPool, ins: list[Shape]) -> tuple[Shape, None]:
    c, h, w = _spatial(ins[0], "avg_pool")
    k, s = op.kernel_size, op.stride
    h, w = h + op.pad_end, w + op.pad_end
    if op.ceil_mode:
        oh, ow = pool_out_ceil(h, k, s), pool_out_ceil(w, k, s)
    else:
        oh, ow = conv_out(h, k, s, 0), conv_out(w, k, s, 0)
    if oh < 1 or ow < 1:
        raise _ShapeError(f"a {k}x{k} average pool does not fit the {h}x{w} feature map")
    return (c, oh, ow), None


def _blur_pool(op: BlurPool, ins: list[Shape]) -> tuple[Shape, Pads]:
    c, h, w = _spatial(ins[0], "blur_pool")
    f, s, p = op.filter_size, op.stride, op.padding
    if c != op.channels:
        raise _ShapeError(f"blurs {op.channels} channels, gets {c}")
    if p >= h or p >= w:  # reflect padding mirrors pixels inside the map: it needs more than p of them
        raise _ShapeError(
            f"a blur pool's reflect padding of {p} needs a map larger than {p}x{p}, got {h}x{w}; "
            "use a larger input or fewer strides"
        )
    oh, ow = conv_out(h, f, s, 2 * p), conv_out(w, f, s, 2 * p)
    if oh < 1 or ow < 1:
        raise _ShapeError(f"a {f}x{f}/{s} blur pool collapses the {h}x{w} input to {max(oh, 0)}x{max(ow, 0)}")
    return (c, oh, ow), ((p, p), (p, p))


def pool_out_ceil(size: int, kernel: int, stride: int) -> int:
    """Output side of an unpadded pool in ceil mode: a last, partial window covers the edge, but
    never starts outside the input (torch's rule; TensorFlow's "same" gives ceil(size / stride))."""
    out = -(-(size - kernel) // stride) + 1
    return out - 1 if (out - 1) * stride >= size else out


def _global_avg_pool(op: GlobalAvgPool, ins: list[Shape]) -> tuple[Shape, None]:
    c = _spatial(ins[0], "global_avg_pool")[0]
    return ((c, 1, 1) if op.keepdims else (c,)), None


def _scale(op: Any, ins: list[Shape]) -> tuple[Shape, None]:
    c, _, _ = _spatial(ins[0], "scale")
    if ins[1] != (c, 1, 1):
        raise _ShapeError(f"a gate of {format_shape(ins[1])} cannot scale {format_shape(ins[0])}")
    return ins[0], None


def _flatten(op: Any, ins: list[Shape]) -> tuple[Shape, None]:
    return (math.prod(ins[0]),), None


def _dense(op: Dense, ins: list[Shape]) -> tuple[Shape, None]:
    if len(ins[0]) != 1:
        raise _ShapeError(f"dense needs a vector, got {format_shape(ins[0])}")
    return (op.out_features,), None


def _add(op: Any, ins: list[Shape]) -> tuple[Shape, None]:
    if ins[0] != ins[1]:
        raise _ShapeError(
            f"residual branch gives {format_shape(ins[0])} but the shortcut gives {format_shape(ins[1])}; "
            "they must match"
        )
    return ins[0], None


def _zero_pad_shortcut(op: ZeroPadShortcut, ins: list[Shape]) -> tuple[Shape, None]:
    c, h, w = _spatial(ins[0], "zero_pad_shortcut")
    s = op.stride
    return (c + op.pad_before + op.pad_after, math.ceil(h / s), math.ceil(w / s)), None


def _channel_conv1d(op: ChannelConv1d, ins: list[Shape]) -> tuple[Shape, None]:
    c = ins[0][0]
    if ins[0] != (c, 1, 1):
        raise _ShapeError(f"a convolution across channels needs a (C, 1, 1) map, got {format_shape(ins[0])}")
    return ins[0], None


SHAPE_RULES: dict[str, Rule] = {
    "input": _input,
    "conv2d": _conv2d,
    "batch_norm": _batch_norm,
    "group_norm": _group_norm,
    "relu": _same,
    "max_pool": _max_pool,
    "avg_pool": _avg_pool,
    "blur_pool": _blur_pool,
    "global_avg_pool": _global_avg_pool,
    "flatten": _flatten,
    "dropout": _same,
    "drop_path": _same,
    "dense": _dense,
    "softmax": _same,
    "sigmoid": _same,
    "scale": _scale,
    "channel_conv1d": _channel_conv1d,
    "add": _add,
    "zero_pad_shortcut": _zero_pad_shortcut,
}
assert set(SHAPE_RULES) == set(OPS), "every op needs a shape rule"


def _blame(origin: Path, field: Path | None) -> Path:
    """The spec field behind a failed rule: a stage's or the stem's own field where there is one."""
    if field == ("groups",):
        return ("block", "groups")
    if field and field[0] in ("norm", "conv"):  # a network-wide setting: its own section
        return field
    if field and origin[:1] in (("stages",), ("stem",)) and len(origin) <= 2:
        return (*origin, *field)
    return origin


# --- parameters and MACs ------------------------------------------------------------------------------


def _counts(layer: Layer, shape: Shape, in_shape: Shape | None) -> tuple[int, int, int]:
    """(learnable, non-trainable, MACs) of one layer.

    MACs count multiply-accumulates of convolutions and dense layers only, as torchvision publishes
    them; normalization, activation, pooling and additions are not counted.
    """
    op = layer.op
    if isinstance(op, Conv2d):
        weights = op.out_channels * (op.in_channels // op.groups) * op.kernel_size**2
        return weights + (op.out_channels if op.bias else 0), 0, weights * shape[1] * shape[2]
    if isinstance(op, BatchNorm):
        return 2 * op.channels, 2 * op.channels, 0
    if isinstance(op, GroupNorm):
        return 2 * op.channels, 0, 0
    if isinstance(op, ChannelConv1d):
        return op.kernel_size, 0, op.kernel_size * shape[0]
    if isinstance(op, Dense):
        assert in_shape is not None
        weights = in_shape[0] * op.out_features
        return weights + (op.out_features if op.bias else 0), 0, weights
    return 0, 0, 0


def analyse(graph: LayerGraph) -> Analysis:
    """Every layer's facts; raise `GraphErrors` at the first layer that cannot work."""
    facts: dict[str, LayerFacts] = {}
    for layer in graph:
        ins = [facts[u].shape for u in graph.inputs(layer.name)]
        try:
            shape, pads = SHAPE_RULES[layer.kind](layer.op, ins)
        except _ShapeError as exc:
            origin = _blame(layer.origin, exc.field)
            raise GraphErrors([GraphError(layer.name, origin, f"layer {layer.name}: {exc}")]) from None
        params, non_trainable, macs = _counts(layer, shape, ins[0] if ins else None)
        facts[layer.name] = LayerFacts(shape, params, non_trainable, macs, pads)
    return Analysis(MappingProxyType(facts))
