"""Keras 3 backend: the view model of templates/keras/ for one compiled spec.

The generated module uses only ``keras`` (layers, ops, regularizers, saving), so it runs on the
TensorFlow, JAX and torch backends. It is a functional model, channels last, with
keras.applications' layer names (`resgen.naming.keras_name`), so weights saved from
keras.applications' ResNets load by name.

Structure of the output: the stem and the head are written layer by layer in ``build_model``; every
residual block is one call of a single block function, and the blocks of a stage that share their
arguments are one ``for`` loop, so the file grows with the number of stages, not with depth.

Everything printed is code text made here: layer calls come from `HANDLERS` (one per op kind of the
graph), and the block function is written from the graph's nodes of every block, then checked: all
blocks must produce the same statements, or rendering fails instead of guessing.

Padding rules (DESIGN.md, "Padding is explicit"):

- 1x1 convolutions need none (``"valid"``, the default);
- a spec asking for TensorFlow "same" (``padding_mode == "tf_same"``) gets ``padding="same"``;
- a convolution that can carry a stride gets ``ZeroPadding2D`` + ``"valid"``: symmetric, as the graph
  says (keras.applications V2 does this for every 3x3 of a block);
- a stride-1 convolution gets ``padding="same"``, which is symmetric k // 2 for odd kernels
  (keras.applications V1 does this for its 3x3);
- max-pooling pads with zeros (the graph's semantics) through ``ZeroPadding2D`` + ``"valid"``.
"""

from __future__ import annotations

import textwrap
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from resgen.compiler import Compiled
from resgen.lower import OPS, BlockInfo, block_nodes, inputs_of, layers
from resgen.naming import keras_name, keras_pad_name

template = "keras/model.py.j2"
allowed_imports = frozenset({"keras", "sys"})

LINE_LENGTH = 88  # ruff's default: the generated file is formatted for it
# Keras builds, calls and saves functional models by walking their graph recursively, about one
# Python frame per layer. Networks deeper than this raise the interpreter's limit (default 1000).
DEEP_LAYERS = 600
DATA_FORMAT = '"channels_last"'


class KerasBackendError(Exception):
    """The graph holds something this backend cannot write faithfully (a bug, not a spec error)."""


# --- literals: validated values turned into code text ---------------------------------------------


def py(value: Any) -> str:
    """Code text of a validated value, formatted as ruff formats it (double-quoted strings)."""
    if isinstance(value, str):
        return py_str(value)
    if isinstance(value, tuple):
        inner = ", ".join(py(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, bool | int | float) or value is None:
        return repr(value)
    raise KerasBackendError(f"no literal for {value!r}")


def py_str(value: str) -> str:
    """A string literal; double quotes unless the text holds more double than single quotes."""
    quote = "'" if value.count('"') > value.count("'") else '"'
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == quote:
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(repr(ch)[1:-1])
    return quote + "".join(out) + quote


def call(func: str, args: list[str], *, indent: int, target: str = "", tail: str = "") -> list[str]:
    """``target = func(args)tail`` formatted as ruff formats it.

    On one line if it fits; else, for a plain call, the arguments on one indented line if they fit
    there; else one argument per line with a trailing comma, which ruff's formatter keeps.
    """
    head = f"{target} = {func}(" if target else f"{func}("
    joined = ", ".join(args)
    if indent + len(head) + len(joined) + 1 + len(tail) <= LINE_LENGTH:
        return [f"{head}{joined}){tail}"]
    if not tail and indent + 4 + len(joined) <= LINE_LENGTH:
        return [head, f"    {joined}", ")"]
    return [head, *(f"    {arg}," for arg in args), f"){tail}"]


def _description(text: str) -> list[str]:
    """``DESCRIPTION = "..."``, split into adjacent literals in parentheses where it is long.

    Pieces break after a space where they can; ruff picks each piece's quotes on its own, so
    `py_str` does too.
    """
    literal = py_str(text)
    if len("DESCRIPTION = ") + len(literal) <= LINE_LENGTH:
        return [f"DESCRIPTION = {literal}"]
    room = LINE_LENGTH - 4
    pieces: list[str] = []
    rest = text
    while rest:
        cut = 1
        while cut < len(rest) and len(py_str(rest[: cut + 1])) <= room:
            cut += 1
        if cut < len(rest) and " " in rest[1:cut]:
            cut = rest.rindex(" ", 1, cut) + 1
        pieces.append(rest[:cut])
        rest = rest[cut:]
    return ["DESCRIPTION = (", *(f"    {py_str(piece)}" for piece in pieces), ")"]


def doc_lines(text: str, *, indent: int, hang: int = 0) -> list[str]:
    """A docstring paragraph wrapped to the line length; continuation lines indented by `hang`."""
    return textwrap.wrap(
        text, width=LINE_LENGTH - indent, subsequent_indent=" " * hang, break_on_hyphens=False
    )


# --- where a layer is written: build_model's straight code, or the block function -----------------


@dataclass
class Site(ABC):
    """How a handler writes a layer at one place: its name, input and output variables, values."""

    graph: nx.DiGraph
    indent: int

    @abstractmethod
    def name(self, node: str) -> str:
        """Code text of the layer's name."""

    @abstractmethod
    def pad_name(self, node: str) -> str:
        """Code text of the name of the ZeroPadding2D in front of the layer."""

    @abstractmethod
    def src(self, node: str, index: int = 0) -> str:
        """The variable holding the layer's `index`-th input."""

    @abstractmethod
    def dst(self, node: str) -> str:
        """The variable the layer's output is assigned to."""

    def channels(self, node: str) -> str:
        """Code text of a convolution's output channels."""
        return py(self.graph.nodes[node]["out_channels"])

    def stride(self, node: str) -> str:
        return py(self.graph.nodes[node]["stride"])

    def may_stride(self, node: str) -> bool:
        """Whether the layer written here can carry a stride > 1 (then its padding is explicit)."""
        return bool(self.graph.nodes[node]["stride"] > 1)


@dataclass
class StraightSite(Site):
    """The stem and the head: written once each in ``build_model``, names as literals."""

    def name(self, node: str) -> str:
        return py(keras_layer_name(self.graph, node))

    def pad_name(self, node: str) -> str:
        return py(keras_pad_name(keras_layer_name(self.graph, node)))

    def src(self, node: str, index: int = 0) -> str:
        producer = inputs_of(self.graph, node)[index]
        return "inputs" if self.graph.nodes[producer]["op"] == "input" else "x"

    def dst(self, node: str) -> str:
        return "inputs" if self.graph.nodes[node]["op"] == "input" else "x"


# Tensors inside the block function: the block input ``x``, its pre-activation, the residual branch
# F(x), the shortcut ("skip"), and ``x`` again from the addition on.
_PREACT_ROLES = ("preact_bn", "preact_relu")
_TAIL_ROLES = ("add", "out_relu")


def _tensor_of(role: str) -> str:
    if role in _PREACT_ROLES:
        return "preact"
    if role.startswith("shortcut_"):
        return "skip"
    if role in _TAIL_ROLES:
        return "x"
    return "residual"


@dataclass
class BlockSite(Site):
    """One block, written as the body of the block function: names are f-strings on ``name``,
    channel counts and strides are the function's parameters, checked against `BlockInfo`."""

    info: BlockInfo = field(default=None)  # type: ignore[assignment]
    prefix: str = ""
    channel_params: dict[str, str] = field(default_factory=dict)  # role -> "width" / "filters"
    stride_roles: frozenset[str] = frozenset()

    def _suffix(self, layer_name: str) -> str:
        if not layer_name.startswith(self.prefix + "_"):
            raise KerasBackendError(f"layer {layer_name} does not start with its block's {self.prefix}")
        return layer_name[len(self.prefix) :]

    def name(self, node: str) -> str:
        return f'f"{{name}}{self._suffix(keras_layer_name(self.graph, node))}"'

    def pad_name(self, node: str) -> str:
        return f'f"{{name}}{self._suffix(keras_pad_name(keras_layer_name(self.graph, node)))}"'

    def src(self, node: str, index: int = 0) -> str:
        data = self.graph.nodes[node]
        if data["role"] == "add" and index == 1:
            return "skip"  # every shortcut branch, the identity included, ends in `skip`
        producer = inputs_of(self.graph, node)[index]
        pdata = self.graph.nodes[producer]
        if (pdata["stage"], pdata["block"]) != (data["stage"], data["block"]):
            return "x"  # the block's input
        return _tensor_of(pdata["role"])

    def dst(self, node: str) -> str:
        return _tensor_of(self.graph.nodes[node]["role"])

    def channels(self, node: str) -> str:
        role = self.graph.nodes[node]["role"]
        param = self.channel_params[role]
        expected = self.info.width if param == "width" else self.info.out_channels
        if self.graph.nodes[node]["out_channels"] != expected:
            raise KerasBackendError(f"{node}: output channels are not the block's {param}")
        return param

    def stride(self, node: str) -> str:
        data = self.graph.nodes[node]
        if data["role"] in self.stride_roles:
            if data["stride"] != self.info.stride:
                raise KerasBackendError(f"{node}: stride {data['stride']} is not the block's")
            return "stride"
        if data["stride"] != 1:
            raise KerasBackendError(f"{node}: stride {data['stride']} in a role that never strides")
        return "1"

    def may_stride(self, node: str) -> bool:
        return self.graph.nodes[node]["role"] in self.stride_roles


# --- handlers: one per op kind; each returns the statements that write one graph node ------------


def _layer(site: Site, node: str, func: str, args: list[str], *, src: str | None = None) -> list[str]:
    """``dst = func(args)(src)``: one Keras layer applied to the node's input."""
    tail = f"({src if src is not None else site.src(node)})"
    return call(func, args, indent=site.indent, target=site.dst(node), tail=tail)


def _regularizer(node: dict[str, Any]) -> list[str]:
    return [f"kernel_regularizer=keras.regularizers.L2({py(node['l2'])})"] if node["l2"] > 0 else []


def _zero_padding(site: Site, node: str, pads: tuple[tuple[int, int], tuple[int, int]]) -> list[str]:
    args = [f"padding={py(pads)}", f"data_format={DATA_FORMAT}", f"name={site.pad_name(node)}"]
    return _layer(site, node, "layers.ZeroPadding2D", args)


def _input(site: Site, node: str) -> list[str]:
    return [f"{site.dst(node)} = keras.Input(shape=input_shape, name={site.name(node)})"]


def _conv2d(site: Site, node: str) -> list[str]:
    data = site.graph.nodes[node]
    k, pads = data["kernel_size"], data["padding"]
    lines: list[str] = []
    src = site.src(node)
    padding = None
    if k == 1:
        if pads != ((0, 0), (0, 0)):
            raise KerasBackendError(f"{node}: a 1x1 convolution with padding {pads}")
    elif data["padding_mode"] == "tf_same":
        padding = '"same"'  # the spec asks for TensorFlow's "same", asymmetric where it must be
    elif site.may_stride(node):
        lines += _zero_padding(site, node, pads)
        src = site.dst(node)
    else:
        if pads != ((k // 2, k // 2), (k // 2, k // 2)):
            raise KerasBackendError(f"{node}: padding {pads} is not 'same' for a {k}x{k} kernel")
        padding = '"same"'  # stride 1, odd kernel: symmetric k // 2
    args = [site.channels(node), py(k)]
    stride = site.stride(node)
    if stride != "1":
        args.append(f"strides={stride}")
    if padding:
        args.append(f"padding={padding}")
    if data["groups"] != 1:
        args.append(f"groups={py(data['groups'])}")
    args += [f"data_format={DATA_FORMAT}", f"use_bias={py(data['bias'])}", *_regularizer(data)]
    args.append(f"name={site.name(node)}")
    return lines + _layer(site, node, "layers.Conv2D", args, src=src)


def _batch_norm(site: Site, node: str) -> list[str]:
    data = site.graph.nodes[node]
    args = ["axis=-1", f"epsilon={py(data['epsilon'])}", f"momentum={py(data['momentum'])}"]
    args.append(f"name={site.name(node)}")
    return _layer(site, node, "layers.BatchNormalization", args)


def _relu(site: Site, node: str) -> list[str]:
    args = ['"relu"', f"name={site.name(node)}"]
    return _layer(site, node, "layers.Activation", args)


def _max_pool(site: Site, node: str) -> list[str]:
    data = site.graph.nodes[node]
    p = data["padding"]
    lines: list[str] = []
    src = site.src(node)
    if p:
        lines += _zero_padding(site, node, ((p, p), (p, p)))  # zeros: the graph's semantics
        src = site.dst(node)
    # strides always spelled out: Keras' default stride is the pool size, not 1
    args = [py(data["kernel_size"]), f"strides={site.stride(node)}"]
    args += [f"data_format={DATA_FORMAT}", f"name={site.name(node)}"]
    return lines + _layer(site, node, "layers.MaxPooling2D", args, src=src)


def _avg_pool(site: Site, node: str) -> list[str]:
    data = site.graph.nodes[node]
    args = [py(data["kernel_size"]), f"strides={py(data['stride'])}", f"data_format={DATA_FORMAT}"]
    args.append(f"name={site.name(node)}")
    return _layer(site, node, "layers.AveragePooling2D", args)


def _global_avg_pool(site: Site, node: str) -> list[str]:
    args = [f"data_format={DATA_FORMAT}", f"name={site.name(node)}"]
    return _layer(site, node, "layers.GlobalAveragePooling2D", args)


def _flatten(site: Site, node: str) -> list[str]:
    args = [f"data_format={DATA_FORMAT}", f"name={site.name(node)}"]
    return _layer(site, node, "layers.Flatten", args)


def _dropout(site: Site, node: str) -> list[str]:
    args = [py(site.graph.nodes[node]["rate"]), f"name={site.name(node)}"]
    return _layer(site, node, "layers.Dropout", args)


def _dense(site: Site, node: str) -> list[str]:
    data = site.graph.nodes[node]
    args = [py(data["out_features"])]
    if _fused_softmax(site.graph, node):
        args.append('activation="softmax"')  # fused, as keras.applications does
    args += [f"use_bias={py(data['bias'])}", *_regularizer(data), f"name={site.name(node)}"]
    return _layer(site, node, "layers.Dense", args)


def _softmax(site: Site, node: str) -> list[str]:
    (producer,) = inputs_of(site.graph, node)
    if site.graph.nodes[producer]["op"] != "dense":
        raise KerasBackendError(f"{node}: a softmax after {producer}, which is not a dense layer")
    return []  # written by the dense layer: Dense(..., activation="softmax")


def _add(site: Site, node: str) -> list[str]:
    args = [f"name={site.name(node)}"]
    return _layer(site, node, "layers.Add", args, src=f"[{site.src(node, 0)}, {site.src(node, 1)}]")


def _zero_pad_shortcut(site: Site, node: str) -> list[str]:
    data = site.graph.nodes[node]
    if isinstance(site, BlockSite):
        extra = site.info.out_channels - site.info.in_channels
        if (data["pad_before"], data["pad_after"]) != (extra // 2, extra - extra // 2):
            raise KerasBackendError(f"{node}: channel padding is not split as the block function splits it")
        lines = ["extra = filters - x.shape[-1]  # new channels: half before, half after"]
        pads = ["pad_before=extra // 2", "pad_after=extra - extra // 2"]
    else:
        lines, pads = [], [f"pad_before={py(data['pad_before'])}", f"pad_after={py(data['pad_after'])}"]
    args = [f"stride={site.stride(node)}", *pads, f"name={site.name(node)}"]
    return lines + _layer(site, node, "ZeroPadShortcut", args)


Handler = Callable[[Site, str], list[str]]

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
assert set(HANDLERS) == set(OPS), "the Keras backend needs a handler for every op kind"


def _fused_softmax(graph: nx.DiGraph, node: str) -> bool:
    consumers = list(graph.successors(node))
    return len(consumers) == 1 and graph.nodes[consumers[0]]["op"] == "softmax"


def _preactivation(graph: nx.DiGraph) -> bool:
    return bool(graph.graph["spec"].block.preactivation)


def keras_layer_name(graph: nx.DiGraph, node: str) -> str:
    """Name of the Keras layer that computes a graph node (a fused softmax: its dense layer)."""
    data = graph.nodes[node]
    if data["op"] == "softmax":
        (producer,) = inputs_of(graph, node)
        return keras_layer_name(graph, producer)
    return keras_name(data, preactivation=_preactivation(graph))


def keras_layer_names(graph: nx.DiGraph) -> dict[str, str]:
    """Every graph node's Keras layer name: for weight transfer, shape checks and parity."""
    return {node: keras_layer_name(graph, node) for node in layers(graph)}


# --- the block function ---------------------------------------------------------------------------

_SHORTCUT_ORDER = ("projection", "max_pool", "zero_pad", "identity")


@dataclass
class BlockPlan:
    """The block function of one network, and the per-block facts its calls pass."""

    site_args: dict[str, Any]
    preact: list[str]
    main: list[str]
    branches: dict[str, list[str]]
    tail: list[str]
    roles: dict[str, str]  # role -> a node of that role (the first block that has it)


def block_name(graph: nx.DiGraph, nodes: list[str]) -> str:
    """keras.applications' block prefix, such as conv3_block1, from the block's addition."""
    (add,) = [n for n in nodes if graph.nodes[n]["role"] == "add"]
    return keras_layer_name(graph, add).rpartition("_")[0]


def _plan_block(graph: nx.DiGraph) -> BlockPlan:
    blocks: list[BlockInfo] = graph.graph["blocks"]
    by_block = block_nodes(graph)
    conv_roles: dict[str, list[tuple[BlockInfo, dict[str, Any]]]] = {}
    roles: dict[str, str] = {}
    for info in blocks:
        for name in by_block[(info.stage, info.block)]:
            data = graph.nodes[name]
            roles.setdefault(data["role"], name)
            if data["op"] in ("conv2d", "max_pool", "zero_pad_shortcut"):
                conv_roles.setdefault(data["role"], []).append((info, data))

    # Which parameter gives each convolution's output channels, and which layers carry the stride.
    channel_params: dict[str, str] = {}
    stride_roles: set[str] = set()
    for role, seen in conv_roles.items():
        if all(d["stride"] == i.stride for i, d in seen) and any(d["stride"] > 1 for _, d in seen):
            stride_roles.add(role)
        if "out_channels" not in seen[0][1]:
            continue
        if all(d["out_channels"] == i.out_channels for i, d in seen):
            channel_params[role] = "filters"
        elif all(d["out_channels"] == i.width for i, d in seen):
            channel_params[role] = "width"
        else:
            raise KerasBackendError(f"{role}: output channels are neither the block's width nor its filters")
    site_args = {"channel_params": channel_params, "stride_roles": frozenset(stride_roles)}

    plan: BlockPlan | None = None
    for info in blocks:
        nodes = by_block[(info.stage, info.block)]
        site = BlockSite(graph, 8, info=info, prefix=block_name(graph, nodes), **site_args)
        parts: dict[str, list[str]] = {"preact": [], "main": [], "skip": [], "tail": []}
        for name in nodes:
            role = graph.nodes[name]["role"]
            part = {"preact": "preact", "residual": "main", "skip": "skip", "x": "tail"}[_tensor_of(role)]
            site.indent = 8 if part == "skip" else 4  # shortcut branches sit inside an if
            parts[part] += HANDLERS[graph.nodes[name]["op"]](site, name)
        if info.shortcut == "identity":
            if parts["skip"]:
                raise KerasBackendError(f"{site.prefix}: an identity shortcut with layers")
            parts["skip"] = ["skip = x"]
        if plan is None:
            plan = BlockPlan(site_args, parts["preact"], parts["main"], {}, parts["tail"], roles)
        same = (parts["preact"], parts["main"], parts["tail"]) == (plan.preact, plan.main, plan.tail)
        known = plan.branches.setdefault(info.shortcut, parts["skip"])
        if not same or known != parts["skip"]:
            raise KerasBackendError(f"block {site.prefix} differs from the others in its statements")
    if plan is None:
        raise KerasBackendError("a network without residual blocks")
    return plan


def _describe_shortcut(graph: nx.DiGraph, kind: str, roles: dict[str, str]) -> str:
    if kind == "projection":
        conv = roles["shortcut_conv"]
        source = graph.nodes[inputs_of(graph, conv)[0]]["role"]
        text = "a 1x1 convolution"
        if "shortcut_bn" in roles:
            text += " and BatchNorm"
        return text + (" of the pre-activated input" if source == "preact_relu" else " of the input")
    return {
        "identity": "the input itself",
        "max_pool": "the input subsampled by a 1x1 max-pool",
        "zero_pad": "the input subsampled, with zero channels added (option A)",
    }[kind]


def _block_view(graph: nx.DiGraph, plan: BlockPlan) -> dict[str, Any]:
    roles = plan.roles
    bottleneck = "conv3" in roles
    kind = "bottleneck" if bottleneck else "basic"
    preactivation = "preact_bn" in roles
    uses_width = "width" in plan.site_args["channel_params"].values()
    strides = bool(plan.site_args["stride_roles"])
    params = [("width: int", uses_width), ("filters: int", True), ("stride: int", strides)]
    params += [("shortcut: str", True), ("name: str", True)]

    summary = f"{'Pre-activation b' if preactivation else 'B'}{kind[1:]} residual block"
    summary += ": 1x1, 3x3 and 1x1 convolutions." if bottleneck else ": two 3x3 convolutions."
    kinds = [k for k in _SHORTCUT_ORDER if k in plan.branches]
    stride_roles = plan.site_args["stride_roles"]
    carriers = sorted(_suffix(graph, roles[r]) for r in stride_roles if not r.startswith("shortcut_"))
    args = [("x", "Block input, channels last.")]
    if uses_width:
        args.append(("width", "Channels of the inner convolutions."))
    args.append(("filters", "Output channels of the block."))
    if strides:
        on = f"{' and '.join(carriers)} and the shortcut" if carriers else "the shortcut"
        args.append(("stride", f"Stride of the block, carried by {on}."))
    options = "; ".join(f'"{k}": {_describe_shortcut(graph, k, roles)}' for k in kinds)
    args.append(("shortcut", f"How the input reaches the addition: {options}."))
    args.append(("name", 'Prefix of the layer names, such as "conv2_block1".'))
    if len(summary) + 7 > LINE_LENGTH:
        raise KerasBackendError(f"docstring summary too long: {summary}")
    doc = ["    Args:"]
    for arg, text in args:
        doc += [f"        {line}" for line in doc_lines(f"{arg}: {text}", indent=8, hang=4)]
    doc += ["", "    Returns:", "        The block output."]

    branches = []
    for i, k in enumerate(kinds):
        keyword = "if" if i == 0 else "elif"
        branches.append({"test": f'{keyword} shortcut == "{k}":', "lines": plan.branches[k]})
    return {
        "function": f"{kind}_block",
        "params": [p for p, used in params if used],
        "summary": summary,
        "doc": doc,
        "preact": plan.preact,
        "main": plan.main,
        "branches": branches,
        "tail": plan.tail,
        "uses_zero_pad": "zero_pad" in plan.branches,
    }


def _suffix(graph: nx.DiGraph, node: str) -> str:
    """A block layer's name without its block prefix: conv3_block1_2_conv -> _2_conv."""
    data = graph.nodes[node]
    prefix = block_name(graph, block_nodes(graph)[(data["stage"], data["block"])])
    return keras_layer_name(graph, node).removeprefix(prefix)


# --- stages: runs of blocks that share their arguments ----------------------------------------------


def _stage_views(graph: nx.DiGraph, block: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[BlockInfo] = graph.graph["blocks"]
    by_block = block_nodes(graph)
    stages: dict[int, list[BlockInfo]] = {}
    for info in blocks:
        stages.setdefault(info.stage, []).append(info)
    names = {p.split(":")[0] for p in block["params"]}
    views = []
    for stage, infos in stages.items():
        first = block_name(graph, by_block[(stage, infos[0].block)])
        prefix = first.removesuffix(str(infos[0].block))
        runs: list[list[BlockInfo]] = []
        for info in infos:
            if block_name(graph, by_block[(stage, info.block)]) != f"{prefix}{info.block}":
                raise KerasBackendError(f"stage {stage}: block names do not follow {prefix}N")
            if runs and _block_args(runs[-1][-1], names) == _block_args(info, names):
                runs[-1].append(info)
            else:
                runs.append([info])
        run_views = []
        for run in runs:
            args = _block_args(run[0], names)
            if len(run) == 1:
                name = f'name="{prefix}{run[0].block}"'
                lines = call(block["function"], ["x", *args, name], indent=4, target="x")
                run_views.append({"is_loop": False, "loop": "", "lines": lines})
            else:
                loop = f"for i in range({run[0].block}, {run[-1].block + 1}):"
                lines = call(block["function"], ["x", *args, f'name=f"{prefix}{{i}}"'], indent=8, target="x")
                run_views.append({"is_loop": True, "loop": loop, "lines": lines})
        last = infos[-1]
        strides = sorted({i.stride for i in infos})
        stride = "stride 1" if strides == [1] else f"stride {max(strides)}"
        if len(infos) > 1 and strides != [1]:
            where = [i.block for i in infos if i.stride != 1]
            stride += f" in block {', '.join(str(b) for b in where)}"
        count = f"{len(infos)} block{'s' if len(infos) > 1 else ''}"
        comment = f"# Stage {stage} ({prefix}*): {count}, {last.out_channels} channels, {stride}."
        views.append({"comment": comment, "runs": run_views})
    return views


def _block_args(info: BlockInfo, names: set[str]) -> list[str]:
    args = []
    if "width" in names:
        args.append(f"width={py(info.width)}")
    args.append(f"filters={py(info.out_channels)}")
    if "stride" in names:
        args.append(f"stride={py(info.stride)}")
    args.append(f"shortcut={py(info.shortcut)}")
    return args


# --- the view model --------------------------------------------------------------------------------


def view_model(compiled: Compiled) -> dict[str, Any]:
    """Every value templates/keras/model.py.j2 prints, as code text."""
    graph = compiled.graph
    spec = compiled.spec
    straight = StraightSite(graph, 4)
    stem: list[str] = []
    head: list[str] = []
    for name in layers(graph):
        data = graph.nodes[name]
        if data["scope"] in ("input", "stem"):
            stem += HANDLERS[data["op"]](straight, name)
        elif data["scope"] == "head":
            head += HANDLERS[data["op"]](straight, name)
    block = _block_view(graph, _plan_block(graph))
    inp = graph.nodes["input"]
    depth = nx.dag_longest_path_length(graph)
    return {
        "deep": depth > DEEP_LAYERS,
        "depth": py(depth),
        "recursion_limit": py(1000 * -(-(2 * depth + 1000) // 1000)),
        "title": f"{spec.name}: a residual network for Keras 3, generated by resgen.",
        "description": _description(spec.description),
        "input_shape": py((inp["height"], inp["width"], inp["channels"])),
        "zero_pad_layer": block["uses_zero_pad"],
        "block": block,
        "stem": stem,
        "stages": _stage_views(graph, block),
        "head": head,
        "model_name": py(spec.name),
    }
