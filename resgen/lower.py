"""Stage 3: lower a validated `Spec` into the typed layer graph (`resgen.graph`).

Every structural decision happens here, once: the network-wide settings, the stem, the head, and
which convolutions have a bias; `resgen.lower_blocks` lowers each residual block (which convolution
carries the stride, the inner width, the shortcut and what it reads). The result is typed, frozen
data; no later stage reads the spec.
"""

from __future__ import annotations

import dataclasses

from resgen.errors import Path
from resgen.graph import (
    AntiAliasDesign,
    AvgPool,
    BlockDesign,
    BlockKind,
    BlockRecord,
    Conv2d,
    Dense,
    DilationRule,
    Distribution,
    Dropout,
    EcaDesign,
    Flatten,
    GlobalAvgPool,
    InitSettings,
    Input,
    KerasLayerOrder,
    L2Settings,
    Layer,
    LayerGraph,
    MaxPool,
    Network,
    NormSettings,
    PadMode,
    PadValue,
    Scope,
    ShortcutKind,
    ShortcutRule,
    ShortcutSource,
    Softmax,
    SqueezeExciteDesign,
    StageRecord,
    StrideBlock,
    Tap,
    TorchPaths,
)
from resgen.lower_blocks import Builder, lower_block
from resgen.spec import (
    AvgPoolAntiAlias,
    BlurAntiAlias,
    BottleneckBlock,
    ConvStem,
    DeepStem,
    EfficientChannelAttention,
    NoHead,
    ProjectionShortcut,
    Spec,
    SqueezeExcite,
    WeightStandardizedConv,
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
        reduce_first=blk.reduce_first if bottleneck else 1,
        anti_alias=_anti_alias(blk.anti_alias),
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
            wide=sc.kernel_size == 3,
        )
    # a stage that names the other kind (stages[i].block) gets that kind's defaults (spec_stages)
    designs = tuple(design if s.block is None else _other_kind(design) for s in spec.stages)
    stages = tuple(
        StageRecord(i, s.blocks, s.filters, s.stride, s.filters * d.expansion)
        for i, (s, d) in enumerate(zip(spec.stages, designs, strict=True), start=1)
    )
    return Network(
        name=spec.name,
        description=spec.description,
        spec_hash=spec.content_hash(),
        norm=NormSettings(spec.norm.epsilon, spec.norm.momentum, spec.norm.kind == "group", spec.norm.groups),
        l2=L2Settings(**spec.regularization.l2_by_role()),
        padding=PadMode(spec.padding),
        block=design,
        shortcut=rule,
        stages=stages,
        blocks=(),
        init=InitSettings(
            conv=Distribution(spec.init.conv),
            dense=Distribution(spec.init.dense),
            eca=Distribution(spec.init.eca),
            bias=Distribution(spec.init.bias),
            zero_init_last=spec.init.zero_init_last,
        ),
        drop_path=spec.regularization.drop_path,
        weight_standardization=spec.conv.epsilon if isinstance(spec.conv, WeightStandardizedConv) else None,
        torch_paths=TorchPaths(spec.torch_paths),
        keras_layer_order=KerasLayerOrder(spec.keras_layer_order),
        dilation_rule=DilationRule(spec.backbone.dilation),
        frozen_stages=spec.backbone.frozen_stages,
        norm_eval=spec.backbone.norm_eval,
        stage_blocks=designs if any(d is not design for d in designs) else (),
    )


def _other_kind(design: BlockDesign) -> BlockDesign:
    """The block of the other kind with the same shared settings, its own at their defaults."""
    bottleneck = design.kind is BlockKind.BASIC
    return dataclasses.replace(
        design,
        kind=BlockKind.BOTTLENECK if bottleneck else BlockKind.BASIC,
        expansion=4 if bottleneck else 1,
        groups=1,
        width_per_group=64,
        stride_on="conv2" if bottleneck else "conv1",
        reduce_first=1,
    )


def _anti_alias(anti_alias: AvgPoolAntiAlias | BlurAntiAlias | None) -> AntiAliasDesign | None:
    if isinstance(anti_alias, BlurAntiAlias):
        return AntiAliasDesign(blur=True, filter_size=anti_alias.filter_size)
    if isinstance(anti_alias, AvgPoolAntiAlias):
        return AntiAliasDesign(blur=False)
    return None


def _attention(
    attention: SqueezeExcite | EfficientChannelAttention | None,
) -> SqueezeExciteDesign | EcaDesign | None:
    if isinstance(attention, SqueezeExcite):
        return SqueezeExciteDesign(attention.ratio, attention.divisor)
    if isinstance(attention, EfficientChannelAttention):
        return EcaDesign(attention.gamma, attention.beta)
    return None


def lower(spec: Spec) -> LayerGraph:
    """Build the layer graph of `spec`."""
    network = network_of(spec)
    b = Builder(spec, network)
    inp = spec.input
    x = b.add("input", Input(inp.channels, inp.height, inp.width), (), ("input",))
    x, channels = _stem(b, x)
    stem = [layer for layer in b.layers.values() if layer.scope is Scope.STEM]
    stages = _dilate(network.stages, _strides(stem), spec.backbone.output_stride, network.dilation_rule)
    network = b.net = dataclasses.replace(network, stages=stages)
    blocks: list[BlockRecord] = []
    b.scope = Scope.STAGE
    for stage in network.stages:
        for i in range(1, stage.blocks + 1):
            b.stage, b.block = stage.index, i
            x, record = lower_block(b, x, channels, stage, i)
            blocks.append(record)
            channels = record.out_channels
    b.scope, b.stage, b.block = Scope.HEAD, None, None
    _head(b, x, channels)
    layers = _settle_bias(spec, b.layers, b.edges)
    if network.init.zero_init_last:
        layers = _zero_init_last(layers, b.edges)
    taps = _taps(spec, layers, blocks)
    return LayerGraph(dataclasses.replace(network, blocks=tuple(blocks), taps=taps), layers, b.edges)


_STEM_POOL_ROLES = ("pool_conv", "pool", "pool_aa")


def _dilate(
    stages: tuple[StageRecord, ...], reduction: int, output_stride: int, rule: DilationRule
) -> tuple[StageRecord, ...]:
    """The stages under an output stride (torchvision's replace_stride_with_dilation, timm's
    output_stride): a stage whose stride would take the reduction past it keeps the resolution and
    multiplies the dilation by that stride instead. Its first block keeps the previous dilation
    (torchvision, timm) or takes the new one too (whole_stage, detectron2)."""
    if output_stride == 32:  # the default: every stage strides as the spec says
        return stages
    dilated = []
    dilation = 1
    for stage in stages:
        previous = dilation
        stride = stage.stride
        if reduction * stride > output_stride:
            dilation *= stride
            stride = 1
        else:
            reduction *= stride
        first = previous if rule is DilationRule.TORCHVISION else dilation
        dilated.append(dataclasses.replace(stage, stride=stride, dilation=dilation, first_dilation=first))
    return tuple(dilated)


def _taps(spec: Spec, layers: list[Layer], blocks: list[BlockRecord]) -> tuple[Tap, ...]:
    """The backbone's outputs: "stem" after the stem's activation and before its pool (timm's
    feature index 0), stage n after its last block; each with the product of the strides before it."""
    stem = [x for x in layers if x.scope is Scope.STEM]
    pooled = [i for i, x in enumerate(stem) if x.role in _STEM_POOL_ROLES]
    before_pool = stem[: pooled[0]] if pooled else stem
    taps = []
    for feature in spec.backbone.features:
        if feature == "stem":
            reduction = _strides(before_pool)
            taps.append(Tap("stem", before_pool[-1].name, reduction))
            continue
        reduction = _strides(stem)
        for record in blocks:
            if record.stage <= feature:
                reduction *= record.stride
        last = [x for x in layers if x.stage == feature][-1]
        taps.append(Tap(f"stage{feature}", last.name, reduction))
    return tuple(taps)


def _strides(layers: list[Layer]) -> int:
    product = 1
    for layer in layers:
        product *= getattr(layer.op, "stride", 1)
    return product


def _stem(b: Builder, x: str) -> tuple[str, int]:
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
        norm = stem.norm
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
    pool = stem.pool
    if pool is not None and pool.kind == "avg":  # timm's resnetaa stems
        x = b.add("stem.pool", AvgPool(pool.kernel_size, pool.stride), (x,), ("stem", "pool"))
    elif pool is not None:
        aa = _anti_alias(pool.anti_alias)
        stride = 1 if aa else pool.stride  # an anti-aliasing pool carries the stride
        op = MaxPool(pool.kernel_size, stride, pool.padding, norm, PadValue(pool.pad_with))
        x = b.add("stem.pool", op, (x,), ("stem", "pool"))
        if aa:
            x = b.add("stem.pool_aa", aa.op(cin, pool.stride), (x,), ("stem", "pool", "anti_alias"))
    return x, cin


def _head(b: Builder, x: str, channels: int) -> None:
    head = b.spec.head
    if isinstance(head, NoHead):  # a backbone: the taps are the outputs
        return
    if head.norm:
        x = b.bn("head.bn", x, channels, ("head", "norm"))
        x = b.relu("head.relu", x, ("head", "norm"))
    conv_classifier = head.kind == "global_pool" and head.classifier == "conv1x1"
    if head.kind == "pool_flatten":
        x = b.add("head.pool", AvgPool(head.pool_size, head.pool_size), (x,), ("head", "pool_size"))
        x = b.add("head.flatten", Flatten(), (x,), ("head", "kind"))
    else:
        x = b.add("head.pool", GlobalAvgPool(keepdims=conv_classifier), (x,), ("head", "kind"))
    if head.dropout > 0:
        x = b.add("head.dropout", Dropout(head.dropout), (x,), ("head", "dropout"))
    if conv_classifier:  # timm's ResNetV2: a 1x1 convolution on the pooled 1x1 map, then a flatten
        at: Path = ("head", "classifier")
        x = b.conv("head.fc", x, at, cin=channels, cout=head.classes, k=1, bias=True, standardized=False)
        x = b.add("head.flatten", Flatten(), (x,), at)
    else:
        x = b.add("head.fc", Dense(head.classes, bias=True), (x,), ("head", "classes"))
    if head.output == "softmax":
        b.add("head.softmax", Softmax(), (x,), ("head", "output"))


def _zero_init_last(layers: list[Layer], edges: list[tuple[str, str, int]]) -> list[Layer]:
    """Mark the last normalization (or, in a pre-activation block, the last convolution) of every
    residual branch: what feeds each addition, through drop-path and channel attention's product."""
    by_name = {layer.name: layer for layer in layers}
    first_input = {target: source for source, target, index in edges if index == 0}
    marked = set()
    for add in (layer for layer in layers if layer.kind == "add"):
        end = first_input[add.name]
        while by_name[end].kind in ("drop_path", "scale"):
            end = first_input[end]
        if by_name[end].kind not in ("batch_norm", "group_norm", "conv2d"):
            raise ValueError(f"{add.name}: the residual branch ends in a {by_name[end].kind}")
        marked.add(end)
    return [dataclasses.replace(x, zero_init=True) if x.name in marked else x for x in layers]


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
