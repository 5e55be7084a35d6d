"""PyTorch backend, a network as a backbone: the feature maps ``forward`` returns (timm's
``features_only``) and ``feature_info``, written from the graph's taps (`resgen.graph.Tap`).

Without taps, ``forward`` returns the head's output and nothing here adds a line.
"""

from __future__ import annotations

from resgen.codegen import CodegenError, comment, literal
from resgen.graph import LayerGraph, Scope
from resgen.naming import torch_path, torch_stage_path
from resgen.passes import Analysis

FEATURES = "features"


def forward_type(graph: LayerGraph) -> str:
    return "list[Tensor]" if graph.network.taps else "Tensor"


def stem_taps(graph: LayerGraph) -> frozenset[str]:
    """Stem layers after which ``forward`` keeps the map."""
    return frozenset(t.layer for t in graph.network.taps if graph[t.layer].scope is not Scope.STAGE)


def forward_setup(graph: LayerGraph) -> list[str]:
    if not graph.network.taps:
        return []
    return [
        *comment("timm's features_only: one feature map per tap, in order.", 8),
        f"{FEATURES}: list[Tensor] = []",
    ]


def keep() -> str:
    return f"{FEATURES}.append(x)"


def stage_forward(graph: LayerGraph, lines: list[str]) -> list[str]:
    """The stage lines of ``forward`` (one ``x = self.layerN(x)`` per stage), each tapped stage
    followed by the statement that keeps its map."""
    taps = {t.name for t in graph.network.taps}
    if not taps:
        return lines
    stages = graph.network.stages
    if len(lines) != len(stages):
        raise CodegenError("feature taps need one forward statement per stage")
    out = []
    for stage, line in zip(stages, lines, strict=True):
        out.append(line)
        if f"stage{stage.index}" in taps:
            out.append(keep())
    return out


def head_forward(graph: LayerGraph, lines: list[str]) -> list[str]:
    """The head's statements and the return: the head's output, or the feature maps."""
    if graph.network.taps:
        if lines:
            raise CodegenError("a backbone with head layers")
        return [f"return {FEATURES}"]
    return [*lines, "return x"]


def module_of_tap(graph: LayerGraph, name: str, layer: str) -> str:
    """The module whose output a tap is: the stem layer's path, or the stage's (timm's names)."""
    if name.startswith("stage"):
        return torch_stage_path(graph, int(name.removeprefix("stage")))
    return torch_path(graph, layer)


def feature_info(graph: LayerGraph, analysis: Analysis) -> list[str]:
    """``self.feature_info``: channels, reduction and module of every output, as timm states them."""
    taps = graph.network.taps
    if not taps:
        return []
    entries = []
    for tap in taps:
        channels = analysis.shape(tap.layer)[0]
        module = module_of_tap(graph, tap.name, tap.layer)
        entries.append(
            f'{{"num_chs": {channels}, "reduction": {tap.reduction}, "module": {literal(module)}}},'
        )
    return [
        *comment(
            "What each feature map of forward holds (timm's feature_info): channels, how many input "
            "pixels one step spans, and the module whose output it is.",
            8,
        ),
        "self.feature_info: list[dict[str, int | str]] = [",
        *(f"    {entry}" for entry in entries),
        "]",
    ]
