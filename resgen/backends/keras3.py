"""Keras 3 backend: the view model of templates/keras/ for one layer graph.

The generated module uses only ``keras`` (layers, ops, regularizers, saving), so it runs on the
TensorFlow, JAX and torch backends. It is a functional model, channels last, with
keras.applications' layer names (`resgen.naming.keras_name`), so weights saved from
keras.applications' ResNets load by name, and in the layer order of the network's reference
(`resgen.graph.KerasLayerOrder`, the addition's operands), so its weight files also load by position
with a plain ``load_weights``.

Structure of the output: the stem and the head are written layer by layer in ``build_model``; every
residual block is one call of a single block function (`resgen.backends.keras3_blocks`), and the
blocks of a stage that share their arguments are one ``for`` loop, so the file grows with the number
of stages, not with depth. Each layer is written by its op kind's handler
(`resgen.backends.keras3_layers`) at a `Site`: the straight code of ``build_model``, or the block
function.
"""

from __future__ import annotations

from typing import Any

from resgen.backends import blocks, keras3_backbone, keras3_blocks, keras3_freeze
from resgen.backends.keras3_init import helper_lines
from resgen.backends.keras3_layers import HANDLERS, pads_with_neg_inf
from resgen.backends.keras3_sites import BlockSite, StraightSite
from resgen.codegen import call_lines, comment, literal, string_constant, wrap
from resgen.graph import (
    EcaDesign,
    KerasLayerOrder,
    LayerGraph,
    Scope,
)
from resgen.passes import Analysis

template = "keras/model.py.j2"
allowed_imports = frozenset({"keras", "math", "sys"})

# Keras builds, calls and saves functional models by walking their graph recursively, about one
# Python frame per layer. Networks deeper than this raise the interpreter's limit (default 1000).
DEEP_LAYERS = 600


def _stdlib_imports(graph: LayerGraph, deep: bool) -> list[str]:
    """`import math` for ECA's kernel rule and the blur pool; `import sys` for a deep recursion limit."""
    eca = isinstance(graph.network.block.attention, EcaDesign)
    math = eca or bool(graph.of_kind("blur_pool"))  # ECA's kernel rule, the blur pool's filter
    imports = [*(["import math"] if math else []), *(["import sys"] if deep else [])]
    return [*imports, ""] if imports else []


# The module docstring on layer names and order: Keras' weight files place weights by layer order.
_NAMES_DOC = (
    "Layer names follow keras.applications' ResNets (conv1_conv, conv2_block1_1_conv, post_bn, ...), "
    "so weights load by name."
)
_LAYERS_DOC = {
    KerasLayerOrder.KERAS_APPLICATIONS: f"{_NAMES_DOC} The layers come in keras.applications' order "
    "(each addition takes the shortcut first), so a .h5 or .weights.h5 file saved from the same "
    "keras.applications network also loads by position: model.load_weights(path).",
    KerasLayerOrder.ROSEBROCK: f"{_NAMES_DOC} The layers come in the order of ResNet.build in Rosebrock's "
    "tutorial (each addition takes the residual branch first), so a .h5 or .weights.h5 file saved from "
    "the tutorial's network also loads by position: model.load_weights(path).",
}


# --- the view model --------------------------------------------------------------------------------


def view_model(graph: LayerGraph, analysis: Analysis) -> dict[str, Any]:
    """Every value templates/keras/model.py.j2 prints, as code text."""
    net = graph.network
    straight = StraightSite(graph, analysis, 4)
    stem: list[str] = keras3_backbone.setup(graph)
    head: list[str] = []
    for layer in graph:
        if layer.scope in (Scope.INPUT, Scope.STEM):
            stem += HANDLERS[layer.kind](straight, layer)
            stem += keras3_backbone.after_stem_layer(graph, layer)
        elif layer.scope is Scope.HEAD:
            head += HANDLERS[layer.kind](straight, layer)

    def block_site(prefix: str, params: blocks.BlockParameters) -> BlockSite:
        return BlockSite(graph, analysis, 4, prefix=prefix, params=params)

    views = blocks.kind_views(graph)  # one block function per block kind (stages[i].block)
    functions = [keras3_blocks.block_view(view, HANDLERS, block_site) for view in views]
    height, width, channels = graph.input_hwc
    depth = graph.depth()
    deep = depth > DEEP_LAYERS
    recursion_limit = [
        *comment(
            "Keras builds, calls and saves a functional model by walking its graph recursively, about "
            f"one frame per layer: {depth} layers deep, this one needs more than Python's default limit.",
            0,
        ),
        f"RECURSION_LIMIT = {literal(1000 * -(-(2 * depth + 1000) // 1000))}",
    ]
    return {
        "stdlib_imports": _stdlib_imports(graph, deep),
        "recursion_limit": recursion_limit if deep else [],
        "raise_recursion_limit": ["sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))"]
        if deep
        else [],
        "title": f"{net.name}: a residual network for Keras 3, generated by resgen.",
        "layers_doc": wrap(_LAYERS_DOC[net.keras_layer_order], 0),
        "description": string_constant("DESCRIPTION", net.description),
        "input_shape": literal((height, width, channels)),
        **_build_model_view(graph),
        "sections": [
            *(["keras/std_conv.py.j2"] if net.weight_standardization is not None else []),
            *(["keras/zero_pad_shortcut.py.j2"] if any(f["uses_zero_pad"] for f in functions) else []),
            *(
                ["keras/neg_inf_padding.py.j2"]
                if any(pads_with_neg_inf(x.op) for x in graph.of_kind("max_pool"))
                else []
            ),
            *(["keras/blur_pool.py.j2"] if graph.of_kind("blur_pool") else []),
            *keras3_freeze.sections(graph),
        ],
        "init_helpers": helper_lines(graph),
        "drop_path": keras3_blocks.drop_path_lines(graph),
        "blocks": functions,
        "stem": stem,
        "stages": keras3_backbone.tapped_stages(graph, keras3_blocks.stage_views(graph, views, functions)),
        "model_return": keras3_freeze.model_return(graph, keras3_backbone.outputs(graph), literal(net.name)),
        "head": head,
        "std_conv": {}
        if net.weight_standardization is None
        else {"epsilon": literal(net.weight_standardization)},
    }


def _build_model_view(graph: LayerGraph) -> dict[str, Any]:
    """NUM_CLASSES, build_model's signature and its num_classes argument, where there is a classifier
    (a backbone has none)."""
    shape = "input_shape: tuple[int, int, int] | None = None"
    if graph.classes is None:
        return {
            "constants": keras3_freeze.constants(graph),
            "build_signature": call_lines("def build_model", [shape], 0, " -> keras.Model:"),
            "num_classes_doc": [],
        }
    return {
        "constants": [
            *keras3_freeze.constants(graph),
            f"NUM_CLASSES = {graph.classes}  # outputs of the classifier, as the spec states it",
        ],
        "build_signature": call_lines(
            "def build_model", [shape, "num_classes: int = NUM_CLASSES"], 0, " -> keras.Model:"
        ),
        "num_classes_doc": [
            "        num_classes: outputs of the classifier; defaults to NUM_CLASSES, the spec's.",
            "            To fine-tune on another label set, build with yours and load the other",
            "            weights with ``skip_mismatch=True`` or into every layer but the classifier.",
        ],
    }
