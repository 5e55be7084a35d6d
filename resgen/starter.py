"""A place to start: a shipped preset as commented YAML (``resgen show``), or as a new spec file
to edit (``resgen new --from PRESET FILE``).

The preset's own text is kept as it is, comments included; every field that starts a line and has
no comment of its own gets its description on the lines above it, so the file explains itself.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from resgen import load
from resgen.errors import SpecError, SpecErrors
from resgen.spec import IDENTIFIER


def preset_path(name: str) -> Path:
    """The shipped preset `name`; an unknown name is an error that suggests the nearest ones."""
    path = load.presets_dir() / f"{name}.yaml"
    if name in load.preset_names() and path.is_file():
        return path
    raise SpecErrors([SpecError(name, (), load.unknown_preset_message(name))])


def commented(name: str, *, rename: str | None = None) -> str:
    """The YAML of preset `name`, with its description above every field that starts a line and has
    no comment of its own; `rename` replaces the value of `name:`."""
    from resgen.validation import validate

    path = preset_path(name)
    doc = load.load(str(path))
    spec = validate(doc)
    lines = path.read_text(encoding="utf-8").splitlines()
    notes: dict[int, list[str]] = {}
    for field_path, (line, col) in doc.key_positions.items():
        text = lines[line - 1]
        starts_line = not text[: col - 1].strip()
        described = _description(spec, field_path)
        commented_already = "#" in text or (line > 1 and lines[line - 2].lstrip().startswith("#"))
        if starts_line and described and not commented_already:
            width = max(40, 100 - col)
            wrapped = textwrap.wrap(described, width)
            notes[line] = [" " * (col - 1) + "# " + part for part in wrapped]
    if rename is not None and ("name",) in doc.positions:
        line, col = doc.positions[("name",)]
        lines[line - 1] = lines[line - 1][: col - 1] + rename
    header = [
        f"# From resgen's preset {name}. Check it with `resgen validate FILE`, see it with",
        "# `resgen summary FILE`; `resgen schema` describes every field.",
    ]
    out = list(header)
    for number, text in enumerate(lines, start=1):
        out += notes.get(number, [])
        out.append(text)
    return "\n".join(out) + "\n"


def write_new(name: str, file: str) -> str:
    """Write preset `name` as a new spec `file` (its `name:` the file's stem where that is a valid
    name); refuse to replace a file that exists. Returns the spec's name."""
    target = Path(file)
    if target.suffix.lower() not in (".yaml", ".yml"):
        raise SpecErrors([SpecError(file, (), "a new spec is YAML: give a file name ending in .yaml")])
    stem = target.stem
    new_name = stem if re.fullmatch(IDENTIFIER, stem) else name
    text = commented(name, rename=new_name)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        message = "already exists; resgen new does not replace files (choose another name, or delete it)"
        raise SpecErrors([SpecError(file, (), message)]) from None
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    return new_name


def _description(spec: BaseModel, path: tuple[str | int, ...]) -> str:
    """The description of the field at `path`, or "" where it names no model field."""
    value: Any = spec
    described = ""
    for part in path:
        if isinstance(part, int):
            value, described = value[part], ""
            continue
        info = type(value).model_fields.get(part) if isinstance(value, BaseModel) else None
        if info is None:
            return ""
        value, described = getattr(value, part), " ".join((info.description or "").split())
    return described
