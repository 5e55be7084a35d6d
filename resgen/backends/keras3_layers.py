"""Keras 3 backend, one layer: what each op kind writes (`HANDLERS`), at a `Site` (the straight code
of ``build_model``, or the block function; `resgen.backends.keras3_sites`).

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

from resgen.backends.keras3_freeze import batch_norm_class
from resgen.backends.keras3_init import initializer_args, regularizer_args
from resgen.backends.keras3_sites import BlockSite, Site
from resgen.codegen import CodegenError, call_lines, comment, literal
from resgen.graph import (
    CLASSIFIER,
    OPS,
    AvgPool,
    BlurPool,
    Conv2d,
    Dense,
    KerasLayerOrder,
    Layer,
    MaxPool,
    PadMode,
    PadValue,
)
from resgen.naming import fused_into_dense, keras_eca_reshape_names, keras_name
from resgen.passes import Pads

DATA_FORMAT = '"channels_last"'


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
    return _layer(site, layer, batch_norm_class(site.graph), args)


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
    if op.padding and pads_with_neg_inf(op):
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


def pads_with_neg_inf(op: MaxPool) -> bool:
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
    """The residual addition, its operands in the order of the network's reference
    (`KerasLayerOrder`): keras.applications takes the shortcut first, Rosebrock's tutorial the
    residual branch. Keras orders ``model.layers`` by depth, ties by a walk from the outputs through
    each layer's inputs in order, and both weight files follow ``model.layers``: the legacy ``.h5``
    loaded without ``by_name`` and Keras 3's ``.weights.h5``. In the reference's order, either file
    saved from the reference loads into the generated model. The sum is the same either way."""
    residual, shortcut = site.src(layer, 0), site.src(layer, 1)  # the graph's order
    first_shortcut = site.graph.network.keras_layer_order is KerasLayerOrder.KERAS_APPLICATIONS
    src = f"[{shortcut}, {residual}]" if first_shortcut else f"[{residual}, {shortcut}]"
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
