"""What an import returns: the spec, as a file holds it, and the comments its YAML carries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ImportedSpec:
    """A model recognised as a spec.

    `data` is the spec as a YAML or JSON file holds it (it validates and compiles like a preset);
    `source` the reference it came from (``timm:resnet50d``); `notes` the lines of the written file's
    header comment (what the model is, where it departs from the papers); `field_notes` a comment for
    the line of a field, by its dotted path (``stem.widths``: ``timm's stem_type 'deep'``).
    """

    data: dict[str, Any]
    source: str
    notes: tuple[str, ...] = ()
    field_notes: Mapping[str, str] = field(default_factory=dict)
