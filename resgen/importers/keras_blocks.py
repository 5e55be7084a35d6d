"""The residual blocks of a Keras model, read from its top-level sequence (`keras_graph.sequence`).

Every ``Add`` join is one block: of its two branches, the one with two or more convolutions is the
residual branch, the other the shortcut (which of the two the ``Add`` takes first is kept: it sets
the order of the model's layers, which Keras' weight files follow). A block without pre-activation
is followed by a ReLU; in a pre-activation network the BatchNorm + ReLU that a projection shortcut
shares with the residual branch sits before the join (both branches read it), and is moved into the
block here. What comes before the first block is the stem, what follows the last one the head.
"""

from __future__ import annotations

from dataclasses import dataclass

from resgen.importers.errors import NotExpressible
from resgen.importers.keras_graph import Item, Join, Node

NORMS = ("bn", "gn")


@dataclass(frozen=True)
class Tok:
    """A layer of a branch with what the spec needs to know about it: its kind, and the padding a
    ZeroPadding2D (or NegInfPadding2D) before it added."""

    kind: str  # conv, norm, relu, aa, attn, drop, pool, avg_pool, max_pool, zero_pad ...
    node: Node
    pad: tuple[tuple[int, int], tuple[int, int]] | None = None
    pad_node: Node | None = None
    gate: tuple[Item, ...] = ()  # attention: the gate's layers


@dataclass(frozen=True)
class Block:
    """One residual block: the residual branch (pre-activation included), the shortcut, the source
    the shortcut reads (``input`` or ``preactivated``), the layers after the addition, and whether
    the addition takes the residual branch first."""

    add: Node
    residual: tuple[Tok, ...]
    shortcut: tuple[Tok, ...]
    source: str
    post: tuple[Node, ...]
    residual_first: bool = False

    @property
    def convs(self) -> list[Tok]:
        return [t for t in self.residual if t.kind == "conv"]


@dataclass(frozen=True)
class Layout:
    """The model cut into stem, blocks and head."""

    stem: tuple[Item, ...]
    blocks: tuple[Block, ...]
    head: tuple[Item, ...]
    preactivation: bool


def tokens(items: tuple[Item, ...] | list[Item]) -> list[Tok]:
    """A branch's layers as tokens, paddings folded into the layer they pad for."""
    out: list[Tok] = []
    pad: Node | None = None
    for item in items:
        if isinstance(item, Join):
            if pad is not None:
                raise NotExpressible(pad.name, "padding before a join is not expressible")
            out.append(_attention(item))
            continue
        if item.kind in ("pad", "neg_inf_pad"):
            if pad is not None:
                raise NotExpressible(item.name, "two paddings in a row are not expressible")
            pad = item
            continue
        kind = _token_kind(item)
        if pad is not None:
            if kind not in ("conv", "max_pool"):
                raise NotExpressible(pad.name, f"padding before a {item.class_name} is not expressible")
            out.append(Tok(kind, item, _pads(pad), pad))
            pad = None
        else:
            out.append(Tok(kind, item))
    if pad is not None:
        raise NotExpressible(pad.name, "padding at the end of a branch is not expressible")
    return out


def _token_kind(node: Node) -> str:
    if node.kind in NORMS:
        return "norm"
    if node.kind == "dropout" and node.config.get("noise_shape"):
        return "drop"
    return node.kind


def _pads(node: Node) -> tuple[tuple[int, int], tuple[int, int]]:
    if node.kind == "neg_inf_pad":
        p = int(node.config["padding"])
        return ((p, p), (p, p))
    padding = node.config["padding"]
    if node.config.get("data_format", "channels_last") != "channels_last":
        raise NotExpressible(node.name, "channels-first padding is not expressible")
    (top, bottom), (left, right) = padding
    return ((int(top), int(bottom)), (int(left), int(right)))


def _attention(join: Join) -> Tok:
    """A Multiply join in a residual branch: the branch scaled by a gate computed from it."""
    if join.node.kind != "multiply":
        raise NotExpressible(
            join.node.name, "a residual addition inside a residual branch is not expressible"
        )
    empty = [b for b in join.branches if not b]
    gates = [b for b in join.branches if b]
    if len(empty) != 1 or len(gates) != 1:
        raise NotExpressible(
            join.node.name, "a Multiply that does not scale a branch by a gate is not expressible"
        )
    return Tok("attn", join.node, gate=gates[0])


def layout(items: tuple[Item, ...]) -> Layout:
    """Cut the model's top-level sequence into stem, blocks and head."""
    joins = [i for i, item in enumerate(items) if isinstance(item, Join)]
    if not joins:
        raise NotExpressible("", "the model has no residual addition: it is not a ResNet")
    for i in joins:
        join = items[i]
        assert isinstance(join, Join)
        if join.node.kind != "add":
            raise NotExpressible(join.node.name, "a Multiply outside a residual branch is not expressible")
    after = [items[i + 1] if i + 1 < len(items) else None for i in joins]
    preactivation = not all(isinstance(a, Node) and a.kind == "relu" for a in after)
    blocks: list[Block] = []
    bounds = [*joins, len(items)]
    stem_end = joins[0]
    for k, i in enumerate(joins):
        join = items[i]
        assert isinstance(join, Join)
        residual, shortcut = _branches(join)
        start = bounds[k - 1] + 1 if k else 0
        if preactivation:
            between = list(items[start:i])
            pre: list[Item] = []
            if not (residual and isinstance(residual[0], Node) and residual[0].kind in NORMS):
                pre = between[-2:]
                if len(pre) != 2 or not _is_norm_relu(pre):
                    raise NotExpressible(
                        join.node.name, "a pre-activation block without its BatchNorm + ReLU"
                    )
                if not shortcut:
                    raise NotExpressible(join.node.name, "an identity shortcut from the pre-activated input")
            if k and between[: len(between) - len(pre)]:
                raise NotExpressible(_name(between[0]), "a layer between residual blocks is not expressible")
            if not k:
                stem_end = i - len(pre)
            source = "preactivated" if pre else "input"
            blocks.append(
                Block(
                    join.node,
                    tuple(tokens([*pre, *residual])),
                    tuple(tokens(shortcut)),
                    source,
                    (),
                    residual is join.branches[0],
                )
            )
        else:
            if k and items[start + 1 : i]:
                raise NotExpressible(
                    _name(items[start + 1]), "a layer between residual blocks is not expressible"
                )
            relu = items[i + 1]
            assert isinstance(relu, Node)
            blocks.append(
                Block(
                    join.node,
                    tuple(tokens(residual)),
                    tuple(tokens(shortcut)),
                    "input",
                    (relu,),
                    residual is join.branches[0],
                )
            )
    head_start = joins[-1] + (1 if preactivation else 2)
    return Layout(tuple(items[:stem_end]), tuple(blocks), tuple(items[head_start:]), preactivation)


def _name(item: Item) -> str:
    return item.node.name if isinstance(item, Join) else item.name


def _is_norm_relu(items: list[Item]) -> bool:
    return (
        isinstance(items[0], Node)
        and items[0].kind in NORMS
        and isinstance(items[1], Node)
        and items[1].kind == "relu"
    )


def _branches(join: Join) -> tuple[tuple[Item, ...], tuple[Item, ...]]:
    """(residual, shortcut): the residual branch has two or more convolutions, the shortcut fewer."""
    counts = [sum(1 for t in b if isinstance(t, Node) and t.kind == "conv") for b in join.branches]
    a, b = join.branches
    if counts[0] >= 2 > counts[1]:
        return a, b
    if counts[1] >= 2 > counts[0]:
        return b, a
    raise NotExpressible(
        join.node.name, "an addition that is not a residual branch (two or more convolutions) plus a shortcut"
    )


def pattern(*, bottleneck: bool, preactivation: bool, aa: bool, attention: bool, drop: bool) -> list[str]:
    """The token kinds a residual branch of these settings has, in order."""
    if preactivation:
        body = ["norm", "relu", "conv", "norm", "relu", "conv"]
        if bottleneck:
            body += ["norm", "relu", "conv"]
    else:
        alias = ["aa"] if aa else []
        body = ["conv", "norm", "relu"]
        body += ["conv", "norm", "relu", *alias, "conv", "norm"] if bottleneck else [*alias, "conv", "norm"]
    return [*body, *(["attn"] if attention else []), *(["drop"] if drop else [])]
