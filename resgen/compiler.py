"""The front half of the pipeline in one call: load -> validate -> lower -> passes."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from resgen import load, lower, passes, spec, validation
from resgen.errors import SpecError, SpecErrors
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
    """Compile a spec given as a file path, a preset name or a reference to a model in code
    (``timm:resnet50d``, see `resgen.importers.reference`), optionally at another input height x width."""
    from resgen.importers.reference import is_reference

    if is_reference(arg):
        from resgen.importers.document import imported_document

        doc = imported_document(arg, input_size=input_size)
    else:
        doc = load.load(arg)
    if input_size is not None:
        doc = with_input_size(doc, *input_size)
    return compile_document(doc)


def compile_data(
    data: dict[str, Any], *, input_size: tuple[int, int] | None = None, file: str = "<dict>"
) -> Compiled:
    """Compile a spec given as Python data (what a spec file holds); errors name `file`.

    The data goes through the same checks as a JSON file (no control or invisible characters, no
    NaN, integers of sane length), then loses the positions of that JSON text: errors name the
    field only.
    """
    try:
        raw = json.dumps(data, ensure_ascii=False, allow_nan=True).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise SpecErrors([SpecError(file, (), f"not spec data (JSON-like dicts and lists): {exc}")]) from None
    try:
        parsed = load.parse(raw, file, json_input=True)
    except SpecErrors as exc:  # positions in that JSON text would mean nothing to the caller
        raise SpecErrors([dataclasses.replace(e, line=None, column=None) for e in exc.errors]) from None
    doc = dataclasses.replace(parsed, positions={}, key_positions={})
    if input_size is not None:
        doc = with_input_size(doc, *input_size)
    return compile_document(doc)


def with_input_size(doc: load.Document, height: int, width: int) -> load.Document:
    """The same document with another input size (positions kept, so errors still point at the file)."""
    data = dict(doc.data)
    given = data.get("input")
    data["input"] = {**(given if isinstance(given, dict) else {}), "height": height, "width": width}
    return dataclasses.replace(doc, data=data)
