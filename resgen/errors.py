"""Errors as values: every failure a user can cause is a `SpecError` with a location.

A `SpecError` prints as ``FILE:LINE:COL: error: field.path: message``, or without the field path
where the problem is the whole file (``FILE:LINE:COL: error: invalid YAML: ...``). Stages collect them and
raise a `SpecErrors` bundle; the CLI prints each one and exits 2.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Path = tuple[str | int, ...]


def format_path(path: Sequence[str | int]) -> str:
    """Render a field path as users write it: ``stages[2].blocks``; ``<root>`` for the document.

    A key that is not printable text (a spec's unknown key can hold anything) is shown as its repr, so
    that a message is one line and carries no terminal escapes.
    """
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            shown = part if part.isprintable() else repr(part)
            text += f".{shown}" if text else shown
    return text or "<root>"


def shown(path: str | os.PathLike[str]) -> str:
    """A file name as messages print it: one line, printable, ``repr``-escaped where it is not."""
    text = os.fspath(path)
    return text if text.isprintable() else ascii(text)[1:-1]


@dataclass(frozen=True)
class SpecError:
    """One problem with one spec, pointing at the field responsible."""

    file: str
    path: Path
    message: str
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based

    def __str__(self) -> str:
        where = shown(self.file)
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        if not self.path:  # about the whole file: no field to name
            return f"{where}: error: {self.message}"
        return f"{where}: error: {format_path(self.path)}: {self.message}"


class SpecErrors(Exception):
    """One or more `SpecError`s; raised by a stage that cannot go on."""

    def __init__(self, errors: Iterable[SpecError]) -> None:
        self.errors = tuple(errors)
        super().__init__("\n".join(str(e) for e in self.errors))
