"""Reports built from a compiled graph: the per-layer summary as data, and as a rich table."""

from __future__ import annotations

import math
from typing import Any

from resgen.backends.pytorch_backbone import module_of_tap
from resgen.compiler import Compiled
from resgen.graph import SHAPE_LAYOUT
from resgen.naming import keras_name, torch_module


def summary(compiled: Compiled) -> dict[str, Any]:
    """Everything `resgen summary --format json` prints. Shapes are channels first: [C, H, W].

    Each layer lists the torch module path and the Keras layer name that compute it in the
    generated code; ``null`` where the torch target uses a function (the addition, flatten,
    softmax). A softmax fused into the classifier lists the classifier's Keras layer.
    """
    graph = compiled.graph
    analysis = compiled.analysis
    rows = []
    for layer in graph:
        facts = analysis[layer.name]
        rows.append(
            {
                "name": layer.name,
                "op": layer.kind,
                "torch": torch_module(graph, layer.name),
                "keras": keras_name(graph, layer.name),
                "output_shape": list(facts.shape),
                "params": facts.params,
                "non_trainable_params": facts.non_trainable,
                "macs": facts.macs,
            }
        )
    return {
        "name": compiled.name,
        "spec_hash": graph.network.spec_hash,
        "shape_layout": SHAPE_LAYOUT,
        "input_shape": rows[0]["output_shape"],
        "output_shape": rows[-1]["output_shape"],
        **analysis.totals(),
        "features": features(compiled),
        "layers": rows,
    }


def features(compiled: Compiled) -> list[dict[str, Any]]:
    """A backbone's outputs (backbone.features), in order: each tap's name, channels, reduction (how
    many input pixels one step of its map spans), shape, and the layer whose output it is in each
    target. Empty for a classifier."""
    graph = compiled.graph
    rows = []
    for tap in graph.network.taps:
        shape = compiled.analysis.shape(tap.layer)
        rows.append(
            {
                "name": tap.name,
                "channels": shape[0],
                "reduction": tap.reduction,
                "shape": list(shape),
                "layer": tap.layer,
                "torch": module_of_tap(graph, tap.name, tap.layer),
                "keras": keras_name(graph, tap.layer),
            }
        )
    return rows


# Sizes past which a network is almost surely a mistake: `validate` and `summary` warn, `parity` and
# `weights` refuse before they allocate anything.
MAX_PARAMS = 2_000_000_000
MAX_ACTIVATION_BYTES = 64 * 1024**3  # every layer's float32 output at batch 1


def size_problem(compiled: Compiled) -> str | None:
    """Why `compiled` is too large to build (parameters or batch-1 activations), or None."""
    totals = compiled.analysis.totals()
    weights = totals["params"] + totals["non_trainable_params"]
    activations = 4 * sum(math.prod(f.shape) for f in compiled.analysis.facts.values())
    if weights > MAX_PARAMS:
        return (
            f"{weights:,} parameters ({_bytes(4 * weights)} in float32) is more than resgen builds "
            f"({MAX_PARAMS:,}); check filters, blocks and expansion"
        )
    if activations > MAX_ACTIVATION_BYTES:
        return (
            f"the layer outputs of one image take {_bytes(activations)} in float32, more than resgen "
            f"builds ({_bytes(MAX_ACTIVATION_BYTES)}); check the input size and filters"
        )
    return None


def _bytes(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if count < 1024 or unit == "PiB":
            return f"{count:,.0f} {unit}" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return ""
