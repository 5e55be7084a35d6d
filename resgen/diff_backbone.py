"""What `resgen diff` says about the backbone section: the taps compared as one list (stem and stage
numbers, in order), and the feature maps each side returns (`resgen.report.features`)."""

from __future__ import annotations

from typing import Any

from resgen.compiler import Compiled
from resgen.report import features


def spec_tree(compiled: Compiled) -> dict[str, Any]:
    """The spec's JSON tree as `resgen.diffs` compares it: backbone.features is one value, so adding
    the stem tap reads as one change, not as every later tap moving by one place; a stage's block kind
    is there only where the stage names one."""
    tree = compiled.spec.model_dump(mode="json")
    tree["backbone"]["features"] = tuple(tree["backbone"]["features"])
    for stage in tree["stages"]:  # a stage of block.kind's blocks reads as before stages could differ
        if stage["block"] is None:
            del stage["block"]
    return tree


def outputs_text(compiled: Compiled) -> str:
    """What the network returns, e.g. "stem 64ch /2, stage4 2048ch /32", or "the head's output"."""
    taps = features(compiled)
    if not taps:
        return "the head's output"
    return ", ".join(f"{t['name']} {t['channels']}ch /{t['reduction']}" for t in taps)


def outputs_differ(old: Compiled, new: Compiled) -> bool:
    """Whether the two networks return different feature maps (names, channels, reductions, shapes)."""
    return features(old) != features(new)
