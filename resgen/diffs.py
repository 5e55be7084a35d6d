"""Semantic diff of two compiled specs: what changed in the network, not in the YAML lines.

Fields are compared on the validated specs' JSON trees (`resgen.diff_backbone.spec_tree`), so key order,
defaults spelled out or left implicit, and JSON versus YAML never count as changes. The layer graphs and
the feature maps returned are compared too (layers added, removed, or with different settings, inputs or
shapes): they decide the verdict. Equal graphs returning equal maps are the same network; changed fields
(always ``name`` and ``description``) are then informational.

This module computes: `diff(old, new)` is a `SpecDiff`, a pure function of two `Compiled` values, and
`verdict` sums one up in a line. `resgen.diff_formats` renders a `SpecDiff` as text, markdown or JSON.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from resgen.compiler import Compiled
from resgen.diff_backbone import outputs_differ, spec_tree
from resgen.diff_words import ABSENT, value_text
from resgen.errors import Path, format_path
from resgen.graph import BatchNorm, BlockRecord, Conv2d, Dense, Layer, MaxPool, Network, Scope

INFORMATIONAL = frozenset({"name", "description"})  # top-level fields that never make networks differ
HEADLINE_CHANGES = 3  # field changes named in the verdict line before "and N more"
EXAMPLES = 5
"""Layers named per kind of graph change in the text and markdown reports and the JSON examples."""
DERIVED = ("shape", "padding", "in_features")
"""Signature entries that the analysis derives (per layer, so reports group them by name alone)."""
_RENAMED = {"conv2d": {"padding": "padding_mode"}}  # in signatures, a convolution's "padding" is its pads


# --- the diff as data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One field whose value differs; `old` or `new` is `ABSENT` where the field exists on one side."""

    path: Path
    old: Any
    new: Any
    graph_identical: bool = False  # the layer graphs are equal: this field does not change the network

    @property
    def kind(self) -> str:
        if self.old is ABSENT:
            return "added"
        return "removed" if self.new is ABSENT else "changed"

    @property
    def informational(self) -> bool:
        return self.graph_identical or (len(self.path) == 1 and self.path[0] in INFORMATIONAL)

    @property
    def where(self) -> str:
        return format_path(self.path)


@dataclass(frozen=True)
class StageRow:
    """What a stage produces: its block count, output channels and output resolution (H, W)."""

    blocks: int
    channels: int
    resolution: tuple[int, ...]


@dataclass(frozen=True)
class Quantity:
    """A count on both sides."""

    old: int
    new: int

    @property
    def delta(self) -> int:
        return self.new - self.old

    @property
    def percent(self) -> float | None:
        return 100.0 * self.delta / self.old if self.old else None


@dataclass(frozen=True)
class LayerChange:
    """A layer present on both sides whose op, settings, inputs or output shape differ."""

    name: str
    attrs: dict[str, tuple[Any, Any]]


@dataclass(frozen=True)
class GraphDiff:
    """Differences between the two layer graphs, by canonical layer name."""

    old_count: int
    new_count: int
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[LayerChange, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


@dataclass(frozen=True)
class BlockChange:
    """A residual block present on both sides whose channels, stride or shortcut differ."""

    name: str
    attrs: dict[str, tuple[Any, Any]]


@dataclass(frozen=True)
class SpecDiff:
    """Everything `resgen diff` reports about two specs."""

    old: Compiled
    new: Compiled
    changes: tuple[Change, ...]
    stages_old: tuple[StageRow, ...]
    stages_new: tuple[StageRow, ...]
    blocks_added: tuple[str, ...]
    blocks_removed: tuple[str, ...]
    blocks_changed: tuple[BlockChange, ...]
    graph: GraphDiff
    output_shape: tuple[tuple[int, ...], tuple[int, ...]]
    params: Quantity
    non_trainable_params: Quantity
    macs: Quantity

    @property
    def network_changes(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if not c.informational)

    @property
    def same(self) -> bool:
        """Same network: equal layer graphs returning equal maps (changed fields are then informational)."""
        return self.graph.empty and not outputs_differ(self.old, self.new)

    @property
    def title(self) -> str:
        old, new = self.old.name, self.new.name
        return old if old == new else f"{old} → {new}"


def diff(old: Compiled, new: Compiled) -> SpecDiff:
    """Compare two compiled specs."""
    old_totals, new_totals = old.analysis.totals(), new.analysis.totals()
    old_blocks = {b.prefix: b for b in old.graph.blocks}
    new_blocks = {b.prefix: b for b in new.graph.blocks}
    graph = graph_diff(old, new)
    same = graph.empty and not outputs_differ(old, new)
    changes = field_changes(spec_tree(old), spec_tree(new))
    changes = [dataclasses.replace(c, graph_identical=same) for c in changes]
    return SpecDiff(
        old=old,
        new=new,
        changes=tuple(sorted(changes, key=lambda c: c.informational)),  # stable: network changes first
        stages_old=stage_rows(old),
        stages_new=stage_rows(new),
        blocks_added=tuple(n for n in new_blocks if n not in old_blocks),
        blocks_removed=tuple(n for n in old_blocks if n not in new_blocks),
        blocks_changed=_block_changes(old_blocks, new_blocks),
        graph=graph,
        output_shape=(old.analysis.shape(old.graph.output.name), new.analysis.shape(new.graph.output.name)),
        params=Quantity(old_totals["params"], new_totals["params"]),
        non_trainable_params=Quantity(old_totals["non_trainable_params"], new_totals["non_trainable_params"]),
        macs=Quantity(old_totals["macs"], new_totals["macs"]),
    )


def field_changes(old: Any, new: Any, path: Path = ()) -> list[Change]:
    """Leaf-level differences between two JSON trees, in field order (old's keys first)."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = [*old, *(k for k in new if k not in old)]
        return [c for k in keys for c in field_changes(old.get(k, ABSENT), new.get(k, ABSENT), (*path, k))]
    if isinstance(old, list) and isinstance(new, list):
        return [
            c
            for i in range(max(len(old), len(new)))
            for c in field_changes(_item(old, i), _item(new, i), (*path, i))
        ]
    if type(old) is type(new) and old == new:
        return []
    return [Change(path, old, new)]


def _item(items: list[Any], index: int) -> Any:
    return items[index] if index < len(items) else ABSENT


def stage_rows(compiled: Compiled) -> tuple[StageRow, ...]:
    """Per stage: blocks, output channels, and the resolution of its last layer's output."""
    last_shape: dict[int | None, tuple[int, ...]] = {}
    for layer in compiled.graph:
        if layer.scope is Scope.STAGE:
            last_shape[layer.stage] = compiled.analysis.shape(layer.name)
    stages = compiled.graph.network.stages  # every stage has a block (the spec says blocks >= 1)
    return tuple(StageRow(s.blocks, s.out_channels, last_shape[s.index][1:]) for s in stages)


def _block_changes(old: dict[str, BlockRecord], new: dict[str, BlockRecord]) -> tuple[BlockChange, ...]:
    fields = ("in_channels", "width", "out_channels", "stride", "shortcut")
    changes = []
    for name, before in old.items():
        after = new.get(name)
        if after is None:
            continue
        attrs = {f: (getattr(before, f), getattr(after, f)) for f in fields}
        attrs = {f: pair for f, pair in attrs.items() if pair[0] != pair[1]}
        if attrs:
            changes.append(BlockChange(name, attrs))
    return tuple(changes)


def _network_settings(layer: Layer, network: Network) -> dict[str, Any]:
    """The network-wide settings a layer uses, so that changing one shows on the layers it changes."""
    if isinstance(layer.op, BatchNorm):  # epsilon, momentum; norm_eval where set
        return dataclasses.asdict(network.norm) | ({"norm_eval": True} if network.norm_eval else {})
    if isinstance(layer.op, (Conv2d, Dense)):
        return {"l2": network.l2.of(layer.l2_role)}  # on the kernel
    return {}


def layer_signature(compiled: Compiled, name: str) -> dict[str, Any]:
    """What makes a layer the layer it is: op kind, op settings, the network-wide settings it uses,
    derived values (output shape, a convolution's pads, a dense layer's input width), inputs in order."""
    graph, analysis = compiled.graph, compiled.analysis
    layer = graph[name]
    renamed = _RENAMED.get(layer.kind, {})
    signature: dict[str, Any] = {"op": layer.kind}
    signature.update((renamed.get(k, k), v) for k, v in dataclasses.asdict(layer.op).items())
    if isinstance(layer.op, MaxPool) and layer.op.input_nonnegative:
        del signature["pad_value"]  # after a ReLU, zeros and -inf padding give the same result
    signature.update(_network_settings(layer, graph.network))
    if graph.frozen(layer):  # backbone.frozen_stages: it does not train
        signature["frozen"] = True
    signature["shape"] = analysis.shape(name)
    if isinstance(layer.op, Conv2d):
        signature["padding"] = analysis[name].padding
    inputs = graph.inputs(name)
    if isinstance(layer.op, Dense):
        signature["in_features"] = analysis.shape(inputs[0])[0]
    signature["inputs"] = tuple(inputs)
    return signature


def graph_diff(old: Compiled, new: Compiled) -> GraphDiff:
    """Layers added, removed and changed between the layer graphs of two compiled specs."""
    old_names, new_names = old.graph.names, new.graph.names
    old_set, new_set = set(old_names), set(new_names)
    changed = []
    for name in old_names:
        if name not in new_set:
            continue
        before, after = layer_signature(old, name), layer_signature(new, name)
        keys = [*before, *(k for k in after if k not in before)]
        attrs = {k: (before.get(k, ABSENT), after.get(k, ABSENT)) for k in keys}
        attrs = {k: (a, b) for k, (a, b) in attrs.items() if type(a) is not type(b) or a != b}
        old_inputs, new_inputs = attrs.get("inputs", ((), ()))
        if not (set(old_inputs) <= new_set and set(new_inputs) <= old_set):
            del attrs["inputs"]  # rewired to or from an added/removed layer: already reported as such
        if attrs:
            changed.append(LayerChange(name, attrs))
    return GraphDiff(
        old_count=len(old_names),
        new_count=len(new_names),
        added=tuple(n for n in new_names if n not in old_set),
        removed=tuple(n for n in old_names if n not in new_set),
        changed=tuple(changed),
    )


# --- the verdict and the wording it shares with the formats -----------------------------------------


def verdict(d: SpecDiff) -> str:
    """One line: what changed and what it costs, e.g. "a → b: stage 3 blocks 6 → 23, +N params (+x%), ..."."""
    if d.same:
        return f"{d.title}: same network ({d.params.new:,} params, {_macs_amount(d.macs)})"
    return f"{d.title}: " + ", ".join([_headline(d), _params_phrase(d.params), _macs_phrase(d.macs)])


def _headline(d: SpecDiff) -> str:
    phrases = _change_phrases(d.network_changes)
    if not phrases:
        return f"layer graph differs with no field change (layers {graph_counts(d.graph)})"
    shown = ", ".join(phrases[:HEADLINE_CHANGES])
    rest = len(phrases) - HEADLINE_CHANGES
    return shown + (f" and {rest} more change{'s' * (rest != 1)}" if rest > 0 else "")


def _change_phrases(changes: Sequence[Change]) -> list[str]:
    """Readable phrases; one stage field changed the same way in several stages is one phrase."""
    slots: list[str | tuple[Any, ...]] = []  # a phrase, or the key of a group of stage changes
    groups: dict[tuple[Any, ...], list[int]] = {}
    for change in changes:
        path = change.path
        if path[0] == "stages" and len(path) == 3:
            key = (path[2], value_text(change.old), value_text(change.new))
            if key not in groups:
                groups[key] = []
                slots.append(key)
            groups[key].append(int(path[1]) + 1)
        elif path[0] == "stages" and len(path) == 2:
            slots.append(f"stage {int(path[1]) + 1} {change.kind}")
        else:
            slots.append(f"{change.where} {value_text(change.old)} → {value_text(change.new)}")
    return [
        slot if isinstance(slot, str) else f"{_stages_label(groups[slot])} {slot[0]} {slot[1]} → {slot[2]}"
        for slot in slots
    ]


def _stages_label(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"stage {numbers[0]}"
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"stages {numbers[0]}–{numbers[-1]}"
    return "stages " + ", ".join(str(n) for n in numbers)


def signed(value: int) -> str:
    """A count with its sign and thousands separators: +1,024 or -3."""
    return f"+{value:,}" if value >= 0 else f"-{-value:,}"


def percent_text(q: Quantity) -> str:
    """The relative change of a count: +74.3%, -<0.1%, or "new" where the old count is 0."""
    p = q.percent
    if p is None:
        return "new"
    if p != 0 and abs(p) < 0.05:
        return f"{'+' if p > 0 else '-'}<0.1%"
    return f"{p:+.1f}%"


def _params_phrase(q: Quantity) -> str:
    if not q.delta:
        return f"params unchanged ({q.new:,})"
    return f"{signed(q.delta)} params ({percent_text(q)})"


def _mac_unit(q: Quantity) -> tuple[float, str]:
    largest = max(q.old, q.new)
    for scale, unit in ((1e9, "GMACs"), (1e6, "MMACs"), (1e3, "KMACs")):
        if largest >= scale:
            return scale, unit
    return 1.0, "MACs"


def _macs_amount(q: Quantity) -> str:
    scale, unit = _mac_unit(q)
    return f"{q.new / scale:.2f} {unit}"


def _macs_phrase(q: Quantity) -> str:
    if not q.delta:
        return f"MACs unchanged ({_macs_amount(q)})"
    scale, unit = _mac_unit(q)
    return f"{q.delta / scale:+.2f} {unit}"


def graph_counts(g: GraphDiff) -> str:
    """E.g. "17 added, 0 removed, 3 changed"."""
    return f"{len(g.added)} added, {len(g.removed)} removed, {len(g.changed)} changed"
