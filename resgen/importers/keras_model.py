"""A Keras 3 functional model recognised as a spec: keras.applications' ResNets, resgen's own
generated Keras files, or any functional model built the same way.

The model's graph is read generically (`keras_graph`): layer kinds and wiring decide, never layer
names. ``Add`` joins delimit the residual blocks (`keras_blocks`), whose branches become the block,
stage and shortcut sections (`keras_stages`); the layers before and after them the stem and head
(`keras_parts`); settings every layer shares (normalization, bias, padding, initialization, L2) are
read from all of them here, and must agree. The spec is then compiled and its parameter counts
compared with the model's: a model that does not match exactly is refused, never approximated.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from resgen.importers import keras_notes
from resgen.importers.errors import NotExpressible
from resgen.importers.keras_blocks import NORMS, layout
from resgen.importers.keras_graph import Graph, dominators, read_graph, sequence, unused
from resgen.importers.keras_parts import conv_settings, head, stem
from resgen.importers.keras_read import attention, block_section, init_section, l2_section, norm_section
from resgen.importers.keras_stages import BlockFacts, read_block, stages
from resgen.importers.result import ImportedSpec

if TYPE_CHECKING:
    import keras


def spec_from_keras(
    model: keras.Model, *, name: str, input_size: tuple[int, int] | None, source: str
) -> ImportedSpec:
    """The spec of `model`, a Keras functional model; `NotExpressible` names the layer at fault."""
    graph = read_graph(model)
    extra = unused(graph)
    if extra:
        raise NotExpressible(extra[0], "a layer the output does not depend on is not expressible")
    idom = dominators(graph)
    items = sequence(graph, idom, graph.input, graph.output)
    parts = layout(items)
    stem_data, stem_convs = stem(parts.stem)
    head_data, classifier = head(parts.head)
    facts = [read_block(b, parts.preactivation) for b in parts.blocks]
    rows, stride_block, groups = stages(facts)
    block, filters, kinds = block_section(facts, groups, parts.preactivation, stride_block)
    for row, f, kind in zip(rows, filters, kinds, strict=True):
        row["filters"] = f
        if kind is not None:  # a stage of the other block kind (stages[i].block)
            row["block"] = kind
    shortcut = _shortcut_section(facts)
    block_attention = attention(facts)
    if block_attention is not None:
        block["attention"] = block_attention
    anti_alias = _anti_alias(facts)
    if anti_alias is not None:
        block["anti_alias"] = anti_alias
    conv_toks = [
        *stem_convs,
        *(t for f in facts for t in (*f.block.residual, *f.block.shortcut) if t.kind == "conv"),
    ]
    convs = [t.node.name for t in conv_toks]
    data: dict[str, Any] = {
        "format_version": 1,
        "name": name,
        "description": "",
        "input": _input(model, input_size),
        "stem": stem_data,
        "block": block,
        "stages": rows,
        "shortcut": shortcut,
        "norm": norm_section(graph),
        "conv_bias": _conv_bias(graph, convs),
    }
    if _padding(model, conv_toks) == "tf_same":
        data["padding"] = "tf_same"
    standardize = {conv_settings(t).get("standardize") for t in conv_toks}
    if standardize != {None}:
        if len(standardize) != 1:
            raise NotExpressible(model.name, "weight standardization on some convolutions only")
        data["conv"] = {"kind": "weight_standardized", "epsilon": float(standardize.pop())}  # type: ignore[arg-type]
    regularization = l2_section(stem_convs, facts, classifier)
    drop_path = _drop_path(facts)
    if drop_path:
        regularization["drop_path"] = drop_path
    if regularization:
        data["regularization"] = regularization
    init = init_section(graph, convs, classifier)
    if init:
        data["init"] = init
    data["head"] = {"kind": head_data.pop("kind"), **head_data}
    layer_order = _layer_order(facts)
    if layer_order != "keras_applications":
        data["keras_layer_order"] = layer_order
    data["description"] = f"{model.name}, imported from {source}"[:500]
    _verify(model, data, facts)
    pool_after_relu = bool(data["stem"].get("norm", True) or data["stem"].get("conv_pool"))
    return ImportedSpec(
        data=data,
        source=source,
        notes=keras_notes.notes(data, source, model.name),
        field_notes=keras_notes.field_notes(data, pool_after_relu),
    )


def _layer_order(facts: list[BlockFacts]) -> str:
    """keras_layer_order: which operand every addition takes first (the order of the model's layers,
    which Keras' weight files follow): the shortcut (keras.applications) or the residual branch
    (Rosebrock's tutorial)."""
    orders = {f.block.residual_first for f in facts}
    if len(orders) > 1:
        first = next(f for f in facts if f.block.residual_first != facts[0].block.residual_first)
        raise NotExpressible(first.block.add.name, "additions that take their operands in different orders")
    return "rosebrock" if orders == {True} else "keras_applications"


def _padding(model: Any, convs: list[Any]) -> str:
    """How strided convolutions pad: "symmetric" (explicit ZeroPadding2D) or "tf_same" (Keras'
    padding="same"); stride-1 ones read the same either way."""
    modes = {str(conv_settings(t)["mode"]) for t in convs} - {"None"}
    if len(modes) > 1:
        raise NotExpressible(
            model.name, "strided convolutions pad both symmetrically and as TensorFlow's 'same'"
        )
    return modes.pop() if modes else "symmetric"


def _anti_alias(facts: list[BlockFacts]) -> dict[str, Any] | None:
    """The anti-aliasing pool every strided block has, or None where none has one."""
    strided = [f for f in facts if f.stride > 1]
    pools = [f.aa for f in strided]
    if not any(pools):
        return None
    for f in strided:
        if f.aa != pools[0]:
            raise NotExpressible(
                f.block.add.name, "anti-aliasing in some strided blocks only, or of two kinds"
            )
    return pools[0]


def _drop_path(facts: list[BlockFacts]) -> float:
    """The last block's drop-path rate, where every block follows timm's linear rule from 0."""
    rates = [f.drop for f in facts]
    last = rates[-1]
    for i, (f, rate) in enumerate(zip(facts, rates, strict=True)):
        expected = last * i / (len(facts) - 1) if len(facts) > 1 else 0.0
        if not math.isclose(rate, expected, rel_tol=1e-6, abs_tol=1e-9):
            raise NotExpressible(
                f.block.add.name, f"a drop-path rate of {rate:g} where a linear schedule has {expected:g}"
            )
    return last


def _conv_bias(graph: Graph, convs: list[str]) -> str:
    pairs = set()
    for name in convs:
        consumers = graph.consumers(name)
        normed = len(consumers) == 1 and consumers[0].kind in NORMS
        pairs.add((bool(graph.nodes[name].config["use_bias"]), normed))
    if all(bias for bias, _ in pairs):
        return "all"
    if not any(bias for bias, _ in pairs):
        return "none"
    if all(bias != normed for bias, normed in pairs):
        return "unnormalized"
    raise NotExpressible(convs[0], "bias on some convolutions followed by normalization only")


def _shortcut_section(facts: list[Any]) -> dict[str, Any]:
    kinds = Counter(f.shortcut for f in facts)
    if kinds["zero_pad"]:
        if kinds["projection"] or kinds["max_pool"]:
            raise NotExpressible(facts[0].block.add.name, "option A shortcuts mixed with projections")
        return {"kind": "zero_pad"}
    projections = [f for f in facts if f.shortcut == "projection"]
    if not projections:  # no block changes shape: the shortcut section's defaults, as a preset's
        return {"kind": "projection", **({"stride_only": "max_pool"} if kinds["max_pool"] else {})}
    data: dict[str, Any] = {"kind": "projection"}
    first = projections[0]
    # Where a projection keeps the resolution it is a 1x1 convolution with nothing before it,
    # whatever the strided ones do: their pool and kernel size are read from the strided ones.
    strided = [f for f in projections if f.stride > 1] or projections
    for key in ("norm", "downsample", "kernel_size"):
        values = {f.shortcut_settings[key] for f in (projections if key == "norm" else strided)}
        if len(values) != 1:
            raise NotExpressible(first.block.add.name, f"projection shortcuts that differ in {key}")
    data["norm"] = first.shortcut_settings["norm"]
    if {f.block.source for f in projections} == {"preactivated"}:
        data["source"] = "preactivated"
    elif {f.block.source for f in projections} != {"input"}:
        raise NotExpressible(first.block.add.name, "projections that read different tensors")
    needed = any(
        f.shortcut == "projection" and f.in_channels == f.out_channels and f.stride == 1 for f in facts
    )
    if needed:
        data["when"] = "first_block"
    if kinds["max_pool"]:
        data["stride_only"] = "max_pool"
    if strided[0].shortcut_settings["kernel_size"] != 1:
        data["kernel_size"] = strided[0].shortcut_settings["kernel_size"]
    if strided[0].shortcut_settings["downsample"] != "conv":
        data["downsample"] = strided[0].shortcut_settings["downsample"]
    for f in projections:
        if f.stride == 1 and (f.shortcut_settings["kernel_size"], f.shortcut_settings["downsample"]) != (
            1,
            "conv",
        ):
            raise NotExpressible(
                f.block.add.name, "a projection that keeps the resolution but is not a 1x1 convolution"
            )
    return data


def _input(model: Any, input_size: tuple[int, int] | None) -> dict[str, int]:
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3:
        raise NotExpressible(
            model.name, f"an input of shape {shape} is not an image (height, width, channels)"
        )
    height, width, channels = shape
    if channels is None:
        raise NotExpressible(model.name, "an input without a fixed channel count")
    if input_size is not None:
        height, width = input_size
    if height is None or width is None:
        raise NotExpressible(model.name, "the model's input size is not fixed: give --input-size")
    return {"height": int(height), "width": int(width), "channels": int(channels)}


SHORTCUTS = {"identity": "identity", "projection": "projection", "pooled_projection": "projection"}
SHORTCUTS |= {"wide_projection": "projection", "max_pool": "max_pool", "zero_pad": "zero_pad"}


def _verify(model: Any, data: dict[str, Any], facts: list[BlockFacts]) -> None:
    """Compile the spec; compare each of its blocks (channels, width, stride, shortcut) with the
    model's and its parameter counts with the model's; refuse any mismatch."""
    from resgen import api

    compiled = api.compile(data)
    records = compiled.graph.blocks
    if len(records) != len(facts):
        raise NotExpressible(
            model.name, f"{len(facts)} residual blocks recognised, the spec builds {len(records)}"
        )
    for f, r in zip(facts, records, strict=True):
        ours = (f.in_channels, f.width, f.out_channels, f.stride, f.shortcut)
        theirs = (
            r.in_channels,
            r.width,
            r.out_channels,
            r.stride,
            SHORTCUTS.get(str(r.shortcut), str(r.shortcut)),
        )
        if ours != theirs:
            raise NotExpressible(
                f.block.add.name,
                f"the block (in, width, out, stride, shortcut) {ours} is recognised as {theirs}: "
                "a construct the recogniser does not read",
            )
    totals = compiled.analysis.totals()
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    non_trainable = sum(math.prod(w.shape) for w in model.non_trainable_weights)
    if (totals["params"], totals["non_trainable_params"]) != (trainable, non_trainable):
        raise NotExpressible(
            model.name,
            f"the recognised spec has {totals['params']:,} + {totals['non_trainable_params']:,} parameters, "
            f"the model {trainable:,} + {non_trainable:,}: a construct the recogniser does not read",
        )
