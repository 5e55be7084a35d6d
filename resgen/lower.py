"""Stage 3: lower a validated `Spec` into the typed layer graph (`resgen.graph`).

Every structural decision happens here, once: which block of a stage carries the stride and which of
its convolutions, the inner width of a bottleneck, which shortcut each block gets and what it reads,
which convolutions have a bias. The result is typed, frozen data; no later stage reads the spec.
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
    Dense,
    Dropout,
    EcaDesign,
    Flatten,
    GlobalAvgPool,
    GroupNorm,
    Input,
    Layer,
    LayerGraph,
    MaxPool,
    Network,
    NormSettings,
    Op,
    PadMode,
    PadValue,
    ReLU,
    Scale,
    Scope,
    ShortcutKind,
    ShortcutRule,
    ShortcutSource,
    Sigmoid,
    Softmax,
    SqueezeExciteDesign,
    StageRecord,
    StrideBlock,
    ZeroPadShortcut,
)
from resgen.spec import (
    BottleneckBlock,
    ConvStem,
    DeepStem,
    EfficientChannelAttention,
    ProjectionShortcut,
    Spec,
    SqueezeExcite,
)
from resgen.spec import ZeroPadShortcut as ZeroPadSpec


def network_of(spec: Spec) -> Network:
    """The network-wide decisions of a spec (the blocks are filled in by `lower`)."""
    blk = spec.block
    bottleneck = isinstance(blk, BottleneckBlock)
    design = BlockDesign(
        kind=BlockKind.BOTTLENECK if bottleneck else BlockKind.BASIC,
        preactivation=blk.preactivation,
        expansion=blk.expansion,
        groups=blk.groups if bottleneck else 1,
        width_per_group=blk.width_per_group if bottleneck else 64,
        stride_on=blk.stride_on if bottleneck else "conv1",
        stride_block=StrideBlock(blk.stride_block),
        attention=_attention(blk.attention),
    )
    sc = spec.shortcut
    if isinstance(sc, ZeroPadSpec):
        rule = ShortcutRule(ShortcutKind.ZERO_PAD, ShortcutKind.ZERO_PAD, False, False, ShortcutSource.INPUT)
    else:
        assert isinstance(sc, ProjectionShortcut)
        rule = ShortcutRule(
            changing=ShortcutKind.PROJECTION,
            stride_only=ShortcutKind.MAX_POOL if sc.stride_only == "max_pool" else ShortcutKind.PROJECTION,
            first_block_projects=sc.when == "first_block",
            norm=sc.norm,
            source=ShortcutSource(sc.source),
            avg_down=sc.downsample == "avg_pool",
        )
    stages = tuple(
        StageRecord(i, s.blocks, s.filters, s.stride, s.filters * blk.expansion)
        for i, s in enumerate(spec.stages, start=1)
    )
    return Network(
        name=spec.name,
        description=spec.description,
        spec_hash=spec.content_hash(),
        norm=NormSettings(spec.norm.epsilon, spec.norm.momentum, spec.norm.kind == "group", spec.norm.groups),
        l2=spec.regularization.l2,
        padding=PadMode(spec.padding),
        block=design,
        shortcut=rule,
        stages=stages,
        blocks=(),
    )


def _attention(
    attention: SqueezeExcite | EfficientChannelAttention | None,
) -> SqueezeExciteDesign | EcaDesign | None:
    if isinstance(attention, SqueezeExcite):
        return SqueezeExciteDesign(attention.ratio, attention.divisor)
    if isinstance(attention, EfficientChannelAttention):
        return EcaDesign(attention.gamma, attention.beta)
    return None


def block_stride(stage: StageRecord, block: int, design: BlockDesign) -> int:
    """The stride of a block: the stage's stride on its first or last block, 1 elsewhere."""
    carrier = 1 if design.stride_block is StrideBlock.FIRST else stage.blocks
    return stage.stride if block == carrier else 1


class _Builder:
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
    ) -> str:
        if bias is None:
            bias = self.spec.conv_bias == "all"  # "unnormalized" is settled in `_settle_bias`
        op = Conv2d(cin, cout, k, stride, groups, bias, self.net.padding)
        return self.add(name, op, (x,), origin, dims, carries_stride)

    def bn(self, name: str, x: str, channels: int, origin: Path, dim: BlockDim | None = None) -> str:
        """The network's normalization layer: BatchNorm, or GroupNorm where the spec asks for it."""
        norm = self.net.norm
        op = GroupNorm(channels, norm.groups) if norm.group else BatchNorm(channels)
        return self.add(name, op, (x,), origin, (dim, dim) if dim else None)

    def relu(self, name: str, x: str, origin: Path) -> str:
        return self.add(name, ReLU(), (x,), origin)


def lower(spec: Spec) -> LayerGraph:
    """Build the layer graph of `spec`."""
    network = network_of(spec)
    b = _Builder(spec, network)
    inp = spec.input
    x = b.add("input", Input(inp.channels, inp.height, inp.width), (), ("input",))
    x, channels = _stem(b, x)
    blocks: list[BlockRecord] = []
    b.scope = Scope.STAGE
    for stage in network.stages:
        for i in range(1, stage.blocks + 1):
            b.stage, b.block = stage.index, i
            x, record = _block(b, x, channels, stage, i)
            blocks.append(record)
            channels = record.out_channels
    b.scope, b.stage, b.block = Scope.HEAD, None, None
    _head(b, x, channels)
    layers = _settle_bias(spec, b.layers, b.edges)
    return LayerGraph(dataclasses.replace(network, blocks=tuple(blocks)), layers, b.edges)


def _stem(b: _Builder, x: str) -> tuple[str, int]:
    stem = b.spec.stem
    b.scope = Scope.STEM
    cin = b.spec.input.channels
    if isinstance(stem, DeepStem):
        # 3x3 convolutions; BatchNorm + ReLU between them, and after the last one below
        for i, width in enumerate(stem.widths, start=1):
            if i > 1:
                x = b.bn(f"stem.bn{i - 1}", x, cin, ("stem", "widths", i - 2))
                x = b.relu(f"stem.relu{i - 1}", x, ("stem", "widths", i - 2))
            stride = stem.stride if i == 1 else 1
            x = b.conv(f"stem.conv{i}", x, ("stem", "widths", i - 1), cin=cin, cout=width, k=3, stride=stride)
            cin = width
        norm = True
    else:
        if stem.input_norm:
            x = b.bn("stem.input_bn", x, cin, ("stem", "input_norm"))
        x = b.conv(
            "stem.conv", x, ("stem",), cin=cin, cout=stem.filters, k=stem.kernel_size, stride=stem.stride
        )
        cin, norm = stem.filters, stem.norm
    if norm:
        x = b.bn("stem.bn", x, cin, ("stem", "norm") if isinstance(stem, ConvStem) else ("stem",))
        x = b.relu("stem.relu", x, ("stem", "norm") if isinstance(stem, ConvStem) else ("stem",))
    if stem.conv_pool:  # timm's replace_stem_pool: a strided 3x3 convolution downsamples
        at: Path = ("stem", "conv_pool")
        x = b.conv("stem.pool_conv", x, at, cin=cin, cout=cin, k=3, stride=2)
        x = b.bn("stem.pool_bn", x, cin, at)
        x = b.relu("stem.pool_relu", x, at)
    if stem.pool is not None:
        pool = stem.pool
        op = MaxPool(pool.kernel_size, pool.stride, pool.padding, norm, PadValue(pool.pad_with))
        x = b.add("stem.pool", op, (x,), ("stem", "pool"))
    return x, cin


def _block(b: _Builder, x: str, cin: int, stage: StageRecord, i: int) -> tuple[str, BlockRecord]:
    design = b.net.block
    rule = b.net.shortcut
    at: Path = ("stages", stage.index - 1)
    p = f"stage{stage.index}.block{i}"
    stride = block_stride(stage, i, design)
    cout = stage.out_channels
    width = design.inner_width(stage.planes)
    kind = rule.choose(block=i, in_channels=cin, out_channels=cout, stride=stride)
    attention = design.attention
    reduced = attention.reduced(cout) if isinstance(attention, SqueezeExciteDesign) else None
    eca_kernel = attention.kernel_size(cout) if isinstance(attention, EcaDesign) else None
    record = BlockRecord(stage.index, i, cin, width, cout, stride, kind, reduced, eca_kernel)

    block_in = x
    IN, WIDTH, OUT = BlockDim.IN, BlockDim.WIDTH, BlockDim.OUT
    if design.preactivation:
        x = b.bn(f"{p}.preact_bn", x, cin, ("block", "preactivation"), IN)
        x = b.relu(f"{p}.preact_relu", x, ("block", "preactivation"))
    preact = x

    if design.kind is BlockKind.BOTTLENECK:
        on1 = design.stride_on == "conv1"
        s1, s2 = (stride, 1) if on1 else (1, stride)
        x = b.conv(
            f"{p}.conv1", x, at, cin=cin, cout=width, k=1, stride=s1, dims=(IN, WIDTH), carries_stride=on1
        )
        x = b.bn(f"{p}.bn1", x, width, at, WIDTH)
        x = b.relu(f"{p}.relu1", x, at)
        x = b.conv(
            f"{p}.conv2",
            x,
            at,
            cin=width,
            cout=width,
            k=3,
            stride=s2,
            groups=design.groups,
            dims=(WIDTH, WIDTH),
            carries_stride=not on1,
        )
        x = b.bn(f"{p}.bn2", x, width, at, WIDTH)
        x = b.relu(f"{p}.relu2", x, at)
        x = b.conv(f"{p}.conv3", x, at, cin=width, cout=cout, k=1, dims=(WIDTH, OUT))
        if not design.preactivation:
            x = b.bn(f"{p}.bn3", x, cout, at, OUT)
    else:
        x = b.conv(
            f"{p}.conv1", x, at, cin=cin, cout=cout, k=3, stride=stride, dims=(IN, OUT), carries_stride=True
        )
        x = b.bn(f"{p}.bn1", x, cout, at, OUT)
        x = b.relu(f"{p}.relu1", x, at)
        x = b.conv(f"{p}.conv2", x, at, cin=cout, cout=cout, k=3, dims=(OUT, OUT))
        if not design.preactivation:
            x = b.bn(f"{p}.bn2", x, cout, at, OUT)

    shortcut = block_in
    if kind in (ShortcutKind.PROJECTION, ShortcutKind.POOLED_PROJECTION):
        source = preact if rule.source is ShortcutSource.PREACTIVATED else block_in
        conv_stride = stride
        if kind is ShortcutKind.POOLED_PROJECTION:
            pool = AvgPool(kernel_size=2, stride=stride, ceil_mode=True)
            origin = ("shortcut", "downsample")
            source = b.add(f"{p}.shortcut_pool", pool, (source,), origin, (IN, IN), carries_stride=True)
            conv_stride = 1
        shortcut = b.conv(
            f"{p}.shortcut_conv",
            source,
            ("shortcut",),
            cin=cin,
            cout=cout,
            k=1,
            stride=conv_stride,
            dims=(IN, OUT),
            carries_stride=kind is ShortcutKind.PROJECTION,
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
    x = b.add(f"{p}.add", Add(), (x, shortcut), at)
    if not design.preactivation:
        x = b.relu(f"{p}.out_relu", x, at)
    return x, record


def _squeeze_excite(b: _Builder, x: str, p: str, channels: int, reduced: int) -> str:
    """Squeeze-and-excitation of the residual branch (timm's SEModule; its 1x1 convolutions have biases)."""
    at: Path = ("block", "attention")
    OUT, REDUCED = BlockDim.OUT, BlockDim.REDUCED
    y = b.add(f"{p}.se_pool", GlobalAvgPool(keepdims=True), (x,), at)
    y = b.conv(f"{p}.se_fc1", y, at, cin=channels, cout=reduced, k=1, dims=(OUT, REDUCED), bias=True)
    y = b.relu(f"{p}.se_act", y, at)
    y = b.conv(f"{p}.se_fc2", y, at, cin=reduced, cout=channels, k=1, dims=(REDUCED, OUT), bias=True)
    y = b.add(f"{p}.se_gate", Sigmoid(), (y,), at)
    return b.add(f"{p}.se_scale", Scale(), (x, y), at)


def _eca(b: _Builder, x: str, p: str, kernel_size: int) -> str:
    """ECA of the residual branch (timm's EcaModule): pool, 1-D convolution across channels, sigmoid."""
    at: Path = ("block", "attention")
    y = b.add(f"{p}.eca_pool", GlobalAvgPool(keepdims=True), (x,), at)
    y = b.add(f"{p}.eca_conv", ChannelConv1d(kernel_size), (y,), at)
    y = b.add(f"{p}.eca_gate", Sigmoid(), (y,), at)
    return b.add(f"{p}.eca_scale", Scale(), (x, y), at)


def _head(b: _Builder, x: str, channels: int) -> None:
    head = b.spec.head
    if head.norm:
        x = b.bn("head.bn", x, channels, ("head", "norm"))
        x = b.relu("head.relu", x, ("head", "norm"))
    if head.kind == "pool_flatten":
        x = b.add("head.pool", AvgPool(head.pool_size, head.pool_size), (x,), ("head", "pool_size"))
        x = b.add("head.flatten", Flatten(), (x,), ("head", "kind"))
    else:
        x = b.add("head.pool", GlobalAvgPool(), (x,), ("head", "kind"))
    if head.dropout > 0:
        x = b.add("head.dropout", Dropout(head.dropout), (x,), ("head", "dropout"))
    x = b.add("head.fc", Dense(head.classes, bias=True), (x,), ("head", "classes"))
    if head.output == "softmax":
        b.add("head.softmax", Softmax(), (x,), ("head", "output"))


def _settle_bias(spec: Spec, layers: dict[str, Layer], edges: list[tuple[str, str, int]]) -> list[Layer]:
    """conv_bias "unnormalized": a convolution has a bias unless every consumer is a BatchNorm."""
    if spec.conv_bias != "unnormalized":
        return list(layers.values())
    consumers: dict[str, list[str]] = {}
    for source, target, _ in edges:
        consumers.setdefault(source, []).append(target)
    settled = []
    for layer in layers.values():
        if isinstance(layer.op, Conv2d):
            kinds = [layers[c].kind for c in consumers.get(layer.name, [])]
            bias = not kinds or any(k not in ("batch_norm", "group_norm") for k in kinds)
            layer = dataclasses.replace(layer, op=dataclasses.replace(layer.op, bias=bias))
        settled.append(layer)
    return settled
