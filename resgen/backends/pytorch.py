"""PyTorch backend: the view model of templates/torch/ for one compiled spec.

The generated module reads like torchvision's ``models/resnet.py``: ``conv3x3``/``conv1x1``
helpers, one block class with ``expansion`` (only the kind the spec uses), and a ``ResNet``
class whose ``_make_layer`` builds every stage in a loop, so the file grows with the number of
stages, not with depth. Module paths are torchvision's (`resgen.naming.torch_path`), so
torchvision state dicts load with ``strict=True`` into the torchvision presets.

Where the code comes from:

- the stem and the head are written layer by layer, in graph order, from `HANDLERS` (one per op
  kind of the graph); each handler turns one node into constructor and forward lines;
- a block class is one of four templates (``templates/torch/blocks/``) filled with call text made
  here; before it is chosen, every block of the graph is checked to hold exactly the layers that
  class builds, so a graph the class cannot express fails to render instead of rendering wrong;
- the shortcut rule of ``ResNet._shortcut`` is written from the spec's shortcut settings, and the
  bias, padding and BatchNorm settings are read off the graph's nodes (they must be uniform where
  the generated code shares them, e.g. one ``BN_EPS`` for every BatchNorm).

Two options go beyond torchvision: ``build_model(channels_last=True)``, and ``fuse_batchnorm(model)``,
an inference copy with each BatchNorm that reads only a convolution folded into it; which ones fold
is read off the graph (`_conv_bn_pairs`) and written as a table per class, so the file still grows
with the number of stages only.

Every value printed is code text made here (``repr`` of validated values); long calls are laid out
as ``ruff format`` lays them out (`call_lines`), so the output is already formatted.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from resgen.compiler import Compiled
from resgen.lower import OPS, BlockInfo, block_nodes, inputs_of, layers
from resgen.naming import torch_path
from resgen.passes import totals
from resgen.spec import BottleneckBlock, ProjectionShortcut, ZeroPadShortcut

template = "torch/model.py.j2"
allowed_imports = frozenset({"__future__", "copy", "torch"})  # the generated module needs nothing else

LINE_LENGTH = 88  # ruff's default: the generated file is formatted for it
MODEL_CLASS = "ResNet"


class TorchBackendError(Exception):
    """The graph holds something this backend cannot write faithfully (a bug, not a spec error)."""


# --- literals and layout ----------------------------------------------------------------------------


def py(value: Any) -> str:
    """Code text of a validated number or boolean."""
    if isinstance(value, bool | int) or value is None:
        return repr(value)
    if isinstance(value, float):
        return clean_float(value)
    raise TorchBackendError(f"no literal for {value!r}")


def clean_float(value: float) -> str:
    """A float rounded to 12 significant digits, so ``1 - 0.9`` prints as ``0.1``."""
    return repr(float(f"{value:.12g}"))


def call_lines(head: str, args: Sequence[str], indent: int, tail: str = "") -> list[str]:
    """``head(args)tail`` laid out as ruff format does, as lines relative to `indent`.

    One line if it fits; else the arguments on one line of their own; else one argument per line
    with a trailing comma.
    """
    joined = ", ".join(args)
    one = f"{head}({joined}){tail}"
    if indent + len(one) <= LINE_LENGTH:
        return [one]
    if indent + 4 + len(joined) <= LINE_LENGTH:
        return [f"{head}(", f"    {joined}", f"){tail}"]
    return [f"{head}(", *(f"    {a}," for a in args), f"){tail}"]


def docstring(text: Iterable[str], indent: int) -> list[str]:
    """Lines of a docstring: the first paragraph is the summary; paragraphs are separated by ''.

    Text is wrapped to the line length; backslashes, triple quotes and a final quote are
    escaped, so any description from a spec stays a plain string literal.
    """
    width = LINE_LENGTH - indent
    lines: list[str] = []
    for paragraph in text:
        if lines:
            lines.append("")
        words = " ".join(paragraph.split()).replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
        # width - 6: a text that fits no single line with both quote triples wraps to two lines,
        # since ruff format joins a one-line docstring with its closing quotes
        lines += textwrap.wrap(words, width - 6, break_long_words=False, break_on_hyphens=False) or [""]
    if lines[-1].endswith('"'):
        lines[-1] = lines[-1][:-1] + '\\"'  # keep the closing quotes apart
    if len(lines) == 1 and len(lines[0]) + 6 <= width:
        return [f'"""{lines[0]}"""']
    return [f'"""{lines[0]}', *lines[1:], '"""']


def _indent(lines: Iterable[str]) -> list[str]:
    return [f"    {line}" if line else line for line in lines]


def comment(text: str, indent: int) -> list[str]:
    """A comment wrapped to the line length."""
    return [f"# {line}" for line in textwrap.wrap(text, LINE_LENGTH - indent - 2)]


# --- one layer: what each op kind writes ------------------------------------------------------------


@dataclass
class Layer:
    """Code of one layer of the stem or head, relative to its indentation in ``ResNet``."""

    attr: str | None  # module attribute (torchvision path), None for functional ops
    init: list[str] = field(default_factory=list)  # lines in __init__ (comments included)
    forward: list[str] = field(default_factory=list)  # lines in forward, reading and writing `x`


@dataclass(frozen=True)
class Context:
    """What a handler needs besides its node."""

    graph: nx.DiGraph
    conv_class: str  # "nn.Conv2d" or "Conv2dSame"
    indent: int = 8


Handler = Callable[[str, dict[str, Any], Context], Layer]


def _module(attr: str, head: str, args: Sequence[str], ctx: Context, notes: Sequence[str] = ()) -> Layer:
    lines = [line for note in notes for line in comment(note, ctx.indent)]
    lines += call_lines(f"self.{attr} = {head}", args, ctx.indent)
    return Layer(attr, lines, [f"x = self.{attr}(x)"])


def _input(name: str, node: dict[str, Any], ctx: Context) -> Layer:
    return Layer(None)  # the argument of forward


def _conv2d(name: str, node: dict[str, Any], ctx: Context) -> Layer:
    k, s, g = node["kernel_size"], node["stride"], node["groups"]
    args = [py(node["in_channels"]), py(node["out_channels"]), f"kernel_size={k}", f"stride={s}"]
    notes = []
    if node["padding_mode"] == "tf_same":
        head = ctx.conv_class
        notes.append('TensorFlow "same" padding, computed from the input size (see Conv2dSame).')
    else:
        (top, bottom), (left, right) = node["padding"]
        if not top == bottom == left == right:
            raise TorchBackendError(f"{name}: symmetric padding expected, got {node['padding']}")
        head = "nn.Conv2d"
        if top:
            args.append(f"padding={top}")
    if g != 1:
        args.append(f"groups={g}")
    args.append(f"bias={py(node['bias'])}")
    return _module(torch_path(node), head, args, ctx, notes)


def _batch_norm(name: str, node: dict[str, Any], ctx: Context) -> Layer:
    notes = []
    if node["role"] == "input_bn":
        notes.append("BatchNorm on the raw input, as the seed's ResNet does.")
    return _module(torch_path(node), "norm", [py(node["channels"])], ctx, notes)


def _relu(name: str, node: dict[str, Any], ctx: Context) -> Layer:
    return _module(torch_path(node), "nn.ReLU", ["inplace=True"], ctx)


def _max_pool(name: str, node: dict[str, Any], ctx: Context) -> Layer:
    k, s, p = node["kernel_size"], node["stride"], node["padding"]
    pool = [f"kernel_size={k}", f"stride={s}"]
    if p == 0:
        return _module(torch_path(node), "nn.MaxPool2d", pool, ctx)
    if node["input_nonnegative"]:
        # after a ReLU, nn.MaxPool2d's -inf padding and the spec's zero padding give the same result
        return _module(torch_path(node), "nn.MaxPool2d", [*pool, f"padding={p}"], ctx)
    note = (
        "The spec pads with zeros before pooling; nn.MaxPool2d would pad with -inf, which differs "
        "where the input can be negative."
    )
    return _module(
        torch_path(node),
        "nn.Sequential",
        [f"nn.ZeroPad2d({p})", f"nn.MaxPool2d({', '.join(pool)})"],
        ctx,
        [note],
    )


def _avg_pool(name: str, node: dict[str, Any], ctx: Context) -> Layer:
    k, s = node["kernel_size"], node["stride"]
    note = (
        f"A fixed {k}x{k} average pool (the seed's head), not a global one: the classifier's input "
        "size follows from the spec's input size."
    )
    return _module(torch_path(node), "nn.AvgPool2d", [f"kernel_size={k}", f"stride={s}"], ctx, [note])


def _global_avg_pool(name: str, node: dict[str, Any], ctx: Context) -> Layer:
    layer = _module(torch_path(node), "nn.AdaptiveAvgPool2d", ["(1, 1)"], ctx)
    layer.forward.append("x = torch.flatten(x, 1)")
    return layer


def _flatten(name: str, node: dict[str, Any], ctx: Context) -> Layer:
    (source,) = inputs_of(ctx.graph, name)
    _, *spatial = ctx.graph.nodes[source]["shape"]
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
    return Layer(None, [], [*comment(note, ctx.indent), "x = torch.flatten(x, 1)"])


def _dropout(name: str, node: dict[str, Any], ctx: Context) -> Layer:
    return _module(torch_path(node), "nn.Dropout", [f"p={py(node['rate'])}"], ctx)


def _dense(name: str, node: dict[str, Any], ctx: Context) -> Layer:
    args = [py(node["in_features"]), py(node["out_features"])]
    if not node["bias"]:
        args.append("bias=False")
    return _module(torch_path(node), "nn.Linear", args, ctx)


def _softmax(name: str, node: dict[str, Any], ctx: Context) -> Layer:
    lines = [
        *comment("The spec asks for class probabilities, not logits.", ctx.indent),
        "x = torch.softmax(x, dim=1)",
    ]
    return Layer(None, [], lines)


def _add(name: str, node: dict[str, Any], ctx: Context) -> Layer:
    # the residual addition lives in the block classes; this is its statement there
    return Layer(None, [], ["out += identity"])


def _zero_pad_shortcut(name: str, node: dict[str, Any], ctx: Context) -> Layer:
    args = [py(node["stride"]), py(node["pad_before"]), py(node["pad_after"])]
    return _module(torch_path(node), "ZeroPadShortcut", args, ctx)


# One handler per op kind. The stem and head are written through these; layers inside blocks are
# written once per class by the block templates (checked by `_check_blocks`), and the handlers of
# block-only kinds (add, zero_pad_shortcut) give the same statement or module as stand-alone code.
HANDLERS: dict[str, Handler] = {
    "input": _input,
    "conv2d": _conv2d,
    "batch_norm": _batch_norm,
    "relu": _relu,
    "max_pool": _max_pool,
    "avg_pool": _avg_pool,
    "global_avg_pool": _global_avg_pool,
    "flatten": _flatten,
    "dropout": _dropout,
    "dense": _dense,
    "softmax": _softmax,
    "add": _add,
    "zero_pad_shortcut": _zero_pad_shortcut,
}
assert set(HANDLERS) == set(OPS), "every op kind needs a handler"


def _top_level(graph: nx.DiGraph, scope: str, ctx: Context, seen: set[str]) -> tuple[list[str], list[str]]:
    """__init__ and forward lines of the stem or the head, layer by layer in graph order."""
    init: list[str] = []
    forward: list[str] = []
    for name in layers(graph):
        node = graph.nodes[name]
        if node["scope"] != scope:
            continue
        layer = HANDLERS[node["op"]](name, node, ctx)
        if layer.attr is None or layer.attr not in seen:  # one module per path (a ReLU is reused)
            init += layer.init
        if layer.attr is not None:
            seen.add(layer.attr)
        forward += layer.forward
    return init, forward


# --- settings the generated code shares -------------------------------------------------------------


def _uniform(graph: nx.DiGraph, op: str, key: str, roles: Iterable[str] | None = None) -> Any:
    """The one value of `key` over nodes of kind `op` (optionally only those roles); None if none."""
    wanted = set(roles) if roles is not None else None
    values = {
        data[key]
        for data in graph.nodes.values()
        if data["op"] == op and (wanted is None or data["role"] in wanted)
    }
    if len(values) > 1:
        raise TorchBackendError(f"{op} layers differ in {key} ({sorted(values)}); torch shares one")
    return next(iter(values), None)


def _bn_view(graph: nx.DiGraph) -> dict[str, Any]:
    eps = _uniform(graph, "batch_norm", "epsilon")
    momentum = _uniform(graph, "batch_norm", "momentum")
    if eps is None:
        eps, momentum = 1e-5, 0.9  # no BatchNorm at all: the helper is still valid code
    return {
        "eps": py(eps),
        "momentum": clean_float(1.0 - momentum),
        "comment": comment(
            "BatchNorm settings of every normalization layer. The spec states momentum in Keras' "
            f"convention (running = m * running + (1 - m) * batch, m = {py(momentum)}); torch's "
            "momentum is the weight of the new batch, 1 - m.",
            0,
        ),
    }


def _l2_view(graph: nx.DiGraph) -> dict[str, Any]:
    l2 = _uniform(graph, "conv2d", "l2")
    dense_l2 = _uniform(graph, "dense", "l2")
    if l2 is not None and dense_l2 is not None and l2 != dense_l2:
        raise TorchBackendError("convolutions and the classifier differ in l2; the torch target shares one")
    l2 = l2 if l2 is not None else dense_l2
    if not l2:
        return {"enabled": False}
    decay = clean_float(2 * l2)
    return {
        "enabled": True,
        "weight_decay": decay,
        "comment": comment(
            f"L2 regularization. The spec puts Keras' l2({py(l2)}) on every convolution and dense "
            f"kernel, adding {py(l2)} * sum(w ** 2) to the loss; its gradient is 2 * {py(l2)} * w, "
            f"which is torch weight decay {decay} on exactly those weights. torch has no per-layer "
            "regularizer: give the optimizer param_groups(model) instead of a global weight_decay.",
            0,
        ),
    }


# --- the block class ---------------------------------------------------------------------------------

# Layers each block class builds, by role, in graph order (before the shortcut and the addition).
_BRANCH_ROLES = {
    ("basic", False): ("conv1", "bn1", "relu1", "conv2", "bn2"),
    ("bottleneck", False): ("conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "conv3", "bn3"),
    ("basic", True): ("preact_bn", "preact_relu", "conv1", "bn1", "relu1", "conv2"),
    ("bottleneck", True): (
        ("preact_bn", "preact_relu", "conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "conv3")
    ),
}
_CLASS_NAMES = {
    ("basic", False): "BasicBlock",
    ("bottleneck", False): "Bottleneck",
    ("basic", True): "PreActBasicBlock",
    ("bottleneck", True): "PreActBottleneck",
}
_SHORTCUT_ROLES = {
    "identity": (),
    "projection": ("shortcut_conv", "shortcut_bn"),
    "max_pool": ("shortcut_pool",),
    "zero_pad": ("shortcut_pad",),
}


def _check_blocks(graph: nx.DiGraph, kind: tuple[str, bool], shortcut_norm: bool) -> None:
    """Every block holds exactly the layers its class builds, or rendering fails."""
    nodes = block_nodes(graph)
    preact = kind[1]
    for info in graph.graph["blocks"]:
        shortcut = _SHORTCUT_ROLES[info.shortcut]
        if info.shortcut == "projection" and not shortcut_norm:
            shortcut = shortcut[:1]
        expected = [*_BRANCH_ROLES[kind], *shortcut, "add", *(() if preact else ("out_relu",))]
        roles = [graph.nodes[n]["role"] for n in nodes[(info.stage, info.block)]]
        if sorted(roles) != sorted(expected):
            raise TorchBackendError(
                f"block {info.prefix} holds {roles}; the {_CLASS_NAMES[kind]} class builds {expected}"
            )


def _shortcut_sources(graph: nx.DiGraph) -> set[tuple[str, bool]]:
    """(shortcut kind, reads the pre-activated input) of every block with a shortcut module."""
    nodes = block_nodes(graph)
    found = set()
    for info in graph.graph["blocks"]:
        names = nodes[(info.stage, info.block)]
        by_role = {graph.nodes[n]["role"]: n for n in names}
        role = {"projection": "shortcut_conv", "max_pool": "shortcut_pool", "zero_pad": "shortcut_pad"}.get(
            info.shortcut
        )
        if role is None:
            continue
        (source,) = inputs_of(graph, by_role[role])
        found.add((info.shortcut, graph.nodes[source]["role"] == "preact_relu"))
    return found


def _conv_call(helper: str, args: list[str], bias: bool, shared_bias: bool | None) -> str:
    if shared_bias is None:  # the helpers take bias; say it where it differs from their default
        if bias:
            args = [*args, "bias=True"]
    elif bias != shared_bias:
        raise TorchBackendError("a convolution's bias differs from the shared setting")
    return f"{helper}({', '.join(args)})"


def _block_view(graph: nx.DiGraph, shared_bias: bool | None) -> dict[str, Any]:
    spec = graph.graph["spec"]
    blk = spec.block
    bottleneck = isinstance(blk, BottleneckBlock)
    kind = ("bottleneck" if bottleneck else "basic", blk.preactivation)
    sc = spec.shortcut
    shortcut_norm = isinstance(sc, ProjectionShortcut) and sc.norm
    _check_blocks(graph, kind, shortcut_norm)
    if not blk.preactivation and any(reads for _, reads in _shortcut_sources(graph)):
        raise TorchBackendError("a post-activation block's shortcut reads a pre-activated tensor")

    def bias(role: str) -> bool:
        value = _uniform(graph, "conv2d", "bias", [role])
        return bool(value)

    out = "planes * self.expansion"
    class_attrs: list[str] = []
    doc: list[str]
    if bottleneck:
        groups, base = blk.groups, blk.width_per_group
        for info in graph.graph["blocks"]:
            planes = info.out_channels // blk.expansion
            if planes * base // 64 * groups != info.width:
                raise TorchBackendError(f"block {info.prefix}: inner width {info.width} breaks the rule")
        if groups == 1 and base == 64:
            width_line = "width = planes"
        else:
            class_attrs = [f"groups: int = {groups}", f"base_width: int = {base}"]
            width_line = "width = planes * self.base_width // 64 * self.groups"
        s1, s2 = ("stride", None) if blk.stride_on == "conv1" else (None, "stride")
        conv2_args = ["width", "width", *([s2] if s2 else [])]
        if groups != 1:
            conv2_args.append("groups=self.groups")
        convs = {
            "conv1": _conv_call(
                "conv1x1", ["in_planes", "width", *([s1] if s1 else [])], bias("conv1"), shared_bias
            ),
            "conv2": _conv_call("conv3x3", conv2_args, bias("conv2"), shared_bias),
            "conv3": _conv_call("conv1x1", ["width", out], bias("conv3"), shared_bias),
        }
        doc = _block_doc(blk)
    else:
        convs = {
            "conv1": _conv_call("conv3x3", ["in_planes", "planes", "stride"], bias("conv1"), shared_bias),
            "conv2": _conv_call("conv3x3", ["planes", "planes"], bias("conv2"), shared_bias),
        }
        width_line = ""
        doc = _block_doc(blk)

    return {
        "template": f"torch/blocks/{kind[0]}{'_preact' if kind[1] else ''}.py.j2",
        "name": _CLASS_NAMES[kind],
        "docstring": docstring(doc, 4),
        "expansion": py(blk.expansion),
        "class_attrs": class_attrs,
        "width_line": width_line,
        "convs": convs,
        "shortcut": _preact_shortcut_lines(graph) if blk.preactivation else [],
    }


def _block_doc(blk: Any) -> list[str]:
    """Docstring paragraphs of the block class: what it computes, and where it departs from papers."""
    if isinstance(blk, BottleneckBlock):
        branch = "1x1 reduce, 3x3, 1x1 expand"
        if blk.stride_on == "conv1":
            stride = "The stride sits on the first 1x1 (conv1), as in the paper and keras.applications."
        elif blk.preactivation:
            stride = "The stride sits on the 3x3 (conv2)."
        else:
            stride = (
                'The stride sits on the 3x3 (conv2), as in torchvision ("ResNet v1.5"); the paper '
                "puts it on the first 1x1."
            )
        details = [stride]
        if blk.groups != 1:
            details.append(f"The 3x3 convolution has {blk.groups} groups (ResNeXt).")
        if blk.width_per_group != 64:
            details.append(f"Inner width: planes * {blk.width_per_group} // 64 * groups.")
    else:
        branch = "two 3x3 convolutions"
        details = []
    if blk.preactivation:
        kind = "bottleneck" if isinstance(blk, BottleneckBlock) else "basic block"
        summary = f"Pre-activation {kind} (He et al. 2016): BN-ReLU before every convolution."
        after = "Nothing follows the addition; the next block, or the head, normalizes."
        details.insert(0, f"Branch: {branch}. {after}")
    else:
        kind = "Bottleneck" if isinstance(blk, BottleneckBlock) else "Basic"
        summary = f"{kind} block: {branch}; add the shortcut, then ReLU."
    return [summary, *([" ".join(details)] if details else [])]


def _preact_shortcut_lines(graph: nx.DiGraph) -> list[str]:
    """How a pre-activation block feeds its shortcut module, from the graph's edges."""
    sources = _shortcut_sources(graph)
    projection_preact = {("projection", True)}
    if sources and sources <= projection_preact:
        return [
            "# A projection shortcut reads the pre-activated input (He et al. 2016).",
            "identity = x if self.downsample is None else self.downsample(out)",
        ]
    if not any(reads for _, reads in sources):
        return [
            "identity = x if self.downsample is None else self.downsample(x)",
        ]
    if sources <= {("projection", True), ("max_pool", False)}:
        return [
            "identity = x",
            "if isinstance(self.downsample, nn.MaxPool2d):",
            "    # Only the resolution changes: subsample the raw input (keras V2).",
            "    identity = self.downsample(x)",
            "elif self.downsample is not None:",
            "    # A projection reads the pre-activated input (He et al. 2016).",
            "    identity = self.downsample(out)",
        ]
    raise TorchBackendError(f"shortcut sources {sorted(sources)} have no torch form")


# --- the stages: _make_layer and _shortcut -----------------------------------------------------------


def _stages_view(
    graph: nx.DiGraph, block_class: str, shortcut_bias: bool | None, shared_bias: bool | None
) -> dict[str, Any]:
    """``self.layerN`` lines, ``_make_layer`` and ``_shortcut``: the spec's stride and shortcut rules."""
    spec = graph.graph["spec"]
    blocks: list[BlockInfo] = graph.graph["blocks"]
    expansion = spec.block.expansion
    stages: list[str] = []
    forward: list[str] = []
    for s, stage in enumerate(spec.stages, start=1):
        infos = [b for b in blocks if b.stage == s]
        planes = infos[0].out_channels // expansion
        stages.append(f"self.layer{s} = self._make_layer({planes}, {len(infos)}, stride={stage.stride})")
        forward.append(f"x = self.layer{s}(x)")

    last = spec.block.stride_block == "last"
    sc = spec.shortcut
    first_block = isinstance(sc, ProjectionShortcut) and sc.when == "first_block"
    block_args = ["self.in_planes", "planes", "block_stride", "downsample"]

    if last:
        make_doc = "One stage of `blocks` blocks; the last one carries the stride."
        shortcut_args = ["out_planes", "block_stride", *(["first=index == 0"] if first_block else [])]
        make = [
            f"out_planes = planes * {block_class}.expansion",
            "layers = []",
            "for index in range(blocks):",
            "    # The last block of a stage carries its stride (keras.applications V2).",
            "    block_stride = stride if index == blocks - 1 else 1",
            *_indent(call_lines("downsample = self._shortcut", shortcut_args, 12)),
            *_indent(call_lines(f"block = {block_class}", block_args, 12)),
            "    layers.append(block)",
            "    self.in_planes = out_planes",
            "return nn.Sequential(*layers)",
        ]
    else:
        # the first block carries the stride; the others keep the shape, so their shortcut is the identity
        first_block = False  # _shortcut is only asked about first blocks
        make_doc = "One stage of `blocks` blocks; the first one carries the stride."
        make = [
            f"out_planes = planes * {block_class}.expansion",
            "downsample = self._shortcut(out_planes, stride)",
            *call_lines(
                f"layers = [{block_class}", ["self.in_planes", "planes", "stride", "downsample"], 8, "]"
            ),
            "self.in_planes = out_planes",
            "for _ in range(1, blocks):",
            *_indent(call_lines(f"layers.append({block_class}", ["self.in_planes", "planes"], 12, ")")),
            "return nn.Sequential(*layers)",
        ]

    params = ["self", "out_planes: int", "stride: int", *(["first: bool"] if first_block else [])]
    always = not isinstance(sc, ZeroPadShortcut) and sc.when == "first_block" and not last
    signature = call_lines("def _shortcut", params, 4, f" -> nn.Module{'' if always else ' | None'}:")

    bias = shortcut_bias if shortcut_bias is not None else bool(shared_bias)  # None: no projection at all
    conv = _conv_call("conv1x1", ["self.in_planes", "out_planes", "stride"], bias, shared_bias)
    project_parts = [conv, *(["norm(out_planes)"] if isinstance(sc, ProjectionShortcut) and sc.norm else [])]
    project = ["return nn.Sequential(", *(f"    {p}," for p in project_parts), ")"]
    unchanged = ["if stride == 1 and self.in_planes == out_planes:", "    return None"]
    body: list[str] = []
    if isinstance(sc, ZeroPadShortcut):
        doc = "Option A shortcut (He et al. 2015) if the shape changes, else None."
        body = [
            *unchanged,
            "extra = out_planes - self.in_planes",
            "return ZeroPadShortcut(stride, extra // 2, extra - extra // 2)",
        ]
    elif always:
        doc = "The first block's shortcut: a projection, even where the shape is kept."
        body = project
    else:
        doc = "The shortcut module of a block; None for the identity."
        if first_block:
            body += [
                "if first:",
                "    # Every stage's first block projects, even where the shape is unchanged.",
                *_indent(project),
            ]
        body += unchanged
        if sc.stride_only == "max_pool":
            body += [
                "if self.in_planes == out_planes:",
                "    # Only the resolution changes: a 1x1 max-pool subsamples (keras V2).",
                "    return nn.MaxPool2d(kernel_size=1, stride=stride)",
            ]
        body += project
    return {
        "stages": stages,
        "stage_forward": forward,
        "make_doc": docstring([make_doc], 8),
        "make_body": make,
        "shortcut_signature": signature,
        "shortcut_doc": docstring([doc], 8),
        "shortcut_body": body,
    }


# --- the inference build: BatchNorm folded into the convolution before it ---------------------------


def _conv_bn_pairs(graph: nx.DiGraph) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(conv, bn) module paths where a BatchNorm reads a convolution that feeds nothing else.

    Only such a BatchNorm folds exactly into the convolution's weights and bias. A BatchNorm in
    front of a convolution (pre-activation, the seed's input BatchNorm) or after an addition
    does not. Returns the pairs of the ``ResNet`` class and those of the block class, relative to
    a block (the block class is uniform: `_check_blocks`), each in graph order. A pair that crosses
    a block boundary (the stem's convolution read only by the first block's pre-activation
    BatchNorm) belongs to ``ResNet``, with full paths.
    """
    model_pairs: list[tuple[str, str]] = []
    block_pairs: list[tuple[str, str]] = []
    held: dict[tuple[int, int], set[tuple[str, str]]] = {}
    for name in layers(graph):
        node = graph.nodes[name]
        if node["op"] != "batch_norm":
            continue
        (source,) = inputs_of(graph, name)
        conv_node = graph.nodes[source]
        if conv_node["op"] != "conv2d" or graph.out_degree(source) != 1:
            continue
        conv, bn = torch_path(conv_node), torch_path(node)
        where = (node["stage"], node["block"])
        if node["scope"] != "stage" or (conv_node["stage"], conv_node["block"]) != where:
            # the stem, the head, or the stem's convolution feeding the first block's BatchNorm
            model_pairs.append((conv, bn))
            continue
        pair = (_in_block(conv), _in_block(bn))
        held.setdefault(where, set()).add(pair)
        if pair not in block_pairs:
            block_pairs.append(pair)
    # The table is per class: a pair must hold in every block that has both modules.
    for where, names in block_nodes(graph).items():
        present = {_in_block(torch_path(graph.nodes[n])) for n in names}
        for pair in block_pairs:
            if set(pair) <= present and pair not in held.get(where, set()):
                block = f"stage{where[0]}.block{where[1]}"
                raise TorchBackendError(f"{pair} folds in some blocks but not in {block}")
    return model_pairs, block_pairs


def _in_block(path: str) -> str:
    """A module path relative to its block: layer2.0.downsample.0 -> downsample.0."""
    return path.split(".", 2)[2]


def _string(path: str) -> str:
    """A module path as a double-quoted literal, as ruff format writes it."""
    if not all(part.isidentifier() or part.isdigit() for part in path.split(".")):
        raise TorchBackendError(f"unexpected module path {path!r}")
    return f'"{path}"'


def _fuse_view(graph: nx.DiGraph, block_class: str) -> dict[str, Any]:
    """The ``CONV_BN_PAIRS`` table that ``fuse_batchnorm`` folds, by owning class."""
    model_pairs, block_pairs = _conv_bn_pairs(graph)
    owners = [
        {"name": owner, "pairs": [(_string(conv), _string(bn)) for conv, bn in pairs]}
        for owner, pairs in ((MODEL_CLASS, model_pairs), (block_class, block_pairs))
        if pairs
    ]
    return {
        "owners": owners,
        "comment": comment(
            "Each convolution whose output only a BatchNorm reads, by the class that owns both: "
            "fuse_batchnorm folds these BatchNorms into their convolutions. Other BatchNorms "
            "(in front of a convolution, after an addition) stay as they are.",
            0,
        ),
    }


# --- the module -------------------------------------------------------------------------------------


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _module_doc(compiled: Compiled) -> list[str]:
    spec = compiled.spec
    graph = compiled.graph
    out_node = graph.nodes[layers(graph)[-1]]
    inp = graph.nodes["input"]
    what = "class probabilities (softmax)" if out_node["op"] == "softmax" else "logits"
    count = totals(graph)
    return docstring(
        [
            spec.description or f"The ResNet of spec {spec.name}.",
            f"Input: {inp['channels']}x{inp['height']}x{inp['width']} images (N, C, H, W). "
            f"Output: {out_node['shape'][0]} {what}. Learnable parameters: {count['params']:,}; "
            f"BatchNorm running statistics: {count['non_trainable_params']:,}.",
            "Module paths follow torchvision.models.resnet (conv1, layer1.0.conv1, layer1.0.downsample.0, "
            "fc). Build the network with build_model().",
        ],
        0,
    )


def view_model(compiled: Compiled) -> dict[str, Any]:
    """Every value templates/torch/model.py.j2 prints, already turned into code text."""
    graph = compiled.graph
    spec = compiled.spec
    tf_same = _uniform(graph, "conv2d", "padding_mode") == "tf_same"
    ctx = Context(graph, "Conv2dSame" if tf_same else "nn.Conv2d")

    shared_bias: bool | None
    try:
        shared_bias = bool(_uniform(graph, "conv2d", "bias"))
    except TorchBackendError:
        shared_bias = None  # differs by layer (conv_bias "unnormalized"): the helpers take bias
    if shared_bias is not None:
        helper_bias = {"params": [], "arg": py(shared_bias)}
    else:
        helper_bias = {"params": ["bias: bool = False"], "arg": "bias"}

    seen: set[str] = set()
    stem_init, stem_forward = _top_level(graph, "stem", ctx, seen)
    head_init, head_forward = _top_level(graph, "head", ctx, seen)
    block = _block_view(graph, shared_bias)
    stages = _stages_view(
        graph, block["name"], _uniform(graph, "conv2d", "bias", ["shortcut_conv"]), shared_bias
    )

    conv3x3_args = ["in_planes", "out_planes", "kernel_size=3", "stride=stride"]
    if not tf_same:
        conv3x3_args.append("padding=1")
    conv3x3_args += ["groups=groups", f"bias={helper_bias['arg']}"]
    conv1x1_args = ["in_planes", "out_planes", "kernel_size=1", "stride=stride", f"bias={helper_bias['arg']}"]

    return {
        "module_doc": _module_doc(compiled),
        "bn": _bn_view(graph),
        "l2": _l2_view(graph),
        "tf_same": tf_same,
        "zero_pad": any(b.shortcut == "zero_pad" for b in graph.graph["blocks"]),
        "conv3x3": {
            "signature": call_lines(
                "def conv3x3",
                [
                    "in_planes: int",
                    "out_planes: int",
                    "stride: int = 1",
                    "groups: int = 1",
                    *helper_bias["params"],
                ],
                0,
                f" -> {ctx.conv_class}:",
            ),
            "doc": docstring(
                [
                    '3x3 convolution with TensorFlow "same" padding.'
                    if tf_same
                    else "3x3 convolution, padding 1."
                ],
                4,
            ),
            "body": call_lines(f"return {ctx.conv_class}", conv3x3_args, 4),
        },
        "conv1x1": {
            "signature": call_lines(
                "def conv1x1",
                ["in_planes: int", "out_planes: int", "stride: int = 1", *helper_bias["params"]],
                0,
                " -> nn.Conv2d:",
            ),
            "doc": docstring(
                [
                    '1x1 convolution; TensorFlow "same" padding is none for a 1x1 at any stride.'
                    if tf_same
                    else "1x1 convolution."
                ],
                4,
            ),
            "body": call_lines("return nn.Conv2d", conv1x1_args, 4),
        },
        "block": block,
        "model": {
            "name": MODEL_CLASS,
            "docstring": docstring(
                [
                    f"{spec.name}: {_count(len(spec.stages), 'stage')} of {block['name']} blocks "
                    f"({', '.join(str(s.blocks) for s in spec.stages)}).",
                ],
                4,
            ),
            "in_planes": py(graph.graph["blocks"][0].in_channels),
            "stem_init": stem_init,
            "stem_forward": stem_forward,
            "head_init": head_init,
            "head_forward": head_forward,
            **stages,
        },
        "build_doc": docstring(
            [
                f"The network of spec {spec.name}, freshly initialized.",
                "channels_last=True stores the convolution weights in torch.channels_last (NHWC) "
                "memory format, often faster on GPUs and with oneDNN on CPUs; feed it inputs "
                "converted with ``x.to(memory_format=torch.channels_last)``. The function it "
                "computes is the same.",
            ],
            4,
        ),
        "fuse": _fuse_view(graph, block["name"]),
    }
