"""Code text for both targets: values turned into literals, calls and docstrings laid out as
``ruff format`` lays them out, so every generated file is already formatted.

Backends turn typed layers into code with these helpers and nothing else; templates only place the
lines. Every value printed comes from validated, typed data: numbers and booleans print as Python
literals, strings as double-quoted literals with every character that could end or escape them
escaped, so spec text can never become code.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

LINE_LENGTH = 88  # ruff's default: generated files are formatted for it


class CodegenError(Exception):
    """The graph holds something a backend cannot write faithfully: a bug in resgen, not in the spec."""


# --- literals --------------------------------------------------------------------------------------


def literal(value: Any) -> str:
    """Code text of a validated value: a number, boolean, None, string or tuple of those."""
    if isinstance(value, str):
        return string_literal(value)
    if isinstance(value, tuple):
        inner = ", ".join(literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, bool | int | float) or value is None:
        return repr(value)
    raise CodegenError(f"no literal for {value!r}")


def derived_float(value: float) -> str:
    """A float computed from spec values, rounded to 12 significant digits (``1 - 0.9`` is ``0.1``)."""
    return repr(float(f"{value:.12g}"))


def string_literal(value: str) -> str:
    """A string literal as ruff writes it: double quotes unless the text holds more of them than of
    single quotes; backslashes, the quote and every non-printable character escaped."""
    quote = "'" if value.count('"') > value.count("'") else '"'
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == quote:
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(repr(ch)[1:-1])
    return quote + "".join(out) + quote


def string_constant(name: str, text: str) -> list[str]:
    """``NAME = "text"``, split into adjacent literals in parentheses where it is too long.

    Pieces break after a space where they can; ruff picks each piece's quotes on its own, and so
    does `string_literal`.
    """
    whole = string_literal(text)
    if len(f"{name} = ") + len(whole) <= LINE_LENGTH:
        return [f"{name} = {whole}"]
    room = LINE_LENGTH - 4
    pieces: list[str] = []
    rest = text
    while rest:
        cut = 1
        while cut < len(rest) and len(string_literal(rest[: cut + 1])) <= room:
            cut += 1
        if cut < len(rest) and " " in rest[1:cut]:
            cut = rest.rindex(" ", 1, cut) + 1
        pieces.append(rest[:cut])
        rest = rest[cut:]
    return [f"{name} = (", *(f"    {string_literal(piece)}" for piece in pieces), ")"]


# --- layout ----------------------------------------------------------------------------------------


def call_lines(head: str, args: Sequence[str], indent: int, tail: str = "") -> list[str]:
    """``head(args)tail`` laid out as ruff format does, as lines relative to `indent`.

    `head` may start with an assignment (``x = layers.Conv2D``). One line if it fits; else the
    arguments on one line of their own (not when `tail` is a further call, as in
    ``layers.Conv2D(...)(x)``, which ruff splits one argument per line); else one argument per line
    with a trailing comma.
    """
    joined = ", ".join(args)
    one = f"{head}({joined}){tail}"
    if indent + len(one) <= LINE_LENGTH:
        return [one]
    if not tail.startswith("(") and indent + 4 + len(joined) <= LINE_LENGTH:
        return [f"{head}(", f"    {joined}", f"){tail}"]
    return [f"{head}(", *(f"    {a}," for a in args), f"){tail}"]


def indented(lines: Iterable[str], levels: int = 1) -> list[str]:
    """Lines indented by four spaces per level; blank lines stay empty."""
    pad = "    " * levels
    return [f"{pad}{line}" if line else line for line in lines]


def comment(text: str, indent: int) -> list[str]:
    """A ``#`` comment wrapped to the line length."""
    return [f"# {line}" for line in textwrap.wrap(text, LINE_LENGTH - indent - 2)]


def wrap(text: str, indent: int, hang: int = 0) -> list[str]:
    """A paragraph wrapped to the line length; continuation lines indented by `hang` more spaces."""
    return textwrap.wrap(
        text, width=LINE_LENGTH - indent, subsequent_indent=" " * hang, break_on_hyphens=False
    )


def docstring(paragraphs: Iterable[str], indent: int) -> list[str]:
    """Lines of a docstring: the first paragraph is the summary; paragraphs are separated by ''.

    Text is wrapped to the line length; backslashes, triple quotes and a final quote are escaped,
    so any description from a spec stays a plain string literal.
    """
    width = LINE_LENGTH - indent
    lines: list[str] = []
    for paragraph in paragraphs:
        if lines:
            lines.append("")
        words = " ".join(paragraph.split()).replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
        # width - 6: a text that fits no single line with both quote triples wraps to two lines,
        # since ruff format joins a one-line docstring with its closing quotes
        lines += textwrap.wrap(words, width - 6, break_long_words=False, break_on_hyphens=False) or [""]
    if lines[-1].endswith('"'):
        lines[-1] = lines[-1][:-1] + '\\"'  # keep the closing quotes apart
    if len(lines) == 1 and len(lines[0]) + 6 <= width:
        return [f'"""{lines[0]}"""']
    return [f'"""{lines[0]}', *lines[1:], '"""']


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
