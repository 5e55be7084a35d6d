"""PyTorch backend, residual blocks: the block class, ``_make_layer`` and ``_shortcut``.

The block class is written from the layers of every block (`resgen.backends.blocks`): each layer of
the residual branch becomes one module in ``__init__`` and one statement in ``forward``, its channel
counts written as the block's parameters (``in_planes``, ``width``, ``planes * self.expansion``).
Module order follows torchvision's Bottleneck: the branch's modules in order, then the shared ReLU,
then the shortcut. The shortcut modules are built by ``ResNet._shortcut``, written from the network's
shortcut rule (`resgen.graph.ShortcutRule`) and checked against every block's shortcut layers.
"""

from __future__ import annotations

from typing import Any

from resgen.backends import blocks
from resgen.codegen import CodegenError, call_lines, comment, docstring, indented, literal
from resgen.graph import (
    BlockDesign,
    BlockKind,
    BlockRecord,
    Conv2d,
    Layer,
    LayerGraph,
    ShortcutKind,
    ShortcutSource,
    StrideBlock,
)
from resgen.naming import (
    torch_path_in_block,
    torch_shortcut_place,
    torch_stage_blocks,
    torch_stage_path,
)

_CLASS_NAMES = {
    (BlockKind.BASIC, False): "BasicBlock",
    (BlockKind.BOTTLENECK, False): "Bottleneck",
    (BlockKind.BASIC, True): "PreActBasicBlock",
    (BlockKind.BOTTLENECK, True): "PreActBottleneck",
}


def _dim(design: BlockDesign, dim: str) -> str:
    """A block channel count as the block class names it."""
    bottleneck = design.kind is BlockKind.BOTTLENECK
    return {
        "in": "in_planes",
        "width": "width" if bottleneck else "planes",
        "first": "first_width",
        "out": "planes * self.expansion" if bottleneck else "planes",
    }[dim]


def _conv_call(helper: str, args: list[str], bias: bool, shared_bias: bool | None) -> str:
    if shared_bias is None:  # the helpers take bias; say it where it differs from their default
        if bias:
            args = [*args, "bias=True"]
    elif bias != shared_bias:
        raise CodegenError("a convolution's bias differs from the shared setting")
    return f"{helper}({', '.join(args)})"


def named_places(graph: LayerGraph) -> bool:
    """Whether the torch target builds named nn.Sequential places (timm's ResNetV2: an OrderedDict)."""
    return torch_stage_blocks(graph) is not None


def _block_conv(layer: Layer, graph: LayerGraph, shared_bias: bool | None) -> str:
    op = layer.op
    design = graph.network.block
    assert isinstance(op, Conv2d) and layer.dims is not None
    if op.standardize != graph.network.weight_standardization:  # the helpers build every block conv
        raise CodegenError(f"{layer.name}: weight standardization differs from the network's")
    helper = {1: "conv1x1", 3: "conv3x3"}.get(op.kernel_size)
    if helper is None:
        raise CodegenError(f"{layer.name}: a {op.kernel_size}x{op.kernel_size} convolution in a block")
    args = [_dim(design, layer.dims[0]), _dim(design, layer.dims[1])]
    if layer.carries_stride:
        args.append("stride")
    if op.groups != 1:
        args.append("groups=self.groups")
    return _conv_call(helper, args, op.bias, shared_bias)


def _preact_shortcut_lines(graph: LayerGraph) -> list[str]:
    """How a pre-activation block feeds its shortcut module, from the graph's edges."""
    sources = {(_plain(kind), reads) for kind, reads in blocks.shortcut_sources(graph)}
    if sources and sources <= {(ShortcutKind.PROJECTION, True)}:
        return [
            "# A projection shortcut reads the pre-activated input (He et al. 2016).",
            "identity = x if self.downsample is None else self.downsample(out)",
        ]
    if not any(reads for _, reads in sources):
        return ["identity = x if self.downsample is None else self.downsample(x)"]
    if sources <= {(ShortcutKind.PROJECTION, True), (ShortcutKind.MAX_POOL, False)}:
        return [
            "identity = x",
            "if isinstance(self.downsample, nn.MaxPool2d):",
            "    # Only the resolution changes: subsample the raw input (keras V2).",
            "    identity = self.downsample(x)",
            "elif self.downsample is not None:",
            "    # A projection reads the pre-activated input (He et al. 2016).",
            "    identity = self.downsample(out)",
        ]
    raise CodegenError(f"shortcut sources {sorted(sources)} have no torch form")


def _plain(kind: ShortcutKind) -> ShortcutKind:
    """A pooled or 3x3 projection feeds the block's shortcut module as a projection does."""
    return ShortcutKind.PROJECTION if kind in blocks.PROJECTIONS else kind


def _anti_alias_init(design: BlockDesign, pool: Layer) -> str:
    """The block's anti-aliasing module: timm's pool where the block strides, nn.Identity() elsewhere."""
    assert design.anti_alias is not None and pool.dims is not None
    if design.anti_alias.blur:
        args = [_dim(design, pool.dims[0]), "stride"]
        if design.anti_alias.filter_size != 3:
            args.append(f"filter_size={design.anti_alias.filter_size}")
        module = f"BlurPool2d({', '.join(args)})"
    else:
        module = "nn.AvgPool2d(kernel_size=stride)"
    return f"self.aa = {module} if stride != 1 else nn.Identity()"


def _write_block(graph: LayerGraph, design: BlockDesign, shared_bias: bool | None) -> Any:
    preact_shortcut = _preact_shortcut_lines(graph) if design.preactivation else []
    aa = blocks.anti_alias_site(graph)

    def write(record: BlockRecord, layers: list[Layer]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        init: list[str] = []
        forward: list[str] = [] if design.preactivation else ["identity = x"]
        relu = False
        for layer in layers:
            if blocks.is_shortcut(layer) or layer.role == "aa":  # aa: written below, after its ReLU
                continue
            if layer.dims is not None:
                blocks.channel_check(layer, record)
            if blocks.is_attention(layer):  # channel attention: one module, named `se` as in timm
                blocks.attention_check(layer, record)
                if layer.role in blocks.ATTENTION_MODULES:
                    init.append(f"self.se = {blocks.ATTENTION_MODULES[layer.role]}({_dim(design, 'out')})")
                    forward.append("out = self.se(out)")
                continue
            producer = graph[graph.inputs(layer.name)[0]]
            src = "x" if (producer.stage, producer.block) != (layer.stage, layer.block) else "out"
            attr = torch_path_in_block(graph, layer.name) if layer.kind != "add" else ""
            if layer.kind == "conv2d":
                init.append(f"self.{attr} = {_block_conv(layer, graph, shared_bias)}")
            elif layer.kind in ("batch_norm", "group_norm"):
                assert layer.dims is not None
                init.append(f"self.{attr} = norm({_dim(design, layer.dims[0])})")
            if layer.kind in ("conv2d", "batch_norm", "group_norm"):
                if layer.kind == "conv2d" and forward and forward[-1]:
                    forward.append("")
                forward.append(f"out = self.{attr}({src})")
            elif layer.kind == "relu" and layer.role == "out_relu":
                forward.append("return self.relu(out)")
                relu = True
            elif layer.kind == "relu":
                forward.append(f"out = self.relu({src})")
                relu = True
                if layer.role == "preact_relu":
                    forward += preact_shortcut
            elif layer.kind == "drop_path":
                init.append("self.drop_path = DropPath(drop_path_rate)")
                forward.append("out = self.drop_path(out)")
            elif layer.kind == "add":
                if not design.preactivation:
                    forward += ["", "if self.downsample is not None:", "    identity = self.downsample(x)"]
                forward += ["", "out += identity"]
            else:
                raise CodegenError(f"{layer.name}: a {layer.kind} layer in a block has no torch form")
            if aa is not None and layer.role == aa.after:
                init.append(_anti_alias_init(design, aa.pool))
                forward.append("out = self.aa(out)")
        if not forward[-1].startswith("return"):
            forward.append("return out")
        init += [*(["self.relu = nn.ReLU(inplace=True)"] if relu else []), "self.downsample = downsample"]
        return tuple(init), tuple(forward)

    return write


def block_view(graph: LayerGraph, shared_bias: bool | None) -> dict[str, Any]:
    """The block class: its name, docstring, class attributes, ``__init__`` and ``forward``."""
    design = graph.network.block
    if not design.preactivation and any(reads for _, reads in blocks.shortcut_sources(graph)):
        raise CodegenError("a post-activation block's shortcut reads a pre-activated tensor")
    blocks.check_shortcut_layers(graph)
    init, forward = blocks.same_for_every_block(graph, _write_block(graph, design, shared_bias))
    class_attrs: list[str] = []
    width_line: list[str] = []
    if design.kind is BlockKind.BOTTLENECK:
        groups, base = design.groups, design.width_per_group
        for record in graph.blocks:
            planes = record.out_channels // design.expansion
            if planes * base // 64 * groups != record.width:
                raise CodegenError(f"block {record.prefix}: inner width {record.width} breaks the rule")
        if groups == 1 and base == 64:
            width_line = ["width = planes"]
        else:
            class_attrs = [f"groups: int = {groups}", f"base_width: int = {base}"]
            width_line = ["width = planes * self.base_width // 64 * self.groups"]
        if design.reduce_first != 1:
            for record in graph.blocks:
                if record.first_width != record.width // design.reduce_first:
                    raise CodegenError(f"block {record.prefix}: first width breaks the reduce_first rule")
            class_attrs.append(f"reduce_first: int = {design.reduce_first}")
            width_line.append("first_width = width // self.reduce_first")
    drop_path = ["drop_path_rate: float = 0.0"] if graph.network.drop_path else []
    params = ["in_planes: int", "planes: int", "stride: int = 1", "downsample: nn.Module | None = None"]
    return {
        "params": [*params, *drop_path],
        "name": _CLASS_NAMES[(design.kind, design.preactivation)],
        "docstring": docstring(_block_doc(design), 4),
        "expansion": literal(design.expansion),
        "class_attrs": class_attrs,
        "init": [*width_line, *init],
        "forward": list(forward),
    }


def _block_doc(design: BlockDesign) -> list[str]:
    """Docstring paragraphs of the block class: what it computes, and where it departs from papers."""
    bottleneck = design.kind is BlockKind.BOTTLENECK
    details = []
    if bottleneck:
        branch = "1x1 reduce, 3x3, 1x1 expand"
        if design.stride_on == "conv1":
            details.append(
                "The stride sits on the first 1x1 (conv1), as in the paper and keras.applications."
            )
        elif design.preactivation:
            details.append("The stride sits on the 3x3 (conv2).")
        else:
            details.append(
                'The stride sits on the 3x3 (conv2), as in torchvision ("ResNet v1.5"); the paper '
                "puts it on the first 1x1."
            )
        if design.groups != 1:
            details.append(f"The 3x3 convolution has {design.groups} groups (ResNeXt).")
        if design.reduce_first != 1:
            details.append(
                f"The first 1x1 outputs width // {design.reduce_first} channels and the 3x3 widens them "
                "back (timm's block_reduce_first, as in senet154)."
            )
        if design.width_per_group != 64:
            details.append(f"Inner width: planes * {design.width_per_group} // 64 * groups.")
    else:
        branch = "two 3x3 convolutions"
    if design.anti_alias is not None:  # replaces the sentence on where the stride sits
        pool = "a blur pool" if design.anti_alias.blur else "a 2x2 average pool"
        conv = "3x3 (conv2)" if bottleneck else "first 3x3 (conv1)"
        sentence = (
            f"Anti-aliased (Zhang 2019, as timm's aa_layer): in blocks that stride, the {conv} keeps "
            f"the resolution and {pool} after its ReLU carries the stride."
        )
        details = [sentence, *details[1:]] if bottleneck else [sentence]
    if design.preactivation:
        kind = "bottleneck" if bottleneck else "basic block"
        summary = f"Pre-activation {kind} (He et al. 2016): BN-ReLU before every convolution."
        after = "Nothing follows the addition; the next block, or the head, normalizes."
        details.insert(0, f"Branch: {branch}. {after}")
    else:
        summary = f"{'Bottleneck' if bottleneck else 'Basic'} block: {branch}; add the shortcut, then ReLU."
    return [summary, *([" ".join(details)] if details else [])]


# --- the stages: _make_layer and _shortcut -----------------------------------------------------------


def stages_view(graph: LayerGraph, block_class: str, shared_bias: bool | None) -> dict[str, Any]:
    """``self.layerN`` lines, ``_make_layer`` and ``_shortcut``: the network's stride and shortcut rules."""
    net = graph.network
    make_calls = [f"self._make_layer({s.planes}, {s.blocks}, stride={s.stride})" for s in net.stages]
    paths = [torch_stage_path(graph, s.index) for s in net.stages]
    container = {p.partition(".")[0] for p in paths if "." in p}
    if container:  # timm's ResNetV2: one nn.Sequential of stages, self.stages
        (name,) = container
        if paths != [f"{name}.{i}" for i in range(len(paths))]:
            raise CodegenError(f"{name}: the places of its nn.Sequential are not 0, 1, 2, ...")
        stages = [f"self.{name} = nn.Sequential(", *(f"    {call}," for call in make_calls), ")"]
        forward = [f"x = self.{name}(x)"]
    else:
        stages = [f"self.{path} = {call}" for path, call in zip(paths, make_calls, strict=True)]
        forward = [f"x = self.{path}(x)" for path in paths]
    holder = torch_stage_blocks(graph)
    make_return = ["return nn.Sequential(*layers)"]
    if holder:
        make_return = [
            f"# timm's ResNetV2 module paths: the stage's blocks are its `{holder}`.",
            f"return nn.Sequential(OrderedDict({holder}=nn.Sequential(*layers)))",
        ]
    last = net.block.stride_block is StrideBlock.LAST
    rule = net.shortcut
    zero_pad = rule.changing is ShortcutKind.ZERO_PAD
    first_block = not zero_pad and rule.first_block_projects
    drop_path = ["drop_path_rate=self._drop_path_rate()"] if net.drop_path else []
    block_args = ["self.in_planes", "planes", "block_stride", "downsample", *drop_path]

    if last:
        make_doc = "One stage of `blocks` blocks; the last one carries the stride."
        shortcut_args = ["out_planes", "block_stride", *(["first=index == 0"] if first_block else [])]
        make = [
            f"out_planes = planes * {block_class}.expansion",
            "layers = []",
            "for index in range(blocks):",
            "    # The last block of a stage carries its stride (keras.applications V2).",
            "    block_stride = stride if index == blocks - 1 else 1",
            *indented(call_lines("downsample = self._shortcut", shortcut_args, 12)),
            *indented(call_lines(f"block = {block_class}", block_args, 12)),
            "    layers.append(block)",
            "    self.in_planes = out_planes",
            *make_return,
        ]
    else:
        # the first block carries the stride; the others keep the shape, so their shortcut is the identity
        make_doc = "One stage of `blocks` blocks; the first one carries the stride."
        make = [
            f"out_planes = planes * {block_class}.expansion",
            "downsample = self._shortcut(out_planes, stride)",
            *_first_and_others(block_class, drop_path),
            *make_return,
        ]
    always = first_block and not last  # _shortcut is only asked about first blocks
    takes_first = first_block and last
    params = ["self", "out_planes: int", "stride: int", *(["first: bool"] if takes_first else [])]
    signature = call_lines("def _shortcut", params, 4, f" -> nn.Module{'' if always else ' | None'}:")

    biases = {x.op.bias for x in graph.of_kind("conv2d") if x.role == "shortcut_conv"}  # type: ignore[union-attr]
    if len(biases) > 1:
        raise CodegenError("projection shortcuts differ in their bias")
    bias = next(iter(biases)) if biases else bool(shared_bias)
    conv = _conv_call("conv1x1", ["self.in_planes", "out_planes", "stride"], bias, shared_bias)
    modules = [("shortcut_conv", conv), *([("shortcut_bn", "norm(out_planes)")] if rule.norm else [])]
    if rule.avg_down:
        conv = _conv_call("conv1x1", ["self.in_planes", "out_planes"], bias, shared_bias)
        modules = [("shortcut_pool", "pool"), ("shortcut_conv", conv), *modules[1:]]
    project = _sequential(graph, modules)
    if rule.avg_down:
        place = torch_shortcut_place(graph, "shortcut_conv")
        project = [
            *comment(
                "timm's avg_down (ResNet-D, He et al. 2019): a 2x2 average pool subsamples, so the "
                "1x1 convolution sees every pixel. Where the block does not stride, nn.Identity() "
                f"keeps timm's module places (downsample.{place} is the convolution).",
                8,
            ),
            "pool = nn.Identity()",
            "if stride != 1:",
            "    pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)",
            *project,
        ]
    if rule.wide:
        conv1 = _conv_call("conv1x1", ["self.in_planes", "out_planes"], bias, shared_bias)
        conv3 = _conv_call("conv3x3", ["self.in_planes", "out_planes", "stride"], bias, shared_bias)
        project = [
            f"conv: nn.Module = {conv1}",
            "if stride != 1:",
            *indented(
                comment(
                    "timm's down_kernel_size=3 (senet154): a projection that strides is a 3x3 "
                    "convolution, so it sees every pixel.",
                    12,
                )
            ),
            f"    conv = {conv3}",
            "return nn.Sequential(",
            "    conv,",
            *(["    norm(out_planes),"] if rule.norm else []),
            ")",
        ]
    unchanged = ["if stride == 1 and self.in_planes == out_planes:", "    return None"]
    body: list[str] = []
    if zero_pad:
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
        if takes_first:
            body += [
                "if first:",
                "    # Every stage's first block projects, even where the shape is unchanged.",
                *indented(project),
            ]
        body += unchanged
        if rule.stride_only is ShortcutKind.MAX_POOL:
            body += [
                "if self.in_planes == out_planes:",
                "    # Only the resolution changes: a 1x1 max-pool subsamples (keras V2).",
                "    return nn.MaxPool2d(kernel_size=1, stride=stride)",
            ]
        body += project
    if rule.source is ShortcutSource.PREACTIVATED and not net.block.preactivation:
        raise CodegenError("a projection of the pre-activated input in a post-activation network")
    return {
        **_drop_path_view(graph),
        "stages": stages,
        "stage_forward": forward,
        "make_doc": docstring([make_doc], 8),
        "make_body": make,
        "shortcut_signature": signature,
        "shortcut_doc": docstring([doc], 8),
        "shortcut_body": body,
    }


def _first_and_others(block_class: str, drop_path: list[str]) -> list[str]:
    """The lines of ``_make_layer`` that build a stage's blocks, the first one with the stride."""
    first = ["self.in_planes", "planes", "stride", "downsample", *drop_path]
    if not drop_path:
        return [
            *call_lines(f"layers = [{block_class}", first, 8, "]"),
            "self.in_planes = out_planes",
            "for _ in range(1, blocks):",
            *indented(call_lines(f"layers.append({block_class}", ["self.in_planes", "planes"], 12, ")")),
        ]
    return [
        *call_lines(f"block = {block_class}", first, 8),
        "layers = [block]",
        "self.in_planes = out_planes",
        "for _ in range(1, blocks):",
        *indented(call_lines(f"block = {block_class}", ["self.in_planes", "planes", *drop_path], 12)),
        "    layers.append(block)",
    ]


def _drop_path_view(graph: LayerGraph) -> dict[str, list[str]]:
    """The block counter in ``__init__`` and ``_drop_path_rate``, timm's schedule; none without
    drop-path. Every block's rate in the graph must be the one the schedule gives it."""
    net = graph.network
    if not net.drop_path:
        return {"stage_setup": [], "methods": []}
    total = sum(s.blocks for s in net.stages)
    rates = [x.op.rate for ls in graph.block_layers().values() for x in ls if x.kind == "drop_path"]  # type: ignore[union-attr]
    if rates != [net.drop_path * i / (total - 1) for i in range(total)]:
        raise CodegenError("the blocks' drop-path rates do not follow timm's linear rule")
    return {
        "stage_setup": [
            *comment("The global index of the next block and the count of all blocks, for drop-path.", 8),
            "self.block_index = 0",
            f"self.num_blocks = {' + '.join(str(s.blocks) for s in net.stages)}",
        ],
        "methods": indented(
            [
                "",
                "def _drop_path_rate(self) -> float:",
                *indented(
                    docstring(
                        [
                            "The next block's drop-path rate, by timm's linear rule: "
                            "DROP_PATH_RATE * index / (blocks in all - 1)."
                        ],
                        8,
                    )
                ),
                "    rate = DROP_PATH_RATE * self.block_index / (self.num_blocks - 1)",
                "    self.block_index += 1",
                "    return rate",
            ]
        ),
    }


def _sequential(graph: LayerGraph, modules: list[tuple[str, str]]) -> list[str]:
    """``return nn.Sequential(...)`` of a projection's modules (role, constructor) at their places in
    the downsample module: in order (0, 1, ...), or by name through an OrderedDict (timm's ResNetV2)."""
    places = [torch_shortcut_place(graph, role) for role, _ in modules]
    if places == [str(i) for i in range(len(places))]:
        return ["return nn.Sequential(", *(f"    {ctor}," for _, ctor in modules), ")"]
    if not all(place.isidentifier() for place in places):
        raise CodegenError(f"shortcut places {places} are neither 0, 1, ... nor names")
    named = [f"        {place}={ctor}," for place, (_, ctor) in zip(places, modules, strict=True)]
    return ["return nn.Sequential(", "    OrderedDict(", *named, "    )", ")"]
