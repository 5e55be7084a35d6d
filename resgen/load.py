"""Stage 1: read a spec file (YAML or JSON) into plain Python data plus source positions.

YAML is read with ruamel.yaml's composer under YAML 1.2 rules, so ``epsilon: 1e-5`` is the float a
user means and ``yes`` is a plain string. The node tree is converted by hand rather than by a
constructor so that every value keeps its line and column, no tag can construct an object, aliases
cannot multiply a small file into a huge one, and YAML 1.1 habits that would silently change meaning
(``017``, ``0x10``, ``1_000``) are errors that say what to write instead.

JSON's syntax is checked with the standard library first; then it is composed by the same YAML
reader, since JSON is YAML 1.2, which gives JSON the same positions. NaN and Infinity, which Python's
reader accepts, and duplicate keys are refused there, with their field paths.
"""

from __future__ import annotations

import codecs
import difflib
import io
import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    ScalarEvent,
)
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from resgen.errors import Path as FieldPath
from resgen.errors import SpecError, SpecErrors

MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_NODES = 50_000
# No field takes a number near this long; longer digit strings are refused before int() sees them
# (Python refuses to convert more than 4,300 digits, and the message would be unreadable).
MAX_INT_DIGITS = 40
SPEC_SUFFIXES = (".yaml", ".yml", ".json")

_DECIMAL_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
# Allowed raw text: tab, newline and carriage return (CRLF files); no other control character and
# nothing else YAML's reader refuses (U+FFFE, U+FFFF), so that every such error has a position.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufffe\uffff]")
# Inside a value (after escapes are decoded): no control character or line separator at all, and no
# bidirectional override, which can make generated source display other than it reads.
_CONTROL_IN_VALUE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufffe\uffff]")
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # where str.splitlines() splits


@dataclass(frozen=True)
class Document:
    """A loaded spec: its data, where each value came from, and how scalars were written."""

    file: str
    data: Any
    positions: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)
    quoted: frozenset[FieldPath] = frozenset()

    def locate(self, path: FieldPath, *, key: bool = False) -> tuple[int, int] | None:
        """Line and column (1-based) of the value at `path`, or of its nearest ancestor."""
        table = self.key_positions if key and path in self.key_positions else self.positions
        probe = tuple(path)
        while probe not in table and probe:
            probe = probe[:-1]
            table = self.positions
        return table.get(probe)

    def error(self, path: FieldPath, message: str, *, key: bool = False) -> SpecError:
        where = self.locate(path, key=key)
        line, col = where if where else (None, None)
        return SpecError(self.file, tuple(path), message, line, col)


def presets_dir() -> Path:
    """The shipped specs: inside the installed package, or specs/ of a source checkout."""
    packaged = resources.files("resgen") / "specs"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "specs"


def preset_names() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.yaml"))


def resolve(spec: str) -> Path:
    """A SPEC argument is a file path or the bare name of a shipped preset."""
    path = Path(spec)
    if path.suffix.lower() in SPEC_SUFFIXES or path.exists():
        return path
    preset = presets_dir() / f"{spec}.yaml"
    if preset.is_file():
        return preset
    raise SpecErrors([SpecError(spec, (), "no such file, and " + unknown_preset_message(spec))])


def unknown_preset_message(name: str) -> str:
    """'no preset of that name', the nearest preset names, and where the list is."""
    close = difflib.get_close_matches(name.lower(), preset_names(), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"no preset of that name{hint} (`resgen presets` lists them)"


def load(spec: str) -> Document:
    """Load a spec file or preset into a `Document`; raise `SpecErrors` on any problem."""
    path = resolve(spec)
    display = str(path) if Path(spec) == path else spec
    try:
        with path.open("rb") as handle:  # bounded: a symlink to /dev/zero must not exhaust memory
            raw = handle.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            size = path.stat().st_size  # 0 for a device or a pipe
            raise SpecErrors([_too_large(display, size if size > MAX_FILE_BYTES else None)])
    except FileNotFoundError:
        raise SpecErrors([SpecError(display, (), "no such file")]) from None
    except IsADirectoryError:
        raise SpecErrors([SpecError(display, (), "is a directory, not a spec file")]) from None
    except OSError as exc:
        raise SpecErrors([SpecError(display, (), f"cannot read: {exc.strerror}")]) from None
    return parse(raw, display, json_input=path.suffix.lower() == ".json")


def parse(raw: bytes, file: str, *, json_input: bool = False) -> Document:
    """Parse spec bytes. `file` is only used in messages."""
    if len(raw) > MAX_FILE_BYTES:
        raise SpecErrors([_too_large(file, len(raw))])
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        message = "file is UTF-16 or UTF-32 text (it starts with a byte-order mark); save it as UTF-8"
        raise SpecErrors([SpecError(file, (), message, 1, 1)])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecErrors([SpecError(file, (), "file is not valid UTF-8 text", line, 1)]) from None
    text = text.removeprefix("\ufeff")
    bad = _CONTROL.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        col = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        raise SpecErrors(
            [SpecError(file, (), f"control character {bad.group()!r} is not allowed in a spec", line, col)]
        )
    if not text.strip():
        raise SpecErrors([SpecError(file, (), "file is empty; a spec is a mapping of fields")])
    if json_input:
        _check_json(text, file)
    node = _compose(text, file)
    builder = _Builder(file, json_input=json_input)
    data = builder.convert(node, (), depth=0)
    if not isinstance(data, dict):
        raise SpecErrors([builder.doc_error((), "the top level of a spec must be a mapping of fields")])
    return Document(file, data, builder.positions, builder.key_positions, frozenset(builder.quoted))


def _too_large(file: str, size: int | None) -> SpecError:
    what = f"{size:,} bytes" if size is not None else f"more than {MAX_FILE_BYTES:,} bytes"
    return SpecError(file, (), f"file is {what}; specs are limited to {MAX_FILE_BYTES:,}")


def _check_json(text: str, file: str) -> None:
    """The JSON syntax, which the YAML reader is more lenient about (trailing commas, comments).

    Only the syntax: values are converted, and NaN, Infinity and oversized numbers refused with their
    field paths, by `_Builder`. Input nested too deep for Python's reader is left to `_prescan`, which
    refuses it with a position.
    """
    try:
        json.loads(text, parse_constant=lambda _: 0.0, parse_int=lambda _: 0)
    except json.JSONDecodeError as exc:
        raise SpecErrors([SpecError(file, (), f"invalid JSON: {exc.msg}", exc.lineno, exc.colno)]) from None
    except RecursionError:
        pass


def _compose(text: str, file: str) -> Node:
    yaml = YAML(typ="rt", pure=True)
    yaml.version = (1, 2)
    try:
        _prescan(yaml, text, file)
        node = yaml.compose(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        message = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        hint = _syntax_hint(message, exc.context_mark.line + 1 if exc.context_mark else None)
        raise SpecErrors([SpecError(file, (), f"invalid YAML: {message}{hint}", line, col)]) from None
    except (YAMLError, RecursionError, AssertionError) as exc:  # ruamel asserts on e.g. "%YAML 1.3"
        raise SpecErrors([SpecError(file, (), f"invalid YAML: {' '.join(str(exc).split())}")]) from None
    if node is None:
        raise SpecErrors([SpecError(file, (), "file is empty; a spec is a mapping of fields")])
    return node


# What the usual YAML syntax errors mean in a spec, by a phrase of the parser's message.
_SYNTAX_HINTS = {
    "could not find expected ':'": "a key without its colon{near} "
    "(write `key: value`, a space after the colon)",
    "mapping values are not allowed": "a line indented deeper than the key above it, or an unquoted value "
    "holding ': ' (indent keys of one mapping alike; quote such a value)",
    "expected <block end>": "indentation that does not line up (keys of one mapping start in one column)",
    "'\\t'": "a tab; YAML indents with spaces only",
    "while parsing a flow": "a [ or { that is not closed, or a comma missing between its items",
    "while scanning a quoted scalar": "a quote that is not closed",
}


def _syntax_hint(message: str, context_line: int | None) -> str:
    for phrase, hint in _SYNTAX_HINTS.items():
        if phrase in message:
            near = f" on line {context_line}" if context_line else ""
            return "; hint: " + hint.replace("{near}", near)
    return ""


def _prescan(yaml: YAML, text: str, file: str) -> None:
    """Read the event stream, which needs no recursion, before composing, which does.

    The composer recurses once per level and builds every node before `_Builder` can count them, so a
    deeply nested file would exhaust the interpreter's stack (slowly) and a megabyte of small values
    would take many seconds. Both are refused here, with a position: nesting at twice the depth
    `_Builder` reports with a field path, and more keys and values (aliases not expanded) than it
    accepts values. A ``%YAML`` directive other than 1.2 would change what scalars mean.
    """
    depth = nodes = 0
    for event in yaml.parse(io.StringIO(text)):
        where = event.start_mark.line + 1, event.start_mark.column + 1
        message = ""
        if isinstance(event, DocumentStartEvent) and event.version not in (None, (1, 2)):
            version = ".".join(map(str, event.version))
            message = f"'%YAML {version}' directive: specs are read as YAML 1.2; remove the directive"
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > 2 * MAX_DEPTH:
                message = f"spec is nested more than {MAX_DEPTH} levels deep"
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
        if isinstance(event, (ScalarEvent, AliasEvent, CollectionStartEvent)):
            nodes += 1
            if nodes > MAX_NODES:
                message = f"spec has more than {MAX_NODES:,} keys and values"
        if message:
            raise SpecErrors([SpecError(file, (), message, *where)])


def _ambiguous_int(text: str) -> str:
    """Explain an integer spelled in a way YAML readers disagree on, and what to write instead."""
    sign, digits = (text[0], text[1:]) if text[0] in "+-" else ("", text)
    if "_" in digits:
        return f"{text!r}: write the integer without underscores, {sign}{digits.replace('_', '')}"
    if digits.isdigit():  # leading zero: octal in YAML 1.1, decimal in YAML 1.2
        return f"{text!r} has a leading zero, which YAML 1.1 reads as octal; write {sign}{int(digits)}"
    try:
        value = int(digits, 0)
    except ValueError:
        return f"{text!r} is not a decimal integer"
    return f"{text!r}: write the decimal integer {sign}{value}"


def _position(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


_STD_TAG = "tag:yaml.org,2002:"


class _Builder:
    """Converts a composed YAML node tree into plain data, recording positions."""

    def __init__(self, file: str, *, json_input: bool = False) -> None:
        self.file = file
        self.json_input = json_input
        self.positions: dict[FieldPath, tuple[int, int]] = {}
        self.key_positions: dict[FieldPath, tuple[int, int]] = {}
        self.quoted: set[FieldPath] = set()
        self.count = 0

    def doc_error(self, path: FieldPath, message: str) -> SpecError:
        line, col = self.positions.get(path, (None, None))
        return SpecError(self.file, path, message, line, col)

    def fail(self, node: Node, path: FieldPath, message: str) -> SpecErrors:
        line, col = _position(node)
        return SpecErrors([SpecError(self.file, path, message, line, col)])

    def convert(self, node: Node, path: FieldPath, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(node, path, f"spec has more than {MAX_NODES:,} values (aliases included)")
        if depth > MAX_DEPTH:
            raise self.fail(node, path, f"spec is nested more than {MAX_DEPTH} levels deep")
        self.positions[path] = _position(node)
        tag = str(node.tag)
        if isinstance(node, MappingNode):
            if tag != _STD_TAG + "map":
                raise self.fail(node, path, f"tag {tag!r} is not allowed; a spec holds plain values only")
            return self._mapping(node, path, depth)
        if isinstance(node, SequenceNode):
            if tag != _STD_TAG + "seq":
                raise self.fail(node, path, f"tag {tag!r} is not allowed; a spec holds plain values only")
            return [self.convert(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        return self._scalar(node, path, tag)

    def _mapping(self, node: MappingNode, path: FieldPath, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if str(key_node.tag) == _STD_TAG + "merge":
                message = "merge keys ('<<') are not allowed; write the fields out"
                raise self.fail(key_node, path, message)
            if not isinstance(key_node, ScalarNode) or str(key_node.tag) != _STD_TAG + "str":
                raise self.fail(key_node, path, "mapping keys must be plain strings")
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in first_seen:
                raise self.fail(
                    key_node, (*path, key), f"duplicate key (first defined on line {first_seen[key]})"
                )
            first_seen[key] = line
            self.key_positions[(*path, key)] = _position(key_node)
            result[key] = self.convert(value_node, (*path, key), depth + 1)
        return result

    def _string(self, node: ScalarNode, path: FieldPath, text: str) -> str:
        if any("\ud800" <= ch <= "\udfff" for ch in text):
            # JSON writes a character outside the BMP as an escaped surrogate pair, which the YAML
            # reader decodes as two code points: join them; a lone surrogate is no character at all
            try:
                text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
            except UnicodeDecodeError:
                raise self.fail(node, path, "a lone surrogate escape is not a character") from None
        bad = _CONTROL_IN_VALUE.search(text)
        if bad:
            message = f"control character {bad.group()!r} is not allowed in a value"
            if bad.group() in _LINE_BREAKS:
                message += "; write one line of text"
            raise self.fail(node, path, message)
        invisible = next((ch for ch in text if unicodedata.category(ch) == "Cf"), None)
        if invisible is not None:  # zero-width and other format characters: text that reads otherwise
            raise self.fail(node, path, f"invisible format character {invisible!r} is not allowed in a value")
        return text

    def _scalar(self, node: ScalarNode, path: FieldPath, tag: str) -> Any:
        text: str = node.value
        if node.style in ("'", '"', "|", ">"):
            self.quoted.add(path)
        if tag == _STD_TAG + "str":
            if self.json_input and node.style is None:  # unquoted text in JSON: NaN or [-]Infinity
                raise self.fail(node, path, f"{text} is not a number a spec can hold; write a finite number")
            return self._string(node, path, text)
        # explicit tags (!!bool yes, !!float abc) reach here with text the YAML 1.2 resolver never gives
        if tag == _STD_TAG + "null":
            if text not in ("", "~", "null", "Null", "NULL"):
                raise self.fail(node, path, f"{text!r} is not null; write null")
            return None
        if tag == _STD_TAG + "bool":
            if text.lower() not in ("true", "false"):
                raise self.fail(node, path, f"{text!r} is not a YAML 1.2 boolean; write true or false")
            return text.lower() == "true"
        if tag == _STD_TAG + "int":
            digits = len(text.lstrip("+-"))
            if digits > MAX_INT_DIGITS:
                raise self.fail(node, path, f"a {digits:,}-digit integer is far too large for any field")
            if not _DECIMAL_INT.fullmatch(text):
                raise self.fail(node, path, _ambiguous_int(text))
            return int(text)
        if tag == _STD_TAG + "float":
            if text.lower().lstrip("+-") in (".inf", ".nan"):
                raise self.fail(node, path, f"{text!r} is not a finite number")
            if "_" in text:
                raise self.fail(node, path, f"{text!r}: write the number without underscores")
            try:
                value = float(text)
            except ValueError:
                raise self.fail(node, path, f"{text!r} is not a number") from None
            if not math.isfinite(value):
                raise self.fail(node, path, f"{text!r} overflows; write a finite number")
            return value
        raise self.fail(node, path, f"tag {tag!r} is not allowed; a spec holds plain values only")
