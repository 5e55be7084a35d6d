"""One residual block of a traced model, read: its kind, widths, stride, anti-aliasing, attention
and shortcut, each checked against what the spec language can say.

A branch is read as a string of symbols, one per op (C convolution, N norm, R ReLU, A anti-aliasing
pool, S channel attention, D drop-path), and matched against the four block shapes the spec knows:
basic or bottleneck, post- or pre-activation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from resgen.importers.errors import NotExpressible
from resgen.importers.torch_structure import Attention, Block, Item
from resgen.importers.torch_trace import TraceOp

SHAPES = {
    ("basic", False): re.compile(r"CNR(A?)CN(S?)(D?)"),
    ("bottleneck", False): re.compile(r"CNRCNR(A?)CN(S?)(D?)"),
    ("basic", True): re.compile(r"NRCNRC(S?)(D?)"),
    ("bottleneck", True): re.compile(r"NRCNRCNRC(S?)(D?)"),
}
_SYMBOL = {"conv": "C", "norm": "N", "relu": "R", "avg_pool": "A", "blur": "A", "drop_path": "D"}


def symbols(items: list[Item]) -> str:
    """One letter per item; '?' for an op no block shape has."""
    return "".join("S" if isinstance(i, Attention) else _SYMBOL.get(i.kind, "?") for i in items)


@dataclass
class BlockRead:
    """What a block says about the spec."""

    path: str
    kind: str
    preactivation: bool
    in_channels: int
    out_channels: int
    stride: int
    convs: list[TraceOp]
    norms: list[TraceOp]
    inner: int = 0  # width of the 3x3 (bottleneck)
    reduced: int = 0  # width of the first 1x1 (bottleneck)
    groups: int = 1
    stride_on: str = "conv2"
    anti_alias: dict[str, Any] | None = None
    attention: Attention | None = None
    drop_path: float = 0.0
    shortcut: dict[str, Any] = field(default_factory=dict)
    shortcut_convs: list[TraceOp] = field(default_factory=list)
    shortcut_norms: list[TraceOp] = field(default_factory=list)


def _ops(items: list[Item]) -> list[TraceOp]:
    return [i for i in items if isinstance(i, TraceOp)]


def _anti_alias(op: TraceOp) -> tuple[dict[str, Any], int]:
    a = op.attrs
    if op.kind == "blur":
        return {"kind": "blur", "filter_size": a["filter_size"]}, a["stride"]
    if a["kernel"] == (2, 2) and a["stride"] == (2, 2) and a["padding"] == (0, 0) and not a["ceil"]:
        return {"kind": "avg_pool"}, 2
    raise NotExpressible(
        op.path,
        f"an average pool {a['kernel']}/{a['stride']} after the 3x3 is not expressible",
    )


def read_block(block: Block, preact_items: list[Item], source: str) -> BlockRead:
    """Read `block`; `preact_items` are the norm and ReLU before its split (pre-activation blocks
    whose shortcut reads the pre-activated input), and `source` says where the shortcut reads."""
    branch = [*preact_items, *block.branch]
    text = symbols(branch)
    shapes = [shape for shape, pattern in SHAPES.items() if pattern.fullmatch(text)]
    if not shapes:
        raise NotExpressible(block.path, f"a residual branch of {text_of(branch)} is not expressible")
    kind, preact = shapes[0]
    ops = _ops(branch)
    convs = [op for op in ops if op.kind == "conv"]
    norms = [op for op in ops if op.kind == "norm"]
    read = BlockRead(
        block.path,
        kind,
        preact,
        block.split.shape[1],
        block.add.shape[1],
        1,
        convs,
        norms,
    )
    strides = [op.attrs["stride"][0] for op in convs]
    for op in convs:
        if op.attrs["stride"][0] != op.attrs["stride"][1]:
            raise NotExpressible(op.path, "a convolution with unequal strides is not expressible")
        if op.attrs["dilation"] != (1, 1):
            raise NotExpressible(op.path, "a dilated convolution is not expressible here")
    aa = [op for op in ops if op.kind in ("avg_pool", "blur")]
    if aa:
        read.anti_alias, read.stride = _anti_alias(aa[0])
    strided = [k for k, s in enumerate(strides) if s != 1]
    if len(strided) > 1 or (strided and aa):
        raise NotExpressible(block.path, "a block that strides in two places is not expressible")
    if strided:
        read.stride = strides[strided[0]]
    three = 1 if kind == "bottleneck" else 0  # the 3x3 convolution
    if kind == "bottleneck":
        read.reduced, read.inner, read.groups = (
            convs[0].attrs["out"],
            convs[1].attrs["out"],
            convs[1].attrs["groups"],
        )
        if strided:
            if strided[0] == 2:
                raise NotExpressible(convs[2].path, "a stride on the last 1x1 convolution is not expressible")
            read.stride_on = "conv1" if strided[0] == 0 else "conv2"
    else:
        read.inner = convs[0].attrs["out"]
        if convs[0].attrs["groups"] != 1 or convs[1].attrs["groups"] != 1:
            raise NotExpressible(convs[0].path, "a grouped convolution in a basic block is not expressible")
        if read.inner != read.out_channels:
            raise NotExpressible(convs[0].path, "a basic block whose width changes inside is not expressible")
    for k, op in enumerate(convs):
        want = 3 if k == three or kind == "basic" else 1
        if op.attrs["kernel"] != (want, want):
            raise NotExpressible(
                op.path,
                f"a {op.attrs['kernel'][0]}x{op.attrs['kernel'][1]} convolution "
                f"where the block has a {want}x{want} is not expressible",
            )
    attention = [i for i in branch if isinstance(i, Attention)]
    read.attention = attention[0] if attention else None
    drops = [op for op in ops if op.kind == "drop_path"]
    read.drop_path = drops[0].attrs["p"] if drops else 0.0
    _read_shortcut(read, block, source)
    return read


def text_of(items: list[Item]) -> str:
    return " -> ".join(i.kind if isinstance(i, (TraceOp, Attention)) else "?" for i in items)


def _read_shortcut(read: BlockRead, block: Block, source: str) -> None:
    items = block.shortcut
    ops = _ops(items)
    kinds = [op.kind for op in ops]
    where = ops[0].path if ops else block.path
    if not items:
        read.shortcut = {"kind": "identity"}
        if read.in_channels != read.out_channels or read.stride != 1:
            raise NotExpressible(
                block.path,
                "an identity shortcut where the shape changes is not expressible",
            )
        return
    if kinds == ["subsample", "pad"]:
        pads = ops[1].attrs["pads"]
        if ops[1].attrs["value"] != 0 or len(pads) != 6 or any(pads[:4]):
            raise NotExpressible(ops[1].path, f"padding by {pads} in a shortcut is not expressible")
        read.shortcut = {"kind": "zero_pad", "stride": ops[0].attrs["stride"], "pads": pads[4:]}
        return
    if kinds == ["max_pool"]:
        a = ops[0].attrs
        if a["kernel"] != (1, 1) or a["padding"] != (0, 0):
            raise NotExpressible(where, "a max-pool shortcut other than 1x1 is not expressible")
        read.shortcut = {"kind": "max_pool", "stride": a["stride"][0]}
        return
    pool = None
    if kinds and kinds[0] == "avg_pool":
        pool = ops.pop(0)
        kinds.pop(0)
        a = pool.attrs
        if not (a["ceil"] and not a["count_pad"] and a["kernel"] == a["stride"] and a["padding"] == (0, 0)):
            raise NotExpressible(
                pool.path,
                "an average pool in a shortcut other than timm's avg_down is not expressible",
            )
    if kinds not in (["conv"], ["conv", "norm"]):
        raise NotExpressible(where, f"a shortcut of {' -> '.join(kinds)} is not expressible")
    conv = ops[0]
    k = conv.attrs["kernel"][0]
    if (
        conv.attrs["kernel"] not in ((1, 1), (3, 3))
        or conv.attrs["groups"] != 1
        or conv.attrs["padding"] != (k // 2, k // 2)
    ):
        raise NotExpressible(conv.path, f"a {k}x{k} projection shortcut is not expressible")
    read.shortcut = {
        "kind": "projection",
        "norm": kinds == ["conv", "norm"],
        "source": source,
        "kernel_size": k,
        "avg_pool": pool is not None,
        "stride": (pool.attrs["stride"][0] if pool else conv.attrs["stride"][0]),
    }
    read.shortcut_convs = [conv]
    read.shortcut_norms = [op for op in ops if op.kind == "norm"]
