"""PyTorch backend, one layer of the stem or the head: what each op kind writes (`HANDLERS`).

Each handler returns the layer's `Code`: the module it builds in ``ResNet.__init__`` (named by its
torchvision or timm path, `resgen.naming.torch_path`), and its statements in ``forward``. Layers inside
residual blocks are written by `resgen.backends.pytorch_blocks`; the handlers of block-only kinds give
the same statement or module as stand-alone code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from resgen.codegen import CodegenError, call_lines, comment, literal
from resgen.graph import (
    CLASSIFIER,
    OPS,
    BlurPool,
    Conv2d,
    Layer,
    LayerGraph,
    MaxPool,
    PadMode,
    PadValue,
    Scope,
)
from resgen.naming import torch_module, torch_path
from resgen.passes import Analysis


@dataclass
class Code:
    """Code of one layer of the stem or head, relative to its indentation in ``ResNet``."""

    attr: str | None  # module attribute (torchvision path), None for functional ops
    init: list[str] = field(default_factory=list)  # lines in __init__ (comments included)
    forward: list[str] = field(default_factory=list)  # lines in forward, reading and writing `x`
    ctor: str = ""  # the module's constructor call, for a place in an nn.Sequential
    notes: Sequence[str] = ()  # comments on the module, also where it is a place in an nn.Sequential
    call: tuple[str, tuple[str, ...]] = ("", ())  # the constructor's callee and arguments


@dataclass(frozen=True)
class Context:
    """What a handler needs besides its layer."""

    graph: LayerGraph
    analysis: Analysis
    conv_class: str  # "nn.Conv2d" or "Conv2dSame"
    indent: int = 8


Handler = Callable[[Layer, Context], Code]


def _module(layer: Layer, head: str, args: Sequence[str], ctx: Context, notes: Sequence[str] = ()) -> Code:
    attr = torch_path(ctx.graph, layer.name)
    lines = [line for note in notes for line in comment(note, ctx.indent)]
    lines += call_lines(f"self.{attr} = {head}", args, ctx.indent)
    return Code(
        attr, lines, [f"x = self.{attr}(x)"], f"{head}({', '.join(args)})", notes, (head, tuple(args))
    )


def _outputs(layer: Layer, count: int) -> str:
    """A layer's output channels as code: the classifier's come from ``ResNet(num_classes=...)``."""
    return "num_classes" if layer.name == CLASSIFIER else literal(count)


def _input(layer: Layer, ctx: Context) -> Code:
    return Code(None)  # the argument of forward


def _conv2d(layer: Layer, ctx: Context) -> Code:
    op = layer.op
    assert isinstance(op, Conv2d)
    args = [literal(op.in_channels), _outputs(layer, op.out_channels)]
    args += [f"kernel_size={literal(op.kernel_size)}", f"stride={literal(op.stride)}"]
    notes = []
    if op.padding is PadMode.TF_SAME:
        head = ctx.conv_class
        notes.append('TensorFlow "same" padding, computed from the input size (see Conv2dSame).')
    else:
        pads = ctx.analysis[layer.name].padding
        assert pads is not None
        (top, bottom), (left, right) = pads
        if not top == bottom == left == right:
            raise CodegenError(f"{layer.name}: symmetric padding expected, got {pads}")
        head = "nn.Conv2d"
        if op.standardize is not None:
            if op.standardize != ctx.graph.network.weight_standardization:
                raise CodegenError(f"{layer.name}: weight standardization differs from the network's")
            head = "StdConv2d"
        if top:
            args.append(f"padding={literal(top)}")
    if op.groups != 1:
        args.append(f"groups={literal(op.groups)}")
    args.append(f"bias={literal(op.bias)}")
    return _module(layer, head, args, ctx, notes)


def _batch_norm(layer: Layer, ctx: Context) -> Code:
    notes = []
    if layer.role == "input_bn":
        notes.append("BatchNorm on the raw input, as the ResNet of Rosebrock's tutorial does.")
    return _module(layer, "norm", [literal(layer.op.channels)], ctx, notes)  # type: ignore[union-attr]


def _relu(layer: Layer, ctx: Context) -> Code:
    return _module(layer, "nn.ReLU", ["inplace=True"], ctx)


def _max_pool(layer: Layer, ctx: Context) -> Code:
    op = layer.op
    assert isinstance(op, MaxPool)
    k, s, p = op.kernel_size, op.stride, op.padding
    pool = [f"kernel_size={k}", f"stride={s}"]
    if p == 0:
        return _module(layer, "nn.MaxPool2d", pool, ctx)
    if op.pad_value is PadValue.NEG_INF or op.input_nonnegative:
        # nn.MaxPool2d pads with -inf; after a ReLU, zero padding gives the same result
        return _module(layer, "nn.MaxPool2d", [*pool, f"padding={p}"], ctx)
    note = (
        "The spec pads with zeros before pooling; nn.MaxPool2d would pad with -inf, which differs "
        "where the input can be negative."
    )
    return _module(
        layer, "nn.Sequential", [f"nn.ZeroPad2d({p})", f"nn.MaxPool2d({', '.join(pool)})"], ctx, [note]
    )


def _avg_pool(layer: Layer, ctx: Context) -> Code:
    k, s = layer.op.kernel_size, layer.op.stride  # type: ignore[union-attr]
    note = (
        f"A fixed {k}x{k} average pool (the head of Rosebrock's tutorial), not a global one: the "
        "classifier's input size follows from the spec's input size."
    )
    if layer.scope is Scope.STEM:
        note = f"A {k}x{k} average pool in place of the max-pool (timm's anti-aliased resnetaa stems)."
    return _module(layer, "nn.AvgPool2d", [f"kernel_size={k}", f"stride={s}"], ctx, [note])


def _blur_pool(layer: Layer, ctx: Context) -> Code:
    op = layer.op
    assert isinstance(op, BlurPool)
    args = [literal(op.channels), f"stride={literal(op.stride)}"]
    if op.filter_size != 3:
        args.append(f"filter_size={literal(op.filter_size)}")
    return _module(layer, "BlurPool2d", args, ctx)


def _global_avg_pool(layer: Layer, ctx: Context) -> Code:
    code = _module(layer, "nn.AdaptiveAvgPool2d", ["(1, 1)"], ctx)
    if not layer.op.keepdims:  # type: ignore[union-attr]
        code.forward.append("x = torch.flatten(x, 1)")
    return code


def _flatten(layer: Layer, ctx: Context) -> Code:
    if torch_module(ctx.graph, layer.name) is not None:  # after a 1x1 convolution classifier (timm)
        return _module(layer, "nn.Flatten", ["1"], ctx)
    (source,) = ctx.graph.inputs(layer.name)
    _, *spatial = ctx.analysis.shape(source)
    if any(d != 1 for d in spatial):
        note = (
            "Flattens channels first (C, H, W); Keras flattens channels last (H, W, C), so a Keras "
            "classifier's weights need their rows reordered to load here."
        )
    else:
        note = (
            "Flattens channels first (C, H, W); Keras flattens channels last, the same order for "
            "this 1x1 map."
        )
    return Code(None, [], [*comment(note, ctx.indent), "x = torch.flatten(x, 1)"])


def _dropout(layer: Layer, ctx: Context) -> Code:
    return _module(layer, "nn.Dropout", [f"p={literal(layer.op.rate)}"], ctx)  # type: ignore[union-attr]


def _dense(layer: Layer, ctx: Context) -> Code:
    (source,) = ctx.graph.inputs(layer.name)
    args = [literal(ctx.analysis.shape(source)[0]), _outputs(layer, layer.op.out_features)]  # type: ignore[union-attr]
    if not layer.op.bias:  # type: ignore[union-attr]
        args.append("bias=False")
    return _module(layer, "nn.Linear", args, ctx)


def _softmax(layer: Layer, ctx: Context) -> Code:
    lines = [
        *comment("The spec asks for class probabilities, not logits.", ctx.indent),
        "x = torch.softmax(x, dim=1)",
    ]
    return Code(None, [], lines)


def _sigmoid(layer: Layer, ctx: Context) -> Code:
    return Code(None, [], ["x = torch.sigmoid(x)"])


def _scale(layer: Layer, ctx: Context) -> Code:
    raise CodegenError(f"{layer.name}: channel attention's product belongs in a block's attention module")


def _channel_conv1d(layer: Layer, ctx: Context) -> Code:
    raise CodegenError(f"{layer.name}: a convolution across channels belongs in a block's ECA module")


def _add(layer: Layer, ctx: Context) -> Code:
    # the residual addition lives in the block class; this is its statement there
    return Code(None, [], ["out += identity"])


def _drop_path(layer: Layer, ctx: Context) -> Code:
    raise CodegenError(f"{layer.name}: drop-path belongs in a residual block")


def _zero_pad_shortcut(layer: Layer, ctx: Context) -> Code:
    op = layer.op
    args = [literal(op.stride), literal(op.pad_before), literal(op.pad_after)]  # type: ignore[union-attr]
    return _module(layer, "ZeroPadShortcut", args, ctx)


# One handler per op kind. The stem and head are written through these; layers inside blocks are
# written by `resgen.backends.pytorch_blocks`, and the handlers of block-only kinds (add,
# zero_pad_shortcut) give the same statement or module as stand-alone code.
HANDLERS: dict[str, Handler] = {
    "input": _input,
    "conv2d": _conv2d,
    "batch_norm": _batch_norm,
    "group_norm": _batch_norm,  # norm() gives the network's normalization
    "relu": _relu,
    "max_pool": _max_pool,
    "avg_pool": _avg_pool,
    "blur_pool": _blur_pool,
    "global_avg_pool": _global_avg_pool,
    "flatten": _flatten,
    "dropout": _dropout,
    "drop_path": _drop_path,
    "dense": _dense,
    "softmax": _softmax,
    "sigmoid": _sigmoid,
    "scale": _scale,
    "channel_conv1d": _channel_conv1d,
    "add": _add,
    "zero_pad_shortcut": _zero_pad_shortcut,
}
assert set(HANDLERS) == set(OPS), "every op kind needs a handler"
