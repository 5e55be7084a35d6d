"""Keras 3 backend, residual blocks: the one block function and the calls that build each stage.

The function's body is written from the layers of every block by the handlers of
`resgen.backends.keras3`, with the block's width, output channels and stride as parameters; every
block must give the same statements (`resgen.backends.blocks`). Each shortcut kind the network uses
is one branch of an ``if`` on the ``shortcut`` argument. Stages are runs of calls, and consecutive
blocks that share their arguments are one ``for`` loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from resgen.backends import blocks
from resgen.codegen import LINE_LENGTH, CodegenError, call_lines, comment, indented, literal, wrap
from resgen.graph import BlockRecord, EcaDesign, Layer, LayerGraph, ShortcutKind, SqueezeExciteDesign
from resgen.naming import keras_name

# Tensors inside the block function: the block input ``x``, its pre-activation, the residual branch
# F(x), the shortcut ("skip"), and ``x`` again from the addition on.
_PREACT_ROLES = ("preact_bn", "preact_relu")
_TAIL_ROLES = ("add", "out_relu")


def tensor_of(role: str) -> str:
    if role in _PREACT_ROLES:
        return "preact"
    if role.startswith(blocks.ATTENTION_PREFIXES):
        # channel attention computes a gate, then rescales the residual branch with it
        return "residual" if role.endswith("_scale") else "gate"
    if role.startswith("shortcut_"):
        return "skip"
    if role in _TAIL_ROLES:
        return "x"
    return "residual"


def block_name(graph: LayerGraph, layers: list[Layer]) -> str:
    """keras.applications' block prefix, such as conv3_block1, from the block's addition."""
    (add,) = [x for x in layers if x.role == "add"]
    return keras_name(graph, add.name).rpartition("_")[0]


def _describe_shortcut(graph: LayerGraph, kind: ShortcutKind, roles: dict[str, Layer]) -> str:
    if kind in blocks.PROJECTIONS:
        pooled = kind in (ShortcutKind.POOLED_PROJECTION, ShortcutKind.DILATED_POOLED_PROJECTION)
        first = roles["shortcut_pool" if pooled else "shortcut_conv"]
        source = graph[graph.inputs(first.name)[0]].role
        text = "a 1x1 convolution"
        if kind is ShortcutKind.POOLED_PROJECTION:
            text = "a 2x2 average pool (ceil mode), then a 1x1 convolution"
        if kind is ShortcutKind.DILATED_POOLED_PROJECTION:
            text = (
                "a 2x2 average pool at stride 1 after zeros at the bottom and right (timm's "
                "AvgPool2dSame, in a stage that dilates), then a 1x1 convolution"
            )
        if kind is ShortcutKind.WIDE_PROJECTION:
            text = "a strided 3x3 convolution"
        if "shortcut_bn" in roles:
            text += " and BatchNorm"
        return text + (" of the pre-activated input" if source == "preact_relu" else " of the input")
    return {
        ShortcutKind.IDENTITY: "the input itself",
        ShortcutKind.MAX_POOL: "the input subsampled by a 1x1 max-pool",
        ShortcutKind.ZERO_PAD: "the input subsampled, with zero channels added (option A)",
    }[kind]


def block_view(
    graph: LayerGraph,
    handlers: Mapping[str, Callable[[Any, Layer], list[str]]],
    make_site: Callable[[str, blocks.BlockParameters], Any],
) -> dict[str, Any]:
    """The block function: its parameters, docstring, and body (one branch per shortcut kind).

    `make_site` gives the place the handlers write a block's layers at (a ``BlockSite``).
    """
    params = blocks.parameters(graph)
    branches: dict[ShortcutKind, list[str]] = {}
    roles: dict[str, Layer] = {}
    # Anti-aliasing: only blocks that stride have the pool, so the function tests the stride.
    aa = blocks.anti_alias_site(graph)
    aa_lines: list[str] = []
    if aa is not None:
        (aa_block,) = [ls for ls in graph.block_layers().values() if aa.pool in ls]
        aa_site = make_site(block_name(graph, aa_block), params)
        aa_site.indent = 8
        aa_lines = ["if stride != 1:", *indented(handlers[aa.pool.kind](aa_site, aa.pool))]

    def write(record: BlockRecord, layers: list[Layer]) -> tuple[list[str], list[str], list[str]]:
        prefix = block_name(graph, layers)
        site = make_site(prefix, params)
        parts: dict[str, list[str]] = {"preact": [], "residual": [], "skip": [], "x": []}
        for layer in layers:
            roles.setdefault(layer.role, layer)
            if layer.dims is not None:
                blocks.channel_check(layer, record)
            if blocks.is_attention(layer):
                blocks.attention_check(layer, record)
            if layer.role == "aa":
                roles.setdefault("aa", layer)
                continue  # written below, after its ReLU
            part = tensor_of(layer.role)
            part = "residual" if part == "gate" else part  # the gate is computed in the branch's flow
            site.indent = 8 if part == "skip" else 4  # shortcut branches sit inside an if
            parts[part] += handlers[layer.kind](site, layer)
            if aa is not None and layer.role == aa.after:
                parts[part] += aa_lines
        if record.shortcut is ShortcutKind.IDENTITY:
            if parts["skip"]:
                raise CodegenError(f"{prefix}: an identity shortcut with layers")
            parts["skip"] = ["skip = x"]
        known = branches.setdefault(record.shortcut, parts["skip"])
        if known != parts["skip"]:
            raise CodegenError(f"block {prefix} differs from the others in its shortcut")
        return parts["preact"], parts["residual"], parts["x"]

    preact, main, tail = blocks.same_for_every_block(graph, write)
    main = [*_block_sizes(graph), *main]
    bottleneck = "conv3" in roles
    kind = "bottleneck" if bottleneck else "basic"
    preactivation = "preact_bn" in roles
    signature = [("width: int", params.width), ("filters: int", True), ("stride: int", params.stride)]
    signature += [(f"{name}: int", True) for name in params.dilation_names]
    signature += [("shortcut: str", True), ("drop_path: float", bool(graph.network.drop_path))]
    signature.append(("name: str", True))

    summary = f"{'Pre-activation b' if preactivation else 'B'}{kind[1:]} residual block"
    summary += ": 1x1, 3x3 and 1x1 convolutions." if bottleneck else ": two 3x3 convolutions."
    kinds = blocks.kinds_in_order(set(branches))
    carriers = sorted(
        _suffix(graph, roles[r]) for r in params.stride_roles if not blocks.is_shortcut(roles[r])
    )
    args = [("x", "Block input, channels last.")]
    if params.width:
        args.append(("width", "Channels of the inner convolutions."))
    args.append(("filters", "Output channels of the block."))
    if params.stride:
        on = f"{' and '.join(carriers)} and the shortcut" if carriers else "the shortcut"
        args.append(("stride", f"Stride of the block, carried by {on}."))
    if "first_dilation" in params.dilation_names:
        args.append(("first_dilation", "Dilation of the first 3x3 convolution (output_stride)."))
        args.append(("dilation", "Dilation of the second 3x3 convolution (output_stride)."))
    elif params.dilation_names:
        args.append(
            ("dilation", "Dilation of the 3x3 convolutions, where the stage dilates instead of striding.")
        )
    options = "; ".join(f'"{k}": {_describe_shortcut(graph, k, roles)}' for k in kinds)
    args.append(("shortcut", f"How the input reaches the addition: {options}."))
    if graph.network.drop_path:
        args.append(("drop_path", "Rate at which training drops the residual branch, per sample."))
    args.append(("name", 'Prefix of the layer names, such as "conv2_block1".'))
    if len(summary) + 7 > LINE_LENGTH:
        raise CodegenError(f"docstring summary too long: {summary}")
    doc = ["    Args:"]
    for arg, text in args:
        doc += [f"        {line}" for line in wrap(f"{arg}: {text}", indent=8, hang=4)]
    doc += ["", "    Returns:", "        The block output."]

    return {
        "function": f"{kind}_block",
        "params": [p for p, used in signature if used],
        "summary": summary,
        "doc": doc,
        "preact": preact,
        "main": main,
        "branches": [
            {"test": f'{"if" if i == 0 else "elif"} shortcut == "{k}":', "lines": branches[k]}
            for i, k in enumerate(kinds)
        ],
        "tail": tail,
        "uses_zero_pad": ShortcutKind.ZERO_PAD in branches,
    }


def _block_sizes(graph: LayerGraph) -> list[str]:
    """Lines computing the first 1x1's width and the channel attention's size, by timm's rules."""
    lines = _first_width(graph)
    attention = graph.network.block.attention
    if isinstance(attention, SqueezeExciteDesign):
        d = literal(attention.divisor)
        rounding = (
            f"int(filters * {literal(attention.ratio)} + {literal(attention.divisor / 2)}) // {d} * {d}"
        )
        return [*lines, f"se_width = max({d}, {rounding})  # timm's make_divisible"]
    if isinstance(attention, EcaDesign):
        log = f"math.log(filters, 2) + {literal(attention.beta)}"
        return [
            *lines,
            f"t = int(abs({log}) / {literal(attention.gamma)})  # timm's ECA kernel rule",
            "eca_size = max(t if t % 2 else t + 1, 3)",
        ]
    return lines


def _first_width(graph: LayerGraph) -> list[str]:
    """The first 1x1's output width where it is narrower than the inner width (timm's reduce_first)."""
    reduce_first = graph.network.block.reduce_first
    blocks.first_width_check(graph)
    if reduce_first == 1:
        return []
    return [f"first_width = width // {literal(reduce_first)}  # timm's block_reduce_first"]


def _suffix(graph: LayerGraph, layer: Layer) -> str:
    """A block layer's name without its block prefix: conv3_block1_2_conv -> _2_conv."""
    prefix = block_name(graph, graph.block_layers()[(layer.stage or 0, layer.block or 0)])
    return keras_name(graph, layer.name).removeprefix(prefix)


def stage_views(
    graph: LayerGraph, kinds: list[LayerGraph], functions: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One comment and the block calls of every stage; runs of equal calls become a loop. `kinds` are
    the graph's views by block kind (`resgen.backends.blocks.kind_views`), `functions` their block
    functions."""
    by_block = graph.block_layers()
    views = []
    for stage, kind in zip(graph.network.stages, blocks.stage_kinds(graph), strict=True):
        block = functions[kind]
        names = {p.split(":")[0] for p in block["params"]}
        params = blocks.parameters(kinds[kind])
        records = [r for r in graph.blocks if r.stage == stage.index]
        first = block_name(graph, by_block[(stage.index, records[0].block)])
        prefix = first.removesuffix(str(records[0].block))
        runs: list[list[BlockRecord]] = []
        for record in records:
            if block_name(graph, by_block[(stage.index, record.block)]) != f"{prefix}{record.block}":
                raise CodegenError(f"stage {stage.index}: block names do not follow {prefix}N")
            if runs and _block_args(runs[-1][-1], names, params) == _block_args(record, names, params):
                runs[-1].append(record)
            else:
                runs.append([record])
        lines: list[str] = []
        first_index = sum(s.blocks for s in graph.network.stages if s.index < stage.index)
        for run in runs:
            args = _block_args(run[0], names, params)
            if len(run) == 1:
                name = f'name="{prefix}{run[0].block}"'
                drop = (
                    [f"drop_path=drop_path_rate({first_index + run[0].block - 1})"]
                    if "drop_path" in names
                    else []
                )
                lines += call_lines(f"x = {block['function']}", ["x", *args, *drop, name], 4)
            else:
                lines.append(f"for i in range({run[0].block}, {run[-1].block + 1}):")
                offset = first_index - 1
                index = "i" if offset == 0 else f"i + {offset}" if offset > 0 else f"i - {-offset}"
                drop = [f"drop_path=drop_path_rate({index})"] if "drop_path" in names else []
                call = call_lines(
                    f"x = {block['function']}", ["x", *args, *drop, f'name=f"{prefix}{{i}}"'], 8
                )
                lines += indented(call)
        strides = sorted({r.stride for r in records})
        stride = "stride 1" if strides == [1] else f"stride {max(strides)}"
        if len(records) > 1 and strides != [1]:
            where = [r.block for r in records if r.stride != 1]
            stride += f" in block {', '.join(str(b) for b in where)}"
        if stage.dilation != 1:  # output_stride: the stage dilates instead of striding
            stride += f", dilation {stage.dilation}"
        count = f"{len(records)} block{'s' if len(records) > 1 else ''}"
        comment = (
            f"# Stage {stage.index} ({prefix}*): {count}, {records[-1].out_channels} channels, {stride}."
        )
        views.append({"comment": comment, "lines": lines})
    return views


def _block_args(record: BlockRecord, names: set[str], params: blocks.BlockParameters) -> list[str]:
    args = []
    if "width" in names:
        args.append(f"width={literal(record.width)}")
    args.append(f"filters={literal(record.out_channels)}")
    if "stride" in names:
        args.append(f"stride={literal(record.stride)}")
    dilations = params.dilation_values(record)
    args += [f"{name}={literal(dilations[name])}" for name in params.dilation_names]
    args.append(f"shortcut={literal(str(record.shortcut))}")
    return args


def drop_path_lines(graph: LayerGraph) -> list[str]:
    """DROP_PATH_RATE, NUM_BLOCKS and drop_path_rate(), timm's schedule; none without drop-path. Every
    block's rate in the graph must be the one the schedule gives it."""
    net = graph.network
    if not net.drop_path:
        return []
    total = sum(s.blocks for s in net.stages)
    rates = [x.op.rate for ls in graph.block_layers().values() for x in ls if x.kind == "drop_path"]  # type: ignore[union-attr]
    if rates != [net.drop_path * i / (total - 1) for i in range(total)]:
        raise CodegenError("the blocks' drop-path rates do not follow timm's linear rule")
    return [
        "",
        *comment(
            "Stochastic depth with timm's linear rule: of all NUM_BLOCKS blocks, the block with index i "
            "(0-based, over every stage) drops its residual branch with probability "
            "DROP_PATH_RATE * i / (NUM_BLOCKS - 1), in training only.",
            0,
        ),
        f"DROP_PATH_RATE = {literal(net.drop_path)}",
        f"NUM_BLOCKS = {total}",
        "",
        "",
        "def drop_path_rate(index: int) -> float:",
        '    """The drop-path rate of the block with this global index."""',
        "    return DROP_PATH_RATE * index / (NUM_BLOCKS - 1)",
    ]
