"""An imported spec as YAML, written the way the shipped presets are: small sections on one line
(``input: {height: 224, width: 224, channels: 3}``), one line per stage, a header saying where the spec
came from, and each field's note as a comment on the field's line.

The text is read back by resgen's own loader (YAML 1.2) to exactly the data it was written from; a
string that YAML would read as anything but that string is written in double quotes.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections.abc import Mapping
from typing import Any

from resgen.importers.result import ImportedSpec

IMPORTED_PREFIX = "# Imported by resgen"
WIDTH = 100  # the presets' line length
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*|-inf")
# Plain words YAML 1.1 readers (and people) take for booleans or null; written quoted.
_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "nan", "inf"}

Path = tuple[str | int, ...]


def to_yaml(imported: ImportedSpec, origin: str) -> str:
    """The spec of `imported` as commented YAML; `origin` names the library and its version
    (``timm 1.0.31``)."""
    rows: list[tuple[str, Path | None]] = []
    for key, value in imported.data.items():
        _emit(rows, str(key), value, (str(key),), 0)
    notes = _notes_by_row(rows, imported.field_notes)
    header = [f"{IMPORTED_PREFIX} from {_printable(imported.source)} ({_printable(origin)})."]
    for note in imported.notes:
        header += _comment(note, 0)
    header += _comment(
        "Check it with `resgen validate FILE`, compare it with `resgen diff FILE OTHER`; "
        "`resgen schema` describes every field.",
        0,
    )
    for path, note in notes.get(None, []):
        header += _comment(f"{_dotted(path)}: {note}", 0)
    out = list(header)
    for index, (text, _path) in enumerate(rows):
        comments = "; ".join(note for _, note in notes.get(index, []))
        if comments and len(text) + 4 + len(comments) <= WIDTH:
            out.append(f"{text}  # {comments}")
        else:
            if comments:
                out += _comment(comments, len(text) - len(text.lstrip(" -")))
            out.append(text)
    return "\n".join(out) + "\n"


def _comment(text: str, indent: int) -> list[str]:
    width = max(40, WIDTH - indent - 2)
    return [" " * indent + "# " + part for part in textwrap.wrap(_printable(text), width)]


def _printable(text: str) -> str:
    """Comment text on one line, every character that is not printable escaped (a spec file holds
    no control characters, comments included)."""
    words = " ".join(str(text).split())
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in words)


def _dotted(path: Path) -> str:
    return ".".join(str(p) for p in path)


def _notes_by_row(
    rows: list[tuple[str, Path | None]], field_notes: Mapping[str, str]
) -> dict[int | None, list[tuple[Path, str]]]:
    """Each note at the row that writes its field (or the row of the flow collection holding it,
    the note then prefixed with the field's place in it); notes on no written field go to the header."""
    placed: dict[int | None, list[tuple[Path, str]]] = {}
    for dotted, note in field_notes.items():
        path: Path = tuple(int(p) if p.isdigit() else p for p in dotted.split("."))
        row, prefix = _row_of(rows, path)
        text = _printable(note)
        placed.setdefault(row, []).append((path, f"{prefix}: {text}" if prefix else text))
    return placed


def _row_of(rows: list[tuple[str, Path | None]], path: Path) -> tuple[int | None, str]:
    for probe_len in range(len(path), 0, -1):
        probe = path[:probe_len]
        for index, (_, row_path) in enumerate(rows):
            if row_path == probe:
                rest = path[probe_len:]
                return index, _dotted(rest)
    return None, ""


def _emit(rows: list[tuple[str, Path | None]], key: str | None, value: Any, path: Path, indent: int) -> None:
    """Rows for `key: value` (or a list item `- value` where `key` is None) at `indent`."""
    pad = " " * indent
    lead = f"{pad}{_scalar(key)}: " if key is not None else f"{pad}- "
    flow = _flow(value)
    if flow is not None and (len(lead) + len(flow) <= WIDTH or not isinstance(value, Mapping | list)):
        rows.append((lead + flow, path))
        return
    if isinstance(value, Mapping):
        items = list(value.items())
        if key is None:  # a list item that is a block mapping: its first key on the "- " line
            first_key, first_value = items[0]
            sub: list[tuple[str, Path | None]] = []
            _emit(sub, str(first_key), first_value, (*path, str(first_key)), indent + 2)
            text, first_path = sub[0]
            rows.append((f"{pad}- {text[indent + 2 :]}", first_path))
            rows.extend(sub[1:])
            items = items[1:]
        else:
            rows.append((f"{pad}{_scalar(key)}:", path))
        for k, v in items:
            _emit(rows, str(k), v, (*path, str(k)), indent + 2)
        return
    assert isinstance(value, list)
    rows.append((f"{pad}{_scalar(key)}:" if key is not None else f"{pad}-", path))
    for i, item in enumerate(value):
        _emit(rows, None, item, (*path, i), indent + 2)


def _flow(value: Any) -> str | None:
    """`value` on one line, or None where it holds a collection of collections of collections."""
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        parts = [_flat(v) for v in value.values()]
        if any(p is None for p in parts):
            return None
        return "{" + ", ".join(f"{_scalar(str(k))}: {p}" for k, p in zip(value, parts, strict=True)) + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        parts = [_flat(v) for v in value]
        return None if any(p is None for p in parts) else "[" + ", ".join(str(p) for p in parts) + "]"
    return _scalar(value)


def _flat(value: Any) -> str | None:
    """A scalar, or a list of scalars, as a flow collection may hold it."""
    if isinstance(value, list):
        if all(not isinstance(v, list | Mapping) for v in value):
            return "[" + ", ".join(_scalar(v) for v in value) + "]"
        return None
    if isinstance(value, Mapping):
        return None
    return _scalar(value)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):  # no spec holds one; written so that the loader names the field
            return json.dumps(str(value))
        text = repr(value)
        return text if any(c in text for c in ".e") else text + ".0"
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _WORDS:
        return text
    return json.dumps(text, ensure_ascii=False)
