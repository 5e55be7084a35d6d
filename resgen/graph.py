"""The layer graph: the one contract between lowering and every later stage.

Lowering (`resgen.lower`) makes every structural decision once and records it here as typed, frozen
data; the passes analyse it; the backends, the weight mapping, the reports and the parity harness
only read it. Nothing after lowering reads the spec.

- A `Layer` is one node: its canonical name (``stem.conv``, ``stage2.block1.conv2``,
  ``stage2.block1.shortcut_conv``, ``head.fc``), its op (one frozen dataclass per op kind, defined in
  `resgen.ops` and re-exported here, holding exactly that op's settings), where it sits (scope,
  stage, block, role) and the spec field that made it (``origin``, so errors point at the spec).
- Edges are tensors; an edge's ``index`` is the argument position in the consumer (an addition takes
  the residual branch as 0 and the shortcut as 1).
- The `Network` record holds what is decided once for the whole network: BatchNorm settings, L2 by
  role, initialization and drop-path rate (`resgen.graph_training`), padding convention, the block
  design, the shortcut rule, one `StageRecord` per stage and one `BlockRecord` per residual block.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import networkx as nx

from resgen.errors import Path
from resgen.graph_addons import AntiAliasDesign, EcaDesign, SqueezeExciteDesign
from resgen.graph_enums import (
    BlockDim,
    BlockKind,
    DilationDim,
    DilationRule,
    KerasLayerOrder,
    Scope,
    ShortcutKind,
    ShortcutSource,
    StrideBlock,
    TorchPaths,
)
from resgen.graph_training import Distribution, InitSettings, L2Settings
from resgen.ops import (
    OP_TYPES,
    OPS,
    Add,
    AvgPool,
    BatchNorm,
    BlurPool,
    ChannelConv1d,
    Conv2d,
    Dense,
    Dropout,
    DropPath,
    Flatten,
    GlobalAvgPool,
    GroupNorm,
    Input,
    MaxPool,
    Op,
    PadMode,
    PadValue,
    ReLU,
    Scale,
    Sigmoid,
    Softmax,
    ZeroPadShortcut,
)

# The op kinds are defined in resgen.ops and re-exported here, beside the layers that hold them.
__all__ = [
    "OPS",
    "OP_TYPES",
    "Add",
    "AntiAliasDesign",
    "AvgPool",
    "BatchNorm",
    "BlockDesign",
    "BlockDim",
    "BlockKind",
    "BlockRecord",
    "BlurPool",
    "ChannelConv1d",
    "Conv2d",
    "Dense",
    "DilationDim",
    "DilationRule",
    "Distribution",
    "DropPath",
    "Dropout",
    "EcaDesign",
    "Flatten",
    "GlobalAvgPool",
    "GroupNorm",
    "InitSettings",
    "Input",
    "KerasLayerOrder",
    "L2Settings",
    "Layer",
    "LayerGraph",
    "MaxPool",
    "Network",
    "NormSettings",
    "Op",
    "PadMode",
    "PadValue",
    "ReLU",
    "Scale",
    "Scope",
    "Shape",
    "ShortcutKind",
    "ShortcutRule",
    "ShortcutSource",
    "Sigmoid",
    "Softmax",
    "SqueezeExciteDesign",
    "StageRecord",
    "StrideBlock",
    "Tap",
    "TorchPaths",
    "ZeroPadShortcut",
    "format_shape",
]

Shape = tuple[int, ...]  # channels first: (C, H, W) for feature maps, (F,) for vectors


def format_shape(shape: Shape, sep: str = "x") -> str:
    """A shape as people read it: ``64x56x56`` (or with another separator, such as " x ")."""
    return sep.join(str(d) for d in shape)


# The classifier (a dense layer, or a 1x1 convolution): both targets take its output count as
# build_model(num_classes=...), the spec's head.classes by default.
CLASSIFIER = "head.fc"
# Every shape in resgen's JSON output (summary, parity, diff) is channels first, as torch writes it:
# (C, H, W) for a feature map, (C,) for a vector. The key says so in each document.
SHAPE_LAYOUT = "channels_first"


@dataclass(frozen=True)
class Layer:
    """One node of the graph."""

    name: str  # canonical name; both targets' names derive from it (resgen.naming)
    op: Op
    scope: Scope
    role: str  # the last part of the name: conv1, bn2, shortcut_conv, fc, ...
    origin: Path  # the spec field responsible for the layer
    stage: int | None = None  # 1-based, for layers in residual blocks
    block: int | None = None  # 1-based within the stage
    # In residual blocks: which block channel counts the layer reads and writes (a BatchNorm reads
    # and writes the same), and whether it carries the block's stride. Generated block classes and
    # functions take these as parameters, so one definition serves every block.
    dims: tuple[BlockDim, BlockDim] | None = None
    carries_stride: bool = False
    zero_init: bool = False  # its scale (a norm) or kernel (a convolution) starts at 0 (zero_init_last)
    dilation: DilationDim | None = None  # a block's 3x3 convolution: which block dilation it takes

    @property
    def kind(self) -> str:
        return self.op.kind

    @property
    def l2_role(self) -> str:
        """Which L2 override its kernel gets: stem, blocks, shortcuts or head."""
        if self.scope is Scope.STAGE:
            return "shortcuts" if self.role.startswith("shortcut_") else "blocks"
        return "head" if self.scope is Scope.HEAD else "stem"


# --- what is decided once for the whole network ------------------------------------------------------


@dataclass(frozen=True)
class NormSettings:
    """Settings of every normalization layer. Momentum (BatchNorm's) in Keras' convention."""

    epsilon: float
    momentum: float
    group: bool = False  # GroupNorm rather than BatchNorm
    groups: int = 32


@dataclass(frozen=True)
class BlockDesign:
    """The residual block every stage is built from."""

    kind: BlockKind
    preactivation: bool
    expansion: int
    groups: int  # of the 3x3 convolution (bottleneck)
    width_per_group: int  # inner width = planes * width_per_group // 64 * groups (bottleneck)
    stride_on: str  # role of the branch convolution that carries the block's stride
    stride_block: StrideBlock
    attention: SqueezeExciteDesign | EcaDesign | None = None
    reduce_first: int = 1  # a bottleneck's conv1 outputs width // reduce_first (timm)
    anti_alias: AntiAliasDesign | None = None  # in strided blocks, a pool carries the stride

    def inner_width(self, planes: int) -> int:
        if self.kind is BlockKind.BOTTLENECK:
            return planes * self.width_per_group // 64 * self.groups
        return planes * self.expansion


@dataclass(frozen=True)
class ShortcutRule:
    """How each block's shortcut is chosen (the spec's shortcut section, decided once)."""

    changing: ShortcutKind  # where the shape changes: PROJECTION or ZERO_PAD
    stride_only: ShortcutKind  # where only the resolution changes: PROJECTION or MAX_POOL (projections)
    first_block_projects: bool  # every stage's first block projects, even where the shape is kept
    norm: bool  # BatchNorm after a projection
    source: ShortcutSource  # what a projection reads
    avg_down: bool = False  # a projection in a strided block pools first (POOLED_PROJECTION)
    wide: bool = False  # a projection in a strided block is a 3x3 convolution (WIDE_PROJECTION)

    def choose(
        self, *, block: int, in_channels: int, out_channels: int, stride: int, dilation: int = 1
    ) -> ShortcutKind:
        """The shortcut of the `block`-th block of a stage with this shape change, in a stage of
        this dilation (timm pools a projection where the stage dilates, though it does not stride)."""
        changes = stride != 1 or in_channels != out_channels
        if self.changing is ShortcutKind.ZERO_PAD:
            return ShortcutKind.ZERO_PAD if changes else ShortcutKind.IDENTITY
        project = ShortcutKind.PROJECTION
        if dilation != 1 and self.avg_down:
            project = ShortcutKind.DILATED_POOLED_PROJECTION
        elif stride != 1 and self.avg_down:
            project = ShortcutKind.POOLED_PROJECTION
        elif stride != 1 and self.wide:
            project = ShortcutKind.WIDE_PROJECTION
        if self.first_block_projects and block == 1:
            return project
        if not changes:
            return ShortcutKind.IDENTITY
        if in_channels == out_channels and self.stride_only is ShortcutKind.MAX_POOL:
            return ShortcutKind.MAX_POOL
        return project


@dataclass(frozen=True)
class StageRecord:
    index: int  # 1-based
    blocks: int
    planes: int  # the blocks' base width (torchvision's "planes")
    stride: int  # 1 where the stage dilates instead (output_stride)
    out_channels: int
    dilation: int = 1  # of its blocks' 3x3 convolutions
    first_dilation: int = 1  # of its first block's first 3x3 (DilationRule)


@dataclass(frozen=True)
class BlockRecord:
    """One residual block: its shape change and the shortcut chosen for it."""

    stage: int
    block: int
    in_channels: int
    width: int  # inner width of a bottleneck; out_channels for a basic block
    out_channels: int
    stride: int
    shortcut: ShortcutKind
    reduced: int | None = None  # squeeze-and-excitation's reduced width
    eca_kernel: int | None = None  # ECA's kernel size
    first_width: int | None = None  # a bottleneck's conv1 output where it is width // reduce_first
    dilation: int = 1  # of the branch's 3x3 convolutions after the first (DilationDim.REST)
    first_dilation: int = 1  # of the branch's first 3x3 convolution (DilationDim.FIRST)

    @property
    def prefix(self) -> str:
        return f"stage{self.stage}.block{self.block}"


@dataclass(frozen=True)
class Tap:
    """A feature map the network returns (the spec's backbone.features), in output order."""

    name: str  # "stem", or "stageN"
    layer: str  # canonical name of the layer whose output it is
    reduction: int  # how many input pixels one step of the map spans (the product of the strides)


@dataclass(frozen=True)
class Network:
    name: str
    description: str
    spec_hash: str  # the spec's content hash, printed in generated files' headers
    norm: NormSettings
    l2: L2Settings  # Keras l2(r) on convolution and dense kernels, by role
    padding: PadMode
    block: BlockDesign
    shortcut: ShortcutRule
    stages: tuple[StageRecord, ...]
    blocks: tuple[BlockRecord, ...]
    init: InitSettings
    drop_path: float  # the last block's drop-path rate (timm's drop_path_rate); 0 for none
    weight_standardization: float | None = None  # epsilon of weight-standardized convolutions (BiT)
    torch_paths: TorchPaths = TorchPaths.TORCHVISION
    keras_layer_order: KerasLayerOrder = KerasLayerOrder.KERAS_APPLICATIONS
    taps: tuple[Tap, ...] = ()  # a backbone's outputs; empty for a classifier (it returns the head's)
    dilation_rule: DilationRule = DilationRule.TORCHVISION  # where stages dilate (output_stride)
    frozen_stages: int = 0  # the stem and stages 1..k do not train (mmdet's frozen_stages); 0: none
    norm_eval: bool = False  # every BatchNorm keeps its running statistics in training (mmdet's)
    stage_blocks: tuple[
        BlockDesign, ...
    ] = ()  # each stage's block (the spec's stages[i].block); () all `block`

    def design(self, stage: int) -> BlockDesign:
        """The block of stage `stage` (1-based)."""
        return self.stage_blocks[stage - 1] if self.stage_blocks else self.block


class LayerGraph:
    """The layers of one network, in build order (a topological order, the same on every run)."""

    def __init__(self, network: Network, layers: list[Layer], edges: list[tuple[str, str, int]]) -> None:
        self.network = network
        self.nx = nx.DiGraph(name=network.name)
        for layer in layers:
            self.nx.add_node(layer.name, layer=layer)
        for source, target, index in edges:
            self.nx.add_edge(source, target, index=index)
        self._order = [layer.name for layer in layers]

    def __iter__(self) -> Iterator[Layer]:
        return (self.nx.nodes[name]["layer"] for name in self._order)

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, name: object) -> bool:
        return name in self.nx

    def __getitem__(self, name: str) -> Layer:
        layer: Layer = self.nx.nodes[name]["layer"]
        return layer

    @property
    def names(self) -> list[str]:
        return list(self._order)

    @property
    def blocks(self) -> tuple[BlockRecord, ...]:
        return self.network.blocks

    @property
    def output(self) -> Layer:
        """The last layer (a backbone's last tap)."""
        return self[self._order[-1]]

    @property
    def outputs(self) -> list[str]:
        """The layers whose outputs the network returns: its taps, or its last layer."""
        return [tap.layer for tap in self.network.taps] or [self._order[-1]]

    @property
    def input_hwc(self) -> tuple[int, int, int]:
        """The input image shape as (height, width, channels)."""
        op = self["input"].op
        assert isinstance(op, Input)
        return op.height, op.width, op.channels

    @property
    def classes(self) -> int | None:
        """Outputs of the classifier (a dense layer, or a 1x1 convolution); None for a backbone."""
        if CLASSIFIER not in self:
            return None
        op = self[CLASSIFIER].op
        assert isinstance(op, Dense | Conv2d)
        return op.out_features if isinstance(op, Dense) else op.out_channels

    def frozen(self, layer: Layer) -> bool:
        """Whether the layer does not train: it is in the stem or in stages 1..frozen_stages."""
        k = self.network.frozen_stages
        if layer.scope is Scope.STAGE:
            return (layer.stage or 0) <= k
        return bool(k) and layer.scope is Scope.STEM

    def inputs(self, name: str) -> list[str]:
        """Producers of a layer's inputs, in argument order."""
        edges = self.nx.in_edges(name, data="index")
        return [u for u, _, _ in sorted(edges, key=lambda e: e[2])]

    def consumers(self, name: str) -> list[str]:
        return list(self.nx.successors(name))

    def of_kind(self, *kinds: str) -> list[Layer]:
        return [layer for layer in self if layer.kind in kinds]

    def block_layers(self) -> dict[tuple[int, int], list[Layer]]:
        """The layers of every residual block, keyed by (stage, block), in build order."""
        found: dict[tuple[int, int], list[Layer]] = {}
        wanted = {(r.stage, r.block) for r in self.blocks}  # a view of one block kind has fewer
        for layer in self:
            if layer.scope is Scope.STAGE and (layer.stage, layer.block) in wanted:
                assert layer.stage is not None and layer.block is not None
                found.setdefault((layer.stage, layer.block), []).append(layer)
        return found

    def depth(self) -> int:
        """Layers on the longest path from the input to the output."""
        return int(nx.dag_longest_path_length(self.nx))
