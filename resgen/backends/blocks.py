"""What both backends do with residual blocks: one definition written for every block, then checked.

Each backend writes one block class (torch) or block function (Keras) and calls it once per block,
so a generated file grows with the number of stages, not with depth. A backend writes that
definition from the layers of every block in turn, with the block's channel counts and stride as
parameters (`resgen.graph.Layer.dims`, ``carries_stride``); `same_for_every_block` then requires
every block to give the same text, so a graph one definition cannot express fails to render
instead of rendering wrong.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from resgen.codegen import CodegenError
from resgen.graph import (
    BlockKind,
    BlockRecord,
    ChannelConv1d,
    DilationDim,
    Layer,
    LayerGraph,
    ShortcutKind,
)

T = TypeVar("T")

SHORTCUT_ORDER = (
    ShortcutKind.PROJECTION,
    ShortcutKind.POOLED_PROJECTION,
    ShortcutKind.DILATED_POOLED_PROJECTION,
    ShortcutKind.WIDE_PROJECTION,
    ShortcutKind.MAX_POOL,
    ShortcutKind.ZERO_PAD,
    ShortcutKind.IDENTITY,
)

# The layers of each shortcut kind, by role.
SHORTCUT_ROLES = {
    ShortcutKind.IDENTITY: (),
    ShortcutKind.PROJECTION: ("shortcut_conv", "shortcut_bn"),
    ShortcutKind.POOLED_PROJECTION: ("shortcut_pool", "shortcut_conv", "shortcut_bn"),
    ShortcutKind.DILATED_POOLED_PROJECTION: ("shortcut_pool", "shortcut_conv", "shortcut_bn"),
    ShortcutKind.WIDE_PROJECTION: ("shortcut_conv", "shortcut_bn"),
    ShortcutKind.MAX_POOL: ("shortcut_pool",),
    ShortcutKind.ZERO_PAD: ("shortcut_pad",),
}


# The shortcut kinds that end in a convolution (and BatchNorm).
PROJECTIONS = (
    ShortcutKind.PROJECTION,
    ShortcutKind.POOLED_PROJECTION,
    ShortcutKind.DILATED_POOLED_PROJECTION,
    ShortcutKind.WIDE_PROJECTION,
)


@dataclass(frozen=True)
class BlockParameters:
    """Which parameters the shared definition takes."""

    width: bool  # some layer's channels are a bottleneck's inner width
    stride_roles: frozenset[str]  # roles that carry the block's stride and stride somewhere
    # The parameter each block dilation is written as, where some block dilates (output_stride):
    # one `dilation` where the blocks' 3x3 convolutions share theirs (torchvision's Bottleneck),
    # else `first_dilation` and `dilation` (timm's BasicBlock). Empty where none dilates.
    dilations: tuple[tuple[DilationDim, str], ...] = ()

    @property
    def stride(self) -> bool:
        return bool(self.stride_roles)

    @property
    def dilation_names(self) -> list[str]:
        """The dilation parameters, in signature order."""
        return sorted({name for _, name in self.dilations}, key=lambda n: n != "first_dilation")

    def dilation_values(self, record: BlockRecord) -> dict[str, int]:
        """The value of every dilation parameter in one block."""
        values: dict[str, int] = {}
        for dim, name in self.dilations:
            value = record.first_dilation if dim is DilationDim.FIRST else record.dilation
            if values.setdefault(name, value) != value:
                raise CodegenError(f"block {record.prefix}: its 3x3 convolutions differ in dilation")
        return values


def parameters(graph: LayerGraph) -> BlockParameters:
    """The parameters of the shared definition; a layer that carries the stride but never strides
    (a projection only ever in stride-1 blocks) is written with stride 1."""
    layers = [x for ls in graph.block_layers().values() for x in ls]
    carriers = [x for x in layers if x.carries_stride]
    dilated = [x for x in layers if x.dilation is not None]
    dims = sorted({x.dilation for x in dilated if x.dilation is not None})
    dilations: tuple[tuple[DilationDim, str], ...] = ()
    if any(getattr(x.op, "dilation", 1) != 1 for x in dilated):
        shared = len(dims) == 1 or all(r.first_dilation == r.dilation for r in graph.blocks)
        dilations = tuple((dim, "dilation" if shared else str(dim)) for dim in dims)
    return BlockParameters(
        width=graph.network.block.kind is BlockKind.BOTTLENECK,
        stride_roles=frozenset(x.role for x in carriers if getattr(x.op, "stride", 1) > 1),
        dilations=dilations,
    )


def dilation_text(layer: Layer, params: BlockParameters) -> str:
    """The dilation of a block layer in the shared definition: its parameter, or 1."""
    return dict(params.dilations).get(layer.dilation, "1") if layer.dilation is not None else "1"


def kind_views(graph: LayerGraph) -> list[LayerGraph]:
    """One view of the graph per block kind, in stage order: the network with that kind's block
    design and only the blocks of the stages that use it (stages[i].block). A network of one kind
    is its own only view. Every backend writes one block definition per view."""
    net = graph.network
    if not net.stage_blocks:
        return [graph]
    views = []
    for design in dict.fromkeys(net.stage_blocks):
        stages = {s.index for s in net.stages if net.design(s.index) == design}
        view = copy.copy(graph)
        view.network = dataclasses.replace(
            net, block=design, blocks=tuple(r for r in net.blocks if r.stage in stages)
        )
        views.append(view)
    return views


def stage_kinds(graph: LayerGraph) -> list[int]:
    """The index in `kind_views` of the view each stage's blocks belong to, in stage order."""
    designs = [v.network.block for v in kind_views(graph)]
    return [designs.index(graph.network.design(s.index)) for s in graph.network.stages]


def is_shortcut(layer: Layer) -> bool:
    return layer.role.startswith("shortcut_")


# Roles of channel attention's layers (squeeze-and-excitation, ECA), and the torch module each
# attention is written as, keyed by its first layer.
ATTENTION_PREFIXES = ("se_", "eca_")
ATTENTION_MODULES = {"se_pool": "SqueezeExcite", "eca_pool": "EfficientChannelAttention"}


@dataclass(frozen=True)
class AntiAliasSite:
    """Where strided blocks put their anti-aliasing pool: after the layer of role `after`. Blocks
    that do not stride have none, so a shared definition writes it under a test of the stride."""

    pool: Layer  # one block's pool, to write the shared statement from
    after: str  # role of the layer it follows (the strided convolution's ReLU)


def anti_alias_site(graph: LayerGraph) -> AntiAliasSite | None:
    """The network's anti-aliasing pools, checked: exactly one in each strided block, the design's
    pool for that block's width and stride, always after the same layer. None without any."""
    design = graph.network.block.anti_alias
    pools = [x for ls in graph.block_layers().values() for x in ls if x.role == "aa"]
    if design is None or not pools:
        if pools:
            raise CodegenError("anti-aliasing pools in a network without anti-aliasing")
        return None
    layers = graph.block_layers()
    after = set()
    for record in graph.blocks:
        found = [x for x in layers[(record.stage, record.block)] if x.role == "aa"]
        if len(found) != (record.stride != 1):
            raise CodegenError(
                f"block {record.prefix}: {len(found)} anti-aliasing pools at stride {record.stride}"
            )
        for pool in found:
            channels = getattr(pool.op, "channels", record.width)
            if pool.op != design.op(channels, record.stride):
                raise CodegenError(f"{pool.name}: not the network's anti-aliasing pool")
            after.add(graph[graph.inputs(pool.name)[0]].role)
    if len(after) != 1:
        raise CodegenError(f"anti-aliasing pools follow different layers: {sorted(after)}")
    return AntiAliasSite(pools[0], after.pop())


def is_attention(layer: Layer) -> bool:
    """A layer of the block's channel attention (squeeze-and-excitation, ECA)."""
    return layer.role.startswith(ATTENTION_PREFIXES)


def attention_check(layer: Layer, record: BlockRecord) -> None:
    """An attention layer's size is the block's (ECA's kernel; SE widths are checked as channels)."""
    if isinstance(layer.op, ChannelConv1d) and layer.op.kernel_size != record.eca_kernel:
        raise CodegenError(f"{layer.name}: kernel size {layer.op.kernel_size} is not the block's")


def same_for_every_block(graph: LayerGraph, write: Callable[[BlockRecord, list[Layer]], T]) -> T:
    """`write` applied to every block; all results must be equal. Returns the first."""
    layers = graph.block_layers()
    first: T | None = None
    for record in graph.blocks:
        text = write(record, layers[(record.stage, record.block)])
        if first is None:
            first = text
        elif text != first:
            raise CodegenError(f"block {record.prefix} differs from the others in its statements")
    if first is None:
        raise CodegenError("a network without residual blocks")
    return first


def check_shortcut_layers(graph: LayerGraph) -> None:
    """Every block holds exactly the shortcut layers its kind builds."""
    layers = graph.block_layers()
    norm = graph.network.shortcut.norm
    for record in graph.blocks:
        expected = SHORTCUT_ROLES[record.shortcut]
        if record.shortcut in PROJECTIONS and not norm:
            expected = expected[:-1]
        roles = tuple(x.role for x in layers[(record.stage, record.block)] if is_shortcut(x))
        if roles != expected:
            raise CodegenError(f"block {record.prefix} has shortcut layers {roles}, expected {expected}")


def shortcut_sources(graph: LayerGraph) -> set[tuple[ShortcutKind, bool]]:
    """(shortcut kind, reads the pre-activated input) of every block with a shortcut layer."""
    layers = graph.block_layers()
    found = set()
    for record in graph.blocks:
        shortcut = [x for x in layers[(record.stage, record.block)] if is_shortcut(x)]
        if shortcut:
            (source,) = graph.inputs(shortcut[0].name)
            found.add((record.shortcut, graph[source].role == "preact_relu"))
    return found


def kinds_in_order(kinds: set[ShortcutKind]) -> list[ShortcutKind]:
    return [k for k in SHORTCUT_ORDER if k in kinds]


def first_width_check(graph: LayerGraph) -> None:
    """Every bottleneck's first 1x1 outputs width // reduce_first (timm's block_reduce_first), the rule
    the shared definition writes."""
    reduce_first = graph.network.block.reduce_first
    for record in graph.blocks:
        expected = record.width // reduce_first if reduce_first != 1 else None
        if record.first_width != expected:
            raise CodegenError(f"block {record.prefix}: first width {record.first_width} breaks the rule")


def channel_check(layer: Layer, record: BlockRecord) -> None:
    """A block layer's channel counts are the block's dimensions it claims."""
    if layer.dims is None:
        raise CodegenError(f"{layer.name}: a block layer without block dimensions")
    value = {
        "in": record.in_channels,
        "width": record.width,
        "first": record.first_width,
        "out": record.out_channels,
        "reduced": record.reduced,
    }
    channels = getattr(layer.op, "in_channels", getattr(layer.op, "channels", None))
    out = getattr(layer.op, "out_channels", getattr(layer.op, "channels", None))
    if channels is not None and channels != value[layer.dims[0]]:
        raise CodegenError(f"{layer.name}: input channels are not the block's {layer.dims[0]}")
    if out is not None and out != value[layer.dims[1]]:
        raise CodegenError(f"{layer.name}: output channels are not the block's {layer.dims[1]}")
    stride = getattr(layer.op, "stride", 1)
    if layer.carries_stride and stride != record.stride:
        raise CodegenError(f"{layer.name}: stride {stride} is not the block's")
    if not layer.carries_stride and stride != 1:
        raise CodegenError(f"{layer.name}: stride {stride} in a layer that does not carry the block's")
    dilation = getattr(layer.op, "dilation", 1)
    wanted = {None: 1, DilationDim.FIRST: record.first_dilation, DilationDim.REST: record.dilation}
    if dilation != wanted[layer.dilation]:
        raise CodegenError(f"{layer.name}: dilation {dilation} is not the block's {layer.dilation}")


def stride_text(layer: Layer, params: BlockParameters) -> str:
    """The stride of a block layer in the shared definition: the parameter, or 1."""
    return "stride" if layer.role in params.stride_roles else "1"
