"""How `resgen diff` words field values: as a spec author writes them (1e-5, true, null, lists and
mappings in flow style), and the marker of a value one side does not have."""

from __future__ import annotations

from typing import Any


class _Absent:
    """The value of a field or stage that one side does not have."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


def value_text(value: Any, limit: int = 60) -> str:
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
        text = "{" + ", ".join(f"{k}: {value_text(v, limit)}" for k, v in value.items()) + "}"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(value_text(v, limit) for v in value) + "]"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _float(value: float) -> str:
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent)}"
