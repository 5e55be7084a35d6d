"""PyTorch backend, residual blocks: the block class (the stages: `resgen.backends.pytorch_stages`).

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
from resgen.codegen import CodegenError, docstring, literal
from resgen.graph import (
    BlockDesign,
    BlockKind,
    BlockRecord,
    Conv2d,
    Layer,
    LayerGraph,
    ShortcutKind,
)
from resgen.naming import (
    torch_path_in_block,
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


def conv_call(helper: str, args: list[str], bias: bool, shared_bias: bool | None) -> str:
    if shared_bias is None:  # the helpers take bias; say it where it differs from their default
        if bias:
            args = [*args, "bias=True"]
    elif bias != shared_bias:
        raise CodegenError("a convolution's bias differs from the shared setting")
    return f"{helper}({', '.join(args)})"


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
    dilation = blocks.dilation_text(layer, blocks.parameters(graph))
    if dilation != "1":
        args.append(f"dilation={dilation}")
    return conv_call(helper, args, op.bias, shared_bias)


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
        blocks.first_width_check(graph)
        if design.reduce_first != 1:
            class_attrs.append(f"reduce_first: int = {design.reduce_first}")
            width_line.append("first_width = width // self.reduce_first")
    drop_path = ["drop_path_rate: float = 0.0"] if graph.network.drop_path else []
    params = ["in_planes: int", "planes: int", "stride: int = 1", "downsample: nn.Module | None = None"]
    dilation = [f"{name}: int = 1" for name in blocks.parameters(graph).dilation_names]
    return {
        "params": [*params, *dilation, *drop_path],
        "name": _CLASS_NAMES[(design.kind, design.preactivation)],
        "docstring": docstring([*_block_doc(design), *_dilation_doc(graph)], 4),
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


def _dilation_doc(graph: LayerGraph) -> list[str]:
    """Where blocks dilate (the spec's backbone.output_stride), what their dilation arguments mean."""
    names = blocks.parameters(graph).dilation_names
    if not names:
        return []
    text = (
        "Where a stage dilates instead of striding (output_stride, torchvision's "
        "replace_stride_with_dilation), its 3x3 convolutions space their taps by `dilation`"
    )
    if "first_dilation" in names:
        text += "; the first 3x3 takes `first_dilation` (timm's BasicBlock)"
    return [text + "."]
