"""Stage 2, second half: validate loaded data against the spec format, with located messages.

pydantic reports a location inside its models; users need the field path in their own file and
its line and column. This module turns each pydantic error into a `SpecError` at that field, with
the hints a user needs: the field they probably meant, the kinds a union accepts, what to write
instead of a quoted number or a YAML 1.1 boolean.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from resgen.errors import SpecError, SpecErrors
from resgen.load import Document
from resgen.spec import BACKBONE_NEEDS, IDENTIFIER, TIMM_RESNETV2_NEEDS, Spec
from resgen.spec_stages import FieldProblem

_MODEL_ERRORS_AT_FIELD = {
    # model-level rules: which field the message is about
    "'preactivated' needs block.preactivation": ("shortcut", "source"),
    "is a Python keyword": ("name",),
    "is a Python builtin": ("name",),
    "would shadow the Python module": ("name",),
    "kernel_size must be odd": ("kernel_size",),
    "downsample 'avg_pool' already subsamples": ("shortcut", "stride_only"),
    "conv_pool replaces the max-pool": ("conv_pool",),
    "projects with a 1x1 convolution": ("shortcut", "kernel_size"),
    "a 3x3 projection pads symmetrically": ("shortcut", "kernel_size"),
    "an average pool here has no padding": ("padding",),
    "max-pool pads at most half its kernel": ("padding",),
    "anti_alias needs a max-pool": ("anti_alias",),
    "pre-activation blocks lack it": ("anti_alias",),
    "anti_alias follows the strided 3x3": ("anti_alias",),
    "drop_path's schedule needs": ("regularization", "drop_path"),
    "weight-standardized convolutions need padding": ("padding",),
    "a conv1x1 classifier returns logits": ("output",),
    "a softmax over one class is always 1": ("output",),
    **{message: field for field, message in TIMM_RESNETV2_NEEDS.items()},
    **BACKBONE_NEEDS,
    "features lists each tap once": ("features",),
}


def validate(doc: Document) -> Spec:
    """Validate loaded data into a `Spec`; raise `SpecErrors` locating every problem."""
    try:
        return Spec.model_validate(doc.data)
    except ValidationError as exc:
        errors = [_locate(doc, err) for err in exc.errors(include_url=False)]
        ordered = sorted(set(errors), key=lambda e: (e.line or 0, e.column or 0, str(e)))
        raise SpecErrors(ordered) from None


def _locate(doc: Document, err: Any) -> SpecError:
    path = _data_path(doc.data, err["loc"])
    kind = err["type"]
    message = err["msg"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        expected = ", ".join(repr(k) for k in _kinds_at(doc.data, path))
        found = err.get("ctx", {}).get("tag")
        what = f"unknown kind {found!r}" if kind == "union_tag_invalid" else "'kind' is missing"
        return doc.error((*path, "kind") if found else path, f"{what}; expected one of: {expected}")
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
        problem = err.get("ctx", {}).get("error")
        if isinstance(problem, FieldProblem):
            return doc.error(problem.path, message)
        for needle, suffix in _MODEL_ERRORS_AT_FIELD.items():
            if needle in message and suffix[0] not in path[-1:]:
                path = (*path, *suffix)
                break
    if kind == "extra_forbidden":
        return doc.error(path, _unknown_field(doc.data, path), key=True)
    if kind == "string_pattern_mismatch":
        words = _PATTERNS_IN_WORDS.get(err.get("ctx", {}).get("pattern", ""), "")
        message = words or message
    if kind == "missing":
        return doc.error(path, "required field is missing")
    value = err.get("input")
    if path in doc.quoted and isinstance(value, str) and kind in ("int_type", "float_type", "bool_type"):
        message += f"; got the quoted string {value!r}, write it without quotes"
    elif kind == "bool_type" and isinstance(value, str) and value.lower() in _YAML11_BOOLS:
        message += f"; {value!r} is a string in YAML 1.2, write true or false"
    elif not isinstance(value, (dict, list)) and kind != "value_error":
        message += f" (got {value!r})"
    return doc.error(path, message)


_YAML11_BOOLS = {"yes", "no", "on", "off", "y", "n"}
_PATTERNS_IN_WORDS = {
    IDENTIFIER: "a name starts with a letter, then letters (a-z, A-Z), digits or underscores, "
    "at most 64 characters in all (it becomes a Python name)",
}


def _unknown_field(data: Any, path: tuple[str | int, ...]) -> str:
    """'unknown field', and where the user probably meant it: a field of that name at another level
    (``classes`` at the top belongs in ``head``), a close spelling here, or the fields allowed here."""
    key, parent = str(path[-1]), path[:-1]
    message = f"unknown field {key!r}"
    here = ""  # the parent as _field_paths writes it: stages[0] is stages[]
    for part in parent:
        here += "[]" if isinstance(part, int) else f".{part}" if here else str(part)
    elsewhere = [
        p for p in _field_paths(Spec, ()) if p.rsplit(".", 1)[-1] == key and p.rpartition(".")[0] != here
    ]
    if elsewhere:
        return f"{message}; it belongs in {' or '.join(elsewhere[:3])}"
    allowed = _allowed_fields(data, parent)
    close = difflib.get_close_matches(key, allowed, n=1)
    return message + (
        f"; did you mean {close[0]!r}?" if close else f"; expected one of: {', '.join(allowed)}"
    )


def _field_paths(model: Any, prefix: tuple[str, ...], depth: int = 0) -> list[str]:
    """Dotted paths of every field under `model`, through unions and lists (``stages[].filters``)."""
    found: list[str] = []
    for name, info in model.model_fields.items():
        listed = get_origin(info.annotation) in (list, tuple)
        here = (*prefix, f"{name}[]" if listed else name)
        found.append(".".join(here))
        if depth < 3:
            seen: list[str] = []
            for sub in _models_in(info.annotation):
                for p in _field_paths(sub, here, depth + 1):
                    if p not in seen and p not in found:
                        seen.append(p)
            found += seen
    return found


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """Turn a pydantic error location into a path through the user's data, dropping union tags."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("kind") == part:
            continue  # pydantic names the union member it tried; the user's data has no such level
        if isinstance(part, str) and part.startswith(("function-", "model-")):
            continue
        path.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(path)


def _model_at(data: Any, path: tuple[str | int, ...]) -> Any:
    """The model class that holds the value at `path` (union members chosen by the data's `kind`)."""
    model: Any = Spec
    node = data
    for part in path:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _model_for(model.model_fields[part].annotation, node)
    return model


def _allowed_fields(data: Any, parent: tuple[str | int, ...]) -> list[str]:
    """Field names the model at `parent` accepts."""
    model = _model_at(data, parent)
    return list(model.model_fields) if model is not None else []


def _kinds_at(data: Any, path: tuple[str | int, ...]) -> list[str]:
    """The `kind` values the union field at `path` accepts."""
    parent = _model_at(data, path[:-1]) if path else None
    if parent is None or path[-1] not in parent.model_fields:
        return []
    members = _models_in(parent.model_fields[path[-1]].annotation)
    return [
        k for m in members if "kind" in m.model_fields for k in m.model_fields["kind"].annotation.__args__
    ]


def _models_in(annotation: Any) -> list[Any]:
    """The models a field's annotation admits, through unions, Optional and Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) is Annotated:
        return _models_in(get_args(annotation)[0])
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _model_for(annotation: Any, node: Any) -> Any:
    """The model class a field holds (the union member named by ``kind``, for unions)."""
    models = _models_in(annotation)
    kind = node.get("kind") if isinstance(node, dict) else None
    for model in models:
        if len(models) == 1 or kind in model.model_fields["kind"].annotation.__args__:
            return model
    return None
