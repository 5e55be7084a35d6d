"""PyTorch backend, the stages: the ``self.layerN`` lines, ``_make_layer`` and ``_shortcut``.

``_make_layer`` builds a stage's blocks (the first, or keras V2's last, carries the stride; with
drop-path, each block's rate by timm's schedule); ``_shortcut`` is written from the network's shortcut
rule (`resgen.graph.ShortcutRule`), which every block's shortcut layers were checked against
(`resgen.backends.blocks.check_shortcut_layers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from resgen.backends import blocks
from resgen.backends.pytorch_blocks import conv_call
from resgen.codegen import CodegenError, call_lines, comment, docstring, indented
from resgen.graph import DilationDim, DilationRule, LayerGraph, ShortcutKind, ShortcutSource, StrideBlock
from resgen.naming import torch_shortcut_place, torch_stage_blocks, torch_stage_path


def stages_view(graph: LayerGraph, stage_classes: list[str], shared_bias: bool | None) -> dict[str, Any]:
    """``self.layerN`` lines, ``_make_layer`` and ``_shortcut``: the network's stride and shortcut rules.
    `stage_classes` names each stage's block class; where they differ, ``_make_layer`` takes it."""
    net = graph.network
    dilation = _dilation(graph)
    mixed = len(set(stage_classes)) > 1
    block_class = "block_class" if mixed else stage_classes[0]
    make_calls = [
        f"self._make_layer({f'{name}, ' if mixed else ''}{s.planes}, {s.blocks}, stride={s.stride}"
        + (f", dilation={s.dilation})" if s.dilation != 1 else ")")
        for s, name in zip(net.stages, stage_classes, strict=True)
    ]
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

    if last and dilation.params:
        raise CodegenError("dilated stages need the stride on a stage's first block")
    if last:
        make_doc = f"One stage of `blocks` {_of(mixed)}; the last one carries the stride."
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
        make_doc = f"One stage of `blocks` {_of(mixed)}; the first one carries the stride."
        pooled = ShortcutKind.DILATED_POOLED_PROJECTION in {r.shortcut for r in graph.blocks}
        shortcut_call = (
            "self._shortcut(out_planes, stride, dilation)" if pooled else "self._shortcut(out_planes, stride)"
        )
        make = [
            f"out_planes = planes * {block_class}.expansion",
            f"downsample = {shortcut_call}",
            *_first_and_others(block_class, drop_path, dilation),
            *make_return,
        ]
    always = first_block and not last  # _shortcut is only asked about first blocks
    takes_first = first_block and last
    params = ["self", "out_planes: int", "stride: int", *(["first: bool"] if takes_first else [])]
    if ShortcutKind.DILATED_POOLED_PROJECTION in {r.shortcut for r in graph.blocks}:
        params.append("dilation: int")
    signature = call_lines("def _shortcut", params, 4, f" -> nn.Module{'' if always else ' | None'}:")

    biases = {x.op.bias for x in graph.of_kind("conv2d") if x.role == "shortcut_conv"}  # type: ignore[union-attr]
    if len(biases) > 1:
        raise CodegenError("projection shortcuts differ in their bias")
    bias = next(iter(biases)) if biases else bool(shared_bias)
    conv = conv_call("conv1x1", ["self.in_planes", "out_planes", "stride"], bias, shared_bias)
    modules = [("shortcut_conv", conv), *([("shortcut_bn", "norm(out_planes)")] if rule.norm else [])]
    if rule.avg_down:
        conv = conv_call("conv1x1", ["self.in_planes", "out_planes"], bias, shared_bias)
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
            *_dilated_pool(graph),
            f"{'elif' if _dilated_pool(graph) else 'if'} stride != 1:",
            "    pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)",
            *project,
        ]
    if rule.wide:
        conv1 = conv_call("conv1x1", ["self.in_planes", "out_planes"], bias, shared_bias)
        conv3 = conv_call("conv3x3", ["self.in_planes", "out_planes", "stride"], bias, shared_bias)
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
    drop = _drop_path_view(graph)
    return {
        **drop,
        "stage_setup": [*dilation.setup, *drop["stage_setup"]],
        "make_signature": call_lines(
            "def _make_layer", make_params(dilation, stage_classes), 4, " -> nn.Sequential:"
        ),
        "stages": stages,
        "stage_forward": forward,
        "make_doc": docstring([make_doc, *dilation.doc], 8),
        "make_body": make,
        "shortcut_signature": signature,
        "shortcut_doc": docstring([doc], 8),
        "shortcut_body": body,
    }


def _first_and_others(block_class: str, drop_path: list[str], dilation: Dilation) -> list[str]:
    """The lines of ``_make_layer`` that build a stage's blocks, the first one with the stride."""
    first = ["self.in_planes", "planes", "stride", "downsample", *dilation.first, *drop_path]
    others = ["self.in_planes", "planes", *dilation.others, *drop_path]
    if not drop_path and not dilation.params:
        return [
            *call_lines(f"layers = [{block_class}", first, 8, "]"),
            "self.in_planes = out_planes",
            *dilation.update,
            "for _ in range(1, blocks):",
            *indented(call_lines(f"layers.append({block_class}", others, 12, ")")),
        ]
    return [
        *call_lines(f"block = {block_class}", first, 8),
        "layers = [block]",
        "self.in_planes = out_planes",
        *dilation.update,
        "for _ in range(1, blocks):",
        *indented(call_lines(f"block = {block_class}", others, 12)),
        "    layers.append(block)",
    ]


@dataclass(frozen=True)
class Dilation:
    """How ``_make_layer`` passes the blocks' dilations (backbone.output_stride); all empty where
    no block dilates."""

    params: list[str]  # the block's dilation parameters
    first: list[str]  # keyword arguments of a stage's first block
    others: list[str]  # of the other blocks
    setup: list[str]  # lines in __init__ before the stages
    update: list[str]  # after the first block
    doc: list[str]  # docstring lines of _make_layer, after its summary


def make_params(dilation: Dilation, stage_classes: list[str]) -> list[str]:
    classes = list(dict.fromkeys(stage_classes))
    taken = [f"block_class: type[{' | '.join(classes)}]"] if len(classes) > 1 else []
    params = ["self", *taken, "planes: int", "blocks: int", "stride: int = 1"]
    return params + (["dilation: int = 1"] if dilation.params else [])


def _of(mixed: bool) -> str:
    """What a stage's blocks are, as _make_layer's docstring says it."""
    return "blocks of `block_class` (timm's per-stage block classes)" if mixed else "blocks"


def _dilation(graph: LayerGraph) -> Dilation:
    """The dilation arguments of the blocks, checked against every block of the graph: the first
    block of a stage gets the previous stage's dilation for its first 3x3 under torchvision's rule."""
    params = blocks.parameters(graph)
    names = params.dilation_names
    if not names:
        return Dilation([], [], [], [], [], [])
    tracks = graph.network.dilation_rule is DilationRule.TORCHVISION
    first_dims = {name for dim, name in params.dilations if dim is DilationDim.FIRST}
    only_first = {name for _, name in params.dilations} == first_dims
    previous, expected = 1, {}
    for stage in graph.network.stages:
        for record in (r for r in graph.blocks if r.stage == stage.index):
            first = previous if tracks and record.block == 1 else stage.dilation
            expected[record.prefix] = {n: first if n in first_dims else stage.dilation for n in names}
            if only_first:
                expected[record.prefix] = {n: first for n in names}
        previous = stage.dilation
    for record in graph.blocks:
        if params.dilation_values(record) != expected[record.prefix]:
            raise CodegenError(f"block {record.prefix}: its dilation breaks the stage's rule")

    def value(name: str) -> str:
        return "self.dilation" if tracks and name in first_dims else "dilation"

    doc = (
        "Where the stage dilates instead of striding (output_stride), its first block keeps the "
        "previous stage's dilation in its first 3x3 and the others take the stage's, as torchvision "
        "and timm do."
        if tracks
        else "Where the stage dilates instead of striding (output_stride), every block takes the "
        "stage's dilation, as detectron2 does."
    )
    return Dilation(
        params=names,
        first=[f"{n}={value(n)}" for n in names],
        others=[f"{n}=dilation" for n in names],
        setup=["self.dilation = 1  # of the last stage built (torchvision's)"] if tracks else [],
        update=["self.dilation = dilation"] if tracks else [],
        doc=[doc],
    )


def _dilated_pool(graph: LayerGraph) -> list[str]:
    """timm's AvgPool2dSame in the avg_down shortcut of a block that dilates instead of striding."""
    if ShortcutKind.DILATED_POOLED_PROJECTION not in {r.shortcut for r in graph.blocks}:
        return []
    return [
        "if dilation != 1:",
        *indented(
            comment(
                "The stage dilates instead of striding: timm's AvgPool2dSame, a 2x2 window at "
                "stride 1 over the input padded with zeros at the bottom and right, the zeros "
                "counted in the mean, so the map keeps its size.",
                12,
            )
        ),
        "    pool = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.AvgPool2d(2, stride=1))",
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
