"""Keras 3 backend, what training starts from: each layer's initializers and L2 regularizer, and the
initializer helpers the generated module defines.

The distributions are the network's (`resgen.graph_training.InitSettings`), the same in both targets:
Keras' defaults (glorot_uniform kernels, zero biases, BatchNorm scale 1) are left unwritten; the
torch rules are written as helpers that return a fresh initializer for every layer (an unseeded
Keras initializer object, reused, would give equally shaped layers equal weights).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from resgen.codegen import comment, literal
from resgen.graph import Conv2d, Distribution, Layer, LayerGraph, Scope

if TYPE_CHECKING:
    from resgen.backends.keras3_sites import Site

# What the generated block function calls each block channel count (resgen.graph.BlockDim): its input's
# channels, and its parameters and locals.
BLOCK_DIM_CODE = {
    "in": "x.shape[-1]",
    "width": "width",
    "first": "first_width",
    "out": "filters",
    "reduced": "se_width",
}

_KERNEL_HELPER = {
    Distribution.HE_NORMAL_FAN_OUT: "he_normal_fan_out()",
    Distribution.UNIFORM_FAN_IN: "uniform_fan_in()",
    Distribution.NORMAL_0_01: "keras.initializers.RandomNormal(stddev=0.01)",
}

_HELPERS = {
    "he_normal_fan_out": [
        "def he_normal_fan_out() -> keras.initializers.Initializer:",
        '    """N(0, 2 / fan_out), as torch\'s kaiming_normal_(mode="fan_out") for ReLU."""',
        "    return keras.initializers.VarianceScaling(",
        '        2.0, mode="fan_out", distribution="untruncated_normal"',
        "    )",
    ],
    "uniform_fan_in": [
        "def uniform_fan_in() -> keras.initializers.Initializer:",
        '    """U(-1 / sqrt(fan_in), 1 / sqrt(fan_in)): torch\'s default kernels."""',
        "    return keras.initializers.VarianceScaling(",
        '        1 / 3, mode="fan_in", distribution="uniform"',
        "    )",
    ],
    "uniform_bias": [
        "def uniform_bias(fan_in: int) -> keras.initializers.Initializer:",
        '    """U(-1 / sqrt(fan_in), 1 / sqrt(fan_in)), with the fan-in of the layer\'s kernel:',
        "    torch's default biases.",
        '    """',
        "    bound = 1 / fan_in**0.5",
        "    return keras.initializers.RandomUniform(-bound, bound)",
    ],
}


def _kernel_dist(graph: LayerGraph, layer: Layer) -> Distribution:
    init = graph.network.init
    if layer.scope is Scope.HEAD:  # the classifier, a dense layer or a 1x1 convolution
        return init.dense
    return {"conv2d": init.conv, "channel_conv1d": init.eca}[layer.kind]


def _biased(layer: Layer) -> bool:
    return bool(getattr(layer.op, "bias", False))


def initializer_args(site: Site, layer: Layer) -> list[str]:
    """The initializer arguments of a layer where they differ from Keras' defaults."""
    graph = site.graph
    if layer.kind in ("batch_norm", "group_norm"):
        return ['gamma_initializer="zeros"'] if layer.zero_init else []
    args = []
    if layer.zero_init:
        args.append('kernel_initializer="zeros"')
    elif _kernel_dist(graph, layer) in _KERNEL_HELPER:
        args.append(f"kernel_initializer={_KERNEL_HELPER[_kernel_dist(graph, layer)]}")
    if _biased(layer) and graph.network.init.bias is Distribution.UNIFORM_FAN_IN:
        args.append(f"bias_initializer=uniform_bias({fan_in(site, layer)})")
    return args


def fan_in(site: Site, layer: Layer) -> str:
    """Code text of a convolution's or dense layer's fan-in: in the block function, from its arguments."""
    op = layer.op
    if isinstance(op, Conv2d):
        area = op.kernel_size**2
        if layer.dims is None:
            return literal(op.in_channels // op.groups * area)
        text = BLOCK_DIM_CODE[layer.dims[0]]
        text += f" // {op.groups}" if op.groups != 1 else ""
        return text + (f" * {area}" if area != 1 else "")
    (source,) = site.graph.inputs(layer.name)
    return literal(site.analysis.shape(source)[0])


def regularizer_args(site: Site, layer: Layer) -> list[str]:
    """``kernel_regularizer=`` with the L2 factor of the layer's role, where it has one."""
    l2 = site.graph.network.l2.of(layer.l2_role)
    return [f"kernel_regularizer=keras.regularizers.L2({literal(l2)})"] if l2 > 0 else []


def helper_lines(graph: LayerGraph) -> list[str]:
    """The initializer helpers the layers use, each after two blank lines; none for Keras' defaults."""
    init = graph.network.init
    used = {
        name
        for layer in graph
        if layer.kind in ("conv2d", "dense", "channel_conv1d") and not layer.zero_init
        for dist, name in (
            (Distribution.HE_NORMAL_FAN_OUT, "he_normal_fan_out"),
            (Distribution.UNIFORM_FAN_IN, "uniform_fan_in"),
        )
        if _kernel_dist(graph, layer) is dist
    }
    if init.bias is Distribution.UNIFORM_FAN_IN and any(_biased(x) for x in graph):
        used.add("uniform_bias")
    lines: list[str] = []
    for name in ("he_normal_fan_out", "uniform_fan_in", "uniform_bias"):
        if name in used:
            lines += ["", "", *_HELPERS[name]]
    if lines:
        note = comment(
            "Initializers where the spec's differ from Keras' defaults (torch's rules); each call "
            "gives a fresh one, so that no two layers share their draws.",
            0,
        )
        lines[2:2] = note
    return lines
