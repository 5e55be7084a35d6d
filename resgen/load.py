"""Stage 1: read a spec file (YAML or JSON) into plain Python data plus source positions.

YAML is read with ruamel.yaml's composer under YAML 1.2 rules, so ``epsilon: 1e-5`` is the float a
user means and ``yes`` is a plain string. The node tree is converted by hand rather than by a
constructor so that every value keeps its line and column, no tag can construct an object, aliases
cannot multiply a small file into a huge one, and YAML 1.1 habits that would silently change meaning
(``017``, ``0x10``, ``1_000``) are errors that say what to write instead.

JSON is checked with the standard library first (NaN, Infinity and duplicate keys are refused) and
then composed by the same YAML reader, since JSON is YAML 1.2, which gives JSON the same positions.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from resgen.errors import Path as FieldPath
from resgen.errors import SpecError, SpecErrors

MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_NODES = 50_000
SPEC_SUFFIXES = (".yaml", ".yml", ".json")

_DECIMAL_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
# Allowed raw text: tab, newline and carriage return (CRLF files); nothing else below 0x20.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x85\u2028\u2029]")
# Inside a value (after YAML escapes are decoded), no control character or line separator at all.
_CONTROL_IN_VALUE = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


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
    hint = ", ".join(preset_names()[:6])
    raise SpecErrors(
        [SpecError(spec, (), f"no such file, and no preset of that name (presets: {hint}, ...)")]
    )


def load(spec: str) -> Document:
    """Load a spec file or preset into a `Document`; raise `SpecErrors` on any problem."""
    path = resolve(spec)
    display = str(path) if Path(spec) == path else spec
    try:
        raw = path.read_bytes()
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
        raise SpecErrors(
            [SpecError(file, (), f"file is {len(raw):,} bytes; specs are limited to {MAX_FILE_BYTES:,}")]
        )
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
    builder = _Builder(file)
    data = builder.convert(node, (), depth=0)
    if not isinstance(data, dict):
        raise SpecErrors([builder.doc_error((), "the top level of a spec must be a mapping of fields")])
    return Document(file, data, builder.positions, builder.key_positions, frozenset(builder.quoted))


_JSON_CONSTANT = re.compile(r"-?\b(?:NaN|Infinity)\b")


def _check_json(text: str, file: str) -> None:
    """Strict JSON: the syntax, and no NaN or Infinity (Python's reader accepts both)."""
    try:
        json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise SpecErrors([SpecError(file, (), f"invalid JSON: {exc.msg}", exc.lineno, exc.colno)]) from None
    except ValueError:
        match = _JSON_CONSTANT.search(text)
        start = match.start() if match else 0
        line = text.count("\n", 0, start) + 1
        col = start - (text.rfind("\n", 0, start) + 1) + 1
        token = match.group() if match else "NaN"
        message = f"invalid JSON: {token} is not a number a spec can hold; write a finite number"
        raise SpecErrors([SpecError(file, (), message, line, col)]) from None
    except RecursionError:
        raise SpecErrors(
            [SpecError(file, (), f"invalid JSON: nested more than {MAX_DEPTH} levels")]
        ) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _compose(text: str, file: str) -> Node:
    yaml = YAML(typ="rt", pure=True)
    yaml.version = (1, 2)
    try:
        node = yaml.compose(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        message = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise SpecErrors([SpecError(file, (), f"invalid YAML: {message}", line, col)]) from None
    except (YAMLError, RecursionError) as exc:
        raise SpecErrors([SpecError(file, (), f"invalid YAML: {exc}")]) from None
    if node is None:
        raise SpecErrors([SpecError(file, (), "file is empty; a spec is a mapping of fields")])
    return node


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

    def __init__(self, file: str) -> None:
        self.file = file
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

    def _scalar(self, node: ScalarNode, path: FieldPath, tag: str) -> Any:
        text: str = node.value
        if node.style in ("'", '"', "|", ">"):
            self.quoted.add(path)
        if tag == _STD_TAG + "str":
            bad = _CONTROL_IN_VALUE.search(text)
            if bad:
                raise self.fail(
                    node,
                    path,
                    f"control character {bad.group()!r} is not allowed in a value; write one line of text",
                )
            return text
        if tag == _STD_TAG + "null":
            return None
        if tag == _STD_TAG + "bool":
            return text.lower() == "true"
        if tag == _STD_TAG + "int":
            if not _DECIMAL_INT.fullmatch(text):
                raise self.fail(node, path, _ambiguous_int(text))
            return int(text)
        if tag == _STD_TAG + "float":
            if text.lower().lstrip("+-") in (".inf", ".nan"):
                raise self.fail(node, path, f"{text!r} is not a finite number")
            if "_" in text:
                raise self.fail(node, path, f"{text!r}: write the number without underscores")
            value = float(text)
            if not math.isfinite(value):
                raise self.fail(node, path, f"{text!r} overflows; write a finite number")
            return value
        raise self.fail(node, path, f"tag {tag!r} is not allowed; a spec holds plain values only")
