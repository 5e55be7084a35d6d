"""Keras 3 backend: the view model of templates/keras/ for one layer graph.

The generated module uses only ``keras`` (layers, ops, regularizers, saving), so it runs on the
TensorFlow, JAX and torch backends. It is a functional model, channels last, with
keras.applications' layer names (`resgen.naming.keras_name`), so weights saved from
keras.applications' ResNets load by name.

Structure of the output: the stem and the head are written layer by layer in ``build_model``; every
residual block is one call of a single block function (`resgen.backends.keras3_blocks`), and the
blocks of a stage that share their arguments are one ``for`` loop, so the file grows with the number
of stages, not with depth. Each layer is written by its op kind's handler in `HANDLERS`, at a `Site`:
the straight code of ``build_model``, or the block function.

Padding rules (DESIGN.md, "Padding is explicit"):

- 1x1 convolutions need none (``"valid"``, the default);
- a network using TensorFlow "same" padding (`PadMode.TF_SAME`) gets ``padding="same"``;
- a convolution that can carry a stride gets ``ZeroPadding2D`` + ``"valid"``: symmetric, as the graph
  says (keras.applications V2 does this for every 3x3 of a block);
- a stride-1 convolution gets ``padding="same"``, which is symmetric k // 2 for odd kernels
  (keras.applications V1 does this for its 3x3);
- max-pooling pads with zeros (the graph's semantics) through ``ZeroPadding2D`` + ``"valid"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from resgen.backends import blocks, keras3_backbone, keras3_blocks
from resgen.backends.keras3_init import helper_lines, initializer_args, regularizer_args
from resgen.backends.keras3_sites import BlockSite, Site, StraightSite
from resgen.codegen import CodegenError, call_lines, comment, literal, string_constant
from resgen.graph import (
    CLASSIFIER,
    OPS,
    AvgPool,
    BlurPool,
    Conv2d,
    Dense,
    EcaDesign,
    Layer,
    LayerGraph,
    MaxPool,
    PadMode,
    PadValue,
    Scope,
)
from resgen.naming import fused_into_dense, keras_eca_reshape_names, keras_name
from resgen.passes import Analysis, Pads

template = "keras/model.py.j2"
allowed_imports = frozenset({"keras", "math", "sys"})

# Keras builds, calls and saves functional models by walking their graph recursively, about one
# Python frame per layer. Networks deeper than this raise the interpreter's limit (default 1000).
DEEP_LAYERS = 600
DATA_FORMAT = '"channels_last"'


# --- handlers: one per op kind; each returns the statements that write one layer ------------------


def _layer(site: Site, layer: Layer, func: str, args: list[str], *, src: str | None = None) -> list[str]:
    """``dst = func(args)(src)``: one Keras layer applied to the layer's input."""
    tail = f"({src if src is not None else site.src(layer)})"
    return call_lines(f"{site.dst(layer)} = {func}", args, site.indent, tail)


def _zero_padding(site: Site, layer: Layer, pads: Pads) -> list[str]:
    args = [f"padding={literal(pads)}", f"data_format={DATA_FORMAT}", f"name={site.pad_name(layer)}"]
    return _layer(site, layer, "layers.ZeroPadding2D", args)


def _input(site: Site, layer: Layer) -> list[str]:
    return [f"{site.dst(layer)} = keras.Input(shape=input_shape, name={site.name(layer)})"]


def _conv2d(site: Site, layer: Layer) -> list[str]:
    op = layer.op
    assert isinstance(op, Conv2d)
    k, pads = op.kernel_size, site.analysis[layer.name].padding
    dilation = site.dilation(layer)
    lines: list[str] = []
    src = site.src(layer)
    padding = None
    if k == 1:
        if pads != ((0, 0), (0, 0)):
            raise CodegenError(f"{layer.name}: a 1x1 convolution with padding {pads}")
    elif op.padding is PadMode.TF_SAME:
        padding = '"same"'  # the spec asks for TensorFlow's "same", asymmetric where it must be
    elif dilation != "1":  # output_stride: padding of dilation * (k // 2) on every side
        pad = dilation if k == 3 else f"{k // 2} * {dilation}"
        args = [f"padding=(({pad}, {pad}), ({pad}, {pad}))", f"data_format={DATA_FORMAT}"]
        lines += _layer(site, layer, "layers.ZeroPadding2D", [*args, f"name={site.pad_name(layer)}"])
        src = site.dst(layer)
    elif site.may_stride(layer):
        assert pads is not None
        lines += _zero_padding(site, layer, pads)
        src = site.dst(layer)
    else:
        if pads != ((k // 2, k // 2), (k // 2, k // 2)):
            raise CodegenError(f"{layer.name}: padding {pads} is not 'same' for a {k}x{k} kernel")
        padding = '"same"'  # stride 1, odd kernel: symmetric k // 2
    args = [site.channels(layer), literal(k)]
    stride = site.stride(layer)
    if stride != "1":
        args.append(f"strides={stride}")
    if padding:
        args.append(f"padding={padding}")
    if dilation != "1":
        args.append(f"dilation_rate={dilation}")
    if op.groups != 1:
        args.append(f"groups={literal(op.groups)}")
    args += [f"data_format={DATA_FORMAT}", f"use_bias={literal(op.bias)}"]
    args += [*initializer_args(site, layer), *regularizer_args(site, layer), f"name={site.name(layer)}"]
    return lines + _layer(site, layer, _conv_class(site, layer), args, src=src)


def _conv_class(site: Site, layer: Layer) -> str:
    """layers.Conv2D, or StdConv2D where the convolution is weight-standardized (one epsilon for all)."""
    standardize = getattr(layer.op, "standardize", None)
    if standardize is None:
        return "layers.Conv2D"
    if standardize != site.graph.network.weight_standardization:
        raise CodegenError(f"{layer.name}: weight standardization differs from the network's")
    return "StdConv2D"


def _batch_norm(site: Site, layer: Layer) -> list[str]:
    norm = site.graph.network.norm
    args = ["axis=-1", f"epsilon={literal(norm.epsilon)}", f"momentum={literal(norm.momentum)}"]
    args += [*initializer_args(site, layer), f"name={site.name(layer)}"]
    return _layer(site, layer, "layers.BatchNormalization", args)


def _group_norm(site: Site, layer: Layer) -> list[str]:
    norm = site.graph.network.norm
    args = [f"groups={literal(norm.groups)}", "axis=-1", f"epsilon={literal(norm.epsilon)}"]
    args += [*initializer_args(site, layer), f"name={site.name(layer)}"]
    return _layer(site, layer, "layers.GroupNormalization", args)


def _relu(site: Site, layer: Layer) -> list[str]:
    return _layer(site, layer, "layers.Activation", ['"relu"', f"name={site.name(layer)}"])


def _max_pool(site: Site, layer: Layer) -> list[str]:
    op = layer.op
    assert isinstance(op, MaxPool)
    lines: list[str] = []
    src = site.src(layer)
    if op.padding and _pads_with_neg_inf(op):
        args = [f"padding={literal(op.padding)}", f"name={site.pad_name(layer)}"]
        lines += _layer(site, layer, "NegInfPadding2D", args)
        src = site.dst(layer)
    elif op.padding:
        p = op.padding
        lines += _zero_padding(site, layer, ((p, p), (p, p)))  # -inf after a ReLU pads as zeros do
        src = site.dst(layer)
    # strides always spelled out: Keras' default stride is the pool size, not 1
    args = [literal(op.kernel_size), f"strides={site.stride(layer)}"]
    args += [f"data_format={DATA_FORMAT}", f"name={site.name(layer)}"]
    return lines + _layer(site, layer, "layers.MaxPooling2D", args, src=src)


def _pads_with_neg_inf(op: MaxPool) -> bool:
    """Whether zero padding would change this pool's result: -inf padding of a possibly negative input."""
    return op.pad_value is PadValue.NEG_INF and not op.input_nonnegative


def _avg_pool(site: Site, layer: Layer) -> list[str]:
    op = layer.op
    assert isinstance(op, AvgPool)
    stride = site.stride(layer)
    lines: list[str] = []
    if op.pad_end:  # timm's AvgPool2dSame: zeros at the bottom and right, counted in the mean
        lines = _zero_padding(site, layer, ((0, op.pad_end), (0, op.pad_end)))
    # an anti-aliasing pool's window is its stride (timm: nn.AvgPool2d(kernel_size=stride))
    size = stride if layer.role == "aa" and op.kernel_size == op.stride else literal(op.kernel_size)
    args = [size, f"strides={stride}"]
    notes: list[str] = []
    if op.ceil_mode:
        notes = comment(
            'torch\'s ceil_mode=True, count_include_pad=False: "same" pads only at the end and '
            "leaves the padding out of the mean.",
            site.indent,
        )
        # A last, partial window at the edge averaging only what it covers: TensorFlow's "same"
        # pools exactly so where the window is no wider than the stride (it pads only at the end).
        if op.kernel_size > op.stride:
            raise CodegenError(f"{layer.name}: a ceil-mode pool wider than its stride")
        args.append('padding="same"')
    args += [f"data_format={DATA_FORMAT}", f"name={site.name(layer)}"]
    src = site.dst(layer) if lines else None
    return lines + notes + _layer(site, layer, "layers.AveragePooling2D", args, src=src)


def _blur_pool(site: Site, layer: Layer) -> list[str]:
    op = layer.op
    assert isinstance(op, BlurPool)
    args = [f"stride={site.stride(layer)}"]
    if op.filter_size != 3:
        args.append(f"filter_size={literal(op.filter_size)}")
    return _layer(site, layer, "BlurPool2D", [*args, f"name={site.name(layer)}"])


def _global_avg_pool(site: Site, layer: Layer) -> list[str]:
    args = [f"data_format={DATA_FORMAT}"]
    if layer.op.keepdims:  # type: ignore[union-attr]
        args.append("keepdims=True")
    args.append(f"name={site.name(layer)}")
    return _layer(site, layer, "layers.GlobalAveragePooling2D", args)


def _flatten(site: Site, layer: Layer) -> list[str]:
    args = [f"data_format={DATA_FORMAT}", f"name={site.name(layer)}"]
    return _layer(site, layer, "layers.Flatten", args)


def _dropout(site: Site, layer: Layer) -> list[str]:
    args = [literal(layer.op.rate), f"name={site.name(layer)}"]  # type: ignore[union-attr]
    return _layer(site, layer, "layers.Dropout", args)


def _drop_path(site: Site, layer: Layer) -> list[str]:
    """Stochastic depth: Dropout with one draw per sample (noise_shape), scaling kept ones by
    1 / (1 - rate) as timm's DropPath; the block function takes its rate as `drop_path`."""
    rate = "drop_path" if isinstance(site, BlockSite) else literal(layer.op.rate)  # type: ignore[union-attr]
    args = [rate, "noise_shape=(None, 1, 1, 1)", f"name={site.name(layer)}"]
    return _layer(site, layer, "layers.Dropout", args)


def _dense(site: Site, layer: Layer) -> list[str]:
    op = layer.op
    assert isinstance(op, Dense)
    args = ["num_classes" if layer.name == CLASSIFIER else literal(op.out_features)]
    if any(fused_into_dense(site.graph, c) for c in site.graph.consumers(layer.name)):
        args.append('activation="softmax"')  # fused, as keras.applications does
    args += [f"use_bias={literal(op.bias)}", *initializer_args(site, layer), *regularizer_args(site, layer)]
    args.append(f"name={site.name(layer)}")
    return _layer(site, layer, "layers.Dense", args)


def _softmax(site: Site, layer: Layer) -> list[str]:
    if not fused_into_dense(site.graph, layer.name):
        raise CodegenError(f"{layer.name}: a softmax that does not follow a dense layer")
    return []  # written by the dense layer: Dense(..., activation="softmax")


def _sigmoid(site: Site, layer: Layer) -> list[str]:
    return _layer(site, layer, "layers.Activation", ['"sigmoid"', f"name={site.name(layer)}"])


def _scale(site: Site, layer: Layer) -> list[str]:
    src = f"[{site.src(layer, 0)}, {site.src(layer, 1)}]"
    return _layer(site, layer, "layers.Multiply", [f"name={site.name(layer)}"], src=src)


def _channel_conv1d(site: Site, layer: Layer) -> list[str]:
    """ECA's convolution across channels: the (1, 1, C) map as a sequence of C steps, Conv1D, back."""
    if not isinstance(site, BlockSite):
        raise CodegenError(f"{layer.name}: a convolution across channels belongs in a block's ECA")
    sequence, channels = keras_eca_reshape_names(keras_name(site.graph, layer.name))
    lines = _layer(site, layer, "layers.Reshape", ["(-1, 1)", f"name={site.name_text(sequence)}"])
    args = ["1", "eca_size", 'padding="same"', "use_bias=False", *initializer_args(site, layer)]
    args.append(f"name={site.name(layer)}")
    lines += _layer(site, layer, "layers.Conv1D", args, src=site.dst(layer))
    args = ["(1, 1, -1)", f"name={site.name_text(channels)}"]
    return lines + _layer(site, layer, "layers.Reshape", args, src=site.dst(layer))


def _add(site: Site, layer: Layer) -> list[str]:
    src = f"[{site.src(layer, 0)}, {site.src(layer, 1)}]"
    return _layer(site, layer, "layers.Add", [f"name={site.name(layer)}"], src=src)


def _zero_pad_shortcut(site: Site, layer: Layer) -> list[str]:
    op = layer.op
    if isinstance(site, BlockSite):
        lines = ["extra = filters - x.shape[-1]  # new channels: half before, half after"]
        pads = ["pad_before=extra // 2", "pad_after=extra - extra // 2"]
    else:
        lines = []
        pads = [f"pad_before={literal(op.pad_before)}", f"pad_after={literal(op.pad_after)}"]  # type: ignore[union-attr]
    args = [f"stride={site.stride(layer)}", *pads, f"name={site.name(layer)}"]
    return lines + _layer(site, layer, "ZeroPadShortcut", args)


Handler = Callable[[Site, Layer], list[str]]

HANDLERS: dict[str, Handler] = {
    "input": _input,
    "conv2d": _conv2d,
    "batch_norm": _batch_norm,
    "group_norm": _group_norm,
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
assert set(HANDLERS) == set(OPS), "the Keras backend needs a handler for every op kind"


def _stdlib_imports(graph: LayerGraph, deep: bool) -> list[str]:
    """`import math` for ECA's kernel rule and the blur pool; `import sys` for a deep recursion limit."""
    eca = isinstance(graph.network.block.attention, EcaDesign)
    math = eca or bool(graph.of_kind("blur_pool"))  # ECA's kernel rule, the blur pool's filter
    imports = [*(["import math"] if math else []), *(["import sys"] if deep else [])]
    return [*imports, ""] if imports else []


# --- the view model --------------------------------------------------------------------------------


def view_model(graph: LayerGraph, analysis: Analysis) -> dict[str, Any]:
    """Every value templates/keras/model.py.j2 prints, as code text."""
    net = graph.network
    straight = StraightSite(graph, analysis, 4)
    stem: list[str] = keras3_backbone.setup(graph)
    head: list[str] = []
    for layer in graph:
        if layer.scope in (Scope.INPUT, Scope.STEM):
            stem += HANDLERS[layer.kind](straight, layer)
            stem += keras3_backbone.after_stem_layer(graph, layer)
        elif layer.scope is Scope.HEAD:
            head += HANDLERS[layer.kind](straight, layer)

    def block_site(prefix: str, params: blocks.BlockParameters) -> BlockSite:
        return BlockSite(graph, analysis, 4, prefix=prefix, params=params)

    block = keras3_blocks.block_view(graph, HANDLERS, block_site)
    height, width, channels = graph.input_hwc
    depth = graph.depth()
    deep = depth > DEEP_LAYERS
    recursion_limit = [
        *comment(
            "Keras builds, calls and saves a functional model by walking its graph recursively, about "
            f"one frame per layer: {depth} layers deep, this one needs more than Python's default limit.",
            0,
        ),
        f"RECURSION_LIMIT = {literal(1000 * -(-(2 * depth + 1000) // 1000))}",
    ]
    return {
        "stdlib_imports": _stdlib_imports(graph, deep),
        "recursion_limit": recursion_limit if deep else [],
        "raise_recursion_limit": ["sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))"]
        if deep
        else [],
        "title": f"{net.name}: a residual network for Keras 3, generated by resgen.",
        "description": string_constant("DESCRIPTION", net.description),
        "input_shape": literal((height, width, channels)),
        **_build_model_view(graph),
        "sections": [
            *(["keras/std_conv.py.j2"] if net.weight_standardization is not None else []),
            *(["keras/zero_pad_shortcut.py.j2"] if block["uses_zero_pad"] else []),
            *(
                ["keras/neg_inf_padding.py.j2"]
                if any(_pads_with_neg_inf(x.op) for x in graph.of_kind("max_pool"))
                else []
            ),
            *(["keras/blur_pool.py.j2"] if graph.of_kind("blur_pool") else []),
        ],
        "init_helpers": helper_lines(graph),
        "drop_path": keras3_blocks.drop_path_lines(graph),
        "block": block,
        "stem": stem,
        "stages": keras3_backbone.tapped_stages(graph, keras3_blocks.stage_views(graph, block)),
        "model_outputs": keras3_backbone.outputs(graph),
        "head": head,
        "model_name": literal(net.name),
        "std_conv": {}
        if net.weight_standardization is None
        else {"epsilon": literal(net.weight_standardization)},
    }


def _build_model_view(graph: LayerGraph) -> dict[str, Any]:
    """NUM_CLASSES, build_model's signature and its num_classes argument, where there is a classifier
    (a backbone has none)."""
    shape = "input_shape: tuple[int, int, int] | None = None"
    if graph.classes is None:
        return {
            "constants": [],
            "build_signature": call_lines("def build_model", [shape], 0, " -> keras.Model:"),
            "num_classes_doc": [],
        }
    return {
        "constants": [f"NUM_CLASSES = {graph.classes}  # outputs of the classifier, as the spec states it"],
        "build_signature": call_lines(
            "def build_model", [shape, "num_classes: int = NUM_CLASSES"], 0, " -> keras.Model:"
        ),
        "num_classes_doc": [
            "        num_classes: outputs of the classifier; defaults to NUM_CLASSES, the spec's.",
            "            To fine-tune on another label set, build with yours and load the other",
            "            weights with ``skip_mismatch=True`` or into every layer but the classifier.",
        ],
    }
