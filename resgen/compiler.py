"""The front half of the pipeline in one call: load -> validate -> lower -> passes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from resgen import load, lower, passes, spec, validation
from resgen.errors import SpecErrors
from resgen.graph import LayerGraph


@dataclass(frozen=True)
class Compiled:
    """A spec that passed every check: its layer graph and the facts the passes found.

    Everything after lowering (backends, weights, reports, parity) reads `graph` and `analysis`;
    `doc` and `spec` are kept for messages that point back at the spec file.
    """

    doc: load.Document
    spec: spec.Spec
    graph: LayerGraph
    analysis: passes.Analysis

    @property
    def name(self) -> str:
        return self.graph.network.name


def compile_document(doc: load.Document) -> Compiled:
    """Validate, lower and analyse a loaded document; raise `SpecErrors` locating any problem."""
    model = validation.validate(doc)
    graph = lower.lower(model)
    try:
        analysis = passes.analyse(graph)
    except passes.GraphErrors as exc:
        raise SpecErrors([doc.error(e.origin, e.message) for e in exc.errors]) from None
    return Compiled(doc, model, graph, analysis)


def compile_spec(arg: str, *, input_size: tuple[int, int] | None = None) -> Compiled:
    """Compile a spec given as a file path or preset name, optionally at another input height x width."""
    doc = load.load(arg)
    if input_size is not None:
        doc = with_input_size(doc, *input_size)
    return compile_document(doc)


def compile_data(
    data: dict[str, Any], *, input_size: tuple[int, int] | None = None, file: str = "<dict>"
) -> Compiled:
    """Compile a spec given as Python data (what a spec file holds); errors name `file`."""
    doc = load.Document(file, data)
    if input_size is not None:
        doc = with_input_size(doc, *input_size)
    return compile_document(doc)


def with_input_size(doc: load.Document, height: int, width: int) -> load.Document:
    """The same document with another input size (positions kept, so errors still point at the file)."""
    data = dict(doc.data)
    given = data.get("input")
    data["input"] = {**(given if isinstance(given, dict) else {}), "height": height, "width": width}
    return dataclasses.replace(doc, data=data)
