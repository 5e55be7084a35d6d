"""Stages that name their own block kind (``stages[i].block``): which combinations make sense.

A stage's ``block`` overrides ``block.kind`` for that stage only (timm's ResNet takes one block class
per stage; its test_resnet mixes basic and bottleneck blocks). The network-wide ``block`` section keeps
every other setting; the settings that only bottleneck blocks have must keep their defaults where
the kinds mix, as timm's BasicBlock accepts none of them.
"""

from __future__ import annotations

from typing import Any

# Bottleneck-only settings and the value a network that mixes kinds keeps (timm's Bottleneck defaults).
BOTTLENECK_ONLY: dict[str, Any] = {
    "expansion": 4,
    "groups": 1,
    "width_per_group": 64,
    "reduce_first": 1,
    "stride_on": "conv2",
}


class FieldProblem(ValueError):
    """A model-level rule broken at one field, given as a path from the spec's top (validation
    reports it there)."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


def stage_kind_problem(spec: Any) -> FieldProblem | None:
    """The first stage block kind that makes no sense with the rest of the spec, or None."""
    kind = spec.block.kind
    for i, stage in enumerate(spec.stages):
        if stage.block is None:
            continue
        if stage.block == kind:
            return FieldProblem(
                ("stages", i, "block"),
                f"{kind!r} is already block.kind; remove it (name only the other kind)",
            )
        if i == 0:
            return FieldProblem(
                ("stages", 0, "block"),
                f"the first stage's blocks are block.kind's: set block.kind: {stage.block}, and "
                f"block: {kind} on the later stages that differ",
            )
    mixed = next((i for i, s in enumerate(spec.stages) if s.block is not None), None)
    if mixed is None or kind != "bottleneck":
        return None
    for field, default in BOTTLENECK_ONLY.items():
        if getattr(spec.block, field) != default:
            return FieldProblem(
                ("block", field),
                f"applies only to bottleneck blocks, and stages[{mixed}] has basic blocks; a network that "
                f"mixes kinds keeps {default!r} (timm's BasicBlock takes no such setting)",
            )
    return None
