"""Stage 3, part two: the layers of one residual block, and the builder that records layers.

`resgen.lower` walks the stem, the stages and the head; every block's layers come from `lower_block`,
which decides once which convolution carries the stride, the inner width, the shortcut and its
source, and the block's attention.
"""

from __future__ import annotations

import dataclasses

from resgen.errors import Path
from resgen.graph import (
    Add,
    AvgPool,
    BatchNorm,
    BlockDesign,
    BlockDim,
    BlockKind,
    BlockRecord,
    ChannelConv1d,
    Conv2d,
    DilationDim,
    DropPath,
    EcaDesign,
    GlobalAvgPool,
    GroupNorm,
    Layer,
    MaxPool,
    Network,
    Op,
    ReLU,
    Scale,
    Scope,
    ShortcutKind,
    ShortcutSource,
    Sigmoid,
    SqueezeExciteDesign,
    StageRecord,
    StrideBlock,
    ZeroPadShortcut,
)
from resgen.spec import Spec


def block_stride(stage: StageRecord, block: int, design: BlockDesign) -> int:
    """The stride of a block: the stage's stride on its first or last block, 1 elsewhere."""
    carrier = 1 if design.stride_block is StrideBlock.FIRST else stage.blocks
    return stage.stride if block == carrier else 1


class Builder:
    def __init__(self, spec: Spec, network: Network) -> None:
        self.spec = spec
        self.net = network
        self.layers: dict[str, Layer] = {}
        self.edges: list[tuple[str, str, int]] = []
        self.scope = Scope.INPUT
        self.stage: int | None = None
        self.block: int | None = None

    def add(
        self,
        name: str,
        op: Op,
        inputs: tuple[str, ...],
        origin: Path,
        dims: tuple[BlockDim, BlockDim] | None = None,
        carries_stride: bool = False,
    ) -> str:
        role = name.rsplit(".", 1)[-1]
        layer = Layer(name, op, self.scope, role, origin, self.stage, self.block, dims, carries_stride)
        self.layers[name] = layer
        self.edges += [(source, name, index) for index, source in enumerate(inputs)]
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
        dims: tuple[BlockDim, BlockDim] | None = None,
        carries_stride: bool = False,
        bias: bool | None = None,
        standardized: bool = True,
        dilation: tuple[DilationDim, int] | None = None,
    ) -> str:
        """A convolution; weight-standardized where the network's convolutions are, unless
        `standardized` is false (timm's plain classifier and squeeze-and-excitation convolutions)."""
        if bias is None:
            bias = self.spec.conv_bias == "all"  # "unnormalized" is settled in `_settle_bias`
        eps = self.net.weight_standardization if standardized else None
        dim, rate = dilation if dilation is not None else (None, 1)
        op = Conv2d(cin, cout, k, stride, groups, bias, self.net.padding, eps, rate)
        name = self.add(name, op, (x,), origin, dims, carries_stride)
        if dim is not None:
            self.layers[name] = dataclasses.replace(self.layers[name], dilation=dim)
        return name

    def bn(self, name: str, x: str, channels: int, origin: Path, dim: BlockDim | None = None) -> str:
        """The network's normalization layer: BatchNorm, or GroupNorm where the spec asks for it."""
        norm = self.net.norm
        op = GroupNorm(channels, norm.groups) if norm.group else BatchNorm(channels)
        return self.add(name, op, (x,), origin, (dim, dim) if dim else None)

    def relu(self, name: str, x: str, origin: Path) -> str:
        return self.add(name, ReLU(), (x,), origin)


def lower_block(b: Builder, x: str, cin: int, stage: StageRecord, i: int) -> tuple[str, BlockRecord]:
    design = b.net.design(stage.index)
    rule = b.net.shortcut
    at: Path = ("stages", stage.index - 1)
    p = f"stage{stage.index}.block{i}"
    stride = block_stride(stage, i, design)
    cout = stage.out_channels
    width = design.inner_width(stage.planes)
    kind = rule.choose(block=i, in_channels=cin, out_channels=cout, stride=stride, dilation=stage.dilation)
    # output_stride: the branch's first 3x3 of a stage's first block may keep the previous dilation
    first_dilation = stage.first_dilation if i == 1 else stage.dilation
    dilate_first, dilate_rest = (DilationDim.FIRST, first_dilation), (DilationDim.REST, stage.dilation)
    attention = design.attention
    reduced = attention.reduced(cout) if isinstance(attention, SqueezeExciteDesign) else None
    eca_kernel = attention.kernel_size(cout) if isinstance(attention, EcaDesign) else None
    first = width // design.reduce_first
    first_width = first if design.reduce_first != 1 else None
    record = BlockRecord(
        stage.index,
        i,
        cin,
        width,
        cout,
        stride,
        kind,
        reduced,
        eca_kernel,
        first_width,
        stage.dilation,
        first_dilation,
    )

    block_in = x
    IN, WIDTH, OUT = BlockDim.IN, BlockDim.WIDTH, BlockDim.OUT
    FIRST = BlockDim.FIRST if first_width is not None else WIDTH
    if design.preactivation:
        x = b.bn(f"{p}.preact_bn", x, cin, ("block", "preactivation"), IN)
        x = b.relu(f"{p}.preact_relu", x, ("block", "preactivation"))
    preact = x

    # Anti-aliasing (timm's aa_layer): the strided convolution keeps the resolution, and a pool
    # after its BatchNorm + ReLU carries the stride; blocks that do not stride have no pool.
    aa = design.anti_alias
    conv_stride = 1 if aa else stride

    def anti_alias(x: str, channels: int, dim: BlockDim) -> str:
        if aa is None or stride == 1:
            return x
        return b.add(f"{p}.aa", aa.op(channels, stride), (x,), ("block", "anti_alias"), (dim, dim), True)

    if design.kind is BlockKind.BOTTLENECK:
        on1 = design.stride_on == "conv1"
        s1, s2 = (conv_stride, 1) if on1 else (1, conv_stride)
        x = b.conv(
            f"{p}.conv1", x, at, cin=cin, cout=first, k=1, stride=s1, dims=(IN, FIRST), carries_stride=on1
        )
        x = b.bn(f"{p}.bn1", x, first, at, FIRST)
        x = b.relu(f"{p}.relu1", x, at)
        x = b.conv(
            f"{p}.conv2",
            x,
            at,
            cin=first,
            cout=width,
            k=3,
            stride=s2,
            groups=design.groups,
            dims=(FIRST, WIDTH),
            carries_stride=not on1 and not aa,
            dilation=dilate_first,
        )
        x = b.bn(f"{p}.bn2", x, width, at, WIDTH)
        x = b.relu(f"{p}.relu2", x, at)
        x = anti_alias(x, width, WIDTH)
        x = b.conv(f"{p}.conv3", x, at, cin=width, cout=cout, k=1, dims=(WIDTH, OUT))
        if not design.preactivation:
            x = b.bn(f"{p}.bn3", x, cout, at, OUT)
    else:
        x = b.conv(
            f"{p}.conv1",
            x,
            at,
            cin=cin,
            cout=cout,
            k=3,
            stride=conv_stride,
            dims=(IN, OUT),
            carries_stride=not aa,
            dilation=dilate_first,
        )
        x = b.bn(f"{p}.bn1", x, cout, at, OUT)
        x = b.relu(f"{p}.relu1", x, at)
        x = anti_alias(x, cout, OUT)
        x = b.conv(f"{p}.conv2", x, at, cin=cout, cout=cout, k=3, dims=(OUT, OUT), dilation=dilate_rest)
        if not design.preactivation:
            x = b.bn(f"{p}.bn2", x, cout, at, OUT)

    shortcut = block_in
    pooled = (ShortcutKind.POOLED_PROJECTION, ShortcutKind.DILATED_POOLED_PROJECTION)
    if kind in (ShortcutKind.PROJECTION, ShortcutKind.WIDE_PROJECTION, *pooled):
        source = preact if rule.source is ShortcutSource.PREACTIVATED else block_in
        conv_stride = stride
        conv_kernel = 3 if kind is ShortcutKind.WIDE_PROJECTION else 1
        if kind in pooled:
            dilated = kind is ShortcutKind.DILATED_POOLED_PROJECTION
            pool = AvgPool(kernel_size=2, stride=stride, ceil_mode=not dilated, pad_end=int(dilated))
            origin = ("shortcut", "downsample")
            source = b.add(
                f"{p}.shortcut_pool", pool, (source,), origin, (IN, IN), carries_stride=not dilated
            )
            conv_stride = 1
        shortcut = b.conv(
            f"{p}.shortcut_conv",
            source,
            ("shortcut",),
            cin=cin,
            cout=cout,
            k=conv_kernel,
            stride=conv_stride,
            dims=(IN, OUT),
            carries_stride=kind not in pooled,
        )
        if rule.norm:
            shortcut = b.bn(f"{p}.shortcut_bn", shortcut, cout, ("shortcut", "norm"), OUT)
    elif kind is ShortcutKind.MAX_POOL:
        op = MaxPool(kernel_size=1, stride=stride, padding=0, input_nonnegative=False)
        origin = ("shortcut", "stride_only")
        shortcut = b.add(f"{p}.shortcut_pool", op, (block_in,), origin, (IN, IN), carries_stride=True)
    elif kind is ShortcutKind.ZERO_PAD:
        extra = max(cout - cin, 0)  # fewer channels: reported by the shape pass as a mismatch
        pad = ZeroPadShortcut(stride, extra // 2, extra - extra // 2)
        shortcut = b.add(f"{p}.shortcut_pad", pad, (block_in,), ("shortcut", "kind"), (IN, OUT), True)
    if reduced is not None:
        x = _squeeze_excite(b, x, p, cout, reduced)
    if eca_kernel is not None:
        x = _eca(b, x, p, eca_kernel)
    if b.net.drop_path:  # after attention, before the addition (timm); rate 0 in the first block
        rate = drop_path_rate(b.net, stage, i)
        x = b.add(f"{p}.drop_path", DropPath(rate), (x,), ("regularization", "drop_path"))
    x = b.add(f"{p}.add", Add(), (x, shortcut), at)
    if not design.preactivation:
        x = b.relu(f"{p}.out_relu", x, at)
    return x, record


def drop_path_rate(net: Network, stage: StageRecord, i: int) -> float:
    """timm's linear rule: the block with global index k (0-based over all N blocks) drops its
    residual branch with probability drop_path * k / (N - 1)."""
    index = sum(s.blocks for s in net.stages if s.index < stage.index) + i - 1
    return net.drop_path * index / (sum(s.blocks for s in net.stages) - 1)


def _squeeze_excite(b: Builder, x: str, p: str, channels: int, reduced: int) -> str:
    """Squeeze-and-excitation of the residual branch (timm's SEModule; its 1x1 convolutions have biases)."""
    at: Path = ("block", "attention")
    OUT, REDUCED = BlockDim.OUT, BlockDim.REDUCED
    y = b.add(f"{p}.se_pool", GlobalAvgPool(keepdims=True), (x,), at)
    y = b.conv(
        f"{p}.se_fc1",
        y,
        at,
        cin=channels,
        cout=reduced,
        k=1,
        dims=(OUT, REDUCED),
        bias=True,
        standardized=False,
    )
    y = b.relu(f"{p}.se_act", y, at)
    y = b.conv(
        f"{p}.se_fc2",
        y,
        at,
        cin=reduced,
        cout=channels,
        k=1,
        dims=(REDUCED, OUT),
        bias=True,
        standardized=False,
    )
    y = b.add(f"{p}.se_gate", Sigmoid(), (y,), at)
    return b.add(f"{p}.se_scale", Scale(), (x, y), at)


def _eca(b: Builder, x: str, p: str, kernel_size: int) -> str:
    """ECA of the residual branch (timm's EcaModule): pool, 1-D convolution across channels, sigmoid."""
    at: Path = ("block", "attention")
    y = b.add(f"{p}.eca_pool", GlobalAvgPool(keepdims=True), (x,), at)
    y = b.add(f"{p}.eca_conv", ChannelConv1d(kernel_size), (y,), at)
    y = b.add(f"{p}.eca_gate", Sigmoid(), (y,), at)
    return b.add(f"{p}.eca_scale", Scale(), (x, y), at)
