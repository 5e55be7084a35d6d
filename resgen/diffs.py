"""Semantic diff of two compiled specs: what changed in the network, not in the YAML lines.

Fields are compared on the validated specs' ``model_dump(mode="json")`` trees, so key order, defaults
spelled out or left implicit, and JSON versus YAML never count as changes. ``name`` and ``description``
are listed but are informational: they do not make two networks differ. The layer graphs are compared
too (layers added, removed, or with different attributes, inputs or shapes), which catches any change
to the network that no field change explains.

Everything here is a pure function of two `Compiled` values; `to_text`, `to_markdown` and `to_json`
render one `SpecDiff`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx

from resgen.compiler import Compiled
from resgen.errors import Path, format_path
from resgen.lower import OPS, BlockInfo, inputs_of, layers
from resgen.passes import totals

INFORMATIONAL = frozenset({"name", "description"})
"""Top-level fields that never make two networks differ."""
HEADLINE_CHANGES = 3
"""Field changes named in the verdict line before "and N more"."""
EXAMPLES = 5
"""Layers named per kind of graph change in the text and markdown reports and the JSON examples."""
_DERIVED_ATTRS = ("shape", "padding", "in_features")


class _Absent:
    """The value of a field or stage that one side does not have."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


# --- the diff as data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One field whose value differs; `old` or `new` is `ABSENT` where the field exists on one side."""

    path: Path
    old: Any
    new: Any

    @property
    def kind(self) -> str:
        if self.old is ABSENT:
            return "added"
        return "removed" if self.new is ABSENT else "changed"

    @property
    def informational(self) -> bool:
        return len(self.path) == 1 and self.path[0] in INFORMATIONAL

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
    """A layer present on both sides whose op, attributes, inputs or output shape differ."""

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
        """Same network: no field outside name/description changed and the layer graphs are equal."""
        return not self.network_changes and self.graph.empty

    @property
    def title(self) -> str:
        old, new = self.old.name, self.new.name
        return old if old == new else f"{old} → {new}"


def diff(old: Compiled, new: Compiled) -> SpecDiff:
    """Compare two compiled specs."""
    old_totals, new_totals = totals(old.graph), totals(new.graph)
    old_blocks, new_blocks = _blocks_by_name(old.graph), _blocks_by_name(new.graph)
    changes = field_changes(old.spec.model_dump(mode="json"), new.spec.model_dump(mode="json"))
    return SpecDiff(
        old=old,
        new=new,
        changes=tuple(sorted(changes, key=lambda c: c.informational)),  # stable: network changes first
        stages_old=stage_rows(old.graph),
        stages_new=stage_rows(new.graph),
        blocks_added=tuple(n for n in new_blocks if n not in old_blocks),
        blocks_removed=tuple(n for n in old_blocks if n not in new_blocks),
        blocks_changed=_block_changes(old_blocks, new_blocks),
        graph=graph_diff(old.graph, new.graph),
        output_shape=(_output_shape(old.graph), _output_shape(new.graph)),
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


def stage_rows(graph: nx.DiGraph) -> tuple[StageRow, ...]:
    """Per stage: blocks, output channels, and the resolution of its last layer's output."""
    blocks: list[BlockInfo] = graph.graph["blocks"]
    last_shape: dict[int, tuple[int, ...]] = {}
    for name in layers(graph):
        node = graph.nodes[name]
        if node["scope"] == "stage":
            last_shape[node["stage"]] = node["shape"]
    rows = []
    for stage in sorted(last_shape):
        infos = [b for b in blocks if b.stage == stage]
        rows.append(StageRow(len(infos), infos[-1].out_channels, tuple(last_shape[stage][1:])))
    return tuple(rows)


def _blocks_by_name(graph: nx.DiGraph) -> dict[str, BlockInfo]:
    return {b.prefix: b for b in graph.graph["blocks"]}


def _block_changes(old: dict[str, BlockInfo], new: dict[str, BlockInfo]) -> tuple[BlockChange, ...]:
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


def _output_shape(graph: nx.DiGraph) -> tuple[int, ...]:
    return tuple(graph.nodes[layers(graph)[-1]]["shape"])


def layer_signature(graph: nx.DiGraph, name: str) -> dict[str, Any]:
    """What makes a layer the layer it is: op, op attributes, inputs (in order) and derived shape."""
    node = graph.nodes[name]
    signature: dict[str, Any] = {"op": node["op"]}
    signature.update((attr, node[attr]) for attr in OPS[node["op"]])
    signature.update((attr, node[attr]) for attr in _DERIVED_ATTRS if attr in node)
    signature["inputs"] = tuple(inputs_of(graph, name))
    return signature


def graph_diff(old: nx.DiGraph, new: nx.DiGraph) -> GraphDiff:
    """Layers added, removed and changed between two annotated layer graphs."""
    old_names, new_names = layers(old), layers(new)
    old_set, new_set = set(old_names), set(new_names)
    changed = []
    for name in old_names:
        if name not in new_set:
            continue
        before, after = layer_signature(old, name), layer_signature(new, name)
        keys = [*before, *(k for k in after if k not in before)]
        attrs = {k: (before.get(k, ABSENT), after.get(k, ABSENT)) for k in keys}
        attrs = {k: pair for k, pair in attrs.items() if not _equal(*pair)}
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


def _equal(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


# --- wording ------------------------------------------------------------------------------------


def verdict(d: SpecDiff) -> str:
    """One line: what changed and what it costs, e.g. "a → b: stage 3 blocks 6 → 23, +N params (+x%), ..."."""
    if d.same:
        return f"{d.title}: same network ({d.params.new:,} params, {_macs_amount(d.macs)})"
    return f"{d.title}: " + ", ".join([_headline(d), _params_phrase(d.params), _macs_phrase(d.macs)])


def _headline(d: SpecDiff) -> str:
    phrases = _change_phrases(d.network_changes)
    if not phrases:
        return f"layer graph differs with no field change (layers {_graph_counts(d.graph)})"
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
            key = (path[2], _value(change.old), _value(change.new))
            if key not in groups:
                groups[key] = []
                slots.append(key)
            groups[key].append(int(path[1]) + 1)
        elif path[0] == "stages" and len(path) == 2:
            slots.append(f"stage {int(path[1]) + 1} {change.kind}")
        else:
            slots.append(f"{change.where} {_value(change.old)} → {_value(change.new)}")
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


def _signed(value: int) -> str:
    return f"+{value:,}" if value >= 0 else f"-{-value:,}"


def _percent(q: Quantity) -> str:
    p = q.percent
    if p is None:
        return "new"
    if p != 0 and abs(p) < 0.05:
        return f"{'+' if p > 0 else '-'}<0.1%"
    return f"{p:+.1f}%"


def _params_phrase(q: Quantity) -> str:
    if not q.delta:
        return f"params unchanged ({q.new:,})"
    return f"{_signed(q.delta)} params ({_percent(q)})"


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


def _value(value: Any, limit: int = 60) -> str:
    """A field value as a spec author writes it: 1e-5, true, null, {kernel_size: 3, ...}."""
    if value is ABSENT:
        return "(absent)"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, float):
        text = _float(value)
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {_value(v, limit)}" for k, v in value.items()) + "}"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(_value(v, limit) for v in value) + "]"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _float(value: float) -> str:
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent)}"


def _shape(shape: Sequence[int]) -> str:
    return "×".join(str(d) for d in shape)


def _graph_counts(g: GraphDiff) -> str:
    return f"{len(g.added)} added, {len(g.removed)} removed, {len(g.changed)} changed"


def _name_ranges(names: Iterable[str]) -> str:
    """stage3.block7, ..., stage3.block23 -> "stage3.block7–23"; runs per stage."""
    runs: list[tuple[str, int, int]] = []
    for name in names:
        stage, _, block = name.partition(".block")
        number = int(block)
        if runs and runs[-1][0] == stage and runs[-1][2] == number - 1:
            runs[-1] = (stage, runs[-1][1], number)
        else:
            runs.append((stage, number, number))
    return ", ".join(f"{s}.block{a}" + (f"–{b}" if b != a else "") for s, a, b in runs)


def _some(texts: Sequence[str], sep: str = ", ") -> str:
    """The first `EXAMPLES` texts, and how many more there are."""
    more = len(texts) - EXAMPLES
    return sep.join(texts[:EXAMPLES]) + (f"{sep}… ({more} more)" if more > 0 else "")


def _attrs_text(change: LayerChange | BlockChange) -> str:
    parts = [f"{k} {_value(o)} → {_value(n)}" for k, (o, n) in change.attrs.items()]
    return f"{change.name} ({'; '.join(parts)})"


def _stage_cells(d: SpecDiff) -> list[list[str]]:
    """Rows of the per-stage table: stage number, blocks, channels, resolution, each "old → new"."""
    rows = []
    for i in range(max(len(d.stages_old), len(d.stages_new))):
        old = d.stages_old[i] if i < len(d.stages_old) else None
        new = d.stages_new[i] if i < len(d.stages_new) else None
        rows.append(
            [
                str(i + 1),
                _pair(old and str(old.blocks), new and str(new.blocks)),
                _pair(old and str(old.channels), new and str(new.channels)),
                _pair(old and _shape(old.resolution), new and _shape(new.resolution)),
            ]
        )
    return rows


def _pair(old: str | None, new: str | None) -> str:
    old_text, new_text = old or "—", new or "—"
    return old_text if old_text == new_text else f"{old_text} → {new_text}"


def _total_cells(d: SpecDiff) -> list[list[str]]:
    def row(label: str, q: Quantity) -> list[str]:
        delta = f"{_signed(q.delta)} ({_percent(q)})" if q.delta else "0"
        return [label, f"{q.old:,}", f"{q.new:,}", delta]

    old_shape, new_shape = d.output_shape
    return [
        ["output shape", _shape(old_shape), _shape(new_shape), "" if old_shape == new_shape else "changed"],
        row("params", d.params),
        row("non-trainable params", d.non_trainable_params),
        row("MACs", d.macs),
        row("layers", Quantity(d.graph.old_count, d.graph.new_count)),
    ]


def layer_change_groups(changes: Sequence[LayerChange]) -> list[tuple[str, list[str]]]:
    """Layer changes grouped by what changed ("bias false → true") with the layers it applies to.

    Derived values (shapes, inputs) are grouped by attribute alone, as their values vary per layer.
    """
    groups: dict[str, list[str]] = {}
    for change in changes:
        for attr, (old, new) in change.attrs.items():
            if attr in (*_DERIVED_ATTRS, "inputs"):
                label = f"{'output shape' if attr == 'shape' else attr} changed"
            else:
                label = f"{attr} {_value(old)} → {_value(new)}"
            groups.setdefault(label, []).append(change.name)
    return list(groups.items())


def _detail_lines(d: SpecDiff) -> list[tuple[int, str]]:
    """Facts about blocks and layers, as (nesting depth, text) for a bulleted list."""
    lines: list[tuple[int, str]] = []
    if d.blocks_added:
        lines.append((0, f"blocks added ({len(d.blocks_added)}): {_name_ranges(d.blocks_added)}"))
    if d.blocks_removed:
        lines.append((0, f"blocks removed ({len(d.blocks_removed)}): {_name_ranges(d.blocks_removed)}"))
    if d.blocks_changed:
        changed = [_attrs_text(c) for c in d.blocks_changed]
        lines.append((0, f"blocks changed ({len(changed)}): {_some(changed)}"))
    g = d.graph
    lines.append((0, f"layers: {g.old_count} → {g.new_count}; {_graph_counts(g)}"))
    if g.added:
        lines.append((1, f"added: {_some(g.added)}"))
    if g.removed:
        lines.append((1, f"removed: {_some(g.removed)}"))
    for label, names in layer_change_groups(g.changed):
        lines.append((1, f"{label}: {len(names)} layer{'s' * (len(names) != 1)} ({_some(names)})"))
    if d.network_changes and g.empty:
        lines.append((0, "the layer graph is identical: the changed fields do not affect this network"))
    return lines


# --- formats ------------------------------------------------------------------------------------


def _aligned(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def to_text(d: SpecDiff) -> str:
    """Plain text for a terminal."""
    lines = [verdict(d), "", f"old: {d.old.doc.file} ({d.old.name})", f"new: {d.new.doc.file} ({d.new.name})"]
    if d.changes:
        lines += ["", "Changed fields:"]
        rows = [
            [c.where, f"{_value(c.old)} → {_value(c.new)}" + ("  (informational)" if c.informational else "")]
            for c in d.changes
        ]
        lines += _aligned(rows)
    lines += ["", "Stages:"]
    lines += _aligned([["stage", "blocks", "channels", "resolution"], *_stage_cells(d)])
    lines += ["", "Totals:"]
    lines += _aligned([["", "old", "new", "delta"], *_total_cells(d)])
    lines += ["", "Graph:", *(f"{'  ' * (depth + 1)}{text}" for depth, text in _detail_lines(d))]
    return "\n".join(lines) + "\n"


_MD_ESCAPES = str.maketrans({"\\": "\\\\", "|": "\\|", "<": "&lt;", ">": "&gt;", "\n": " "})


def _md(text: str) -> str:
    """Text safe inside a markdown table cell: no pipes, newlines or HTML."""
    return text.translate(_MD_ESCAPES)


def _md_code(text: str) -> str:
    if "`" in text:
        return _md(text)
    return f"`{_md(text)}`"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def to_markdown(d: SpecDiff) -> str:
    """GitHub-flavoured markdown for a pull-request comment."""
    names = [d.old.name] if d.old.name == d.new.name else [d.old.name, d.new.name]
    heading = "### Architecture diff: " + " → ".join(_md_code(n) for n in names)
    lines = [heading, "", f"**{_md(verdict(d))}**"]
    if d.changes:
        rows = [
            [
                _md_code(c.where) + (" _(informational)_" if c.informational else ""),
                _md_code(_value(c.old)),
                _md_code(_value(c.new)),
            ]
            for c in d.changes
        ]
        lines += ["", "#### Changed fields", "", *_md_table(["field", "old", "new"], rows)]
    stage_rows = [[_md(cell) for cell in row] for row in _stage_cells(d)]
    lines += [
        "",
        "#### Stages",
        "",
        *_md_table(["stage", "blocks", "output channels", "output resolution"], stage_rows),
    ]
    total_rows = [[_md(cell) for cell in row] for row in _total_cells(d)]
    lines += ["", "#### Totals", "", *_md_table(["", "old", "new", "delta"], total_rows)]
    lines += ["", "#### Graph", "", *(f"{'  ' * depth}- {_md(text)}" for depth, text in _detail_lines(d))]
    return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    if value is ABSENT:
        return None
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _quantity_json(q: Quantity) -> dict[str, Any]:
    percent = q.percent
    rounded = None if percent is None else round(percent, 3)
    return {"old": q.old, "new": q.new, "delta": q.delta, "percent": rounded}


def _stage_json(row: StageRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"blocks": row.blocks, "channels": row.channels, "resolution": list(row.resolution)}


def _side_json(c: Compiled) -> dict[str, Any]:
    return {"name": c.name, "file": c.doc.file, "spec_hash": c.spec.content_hash()}


def to_json(d: SpecDiff) -> dict[str, Any]:
    """Machine-readable diff; `json.dumps` it. Absent values are null, with `change` saying which side."""
    n_stages = max(len(d.stages_old), len(d.stages_new))
    g = d.graph
    return {
        "old": _side_json(d.old),
        "new": _side_json(d.new),
        "same": d.same,
        "verdict": verdict(d),
        "changes": [
            {
                "path": c.where,
                "old": _jsonable(c.old),
                "new": _jsonable(c.new),
                "change": c.kind,
                "informational": c.informational,
            }
            for c in d.changes
        ],
        "stages": [
            {
                "stage": i + 1,
                "old": _stage_json(d.stages_old[i] if i < len(d.stages_old) else None),
                "new": _stage_json(d.stages_new[i] if i < len(d.stages_new) else None),
            }
            for i in range(n_stages)
        ],
        "blocks": {
            "added": list(d.blocks_added),
            "removed": list(d.blocks_removed),
            "changed": [{"block": c.name, "attrs": _jsonable(c.attrs)} for c in d.blocks_changed],
        },
        "output_shape": {"old": list(d.output_shape[0]), "new": list(d.output_shape[1])},
        "params": _quantity_json(d.params),
        "non_trainable_params": _quantity_json(d.non_trainable_params),
        "macs": _quantity_json(d.macs),
        "layers": {
            "old": g.old_count,
            "new": g.new_count,
            "added": len(g.added),
            "removed": len(g.removed),
            "changed": len(g.changed),
            "changed_by_attr": [
                {"change": label, "count": len(names), "examples": names[:EXAMPLES]}
                for label, names in layer_change_groups(g.changed)
            ],
            "examples": {
                "added": list(g.added[:EXAMPLES]),
                "removed": list(g.removed[:EXAMPLES]),
                "changed": [{"layer": c.name, "attrs": _jsonable(c.attrs)} for c in g.changed[:EXAMPLES]],
            },
        },
    }


def to_json_text(d: SpecDiff) -> str:
    return json.dumps(to_json(d), indent=2, ensure_ascii=False) + "\n"
