"""Blocks grouped into stages, and the settings every block shares: the block section (kind,
expansion, groups, width rule, stride placement, anti-aliasing, attention), the stages and the
shortcut section. A setting that differs from block to block where the spec has one value for all
is refused with the first block that departs."""

from __future__ import annotations

import math
from itertools import groupby
from typing import Any

from resgen.importers.errors import NotExpressible, agreed
from resgen.importers.torch_blocks import BlockRead


def _stage_key(path: str) -> str:
    parent, _, last = path.rpartition(".")
    return parent if last.isdigit() and parent else path


def _groups(reads: list[BlockRead]) -> list[list[BlockRead]]:
    """Blocks by stage: by their parent module (layer1, stages.0.blocks), else where the width or
    resolution changes. A parent holding blocks of several widths (every block in one nn.Sequential)
    is a container of stages, not a stage: it is split where the width or resolution changes."""
    if all(_stage_key(r.path) != r.path for r in reads):
        parents = [list(g) for _, g in groupby(reads, key=lambda r: _stage_key(r.path))]
    else:
        parents = [reads]
    stages: list[list[BlockRead]] = []
    for group in parents:
        one_stage = len({r.out_channels for r in group}) == 1 and sum(r.stride != 1 for r in group) <= 1
        if one_stage and group is not reads:
            stages.append(group)
            continue
        start = len(stages)
        for r in group:
            if len(stages) == start or r.out_channels != stages[-1][-1].out_channels or r.stride != 1:
                stages.append([])
            stages[-1].append(r)
    return stages


def _widths(stages: list[list[BlockRead]]) -> tuple[list[int], dict[str, Any]]:
    """Stage filters and the bottleneck width rule (expansion, groups, width_per_group, reduce_first)."""
    reads = [r for s in stages for r in s]
    groups = agreed(reads, "a 3x3 convolution with groups", lambda r: r.groups, among="blocks")
    for s in stages:
        agreed(s, "a block width", lambda r: (r.reduced, r.inner, r.out_channels), among="blocks")
    firsts = [s[0] for s in stages]
    for r in firsts:
        if r.inner % r.reduced:
            raise NotExpressible(
                r.path,
                f"a first 1x1 of {r.reduced} channels widening to {r.inner} is not expressible",
            )
    reduce_first = agreed(firsts, "a first-1x1 reduction", lambda r: r.inner // r.reduced, among="blocks")
    for e in (4, 1, 2, 8, 3, 6, 16):
        if any(r.out_channels % e for r in firsts):
            continue
        filters = [r.out_channels // e for r in firsts]
        guess = firsts[0].inner * 64 // (filters[0] * groups) if filters[0] * groups else 0
        for wpg in [guess, *range(1, 4097)]:
            if 1 <= wpg <= 4096 and all(
                f * wpg // 64 * groups == r.inner for f, r in zip(filters, firsts, strict=True)
            ):
                rule = {
                    "expansion": e,
                    "groups": groups,
                    "width_per_group": wpg,
                    "reduce_first": reduce_first,
                }
                return filters, rule
    raise NotExpressible(
        firsts[0].path,
        "bottleneck widths that no (expansion, groups, width_per_group) rule gives are not expressible",
    )


def _se_rule(reads: list[BlockRead]) -> dict[str, Any]:
    pairs = [(r.attention.channels, r.attention.reduced) for r in reads if r.attention]
    c0, r0 = pairs[0]
    for ratio in (1 / 16, 1 / 4, 1 / 8, 1 / 2, r0 / c0):
        for divisor in (8, 1, 4, 16, 2, 32):
            if all(max(divisor, int(c * ratio + divisor / 2) // divisor * divisor) == r for c, r in pairs):
                return {"kind": "se", "ratio": ratio, "divisor": divisor}
    raise NotExpressible(
        reads[0].attention.path,
        "squeeze-and-excitation widths that no ratio and divisor give are not expressible",
    )


def _eca_kernel(channels: int, gamma: int, beta: int) -> int:
    t = int(abs(math.log2(channels) + beta) / gamma)
    return max(t if t % 2 else t + 1, 3)


def _eca_rule(reads: list[BlockRead]) -> dict[str, Any]:
    pairs = [(r.attention.channels, r.attention.kernel) for r in reads if r.attention]
    for gamma, beta in [(2, 1), *((g, b) for g in range(1, 17) for b in range(17))]:
        if all(_eca_kernel(c, gamma, beta) == k for c, k in pairs):
            return {"kind": "eca", "gamma": gamma, "beta": beta}
    raise NotExpressible(
        reads[0].attention.path,
        "ECA kernel sizes that no (gamma, beta) rule gives are not expressible",
    )


def _stride_block(stages: list[list[BlockRead]]) -> str:
    where = set()
    for s in stages:
        strided = [k for k, r in enumerate(s) if r.stride != 1]
        if len(strided) > 1:
            raise NotExpressible(s[strided[1]].path, "a second strided block in a stage is not expressible")
        if strided and len(s) > 1:
            where.add("first" if strided[0] == 0 else "last" if strided[0] == len(s) - 1 else "middle")
    if "middle" in where or len(where) > 1:
        raise NotExpressible(
            stages[0][0].path,
            "strides on different blocks of their stages are not expressible",
        )
    return where.pop() if where else "first"


def read_stages(reads: list[BlockRead], preact: bool, notes: dict[str, str]) -> tuple[dict, list, dict]:
    """The block section, the stages and the shortcut section."""
    stages = _groups(reads)
    # one kind per stage (timm's per-stage block classes); the first stage's is block.kind
    kinds = [agreed(s, "a block kind", lambda r: r.kind, among="blocks") for s in stages]
    kind = kinds[0]
    agreed(reads, "pre-activation", lambda r: r.preactivation, among="blocks")
    for s in stages:
        agreed(s, "a block's output width", lambda r: r.out_channels, among="blocks")
    block: dict[str, Any] = {"kind": kind}
    if preact:
        block["preactivation"] = True
    bottlenecks = [s for s, k in zip(stages, kinds, strict=True) if k == "bottleneck"]
    widths: list[int] = []
    if bottlenecks:
        widths, rule = _widths(bottlenecks)
        defaults = {"expansion": 4, "groups": 1, "width_per_group": 64, "reduce_first": 1}
        changed = {k: v for k, v in rule.items() if v != defaults[k]}
        strided = [r for s in bottlenecks for r in s if r.stride != 1 and not r.anti_alias]
        stride_on = {r.stride_on for r in strided}
        if len(stride_on) > 1:
            raise NotExpressible(
                reads[0].path,
                "strides on different convolutions of their blocks are not expressible",
            )
        on = stride_on.pop() if stride_on else "conv2"
        if kind == "bottleneck":
            block.update(changed)
            block["stride_on"] = on
        elif changed or on != "conv2":
            raise NotExpressible(
                bottlenecks[0][0].path,
                "bottleneck blocks with their own width or stride rule among basic ones are not expressible",
            )
    filters = [
        widths.pop(0) if k == "bottleneck" else s[0].out_channels for s, k in zip(stages, kinds, strict=True)
    ]
    stride_block = _stride_block(stages)
    if stride_block != "first":
        block["stride_block"] = stride_block
    strided = [r for r in reads if r.stride != 1]
    anti = agreed(strided, "anti-aliasing", lambda r: r.anti_alias, among="blocks") if strided else None
    if anti:
        block["anti_alias"] = anti
        notes["block.anti_alias"] = "a pool after the strided 3x3 carries the stride (timm's aa_layer)"
    has = agreed(
        reads, "channel attention", lambda r: r.attention.kind if r.attention else None, among="blocks"
    )
    if has == "se":
        block["attention"] = _se_rule(reads)
        notes["block.attention"] = "squeeze-and-excitation at the end of every residual branch"
    elif has == "eca":
        block["attention"] = _eca_rule(reads)
        notes["block.attention"] = "ECA: a 1-D convolution across the pooled channels"
    rows = []
    for s, f, k in zip(stages, filters, kinds, strict=True):
        stride = next((r.stride for r in s if r.stride != 1), 1)
        rows.append({"blocks": len(s), "filters": f, "stride": stride, **({"block": k} if k != kind else {})})
    shortcut = _shortcut(stages, reads)
    if shortcut.get("downsample") == "avg_pool":
        notes["shortcut.downsample"] = "2x2 average pool, then a stride-1 1x1 convolution (timm's avg_down)"
    if shortcut["kind"] == "zero_pad":
        notes["shortcut.kind"] = "option A: subsample, zero-pad the new channels (He et al. 2015)"
    return block, rows, shortcut


def _shortcut(stages: list[list[BlockRead]], reads: list[BlockRead]) -> dict[str, Any]:
    used = [r for r in reads if r.shortcut["kind"] != "identity"]
    if not used:
        return {"kind": "projection"}
    kinds = {r.shortcut["kind"] for r in used}
    if kinds == {"zero_pad"}:
        for r in used:
            extra = r.out_channels - r.in_channels
            if r.shortcut["pads"] != (extra // 2, extra - extra // 2) or r.shortcut["stride"] != r.stride:
                raise NotExpressible(
                    r.path,
                    f"zero-padding {r.shortcut['pads']} channels is not expressible "
                    "(the spec splits them evenly, an odd one after)",
                )
        return {"kind": "zero_pad"}
    projections = [r for r in used if r.shortcut["kind"] == "projection"]
    if not projections or kinds - {"projection", "max_pool"}:
        raise NotExpressible(used[0].path, f"shortcuts of kinds {sorted(kinds)} together are not expressible")
    out: dict[str, Any] = {"kind": "projection"}
    out["norm"] = agreed(projections, "a projection norm", lambda r: r.shortcut["norm"], among="blocks")
    source = agreed(projections, "a projection source", lambda r: r.shortcut["source"], among="blocks")
    if source != "input":
        out["source"] = source
    strided = [r for r in projections if r.stride != 1]
    if strided:
        if agreed(strided, "a projection kernel", lambda r: r.shortcut["kernel_size"], among="blocks") == 3:
            out["kernel_size"] = 3
        if agreed(strided, "an average-pool downsample", lambda r: r.shortcut["avg_pool"], among="blocks"):
            out["downsample"] = "avg_pool"
    for r in projections:
        if r.stride == 1 and r.shortcut["kernel_size"] != 1:
            raise NotExpressible(
                r.path,
                "a projection wider than 1x1 where the block does not stride is not expressible",
            )
        if r.shortcut["stride"] != r.stride:
            raise NotExpressible(
                r.path,
                "a projection whose stride differs from its block's is not expressible",
            )
    same_shape = [r for r in projections if r.in_channels == r.out_channels and r.stride == 1]
    if same_shape:
        firsts = [s[0] for s in stages]
        if any(r.shortcut["kind"] != "projection" for r in firsts) or any(
            r not in firsts for r in same_shape
        ):
            raise NotExpressible(
                same_shape[0].path,
                "a projection where the shape does not change is not expressible here",
            )
        out["when"] = "first_block"
    pooled = [r for r in used if r.shortcut["kind"] == "max_pool"]
    if pooled:
        for r in reads:
            only_stride = r.in_channels == r.out_channels and r.stride != 1
            if only_stride != (r.shortcut["kind"] == "max_pool"):
                raise NotExpressible(
                    r.path,
                    "a max-pool shortcut other than where only the resolution changes is not expressible",
                )
        out["stride_only"] = "max_pool"
    return out
