"""The blocks of a Keras model read as the spec's block, stages and shortcut sections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from resgen.importers.errors import NotExpressible
from resgen.importers.keras_blocks import Block, Tok, pattern
from resgen.importers.keras_parts import conv_settings

ALIASES = {"avg_pool": "aa", "blur_pool": "aa"}


@dataclass(frozen=True)
class BlockFacts:
    """What one block says about the spec."""

    block: Block
    bottleneck: bool
    in_channels: int
    first_width: int  # channels out of the first convolution
    width: int  # channels of the 3x3 (bottleneck) or of the block (basic)
    out_channels: int
    groups: int
    stride: int
    stride_on: str
    shortcut: str  # identity, projection, max_pool, zero_pad
    shortcut_settings: dict[str, Any]
    aa: dict[str, Any] | None
    drop: float
    convs: tuple[dict[str, Any], ...]


def read_block(block: Block, preactivation: bool) -> BlockFacts:
    toks = [Tok(ALIASES.get(t.kind, t.kind), t.node, t.pad, t.pad_node, t.gate) for t in block.residual]
    convs = [t for t in toks if t.kind == "conv"]
    if len(convs) not in (2, 3):
        raise NotExpressible(
            block.add.name, f"a residual branch of {len(convs)} convolutions is not expressible"
        )
    bottleneck = len(convs) == 3
    aa_toks = [t for t in toks if t.kind == "aa"]
    drops = [t for t in toks if t.kind == "drop"]
    wanted = pattern(
        bottleneck=bottleneck,
        preactivation=preactivation,
        aa=bool(aa_toks),
        attention=any(t.kind == "attn" for t in toks),
        drop=bool(drops),
    )
    kinds = [t.kind for t in toks]
    if kinds != wanted:
        where = next(
            (t.node.name for t, w in zip(toks, wanted, strict=False) if t.kind != w), toks[-1].node.name
        )
        raise NotExpressible(where, f"a residual branch of layers {kinds} is not expressible")
    settings = [conv_settings(c) for c in convs]
    strides = [s["stride"] for s in settings]
    aa = None
    stride = max(strides)
    if aa_toks:
        aa, aa_stride = _anti_alias(aa_toks[0])
        if stride != 1:
            raise NotExpressible(aa_toks[0].node.name, "anti-aliasing after a strided convolution")
        stride, stride_on = aa_stride, "conv2"
    elif stride == 1:
        stride_on = ""
    else:
        where = [i for i, s in enumerate(strides) if s != 1]
        if len(where) != 1 or where[0] == len(convs) - 1:
            raise NotExpressible(convs[where[-1]].node.name, "a block that strides in this convolution")
        stride_on = f"conv{where[0] + 1}"
    for i, s in enumerate(settings):
        if s["groups"] != 1 and not (bottleneck and i == 1):
            raise NotExpressible(convs[i].node.name, "a grouped convolution outside a bottleneck's 3x3")
    in_channels = int(block.residual[0].node.layer.input.shape[-1])
    short, short_settings = _shortcut(block)
    return BlockFacts(
        block=block,
        bottleneck=bottleneck,
        in_channels=in_channels,
        first_width=settings[0]["filters"],
        width=settings[1]["filters"] if bottleneck else settings[0]["filters"],
        out_channels=settings[-1]["filters"],
        groups=settings[1]["groups"] if bottleneck else 1,
        stride=stride,
        stride_on=stride_on,
        shortcut=short,
        shortcut_settings=short_settings,
        aa=aa,
        drop=float(drops[0].node.config["rate"]) if drops else 0.0,
        convs=tuple(settings),
    )


def _anti_alias(tok: Tok) -> tuple[dict[str, Any], int]:
    config = tok.node.config
    if tok.node.kind == "blur_pool":
        return {"kind": "blur", "filter_size": int(config.get("filter_size", 3))}, int(config["stride"])
    pool = config["pool_size"]
    size = pool if isinstance(pool, int) else pool[0]
    strides = config["strides"]
    stride = strides if isinstance(strides, int) else strides[0]
    if size != stride or config["padding"] != "valid":
        raise NotExpressible(tok.node.name, "an average pool in a block that is not a 2x2 anti-aliasing pool")
    return {"kind": "avg_pool"}, int(stride)


def _shortcut(block: Block) -> tuple[str, dict[str, Any]]:
    toks = list(block.shortcut)
    kinds = [t.kind for t in toks]
    if not toks:
        return "identity", {}
    if kinds == ["zero_pad_shortcut"]:
        return "zero_pad", {"stride": int(toks[0].node.config["stride"])}
    if kinds == ["max_pool"]:
        config = toks[0].node.config
        size = config["pool_size"]
        if (size if isinstance(size, int) else size[0]) != 1 or toks[0].pad is not None:
            raise NotExpressible(toks[0].node.name, "a max-pool shortcut that is not 1x1")
        strides = config["strides"]
        return "max_pool", {"stride": int(strides if isinstance(strides, int) else strides[0])}
    settings: dict[str, Any] = {"norm": False, "downsample": "conv"}
    if kinds and kinds[0] == "avg_pool":
        config = toks[0].node.config
        strides = config["strides"]
        settings["downsample"] = "avg_pool"
        settings["pool_stride"] = int(strides if isinstance(strides, int) else strides[0])
        toks, kinds = toks[1:], kinds[1:]
    if kinds in (["conv"], ["conv", "norm"]):
        conv = conv_settings(toks[0])
        settings |= {"norm": len(kinds) == 2, "conv": conv, "kernel_size": conv["kernel"]}
        return "projection", settings
    where = toks[0].node.name if toks else block.add.name
    raise NotExpressible(where, f"a shortcut of layers {kinds} is not expressible")


def stages(facts: list[BlockFacts]) -> tuple[list[dict[str, Any]], str, list[list[BlockFacts]]]:
    """The stages (blocks, filters, stride), the block that strides ("first" or "last"), and the
    blocks of each stage."""
    stride_block = "first"
    for i, f in enumerate(facts):
        same_shape = f.in_channels == f.out_channels and (i == 0 or facts[i - 1].width == f.width)
        following = facts[i + 1] if i + 1 < len(facts) else None
        changes_after = following is None or (following.width, following.out_channels) != (
            f.width,
            f.out_channels,
        )
        if f.stride > 1 and same_shape and f.shortcut != "projection" and changes_after:
            stride_block = "last"
    groups: list[list[BlockFacts]] = []
    for i, f in enumerate(facts):
        prev = facts[i - 1] if i else None
        new = prev is None or prev.width != f.width or prev.out_channels != f.out_channels
        if stride_block == "first":
            new = new or f.stride > 1 or f.shortcut == "projection"
        else:
            new = new or (prev is not None and prev.stride > 1) or f.shortcut == "projection"
        if new:
            groups.append([f])
        else:
            groups[-1].append(f)
    rows = []
    for group in groups:
        strided = [f.stride for f in group if f.stride > 1]
        at = group[0] if stride_block == "first" else group[-1]
        if len(strided) > 1 or (strided and at.stride == 1):
            raise NotExpressible(group[0].block.add.name, "a stage that strides in more than one block")
        rows.append({"blocks": len(group), "filters": 0, "stride": at.stride})
    return rows, stride_block, groups
