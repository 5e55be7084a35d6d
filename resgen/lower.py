"""Stage 3: lower a validated `Spec` into a layer graph.

The graph is a `networkx.DiGraph` whose nodes are layers and whose edges are tensors. Node keys are
canonical names (``stem.conv``, ``stage2.block1.conv2``, ``stage2.block1.shortcut_conv``,
``head.fc``); the weight names of both targets derive from them (see `resgen.naming`). Every node
carries:

- ``op``: one of `OPS`; its attributes are listed there.
- ``scope`` (``input``/``stem``/``stage``/``head``), ``stage`` and ``block`` (1-based, or None), ``role``.
- ``origin``: the spec field path responsible for the layer, so later errors can point at the spec.

Edges carry ``index``, the argument position of the tensor in the consumer (``add`` takes the
residual branch as 0 and the shortcut as 1). The graph also records ``spec`` and ``blocks``
(a `BlockInfo` per residual block, in order) as graph attributes.

All decisions about structure (which block carries the stride, which shortcut a block needs, which
convolution has a bias) happen here; the passes compute shapes and counts; the backends only render.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx

from resgen.errors import Path
from resgen.spec import BottleneckBlock, ProjectionShortcut, Spec, ZeroPadShortcut

# Every op kind the graph can hold, with the attributes lowering sets. Backends must handle all.
OPS: dict[str, tuple[str, ...]] = {
    "input": ("channels", "height", "width"),
    "conv2d": (
        "in_channels",
        "out_channels",
        "kernel_size",
        "stride",
        "padding_mode",
        "groups",
        "bias",
        "l2",
    ),
    "batch_norm": ("channels", "epsilon", "momentum"),
    "relu": (),
    "max_pool": ("kernel_size", "stride", "padding", "input_nonnegative"),
    "avg_pool": ("kernel_size", "stride"),
    "global_avg_pool": (),
    "flatten": (),
    "dropout": ("rate",),
    "dense": ("out_features", "bias", "l2"),
    "softmax": (),
    "add": (),
    "zero_pad_shortcut": ("stride", "pad_before", "pad_after"),
}

SHORTCUT_KINDS = ("identity", "projection", "max_pool", "zero_pad")


@dataclass(frozen=True)
class BlockInfo:
    """Facts about one residual block that both targets need to write block classes."""

    stage: int
    block: int
    in_channels: int
    width: int  # inner width of a bottleneck; out_channels for a basic block
    out_channels: int
    stride: int
    shortcut: str  # one of SHORTCUT_KINDS

    @property
    def prefix(self) -> str:
        return f"stage{self.stage}.block{self.block}"


class _Builder:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.graph = nx.DiGraph(name=spec.name, spec=spec, blocks=[])
        self.scope: dict[str, Any] = {"scope": "input", "stage": None, "block": None}

    def add(self, name: str, op: str, inputs: tuple[str, ...], origin: Path, **attrs: Any) -> str:
        missing = set(OPS[op]) - set(attrs)
        assert not missing, f"{op} {name} lacks {missing}"
        role = name.rsplit(".", 1)[-1]
        self.graph.add_node(name, op=op, role=role, origin=origin, **self.scope, **attrs)
        for index, source in enumerate(inputs):
            self.graph.add_edge(source, name, index=index)
        return name

    def conv(
        self,
        name: str,
        x: str,
        origin: Path,
        *,
        cin: int,
        cout: int,
        k: int,
        stride: int = 1,
        groups: int = 1,
    ) -> str:
        return self.add(
            name,
            "conv2d",
            (x,),
            origin,
            in_channels=cin,
            out_channels=cout,
            kernel_size=k,
            stride=stride,
            padding_mode=self.spec.padding,
            groups=groups,
            bias=self.spec.conv_bias == "all",  # "unnormalized" is settled in _settle_bias
            l2=self.spec.regularization.l2,
        )

    def bn(self, name: str, x: str, channels: int, origin: Path) -> str:
        norm = self.spec.norm
        return self.add(
            name, "batch_norm", (x,), origin, channels=channels, epsilon=norm.epsilon, momentum=norm.momentum
        )

    def relu(self, name: str, x: str, origin: Path) -> str:
        return self.add(name, "relu", (x,), origin)


def lower(spec: Spec) -> nx.DiGraph:
    """Build the layer graph of `spec`."""
    b = _Builder(spec)
    x = b.add(
        "input",
        "input",
        (),
        ("input",),
        channels=spec.input.channels,
        height=spec.input.height,
        width=spec.input.width,
    )
    x, channels = _stem(b, x)
    for s, stage in enumerate(spec.stages, start=1):
        for i in range(1, stage.blocks + 1):
            b.scope = {"scope": "stage", "stage": s, "block": i}
            x, channels = _block(b, x, channels, s, i)
    _head(b, x, channels)
    _settle_bias(b.graph)
    return b.graph


def _stem(b: _Builder, x: str) -> tuple[str, int]:
    stem = b.spec.stem
    b.scope = {"scope": "stem", "stage": None, "block": None}
    if stem.input_norm:
        x = b.bn("stem.input_bn", x, b.spec.input.channels, ("stem", "input_norm"))
    x = b.conv(
        "stem.conv",
        x,
        ("stem",),
        cin=b.spec.input.channels,
        cout=stem.filters,
        k=stem.kernel_size,
        stride=stem.stride,
    )
    if stem.norm:
        x = b.bn("stem.bn", x, stem.filters, ("stem", "norm"))
        x = b.relu("stem.relu", x, ("stem", "norm"))
    if stem.pool is not None:
        x = b.add(
            "stem.pool",
            "max_pool",
            (x,),
            ("stem", "pool"),
            kernel_size=stem.pool.kernel_size,
            stride=stem.pool.stride,
            padding=stem.pool.padding,
            input_nonnegative=stem.norm,
        )
    return x, stem.filters


def block_stride(spec: Spec, stage: int, block: int) -> int:
    """The stride of a block: the stage's stride on its first or last block, 1 elsewhere."""
    s = spec.stages[stage - 1]
    carrier = 1 if spec.block.stride_block == "first" else s.blocks
    return s.stride if block == carrier else 1


def shortcut_kind(spec: Spec, *, block: int, cin: int, cout: int, stride: int) -> str:
    """Which shortcut a block needs, from the spec's shortcut rule and the block's shape change."""
    changes = stride != 1 or cin != cout
    sc = spec.shortcut
    if isinstance(sc, ZeroPadShortcut):
        return "zero_pad" if changes else "identity"
    assert isinstance(sc, ProjectionShortcut)
    if sc.when == "first_block" and block == 1:
        return "projection"
    if not changes:
        return "identity"
    if cin == cout and sc.stride_only == "max_pool":
        return "max_pool"
    return "projection"


def _block(b: _Builder, x: str, cin: int, s: int, i: int) -> tuple[str, int]:
    spec = b.spec
    blk = spec.block
    stage = spec.stages[s - 1]
    at = ("stages", s - 1)
    p = f"stage{s}.block{i}"
    stride = block_stride(spec, s, i)
    cout = stage.filters * blk.expansion
    if isinstance(blk, BottleneckBlock):
        width = stage.filters * blk.width_per_group // 64 * blk.groups
    else:
        width = cout
    kind = shortcut_kind(spec, block=i, cin=cin, cout=cout, stride=stride)
    b.graph.graph["blocks"].append(BlockInfo(s, i, cin, width, cout, stride, kind))

    block_in = x
    if blk.preactivation:
        x = b.bn(f"{p}.preact_bn", x, cin, ("block", "preactivation"))
        x = b.relu(f"{p}.preact_relu", x, ("block", "preactivation"))
    preact = x

    if isinstance(blk, BottleneckBlock):
        s1, s2 = (stride, 1) if blk.stride_on == "conv1" else (1, stride)
        x = b.conv(f"{p}.conv1", x, at, cin=cin, cout=width, k=1, stride=s1)
        x = b.bn(f"{p}.bn1", x, width, at)
        x = b.relu(f"{p}.relu1", x, at)
        x = b.conv(f"{p}.conv2", x, at, cin=width, cout=width, k=3, stride=s2, groups=blk.groups)
        x = b.bn(f"{p}.bn2", x, width, at)
        x = b.relu(f"{p}.relu2", x, at)
        x = b.conv(f"{p}.conv3", x, at, cin=width, cout=cout, k=1)
        if not blk.preactivation:
            x = b.bn(f"{p}.bn3", x, cout, at)
    else:
        x = b.conv(f"{p}.conv1", x, at, cin=cin, cout=cout, k=3, stride=stride)
        x = b.bn(f"{p}.bn1", x, cout, at)
        x = b.relu(f"{p}.relu1", x, at)
        x = b.conv(f"{p}.conv2", x, at, cin=cout, cout=cout, k=3)
        if not blk.preactivation:
            x = b.bn(f"{p}.bn2", x, cout, at)

    shortcut = block_in
    sc_origin: Path = ("shortcut",)
    if kind == "projection":
        sc = spec.shortcut
        assert isinstance(sc, ProjectionShortcut)
        source = preact if sc.source == "preactivated" else block_in
        shortcut = b.conv(f"{p}.shortcut_conv", source, sc_origin, cin=cin, cout=cout, k=1, stride=stride)
        if sc.norm:
            shortcut = b.bn(f"{p}.shortcut_bn", shortcut, cout, ("shortcut", "norm"))
    elif kind == "max_pool":
        shortcut = b.add(
            f"{p}.shortcut_pool",
            "max_pool",
            (block_in,),
            ("shortcut", "stride_only"),
            kernel_size=1,
            stride=stride,
            padding=0,
            input_nonnegative=False,
        )
    elif kind == "zero_pad":
        extra = cout - cin
        if extra < 0:
            pad_before = pad_after = 0  # reported by the shape pass as a channel mismatch
        else:
            pad_before, pad_after = extra // 2, extra - extra // 2
        shortcut = b.add(
            f"{p}.shortcut_pad",
            "zero_pad_shortcut",
            (block_in,),
            ("shortcut", "kind"),
            stride=stride,
            pad_before=pad_before,
            pad_after=pad_after,
        )
    x = b.add(f"{p}.add", "add", (x, shortcut), at)
    if not blk.preactivation:
        x = b.relu(f"{p}.out_relu", x, at)
    return x, cout


def _head(b: _Builder, x: str, channels: int) -> None:
    head = b.spec.head
    b.scope = {"scope": "head", "stage": None, "block": None}
    if head.norm:
        x = b.bn("head.bn", x, channels, ("head", "norm"))
        x = b.relu("head.relu", x, ("head", "norm"))
    if head.kind == "pool_flatten":
        x = b.add(
            "head.pool",
            "avg_pool",
            (x,),
            ("head", "pool_size"),
            kernel_size=head.pool_size,
            stride=head.pool_size,
        )
        x = b.add("head.flatten", "flatten", (x,), ("head", "kind"))
    else:
        x = b.add("head.pool", "global_avg_pool", (x,), ("head", "kind"))
    if head.dropout > 0:
        x = b.add("head.dropout", "dropout", (x,), ("head", "dropout"), rate=head.dropout)
    x = b.add(
        "head.fc",
        "dense",
        (x,),
        ("head", "classes"),
        out_features=head.classes,
        bias=True,
        l2=b.spec.regularization.l2,
    )
    if head.output == "softmax":
        b.add("head.softmax", "softmax", (x,), ("head", "output"))


def _settle_bias(graph: nx.DiGraph) -> None:
    """conv_bias "unnormalized": a convolution has a bias unless every consumer is a BatchNorm."""
    spec: Spec = graph.graph["spec"]
    if spec.conv_bias != "unnormalized":
        return
    for name, data in graph.nodes(data=True):
        if data["op"] == "conv2d":
            consumers = [graph.nodes[c]["op"] for c in graph.successors(name)]
            data["bias"] = not consumers or any(op != "batch_norm" for op in consumers)


def inputs_of(graph: nx.DiGraph, name: str) -> list[str]:
    """Producers of a node's inputs, in argument order."""
    preds = graph.in_edges(name, data="index")
    return [u for u, _, _ in sorted(preds, key=lambda e: e[2])]


def block_nodes(graph: nx.DiGraph) -> dict[tuple[int, int], list[str]]:
    """The layers of every residual block, keyed by (stage, block), in build order."""
    blocks: dict[tuple[int, int], list[str]] = {}
    for name in layers(graph):
        node = graph.nodes[name]
        if node["scope"] == "stage":
            blocks.setdefault((node["stage"], node["block"]), []).append(name)
    return blocks


def layers(graph: nx.DiGraph) -> list[str]:
    """Node names in the order lowering built them: a topological order, the same on every run."""
    return list(graph.nodes)
