"""PyTorch backend, what the generated module states once: BatchNorm and L2 settings, the
``conv3x3``/``conv1x1`` helpers, and which helper classes the network needs (TensorFlow "same"
padding, weight standardization, option A shortcuts, squeeze-and-excitation).
"""

from __future__ import annotations

from typing import Any

from resgen.codegen import call_lines, comment, derived_float, docstring, literal
from resgen.graph import EcaDesign, LayerGraph, PadMode, SqueezeExciteDesign


def bn_view(graph: LayerGraph) -> dict[str, list[str]]:
    """The normalization constants and the ``norm`` helper every layer is built with."""
    norm = graph.network.norm
    if norm.group:
        return {
            "lines": [
                *comment(
                    "GroupNorm settings of every normalization layer (Wu and He 2018): channels in "
                    f"{literal(norm.groups)} groups, normalized per sample; no running statistics.",
                    0,
                ),
                f"NORM_GROUPS = {literal(norm.groups)}",
                f"NORM_EPS = {literal(norm.epsilon)}",
            ],
            "helper": [
                "def norm(channels: int) -> nn.GroupNorm:",
                '    """GroupNorm with the spec\'s groups and epsilon."""',
                "    return nn.GroupNorm(NORM_GROUPS, channels, eps=NORM_EPS)",
            ],
        }
    return {
        "lines": [
            *comment(
                "BatchNorm settings of every normalization layer. The spec states momentum in Keras' "
                f"convention (running = m * running + (1 - m) * batch, m = {literal(norm.momentum)}); "
                "torch's momentum is the weight of the new batch, 1 - m.",
                0,
            ),
            f"BN_EPS = {literal(norm.epsilon)}",
            f"BN_MOMENTUM = {derived_float(1.0 - norm.momentum)}",
        ],
        "helper": [
            "def norm(channels: int) -> nn.BatchNorm2d:",
            '    """BatchNorm with the spec\'s epsilon and momentum."""',
            "    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)",
        ],
    }


def l2_lines(graph: LayerGraph) -> list[str]:
    """The WEIGHT_DECAY constant and its explanation, after a blank line; none without L2."""
    l2 = graph.network.l2
    if not l2:
        return []
    decay = derived_float(2 * l2)
    return [
        "",
        *comment(
            f"L2 regularization. The spec puts Keras' l2({literal(l2)}) on every convolution and dense "
            f"kernel, adding {literal(l2)} * sum(w ** 2) to the loss; its gradient is 2 * {literal(l2)} * w, "
            f"which is torch weight decay {decay} on exactly those weights. torch has no per-layer "
            "regularizer: give the optimizer param_groups(model) instead of a global weight_decay.",
            0,
        ),
        f"WEIGHT_DECAY = {decay}",
    ]


def conv_helpers_view(graph: LayerGraph, conv_class: str, shared_bias: bool | None) -> dict[str, Any]:
    """The conv3x3 and conv1x1 helpers (of StdConv2d where the network standardizes its weights)."""
    tf_same = graph.network.padding is PadMode.TF_SAME
    conv1x1_class = "nn.Conv2d"
    if graph.network.weight_standardization is not None:
        conv_class = conv1x1_class = "StdConv2d"
    if shared_bias is not None:
        bias_params, bias_arg = [], literal(shared_bias)
    else:
        bias_params, bias_arg = ["bias: bool = False"], "bias"
    conv3x3_args = ["in_planes", "out_planes", "kernel_size=3", "stride=stride"]
    if not tf_same:
        conv3x3_args.append("padding=1")
    conv3x3_args += ["groups=groups", f"bias={bias_arg}"]
    conv1x1_args = ["in_planes", "out_planes", "kernel_size=1", "stride=stride", f"bias={bias_arg}"]
    doc3 = '3x3 convolution with TensorFlow "same" padding.' if tf_same else "3x3 convolution, padding 1."
    if conv1x1_class == "StdConv2d":
        doc3, doc1 = "Weight-standardized 3x3 convolution, padding 1.", "Weight-standardized 1x1 convolution."
    else:
        doc1 = (
            '1x1 convolution; TensorFlow "same" padding is none for a 1x1 at any stride.'
            if tf_same
            else "1x1 convolution."
        )
    params3 = ["in_planes: int", "out_planes: int", "stride: int = 1", "groups: int = 1", *bias_params]
    params1 = ["in_planes: int", "out_planes: int", "stride: int = 1", *bias_params]
    return {
        "conv3x3": {
            "signature": call_lines("def conv3x3", params3, 0, f" -> {conv_class}:"),
            "doc": docstring([doc3], 4),
            "body": call_lines(f"return {conv_class}", conv3x3_args, 4),
        },
        "conv1x1": {
            "signature": call_lines("def conv1x1", params1, 0, f" -> {conv1x1_class}:"),
            "doc": docstring([doc1], 4),
            "body": call_lines(f"return {conv1x1_class}", conv1x1_args, 4),
        },
    }


def helper_sections(graph: LayerGraph) -> list[str]:
    """Templates of the helper classes the network uses, in the order the file defines them."""
    zero_pad = any(b.shortcut == "zero_pad" for b in graph.blocks)
    return [
        *(["torch/conv2d_same.py.j2"] if graph.network.padding is PadMode.TF_SAME else []),
        *(["torch/std_conv.py.j2"] if graph.network.weight_standardization is not None else []),
        *(["torch/zero_pad_shortcut.py.j2"] if zero_pad else []),
        *(
            ["torch/squeeze_excite.py.j2"]
            if isinstance(graph.network.block.attention, SqueezeExciteDesign)
            else []
        ),
        *(["torch/eca.py.j2"] if isinstance(graph.network.block.attention, EcaDesign) else []),
    ]


def se_view(graph: LayerGraph) -> dict[str, str]:
    """SqueezeExcite's rounding settings, as literals (empty without squeeze-and-excitation)."""
    se = graph.network.block.attention
    if not isinstance(se, SqueezeExciteDesign):
        return {}
    return {"ratio": literal(se.ratio), "divisor": literal(se.divisor)}


def eca_view(graph: LayerGraph) -> dict[str, str]:
    """EfficientChannelAttention's kernel-size settings, as literals (empty without ECA)."""
    eca = graph.network.block.attention
    if not isinstance(eca, EcaDesign):
        return {}
    return {"gamma": literal(eca.gamma), "beta": literal(eca.beta)}


def std_conv_view(graph: LayerGraph) -> dict[str, str]:
    """StdConv2d's epsilon, as a literal (empty without weight standardization)."""
    eps = graph.network.weight_standardization
    return {} if eps is None else {"eps": literal(eps)}
