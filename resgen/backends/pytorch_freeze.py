"""PyTorch backend, frozen stages and BatchNorms kept in eval mode (the spec's backbone.frozen_stages
and backbone.norm_eval), written as mmdet's ResNet does it: ``requires_grad`` off for the frozen
modules' parameters, and a ``train()`` that puts the BatchNorms that must not learn their statistics
back in eval mode.

Without either setting, nothing here adds a line.
"""

from __future__ import annotations

from resgen.codegen import CodegenError, comment, docstring, indented
from resgen.graph import LayerGraph, Scope
from resgen.naming import torch_path, torch_stage_path

# Layers whose modules hold what freezing stops: parameters, or BatchNorm's running statistics.
_STATEFUL = ("conv2d", "batch_norm", "group_norm")


def _attribute(path: str) -> str:
    """The expression of a module path from ``self``: conv1 -> self.conv1, stages.0 -> self.stages[0]."""
    parts = path.split(".")
    return "self." + parts[0] + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in parts[1:])


def frozen_paths(graph: LayerGraph) -> list[str]:
    """Module paths of ``ResNet`` that do not train: the stem's modules, then stages 1..k."""
    stem: list[str] = []
    for layer in graph:
        if layer.scope is Scope.STEM and layer.kind in _STATEFUL and graph.frozen(layer):
            top = torch_path(graph, layer.name).split(".")[0]
            if top not in stem:
                stem.append(top)
    stages = [torch_stage_path(graph, i) for i in range(1, graph.network.frozen_stages + 1)]
    if any(s.split(".")[0] in stem for s in stages):
        raise CodegenError("a frozen stage shares its module with the stem")
    return stem + stages


def _what(graph: LayerGraph) -> str:
    k = graph.network.frozen_stages
    return "the stem and stage 1" if k == 1 else f"the stem and stages 1 to {k}"


def init_lines(graph: LayerGraph) -> list[str]:
    """The end of ``ResNet.__init__``: the frozen modules' parameters get no gradient."""
    if not graph.network.frozen_stages:
        return []
    return [
        "",
        *comment(
            f"backbone.frozen_stages: {_what(graph)} do not train (mmdet's frozen_stages): their "
            "parameters get no gradient, and train() keeps their BatchNorms in eval mode.",
            8,
        ),
        "for module in self.frozen_modules():",
        "    module.requires_grad_(False)",
    ]


def methods(graph: LayerGraph, model_class: str) -> list[str]:
    """``frozen_modules()`` and the ``train()`` override, indented as methods of the model class."""
    net = graph.network
    lines: list[str] = []
    if net.frozen_stages:
        paths = frozen_paths(graph)
        lines += [
            "",
            "def frozen_modules(self) -> list[nn.Module]:",
            *indented(docstring([f"The modules of {_what(graph)}, which do not train."], 8)),
            f"    return [{', '.join(_attribute(p) for p in paths)}]",
        ]
    if net.norm.group or not (net.frozen_stages or net.norm_eval):
        return indented(lines)  # GroupNorm has no running statistics to keep
    if net.norm_eval:
        doc = (
            "Set training mode as nn.Module does, but keep every BatchNorm in eval mode "
            "(backbone.norm_eval, as mmdet's norm_eval): they normalize with their running "
            "statistics and do not update them, while their weight and bias"
            + (" still train outside the frozen modules." if net.frozen_stages else " still train.")
        )
        loop = [
            "for module in self.modules():",
            "    if isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)):",
            "        module.eval()",
        ]
    else:
        doc = (
            "Set training mode as nn.Module does, but keep the BatchNorms of the frozen modules "
            "in eval mode, as mmdet's ResNet.train does: they normalize with their running "
            "statistics and do not update them."
        )
        loop = [
            "for frozen in self.frozen_modules():",
            "    for module in frozen.modules():",
            "        if isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)):",
            "            module.eval()",
        ]
    lines += [
        "",
        f"def train(self, mode: bool = True) -> {model_class}:",
        *indented(docstring([doc], 8)),
        "    super().train(mode)",
        *indented(loop),
        "    return self",
    ]
    return indented(lines)
