"""Stage 5: one backend per target turns the annotated graph into a view model for its templates.

A backend is a module with:

- ``template``: path of its entry template under templates/ (e.g. ``"torch/model.py.j2"``);
- ``allowed_imports``: top-level modules the generated source may import;
- ``HANDLERS``: a mapping with one entry per op kind of `resgen.lower.OPS` (checked by the tests);
- ``view_model(compiled) -> dict``: every value the template prints, already turned into code text.

Backends never import their framework: rendering works without torch or TensorFlow installed.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from resgen.compiler import Compiled

TARGETS: dict[str, str] = {
    "torch": "resgen.backends.pytorch",
    "keras": "resgen.backends.keras3",
}


class Backend(Protocol):
    template: str
    allowed_imports: frozenset[str]
    HANDLERS: dict[str, Any]

    def view_model(self, compiled: Compiled) -> dict[str, Any]: ...


def get(target: str) -> Backend:
    """The backend module of a target; `KeyError` for an unknown target."""
    module: Any = importlib.import_module(TARGETS[target])
    return module
