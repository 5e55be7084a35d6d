"""The shape of a traced model: its trunk as a sequence of ops and residual blocks.

A node lies on the trunk when every path from the input to the output passes through it. Between
two trunk nodes there is either one op, or two paths that rejoin: at an addition, a residual block
(the path with more convolutions is the residual branch, the other the shortcut); at a
multiplication inside a branch, channel attention (the gate path is read as squeeze-and-excitation
or ECA). The result names every op by the module path it comes from, for errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from resgen.importers.errors import NotExpressible
from resgen.importers.torch_trace import TraceOp


@dataclass
class Attention:
    """Channel attention at the end of a branch: kind 'se' (reduced width) or 'eca' (kernel)."""

    kind: str
    path: str
    channels: int
    reduced: int = 0
    kernel: int = 0
    ops: list[TraceOp] = field(default_factory=list)


Item = TraceOp | Attention


@dataclass
class Block:
    """A residual block: the op where it splits, its branch and shortcut (empty: identity)."""

    split: TraceOp
    add: TraceOp
    branch: list[Item]
    shortcut: list[Item]

    @property
    def path(self) -> str:
        return self.add.path


Token = TraceOp | Block


def _region(ops: list[TraceOp], start: int, end: int) -> list[int]:
    """Indices of the ops after `start` that `end` depends on and that depend on `start`, in order."""
    below = {end}
    for op in reversed(ops[start + 1 : end + 1]):
        if op.index in below:
            below.update(i for i in op.inputs if i > start)
    above = {start}
    for op in ops[start + 1 : end + 1]:
        if any(i in above for i in op.inputs):
            above.add(op.index)
    region = sorted((below & above) - {start})
    for i in region:
        for j in ops[i].inputs:
            if j != start and j not in below:
                raise NotExpressible(ops[i].path, f"{ops[i].kind} reads a tensor from outside its block")
    return region


def _trunk(ops: list[TraceOp], start: int, region: list[int]) -> list[int]:
    """The members of `region` that every path from `start` to the region's end passes through:
    those that no edge jumps over."""
    order = [start, *region]
    position = {j: k for k, j in enumerate(order)}
    furthest: dict[int, int] = {}  # op -> position of the last op in the region reading it
    for k, j in enumerate(order):
        for i in ops[j].inputs:
            if i in position:
                furthest[i] = max(furthest.get(i, 0), k)
    reach = 0  # the furthest position an op before the current one feeds
    trunk = []
    for k, j in enumerate(order):
        if k and reach <= k:
            trunk.append(j)
        reach = max(reach, furthest.get(j, 0))
    return trunk


def sequence(ops: list[TraceOp], start: int, end: int, *, top: bool) -> list[Token]:
    """The ops from after `start` to `end`, with rejoining paths read as blocks (top level) or
    attention (inside a branch)."""
    if start == end:
        return []
    region = _region(ops, start, end)
    trunk = _trunk(ops, start, region)
    items: list[Token] = []
    previous = start
    for t in trunk:
        op = ops[t]
        if op.inputs == [previous]:
            items.append(op)
        elif op.kind == "add" and top and len(op.inputs) == 2:
            items.append(_block(ops, previous, op))
        elif op.kind == "mul" and not top and len(op.inputs) == 2 and previous in op.inputs:
            items.append(_attention(ops, previous, op))
        elif op.kind == "add":
            raise NotExpressible(op.path, "an addition inside a residual branch is not expressible")
        else:
            raise NotExpressible(op.path, f"{op.kind} joining two paths is not expressible")
        previous = t
    return items


def _convs(items: list[Item]) -> int:
    return sum(1 for i in items if isinstance(i, TraceOp) and i.kind == "conv")


def _block(ops: list[TraceOp], split: int, add: TraceOp) -> Block:
    paths = [sequence(ops, split, i, top=False) for i in add.inputs]
    if any(isinstance(i, Block) for p in paths for i in p):
        raise NotExpressible(add.path, "a residual block inside a residual branch is not expressible")
    first, second = paths
    branch, shortcut = (first, second) if _convs(first) >= _convs(second) else (second, first)
    return Block(ops[split], add, branch, shortcut)  # type: ignore[arg-type]


def _attention(ops: list[TraceOp], x: int, mul: TraceOp) -> Attention:
    gate_end = mul.inputs[1] if mul.inputs[0] == x else mul.inputs[0]
    gate = [i for i in sequence(ops, x, gate_end, top=False) if isinstance(i, TraceOp)]
    kinds = [op.kind for op in gate if op.kind != "reshape"]
    channels = ops[x].shape[1]
    path = mul.path
    if kinds[:1] == ["global_pool"] and kinds[1:] in (["conv", "relu", "conv", "sigmoid"],):
        fc1, fc2 = (op for op in gate if op.kind == "conv")
        for fc in (fc1, fc2):
            if fc.attrs["kernel"] != (1, 1) or not fc.attrs["bias"] or fc.attrs["groups"] != 1:
                raise NotExpressible(fc.path, "squeeze-and-excitation needs 1x1 convolutions with bias")
            if fc.attrs["standardized"] is not None:
                raise NotExpressible(
                    fc.path,
                    "a weight-standardized squeeze-and-excitation is not expressible",
                )
        if fc2.attrs["out"] != channels:
            raise NotExpressible(fc2.path, "squeeze-and-excitation must restore the channel count")
        return Attention("se", path, channels, reduced=fc1.attrs["out"], ops=gate)
    if kinds == ["global_pool", "conv1d", "sigmoid"]:
        conv = next(op for op in gate if op.kind == "conv1d")
        k = conv.attrs["kernel"]
        if conv.attrs["bias"] or conv.attrs["padding"] != (k - 1) // 2 or conv.attrs["stride"] != 1:
            raise NotExpressible(conv.path, "ECA needs a bias-free 1-D convolution padded to keep its length")
        return Attention("eca", path, channels, kernel=k, ops=gate)
    raise NotExpressible(path, f"a gate of {' -> '.join(kinds)} is not expressible")


def tokens(ops: list[TraceOp]) -> list[Token]:
    """The whole model: ops and residual blocks from the input to the output."""
    return sequence(ops, 0, len(ops) - 1, top=True)


def describe(item: Any) -> str:
    """One word for an item in a message."""
    if isinstance(item, Block):
        return "a residual block"
    if isinstance(item, Attention):
        return f"{item.kind} attention"
    return item.kind
