"""PyTorch backend: the view model of templates/torch/ for one layer graph.

The generated module reads like torchvision's ``models/resnet.py``: ``conv3x3``/``conv1x1``
helpers, one block class with ``expansion``, and a ``ResNet`` class whose ``_make_layer`` builds
every stage in a loop, so the file grows with the number of stages, not with depth. Module paths are
torchvision's (`resgen.naming.torch_path`), so torchvision state dicts load with ``strict=True``.

Where the code comes from:

- the stem and the head are written layer by layer, in graph order, by `HANDLERS` (one per op kind);
- the block class, ``_make_layer`` and ``_shortcut`` are written from the blocks' layers and the
  network's block design and shortcut rule (`resgen.backends.pytorch_blocks`);
- BatchNorm, L2 and padding settings are the network's, stated once (`resgen.graph.Network`).

Two options go beyond torchvision: ``build_model(channels_last=True)``, and ``fuse_batchnorm(model)``,
an inference copy with each BatchNorm that reads only a convolution folded into it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from resgen.backends import (
    pytorch_backbone,
    pytorch_blocks,
    pytorch_fuse,
    pytorch_helpers,
    pytorch_stages,
)
from resgen.codegen import CodegenError, call_lines, comment, docstring, indented, literal, plural
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

template = "torch/model.py.j2"
allowed_imports = frozenset(
    {"__future__", "collections", "copy", "math", "torch"}
)  # the generated module needs nothing else

MODEL_CLASS = "ResNet"


# --- one layer of the stem or the head: what each op kind writes ------------------------------------


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


def _top_level(scope: Scope, ctx: Context, seen: set[str]) -> tuple[list[str], list[str]]:
    """__init__ and forward lines of the stem or the head, layer by layer in graph order.

    Layers whose paths are places in one nn.Sequential become that Sequential, built in one statement
    and called once: numbered places (timm's deep stem: conv1.0, conv1.1, ...) or named ones (timm's
    ResNetV2: stem.conv, stem.pool; head.fc), the latter through an OrderedDict.
    """
    init: list[str] = []
    forward: list[str] = []
    scoped = [x for x in ctx.graph if x.scope is scope]
    codes = [HANDLERS[x.kind](x, ctx) for x in scoped]
    taps = pytorch_backbone.stem_taps(ctx.graph)
    i = 0
    while i < len(codes):
        code = codes[i]
        parent, _, place = (code.attr or "").partition(".")
        if place:
            run: list[Code] = []
            for c in codes[i:]:
                if (c.attr or "").partition(".")[0] != parent:
                    break
                run.append(c)
            places = [(c.attr or "").partition(".")[2] for c in run]
            if place.isdigit() and places != [str(n) for n in range(len(run))]:
                raise CodegenError(f"{parent}: the places of its nn.Sequential are not 0, 1, 2, ...")
            if not place.isdigit() and not all(p.isidentifier() for p in places):
                raise CodegenError(f"{parent}: the places of its nn.Sequential are not all names")
            if place.isdigit():
                init += ["self." + parent + " = nn.Sequential(", *(f"    {c.ctor}," for c in run), ")"]
            else:  # named places, each with its comments, laid out at the OrderedDict's indentation
                entries: list[str] = []
                for c, name in zip(run, places, strict=True):
                    entries += [line for note in c.notes for line in comment(note, ctx.indent + 8)]
                    entries += call_lines(f"{name}={c.call[0]}", c.call[1], ctx.indent + 8, ",")
                init += [
                    f"self.{parent} = nn.Sequential(",
                    "    OrderedDict(",
                    *indented(entries, 2),
                    "    )",
                    ")",
                ]
            forward.append(f"x = self.{parent}(x)")
            if any(x.name in taps for x in scoped[i : i + len(run) - 1]):
                raise CodegenError(f"{parent}: a feature tap inside its nn.Sequential")
            if scoped[i + len(run) - 1].name in taps:
                forward.append(pytorch_backbone.keep())
            seen.add(parent)
            i += len(run)
            continue
        if code.attr is None or code.attr not in seen:  # one module per path (a ReLU is reused)
            init += code.init
        if code.attr is not None:
            seen.add(code.attr)
        forward += code.forward
        if scoped[i].name in taps:
            forward.append(pytorch_backbone.keep())
        i += 1
    return init, forward


def view_model(graph: LayerGraph, analysis: Analysis) -> dict[str, Any]:
    """Every value templates/torch/model.py.j2 prints, already turned into code text."""
    net = graph.network
    tf_same = net.padding is PadMode.TF_SAME
    ctx = Context(graph, analysis, "Conv2dSame" if tf_same else "nn.Conv2d")
    biases = {x.op.bias for x in graph.of_kind("conv2d")}  # type: ignore[union-attr]
    # one setting for every convolution, or None: it differs by layer (the helpers then take bias)
    shared_bias = next(iter(biases)) if len(biases) == 1 else (False if not biases else None)

    seen: set[str] = set()
    stem_init, stem_forward = _top_level(Scope.STEM, ctx, seen)
    head_init, head_forward = _top_level(Scope.HEAD, ctx, seen)
    block = pytorch_blocks.block_view(graph, shared_bias)
    stages = pytorch_stages.stages_view(graph, block["name"], shared_bias)
    return {
        "module_doc": pytorch_helpers.module_doc(graph, analysis),
        "bn": pytorch_helpers.bn_view(graph),
        "l2_lines": pytorch_helpers.l2_lines(graph),
        "drop_path_lines": pytorch_helpers.drop_path_lines(graph),
        "helper_sections": pytorch_helpers.helper_sections(graph),
        "se": pytorch_helpers.se_view(graph),
        "eca": pytorch_helpers.eca_view(graph),
        "std_conv": pytorch_helpers.std_conv_view(graph),
        "stdlib_imports": pytorch_helpers.stdlib_imports(graph),
        "tail_sections": ["torch/param_groups.py.j2"] if graph.network.l2.any else [],
        **pytorch_helpers.conv_helpers_view(graph, ctx.conv_class, shared_bias),
        "block": block,
        "model": {
            "name": MODEL_CLASS,
            "docstring": docstring(
                [
                    f"{net.name}: {plural(len(net.stages), 'stage')} of {block['name']} blocks "
                    f"({', '.join(str(s.blocks) for s in net.stages)}).",
                ],
                4,
            ),
            "init_params": "self" if graph.classes is None else f"self, num_classes: int = {graph.classes}",
            "in_planes": literal(graph.blocks[0].in_channels),
            "stem_init": stem_init,
            "forward_type": pytorch_backbone.forward_type(graph),
            "stem_forward": [*pytorch_backbone.forward_setup(graph), *stem_forward],
            "head_init": [*head_init, *pytorch_backbone.feature_info(graph, analysis)],
            "init_weights": pytorch_helpers.init_lines(graph, block["name"]),
            "head_forward": pytorch_backbone.head_forward(graph, head_forward),
            **stages,
            "stage_forward": pytorch_backbone.stage_forward(graph, stages["stage_forward"]),
        },
        "build_doc": docstring(
            [
                f"The network of spec {net.name}, freshly initialized.",
                *(
                    []
                    if graph.classes is None
                    else [
                        f"num_classes sets the classifier's outputs (the spec's: {graph.classes}), as "
                        "torchvision's constructors do: to fine-tune on another label set, build with "
                        "yours and load the other weights with ``strict=False`` or without the "
                        "classifier."
                    ]
                ),
                "channels_last=True stores the convolution weights in torch.channels_last (NHWC) "
                "memory format, often faster on GPUs and with oneDNN on CPUs; feed it inputs "
                "converted with ``x.to(memory_format=torch.channels_last)``. The function it "
                "computes is the same.",
            ],
            4,
        ),
        "fuse": pytorch_fuse.fuse_view(graph, block["name"], MODEL_CLASS),
        **_build_model_view(graph),
    }


def _build_model_view(graph: LayerGraph) -> dict[str, Any]:
    """build_model's signature and the model class's arguments: num_classes where there is a
    classifier (a backbone has none)."""
    params = ["channels_last: bool = False"]
    if graph.classes is not None:
        params.insert(0, f"num_classes: int = {graph.classes}")
    signature = call_lines("def build_model", ["*", *params], 0, f" -> {MODEL_CLASS}:")
    return {
        "build_signature": signature,
        "model_args": "" if graph.classes is None else "num_classes=num_classes",
    }
