"""PyTorch backend, what the generated module states once: BatchNorm and L2 settings, the
``conv3x3``/``conv1x1`` helpers, and which helper classes the network needs (TensorFlow "same"
padding, weight standardization, option A shortcuts, squeeze-and-excitation).
"""

from __future__ import annotations

from typing import Any

from resgen.backends import blocks
from resgen.codegen import (
    LINE_LENGTH,
    CodegenError,
    call_lines,
    comment,
    derived_float,
    docstring,
    indented,
    literal,
)
from resgen.graph import CLASSIFIER, Distribution, EcaDesign, LayerGraph, PadMode, Scope, SqueezeExciteDesign
from resgen.naming import (
    torch_classifier_path,
    torch_path,
    torch_paths_doc,
    torch_stage_blocks,
    torch_stage_path,
)
from resgen.passes import Analysis


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
    """The WEIGHT_DECAY table (by role) and its explanation, after a blank line; none without L2."""
    l2 = graph.network.l2
    if not l2.any:
        return []
    for layer in graph:  # param_groups() finds a kernel's role from its module path: check it does
        kernel = layer.kind in ("conv2d", "dense")
        if kernel and _path_role(graph, torch_path(graph, layer.name)) != layer.l2_role:
            raise CodegenError(f"{layer.name}: its module path does not tell its L2 role")
    values = l2.values()
    entries = [f"{literal(role)}: {derived_float(2 * value)}" for role, value in values.items()]
    by_role = ", ".join(f"{role} {literal(value)}" for role, value in values.items())
    return [
        "",
        *comment(
            "L2 regularization. The spec puts Keras' l2(r) on every convolution and dense kernel "
            f"({by_role}), adding r * sum(w ** 2) to the loss; its gradient is 2 * r * w, which is torch "
            "weight decay 2 * r on exactly those weights. torch has no per-layer regularizer: give "
            "the optimizer param_groups(model) instead of a global weight_decay.",
            0,
        ),
        *_dict_lines("WEIGHT_DECAY", entries),
    ]


def _dict_lines(name: str, entries: list[str]) -> list[str]:
    """``NAME = {entries}`` as ruff format lays it out: one line, or one entry per line."""
    one = f"{name} = {{{', '.join(entries)}}}"
    if len(one) <= LINE_LENGTH:
        return [one]
    return [f"{name} = {{", *(f"    {entry}," for entry in entries), "}"]


def l2_paths_view(graph: LayerGraph) -> dict[str, str]:
    """What the generated l2_role() reads a module's role from (templates/torch/param_groups.py.j2): the
    path prefix of the stages (layer, or stages. in timm's ResNetV2) and the classifier's path."""
    stages, classifier = _l2_paths(graph)
    return {"stages": literal(stages), "classifier": literal(classifier)}


def _l2_paths(graph: LayerGraph) -> tuple[str, str]:
    return torch_stage_path(graph, 1).rstrip("0123456789"), torch_classifier_path(graph)


def _path_role(graph: LayerGraph, path: str) -> str:
    """What the generated l2_role() says of a module path."""
    stages, classifier = _l2_paths(graph)
    if path.startswith(stages):
        return "shortcuts" if ".downsample" in path else "blocks"
    return "head" if path == classifier else "stem"


def drop_path_lines(graph: LayerGraph) -> list[str]:
    """The DROP_PATH_RATE constant and its rule, after a blank line; none without drop-path."""
    rate = graph.network.drop_path
    if not rate:
        return []
    return [
        "",
        *comment(
            "Stochastic depth with timm's linear rule: of all N blocks, the block with index i "
            "(0-based, over every stage) drops its residual branch with probability "
            "DROP_PATH_RATE * i / (N - 1), in training only; the last block's rate is DROP_PATH_RATE.",
            0,
        ),
        f"DROP_PATH_RATE = {literal(rate)}",
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
    dilated = bool(blocks.parameters(graph).dilations)  # output_stride: torchvision's conv3x3
    conv3x3_args = ["in_planes", "out_planes", "kernel_size=3", "stride=stride"]
    if not tf_same:
        conv3x3_args.append("padding=dilation" if dilated else "padding=1")
    conv3x3_args += ["groups=groups", f"bias={bias_arg}", *(["dilation=dilation"] if dilated else [])]
    conv1x1_args = ["in_planes", "out_planes", "kernel_size=1", "stride=stride", f"bias={bias_arg}"]
    doc3 = '3x3 convolution with TensorFlow "same" padding.' if tf_same else "3x3 convolution, padding 1."
    if dilated:
        doc3 = "3x3 convolution with padding; dilation spaces its taps, and the padding with them."
    if conv1x1_class == "StdConv2d":
        doc3, doc1 = "Weight-standardized 3x3 convolution, padding 1.", "Weight-standardized 1x1 convolution."
    else:
        doc1 = (
            '1x1 convolution; TensorFlow "same" padding is none for a 1x1 at any stride.'
            if tf_same
            else "1x1 convolution."
        )
    params3 = ["in_planes: int", "out_planes: int", "stride: int = 1", "groups: int = 1", *bias_params]
    params3 += ["dilation: int = 1"] if dilated else []
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
        *(["torch/blur_pool.py.j2"] if graph.of_kind("blur_pool") else []),
        *(["torch/drop_path.py.j2"] if graph.network.drop_path else []),
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


# --- initialization -----------------------------------------------------------------------------------

_TORCH_INIT = {
    Distribution.HE_NORMAL_FAN_OUT: 'nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")',
    Distribution.GLOROT_UNIFORM: "nn.init.xavier_uniform_(m.weight)",
    Distribution.NORMAL_0_01: "nn.init.normal_(m.weight, std=0.01)",
}
_TORCH_DEFAULT_CONV_INIT = "nn.init.kaiming_uniform_(m.weight, a=5**0.5)"
WORDS = {
    Distribution.HE_NORMAL_FAN_OUT: "N(0, 2 / fan_out)",
    Distribution.UNIFORM_FAN_IN: "U(-1 / sqrt(fan_in), 1 / sqrt(fan_in))",
    Distribution.GLOROT_UNIFORM: "U(-a, a) with a = sqrt(6 / (fan_in + fan_out))",
    Distribution.ZEROS: "zeros",
    Distribution.NORMAL_0_01: "N(0, 0.01^2)",
}


def init_lines(graph: LayerGraph, owners: list[tuple[LayerGraph, str]]) -> list[str]:
    """The initialization loop at the end of ``ResNet.__init__``, as torchvision writes it: statements
    only where the spec's distribution is not torch's default (uniform with the fan-in)."""
    init = graph.network.init
    kinds = [("nn.Conv2d", "conv2d", init.conv, "convolution kernels")]
    if graph.of_kind("channel_conv1d"):
        kinds.append(("nn.Conv1d", "channel_conv1d", init.eca, "ECA's kernel"))
    if graph.of_kind("dense"):
        kinds.append(("nn.Linear", "dense", init.dense, "the classifier's kernel"))
    branches: dict[tuple[str, ...], list[str]] = {}
    said: dict[Distribution, list[str]] = {}
    kept = []
    for cls, kind, dist, what in kinds:
        statements = [_TORCH_INIT[dist]] if dist in _TORCH_INIT else []
        if statements:
            said.setdefault(dist, []).append(what)
        else:
            kept.append(what)
        layers = graph.of_kind(kind)
        biased = [x for x in layers if getattr(x.op, "bias", False)]
        if biased and init.bias is Distribution.ZEROS:
            bias = ["nn.init.zeros_(m.bias)"]
            statements += bias if len(biased) == len(layers) else ["if m.bias is not None:", *indented(bias)]
        if statements:
            branches.setdefault(tuple(statements), []).append(cls)
    if init.bias is Distribution.ZEROS:
        said.setdefault(Distribution.ZEROS, []).append("biases")
    else:
        kept.append("every bias")
    norm_class = "nn.GroupNorm" if graph.network.norm.group else "nn.BatchNorm2d"
    branches[("nn.init.ones_(m.weight)", "nn.init.zeros_(m.bias)")] = [norm_class]
    stated = "; ".join(f"{_join(what)} {WORDS[dist]}" for dist, what in said.items())
    keeps = "keeps" if len(kept) == 1 else "keep"
    default = f"{_join(kept)} {keeps} torch's default, {WORDS[Distribution.UNIFORM_FAN_IN]}; " if kept else ""
    lines = [
        *comment(
            f"Initialization, as the spec states it: {stated}; {default}normalization scale 1, offset 0.",
            8,
        ),
        "for m in self.modules():",
    ]
    for i, (statements, classes) in enumerate(branches.items()):
        test = classes[0] if len(classes) == 1 else f"({', '.join(classes)})"
        lines += [f"    {'if' if i == 0 else 'elif'} isinstance(m, {test}):", *indented(statements, 2)]
    return lines + _conv_classifier_lines(graph) + _zero_init_lines(graph, owners)


def _conv_classifier_lines(graph: LayerGraph) -> list[str]:
    """A classifier that is a 1x1 convolution (timm's ResNetV2 head.fc) starts by the classifier's rule."""
    init = graph.network.init
    if CLASSIFIER not in graph or graph[CLASSIFIER].kind != "conv2d" or init.dense is init.conv:
        return []
    fc = graph[CLASSIFIER]
    # torch's default for a convolution is U(-1 / sqrt(fan_in), 1 / sqrt(fan_in)) by kaiming_uniform_
    # with a = sqrt(5); stated here, it undoes the convolution rule of the loop above
    statement = _TORCH_INIT.get(init.dense, _TORCH_DEFAULT_CONV_INIT)
    weight = f"self.{torch_path(graph, fc.name)}.weight"
    note = f"The classifier, a 1x1 convolution, starts as the spec's classifier says: {WORDS[init.dense]}."
    return [*comment(note, 8), statement.replace("m.weight", weight)]


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _zero_init_lines(graph: LayerGraph, owners: list[tuple[LayerGraph, str]]) -> list[str]:
    """zero_init_last: the layer each block class zeroes (one test per class where kinds mix)."""
    if not any(x.zero_init for x in graph):
        return []
    if any(x.scope is not Scope.STAGE for x in graph if x.zero_init):
        raise CodegenError("zero_init_last marks layers outside the residual blocks")
    tests: list[str] = []
    kinds = set()
    for view, block_class in owners:
        zeroed = {(x.role, x.kind) for ls in view.block_layers().values() for x in ls if x.zero_init}
        if len(zeroed) != 1:
            raise CodegenError(f"zero_init_last marks layers of different roles: {sorted(zeroed)}")
        ((role, kind),) = zeroed
        kinds.add(kind)
        tests += [
            f"    {'elif' if tests else 'if'} isinstance(m, {block_class}):",
            f"        nn.init.zeros_(m.{role}.weight)",
        ]
    if len(kinds) != 1:
        raise CodegenError(f"zero_init_last zeroes layers of different kinds: {sorted(kinds)}")
    what = "convolution" if kinds.pop() == "conv2d" else "normalization"
    return [
        *comment(
            f"zero_init_last (timm's default; torchvision's zero_init_residual): the last {what} of every "
            "residual branch starts at 0, so that every block starts as the identity.",
            8,
        ),
        "for m in self.modules():",
        *tests,
    ]


def std_conv_view(graph: LayerGraph) -> dict[str, str]:
    """StdConv2d's epsilon, as a literal (empty without weight standardization)."""
    eps = graph.network.weight_standardization
    return {} if eps is None else {"eps": literal(eps)}


# --- the module's docstring and standard-library imports ----------------------------------------------


def module_doc(graph: LayerGraph, analysis: Analysis) -> list[str]:
    """The generated module's docstring: what the network is, its input, output and counts, and paths."""
    net = graph.network
    out = graph.output
    inp = graph["input"].op
    what = "class probabilities (softmax)" if out.kind == "softmax" else "logits"
    count = analysis.totals()
    return docstring(
        [
            net.description or f"The ResNet of spec {net.name}.",
            f"Input: {inp.channels}x{inp.height}x{inp.width} images (N, C, H, W). "  # type: ignore[union-attr]
            f"Output: {analysis.shape(out.name)[0]} {what}. Learnable parameters: {count['params']:,}; "
            f"BatchNorm running statistics: {count['non_trainable_params']:,}.",
            f"{torch_paths_doc(graph)} Build the network with build_model().",
        ],
        0,
    )


def stdlib_imports(graph: LayerGraph) -> list[str]:
    """copy for fuse_batchnorm; math for ECA's kernel rule and the blur filter; OrderedDict for
    timm's ResNetV2 module names."""
    math = isinstance(graph.network.block.attention, EcaDesign) or graph.of_kind("blur_pool")
    ordered = torch_stage_blocks(graph) is not None  # timm's ResNetV2: named nn.Sequential places
    return [
        "import copy",
        *(["import math"] if math else []),
        *(["from collections import OrderedDict"] if ordered else []),
    ]
