"""Keras 3 backend, a network as a backbone: one model output per tap of the graph
(`resgen.graph.Tap`), in order, as timm's ``features_only`` returns them.

Without taps, the model's output is the head's and nothing here adds a line.
"""

from __future__ import annotations

from typing import Any

from resgen.graph import Layer, LayerGraph, Scope

FEATURES = "features"


def setup(graph: LayerGraph) -> list[str]:
    if not graph.network.taps:
        return []
    return [f"{FEATURES} = []  # one output per feature tap, in order (timm's features_only)"]


def after_stem_layer(graph: LayerGraph, layer: Layer) -> list[str]:
    """The statement that keeps the map after a tapped stem layer."""
    taps = {t.layer for t in graph.network.taps}
    if layer.name in taps and layer.scope is not Scope.STAGE:
        return [f"{FEATURES}.append(x)"]
    return []


def tapped_stages(graph: LayerGraph, stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stage views, each tapped stage's lines followed by the statement that keeps its map."""
    taps = {t.name for t in graph.network.taps}
    out = []
    for stage, view in zip(graph.network.stages, stages, strict=True):
        extra = [f"{FEATURES}.append(x)"] if f"stage{stage.index}" in taps else []
        out.append({**view, "lines": [*view["lines"], *extra]})
    return out


def outputs(graph: LayerGraph) -> str:
    return FEATURES if graph.network.taps else "x"
