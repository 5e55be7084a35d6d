"""An imported spec as a loaded document: what `resgen summary timm:resnet50d` and every other command
that takes a spec compile, its errors located at the reference."""

from __future__ import annotations

import dataclasses
import json

from resgen import load
from resgen.errors import SpecError, SpecErrors
from resgen.importers.errors import BadReference, NotExpressible


def imported_document(text: str, *, input_size: tuple[int, int] | None = None) -> load.Document:
    """Import the model `text` names and load its spec as a spec file would be loaded; a reference
    that names no model, or a model no spec can express, is a `SpecErrors` naming the reference."""
    from resgen.importers.reference import import_reference

    try:
        imported = import_reference(text, input_size=input_size)
    except (BadReference, NotExpressible) as exc:
        raise SpecErrors([reference_error(text, exc)]) from None
    raw = json.dumps(imported.data, ensure_ascii=False, allow_nan=True).encode("utf-8")
    try:
        parsed = load.parse(raw, text, json_input=True)
    except SpecErrors as exc:  # positions in that JSON text would mean nothing to the user
        raise SpecErrors([dataclasses.replace(e, line=None, column=None) for e in exc.errors]) from None
    return dataclasses.replace(parsed, positions={}, key_positions={})


def reference_error(text: str, exc: Exception) -> SpecError:
    """``REF: error: MODULE.PATH: construct``, on one line."""
    return SpecError(text, (), " ".join(str(exc).split()) or type(exc).__name__)
