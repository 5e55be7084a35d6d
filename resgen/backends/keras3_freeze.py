"""Keras 3 backend, frozen stages and BatchNorms kept in inference mode (the spec's
backbone.frozen_stages and backbone.norm_eval).

- Frozen stages: ``build_model`` sets ``trainable = False`` on the layers of the stem and stages
  1..k, chosen by name prefix; Keras' BatchNormalization then runs in inference mode (its
  documented rule for trainable=False) and its weights and moving statistics stay as they are.
- norm_eval: every BatchNorm is a ``BatchNormEval`` (templates/keras/batch_norm_eval.py.j2), a
  BatchNormalization whose call always passes training=False, so its gamma and beta still train.

Without either setting, ``build_model`` returns the model in one statement, as before.
"""

from __future__ import annotations

from resgen.codegen import CodegenError, call_lines, comment, literal
from resgen.graph import LayerGraph
from resgen.naming import keras_names

# Layers that hold what freezing stops: weights, or BatchNorm's moving statistics.
_STATEFUL = ("conv2d", "batch_norm", "group_norm", "dense", "channel_conv1d")
SECTION = "keras/batch_norm_eval.py.j2"


def batch_norm_class(graph: LayerGraph) -> str:
    return "BatchNormEval" if graph.network.norm_eval else "layers.BatchNormalization"


def sections(graph: LayerGraph) -> list[str]:
    net = graph.network
    return [SECTION] if net.norm_eval and not net.norm.group else []


def frozen_prefixes(graph: LayerGraph) -> tuple[str, ...]:
    """Name prefixes that select exactly the frozen layers among those with weights: each frozen
    layer's name up to its first underscore (conv1_, conv2_, ...), or its whole name where such a
    prefix would also select a layer that trains."""
    names = keras_names(graph)
    stateful = [layer for layer in graph if layer.kind in _STATEFUL]
    frozen = [names[x.name] for x in stateful if graph.frozen(x)]
    training = [names[x.name] for x in stateful if not graph.frozen(x)]
    prefixes: list[str] = []
    for name in frozen:
        head, sep, _ = name.partition("_")
        prefix = head + sep if sep and not any(t.startswith(head + sep) for t in training) else name
        if not any(name.startswith(p) for p in prefixes):
            prefixes.append(prefix)
    chosen = tuple(prefixes)
    if any(t.startswith(chosen) for t in training) or not all(f.startswith(chosen) for f in frozen):
        raise CodegenError("no name prefixes select exactly the frozen layers")
    return chosen


def constants(graph: LayerGraph) -> list[str]:
    k = graph.network.frozen_stages
    if not k:
        return []
    what = "the stem and stage 1" if k == 1 else f"the stem and stages 1 to {k}"
    return [
        *comment(f"Layer-name prefixes of {what}, which do not train (backbone.frozen_stages).", 0),
        f"FROZEN_PREFIXES = {literal(frozen_prefixes(graph))}",
    ]


def model_return(graph: LayerGraph, outputs: str, name: str) -> list[str]:
    """The last statements of ``build_model``: the model, with its frozen layers marked."""
    args = ["inputs=inputs", f"outputs={outputs}", f"name={name}"]
    if not graph.network.frozen_stages:
        return call_lines("return keras.Model", args, 4)
    return [
        *call_lines("model = keras.Model", args, 4),
        *comment(
            "backbone.frozen_stages, as mmdet's: trainable=False keeps these layers' weights as "
            "they are, and Keras runs a BatchNormalization that is not trainable in inference "
            "mode, with its moving statistics unchanged.",
            4,
        ),
        "for layer in model.layers:",
        "    if layer.name.startswith(FROZEN_PREFIXES):",
        "        layer.trainable = False",
        "return model",
    ]
