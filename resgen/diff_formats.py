"""The output formats of `resgen diff`: a `SpecDiff` (computed by `resgen.diffs`) as text, markdown or JSON.

`to_text` is for a terminal, `to_markdown` for a pull-request comment, `to_json` (and `to_json_text`,
its serialized form) for machines. All three say the same things: the verdict line, the changed fields,
the per-stage table, the totals, and the block and layer changes, with at most `EXAMPLES` layers named
per kind of change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from resgen.compiler import Compiled
from resgen.diff_backbone import outputs_differ, outputs_text
from resgen.diffs import (
    ABSENT,
    DERIVED,
    EXAMPLES,
    INFORMATIONAL,
    BlockChange,
    LayerChange,
    Quantity,
    SpecDiff,
    StageRow,
    graph_counts,
    percent_text,
    signed,
    value_text,
    verdict,
)
from resgen.errors import shown
from resgen.graph import SHAPE_LAYOUT, format_shape
from resgen.report import features


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
    parts = [f"{k} {value_text(o)} → {value_text(n)}" for k, (o, n) in change.attrs.items()]
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
                _pair(old and format_shape(old.resolution, "×"), new and format_shape(new.resolution, "×")),
            ]
        )
    return rows


def _pair(old: str | None, new: str | None) -> str:
    old_text, new_text = old or "—", new or "—"
    return old_text if old_text == new_text else f"{old_text} → {new_text}"


def _total_cells(d: SpecDiff) -> list[list[str]]:
    def row(label: str, q: Quantity) -> list[str]:
        delta = f"{signed(q.delta)} ({percent_text(q)})" if q.delta else "0"
        return [label, f"{q.old:,}", f"{q.new:,}", delta]

    old_shape, new_shape = d.output_shape
    return [
        [
            "output shape",
            format_shape(old_shape, "×"),
            format_shape(new_shape, "×"),
            "" if old_shape == new_shape else "changed",
        ],
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
            if attr in (*DERIVED, "inputs"):
                label = f"{'output shape' if attr == 'shape' else attr} changed"
            else:
                label = f"{attr} {value_text(old)} → {value_text(new)}"
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
    lines.append((0, f"layers: {g.old_count} → {g.new_count}; {graph_counts(g)}"))
    if g.added:
        lines.append((1, f"added: {_some(g.added)}"))
    if g.removed:
        lines.append((1, f"removed: {_some(g.removed)}"))
    for label, names in layer_change_groups(g.changed):
        lines.append((1, f"{label}: {len(names)} layer{'s' * (len(names) != 1)} ({_some(names)})"))
    if outputs_differ(d.old, d.new):
        lines.append((0, f"outputs: {outputs_text(d.old)} → {outputs_text(d.new)}"))
    elif g.empty and any(c.path[0] not in INFORMATIONAL for c in d.changes):
        lines.append((0, "the layer graph is identical: the changed fields do not affect this network"))
    return lines


# --- text ---------------------------------------------------------------------------------------


def _aligned(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def to_text(d: SpecDiff) -> str:
    """Plain text for a terminal."""
    lines = [verdict(d), "", f"old: {shown(d.old.doc.file)} ({d.old.name})"]
    lines.append(f"new: {shown(d.new.doc.file)} ({d.new.name})")
    if d.changes:
        lines += ["", "Changed fields:"]
        rows = [
            [
                c.where,
                f"{value_text(c.old)} → {value_text(c.new)}"
                + ("  (informational)" if c.informational else ""),
            ]
            for c in d.changes
        ]
        lines += _aligned(rows)
    lines += ["", "Stages:"]
    lines += _aligned([["stage", "blocks", "channels", "resolution"], *_stage_cells(d)])
    lines += ["", "Totals:"]
    lines += _aligned([["", "old", "new", "delta"], *_total_cells(d)])
    lines += ["", "Graph:", *(f"{'  ' * (depth + 1)}{text}" for depth, text in _detail_lines(d))]
    return "\n".join(lines) + "\n"


# --- markdown -----------------------------------------------------------------------------------

_MD_PUNCTUATION = "\\`*[]<>!|~&@"
_MD_AUTOLINK = re.compile(r"(?i)(://|\bwww\.)")  # GitHub links these without brackets


def _md(text: str) -> str:
    """Text as markdown shows it literally: every character markdown could read as markup (links,
    images, HTML, emphasis, mentions) backslash-escaped, newlines as spaces."""
    flat = " ".join(text.splitlines())
    escaped = "".join(f"\\{ch}" if ch in _MD_PUNCTUATION else ch for ch in flat)
    return _MD_AUTOLINK.sub(lambda m: "".join(f"\\{ch}" if not ch.isalpha() else ch for ch in m[0]), escaped)


def _md_code(text: str) -> str:
    """Text in a code span (never a link, image or HTML): the fence is one backtick longer than any
    run of backticks inside; a pipe is escaped for the table around it."""
    flat = " ".join(text.splitlines()).replace("|", "\\|")
    if not flat:
        return ""  # an empty cell: two backticks alone are not a code span
    fence = "`" * (max((len(run) for run in re.findall("`+", flat)), default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


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
                _md_code(value_text(c.old)),
                _md_code(value_text(c.new)),
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


# --- JSON ---------------------------------------------------------------------------------------


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
        "shape_layout": SHAPE_LAYOUT,
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
        "features": {"old": features(d.old), "new": features(d.new)},
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
    """`to_json` serialized: indented, non-ASCII kept, ending in a newline."""
    return json.dumps(to_json(d), indent=2, ensure_ascii=False) + "\n"
