"""Spec sections read from every layer of a Keras model at once: the block's widths (expansion,
groups, width per group), channel attention, normalization, initialization and L2 penalties."""

from __future__ import annotations

import math
from typing import Any

from resgen.importers.errors import NotExpressible
from resgen.importers.keras_blocks import NORMS, Tok
from resgen.importers.keras_graph import Graph, Node

EXPANSIONS = (4, 1, 2, 8, 3, 6, 16, 5, 7, 10, 12)


# What a network that mixes block kinds keeps of the bottleneck settings (resgen.spec_stages).
_MIXED_BOTTLENECK = {"expansion": 4, "groups": 1, "width_per_group": 64, "stride_on": "conv2"}


def block_section(
    facts: list[Any], groups: list[list[Any]], preactivation: bool, stride_block: str
) -> tuple[dict[str, Any], list[int], list[str | None]]:
    """The block section, each stage's filters, and each stage's block kind where it is not the first
    stage's (stages[i].block)."""
    kinds = []
    for group in groups:
        if len({f.bottleneck for f in group}) != 1:
            raise NotExpressible(group[0].block.add.name, "basic and bottleneck blocks in one stage")
        kinds.append("bottleneck" if group[0].bottleneck else "basic")
    if len(set(kinds)) == 1:
        block, filters = _one_kind(facts, groups, preactivation, stride_block)
        return block, filters, [None] * len(groups)
    parts = {}
    for kind in ("basic", "bottleneck"):
        mine = [g for g, k in zip(groups, kinds, strict=True) if k == kind]
        parts[kind] = _one_kind([f for g in mine for f in g], mine, preactivation, stride_block)
    settings = parts["bottleneck"][0]
    for key, value in _MIXED_BOTTLENECK.items():
        if settings[key] != value or "reduce_first" in settings:
            raise NotExpressible(
                groups[kinds.index("bottleneck")][0].block.add.name,
                "bottleneck blocks with their own width or stride rule among basic ones",
            )
    filters = [parts[k][1].pop(0) for k in kinds]
    return parts[kinds[0]][0], filters, [k if k != kinds[0] else None for k in kinds]


def _one_kind(
    facts: list[Any], groups: list[list[Any]], preactivation: bool, stride_block: str
) -> tuple[dict[str, Any], list[int]]:
    """The block section and each stage's filters of blocks of one kind."""
    block: dict[str, Any] = {"kind": "bottleneck" if facts[0].bottleneck else "basic"}
    if preactivation:
        block["preactivation"] = True
    if stride_block != "first":
        block["stride_block"] = stride_block
    for group in groups:
        for f in group[1:]:
            if (f.width, f.out_channels, f.first_width) != (
                group[0].width,
                group[0].out_channels,
                group[0].first_width,
            ):
                raise NotExpressible(f.block.add.name, "blocks of one stage with different widths")
    if not facts[0].bottleneck:
        for f in facts:
            if f.width != f.out_channels:
                raise NotExpressible(f.block.add.name, "a basic block whose convolutions differ in width")
        return block, [g[0].out_channels for g in groups]
    ons = {f.stride_on for f in facts if f.stride_on}
    if len(ons) > 1:
        raise NotExpressible(facts[0].block.add.name, "blocks that stride in different convolutions")
    block["stride_on"] = ons.pop() if ons else "conv2"
    cardinality = {f.groups for f in facts}
    if len(cardinality) != 1:
        raise NotExpressible(facts[0].block.add.name, "blocks with different groups")
    g = cardinality.pop()
    rows = [(grp[0].out_channels, grp[0].width, grp[0].first_width) for grp in groups]
    for expansion in EXPANSIONS:
        if any(out % expansion for out, _, _ in rows):
            continue
        filters = [out // expansion for out, _, _ in rows]
        wpg = round(rows[0][1] * 64 / (filters[0] * g))
        for candidate in sorted({wpg, wpg - 1, wpg + 1}):
            if candidate < 1 or any(
                f * candidate // 64 * g != w for f, (_, w, _) in zip(filters, rows, strict=True)
            ):
                continue
            reduce = rows[0][1] // rows[0][2]
            if reduce < 1 or any(w // reduce != first for _, w, first in rows):
                continue
            block |= {"expansion": expansion, "groups": g, "width_per_group": candidate}
            if reduce != 1:
                block["reduce_first"] = reduce
            return block, filters
    raise NotExpressible(facts[0].block.add.name, f"stage widths {rows} follow no expansion and width rule")


def attention(facts: list[Any]) -> dict[str, Any] | None:
    """The block's channel attention, read from every block's gate; None where there is none."""
    gates = [next((t for t in f.block.residual if t.kind == "attn"), None) for f in facts]
    if not any(gates):
        return None
    if not all(gates):
        raise NotExpressible(facts[0].block.add.name, "attention in some blocks only")
    kinds = [[n.kind for n in g.gate] for g in gates if isinstance(g, Tok)]
    if all(k == ["gap", "conv", "relu", "conv", "sigmoid"] for k in kinds):
        return _se(facts, gates)
    if all(k == ["gap", "reshape", "conv1d", "reshape", "sigmoid"] for k in kinds):
        return _eca(facts, gates)
    raise NotExpressible(gates[0].node.name, f"a gate of layers {kinds[0]} is not expressible")  # type: ignore[union-attr]


def _se(facts: list[Any], gates: list[Any]) -> dict[str, Any]:
    pairs = [(f.out_channels, int(g.gate[1].config["filters"])) for f, g in zip(facts, gates, strict=True)]
    c0, r0 = pairs[0]
    for divisor in (8, 1, 4, 16, 2, 32):
        for ratio in (0.0625, 0.25, 0.125, 0.5, 1 / 3, r0 / c0):
            if all(max(divisor, int(c * ratio + divisor / 2) // divisor * divisor) == r for c, r in pairs):
                return {"kind": "se", "ratio": ratio, "divisor": divisor}
    raise NotExpressible(gates[0].node.name, f"squeeze-and-excitation widths {pairs} follow no rounding rule")


def _eca(facts: list[Any], gates: list[Any]) -> dict[str, Any]:
    pairs = [
        (f.out_channels, int(g.gate[2].config["kernel_size"][0])) for f, g in zip(facts, gates, strict=True)
    ]
    for gamma in range(1, 17):
        for beta in range(0, 17):
            if all(_eca_size(c, gamma, beta) == k for c, k in pairs):
                return {"kind": "eca", "gamma": gamma, "beta": beta}
    raise NotExpressible(gates[0].node.name, f"ECA kernel sizes {pairs} follow no rule")


def _eca_size(channels: int, gamma: int, beta: int) -> int:
    t = int(abs(math.log(channels, 2) + beta) / gamma)
    return max(t if t % 2 else t + 1, 3)


def norm_section(graph: Graph) -> dict[str, Any]:
    norms = [n for n in graph.nodes.values() if n.kind in NORMS]
    kinds = {n.kind for n in norms}
    if len(kinds) > 1:
        raise NotExpressible(norms[0].name, "BatchNorm and GroupNorm in one network")
    settings = set()
    for n in norms:
        c = n.config
        if not (c.get("center", True) and c.get("scale", True)) or c.get("axis") not in (-1, 3, [-1], [3]):
            raise NotExpressible(n.name, "a normalization without scale or offset, or across another axis")
        if n.kind == "bn":
            settings.add((float(c["epsilon"]), round(float(c["momentum"]), 12)))
        else:
            settings.add((float(c["epsilon"]), int(c["groups"])))
    if len(settings) != 1:
        raise NotExpressible(
            norms[0].name, f"normalization layers with different settings {sorted(settings)}"
        )
    first, second = settings.pop()
    if kinds == {"gn"}:
        return {"kind": "group", "groups": second, "epsilon": first}
    return {"epsilon": first, "momentum": second}


def _initializer(config: Any) -> str | None:
    if not isinstance(config, dict):
        return {"glorot_uniform": "glorot_uniform", "zeros": "zeros"}.get(str(config))
    name, c = config.get("class_name"), config.get("config", {})
    if name == "GlorotUniform":
        return "glorot_uniform"
    if name == "Zeros":
        return "zeros"
    if name == "RandomNormal" and c.get("mean") == 0 and math.isclose(c.get("stddev", 0), 0.01):
        return "normal_0.01"
    if name == "RandomUniform":
        return "uniform_fan_in"
    if name == "VarianceScaling":
        key = (round(float(c["scale"]), 6), c["mode"], c["distribution"])
        return {
            (2.0, "fan_out", "untruncated_normal"): "he_normal_fan_out",
            (round(1 / 3, 6), "fan_in", "uniform"): "uniform_fan_in",
            (1.0, "fan_avg", "uniform"): "glorot_uniform",
        }.get(key)
    return None


def init_section(graph: Graph, convs: list[str], classifier: list[Node]) -> dict[str, Any]:
    """The init section: kernel and bias distributions, zero_init_last; defaults left out."""
    kernels = {_initializer(graph.nodes[n].config.get("kernel_initializer")) for n in convs}
    zero = "zeros" in kernels
    kernels.discard("zeros")
    gammas = {
        _initializer(n.config.get("gamma_initializer")) for n in graph.nodes.values() if n.kind in NORMS
    }
    zero = zero or "zeros" in gammas
    init: dict[str, Any] = {}
    if len(kernels) == 1 and None not in kernels:
        conv = kernels.pop()
        if conv != "he_normal_fan_out" and conv != "normal_0.01":
            init["conv"] = conv
    dense = {_initializer(n.config.get("kernel_initializer")) for n in classifier}
    if len(dense) == 1 and None not in dense and dense != {"uniform_fan_in"}:
        init["dense"] = dense.pop()
    biased = [graph.nodes[n] for n in convs if graph.nodes[n].config.get("use_bias")] + classifier
    biases = {_initializer(n.config.get("bias_initializer")) for n in biased}
    if biases == {"zeros"}:
        init["bias"] = "zeros"
    if zero:
        init["zero_init_last"] = True
    return init


def _l2(node: Node) -> float:
    reg = node.config.get("kernel_regularizer")
    if reg is None:
        return 0.0
    if isinstance(reg, dict) and reg.get("class_name") in ("L2", "L1L2"):
        c = reg.get("config", {})
        if c.get("l1"):
            raise NotExpressible(node.name, "an L1 penalty is not expressible")
        return float(c.get("l2", 0.0))
    raise NotExpressible(node.name, f"kernel regularizer {reg} is not expressible")


def l2_section(stem_convs: list[Tok], facts: list[Any], classifier: list[Node]) -> dict[str, Any]:
    """The L2 penalties by role (stem, blocks, shortcuts, head): one factor per role, the blocks'
    as ``l2`` and the others where they differ from it."""
    roles = {
        "stem": [t.node for t in stem_convs],
        "blocks": [t.node for f in facts for t in f.block.residual if t.kind == "conv"]
        + [
            n
            for f in facts
            for t in f.block.residual
            if t.kind == "attn"
            for n in t.gate
            if n.kind == "conv"  # ECA's Conv1D has none: L2 is on 2-D convolutions
        ],
        "shortcuts": [t.node for f in facts for t in f.block.shortcut if t.kind == "conv"],
        "head": classifier,
    }
    factors: dict[str, float] = {}
    for role, nodes in roles.items():
        for node in nodes:
            factor = _l2(node)
            if factors.setdefault(role, factor) != factor:
                raise NotExpressible(
                    node.name,
                    f"an L2 factor {factor:g} where the rest of the {role} has "
                    f"{factors[role]:g} is not expressible",
                )
    base = factors.get("blocks", 0.0)
    data: dict[str, Any] = {"l2": base} if base else {}
    for role in ("stem", "shortcuts", "head"):
        if role in factors and factors[role] != base:
            data[role] = factors[role]
    return data
