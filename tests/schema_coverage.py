"""Every kind and enumeration of the spec format, read from its pydantic models, and the ones a spec uses.

`format_choices()` lists each (model, field, value) that the format enumerates: every ``Literal`` value
(kinds included) and both values of every boolean field. `used_choices(spec)` lists those a validated
spec holds. A strategy that reaches all of the former reaches every kind and enumeration, and stays
honest when the format grows one.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel

from resgen.spec import Spec

Choice = tuple[str, str, Any]


def format_choices(model: type[BaseModel] = Spec) -> set[Choice]:
    found: set[Choice] = set()
    seen: set[type[BaseModel]] = set()

    def visit(owner: type[BaseModel]) -> None:
        if owner in seen:
            return
        seen.add(owner)
        for name, info in owner.model_fields.items():
            for value in _values(info.annotation, visit):
                found.add((owner.__name__, name, value))

    visit(model)
    return found


def _values(annotation: Any, visit: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is bool:
        return [False, True]
    if origin is typing.Literal:
        return list(args)
    if origin is typing.Annotated:
        return _values(args[0], visit)
    if origin in (typing.Union, types.UnionType, list):
        return [v for arg in args for v in _values(arg, visit)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        visit(annotation)
    return []


def used_choices(model: BaseModel) -> set[Choice]:
    found: set[Choice] = set()
    for name in type(model).model_fields:
        value = getattr(model, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, BaseModel):
                found |= used_choices(item)
            else:
                found.add((type(model).__name__, name, item))
    return found
