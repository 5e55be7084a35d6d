"""Stage 5: one backend per target turns the layer graph into a view model for its templates.

A backend is a module with:

- ``template``: path of its entry template under templates/ (e.g. ``"torch/model.py.j2"``);
- ``allowed_imports``: top-level modules the generated source may import;
- ``HANDLERS``: one entry per op kind of `resgen.graph.OPS` (checked by the tests);
- ``view_model(graph, analysis) -> dict``: every value the template prints, already code text.

Backends read only the typed graph and the analysis (never the spec), write code through
`resgen.codegen`, and write residual blocks through `resgen.backends.blocks`. They never import
their framework: rendering works without torch or TensorFlow installed.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from resgen.graph import LayerGraph
from resgen.passes import Analysis

TARGETS: dict[str, str] = {
    "torch": "resgen.backends.pytorch",
    "keras": "resgen.backends.keras3",
}


class Backend(Protocol):
    template: str
    allowed_imports: frozenset[str]
    HANDLERS: dict[str, Any]

    def view_model(self, graph: LayerGraph, analysis: Analysis) -> dict[str, Any]: ...


def get(target: str) -> Backend:
    """The backend module of a target; `KeyError` for an unknown target."""
    module: Any = importlib.import_module(TARGETS[target])
    return module
