"""Does a checkpoint fit the spec? Every tensor of a weight file is checked against the graph's weight
slots before anything is converted or written: tensors the spec has no place for (extra), places the
file does not fill (missing) and tensors of the wrong shape or kind (misshaped) are all listed, so a
checkpoint of another network never converts with weights silently dropped.

Floating-point tensors of another precision (float16, bfloat16, float64) are read as float32, and the
caller says so in a note; integer, boolean or complex tensors where a weight belongs are refused.
torch's BatchNorm counter ``num_batches_tracked`` is optional (old checkpoints lack it) but, when
present, must be one integer per BatchNorm.

This module imports neither torch nor Keras.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from resgen.compiler import Compiled
from resgen.weights import WeightSlot, torch_buffers_without_keras, weight_slots

SHOWN_PER_KIND = 8  # problems listed per kind (extra, missing, misshaped) before "and N more"


class WeightsError(Exception):
    """A weight file that cannot be used: one line per problem, all about `path`."""

    def __init__(self, path: Path, *lines: str) -> None:
        super().__init__(f"{path}: {'; '.join(lines)}")
        self.path = path
        self.lines = list(lines)


class Precision:
    """The floating-point types read as float32, counted for the note the command prints."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def float32(self, array: np.ndarray) -> np.ndarray:
        if array.dtype.kind == "f" and array.dtype != np.float32:
            self.seen[str(array.dtype)] += 1
            return array.astype(np.float32)
        return array

    def note(self) -> str | None:
        if not self.seen:
            return None
        kinds = ", ".join(f"{n} {dtype}" for dtype, n in sorted(self.seen.items()))
        return f"note: read {kinds} tensors as float32 (the precision of the generated models)"


def _listed(kind: str, items: list[str]) -> list[str]:
    if not items:
        return []
    shown = [f"{kind}: {item}" for item in items[:SHOWN_PER_KIND]]
    if len(items) > SHOWN_PER_KIND:
        shown.append(f"{kind}: ... and {len(items) - SHOWN_PER_KIND} more")
    return shown


def _problems(extra: list[str], missing: list[str], misshaped: list[str], spec: str) -> list[str]:
    if not (extra or missing or misshaped):
        return []
    counts = ", ".join(
        f"{len(items)} {kind}"
        for kind, items in (("extra", extra), ("missing", missing), ("misshaped", misshaped))
        if items
    )
    head = f"the weights do not fit spec {spec!r} ({counts}); nothing was written"
    return [head, *_listed("extra", extra), *_listed("missing", missing), *_listed("misshaped", misshaped)]


def _shape(array: np.ndarray) -> str:
    return "(" + ", ".join(str(n) for n in array.shape) + ("," if array.ndim == 1 else "") + ")"


def _bad_kind(array: np.ndarray) -> bool:
    return array.dtype.kind != "f"


def fit_torch(compiled: Compiled, state: Mapping[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    """`state` checked against the spec's torch state dict; raise WeightsError listing every problem."""
    slots = {s.torch_key: s for s in weight_slots(compiled)}
    counters = set(torch_buffers_without_keras(compiled))
    extra = [f"{key} {_shape(state[key])}" for key in state if key not in slots and key not in counters]
    missing = [f"{key} {s.torch_shape}" for key, s in slots.items() if key not in state]
    misshaped = []
    for key, slot in slots.items():
        if key in state and (tuple(state[key].shape) != slot.torch_shape or _bad_kind(state[key])):
            misshaped.append(_misfit(key, state[key], slot.torch_shape))
    for key in counters & set(state):
        value = state[key]
        if value.size != 1 or value.dtype.kind not in "iu":
            misshaped.append(f"{key}: {value.dtype} {_shape(value)}, expected one integer")
    if problems := _problems(extra, missing, misshaped, compiled.name):
        raise WeightsError(path, *problems)
    return dict(state)


def fit_keras(
    compiled: Compiled,
    layers: Mapping[str, Sequence[np.ndarray] | Mapping[int, np.ndarray]],
    path: Path,
    unplaced: Sequence[str] = (),
) -> dict[str, list[np.ndarray]]:
    """Keras weights per layer (a list, or a mapping from position) checked against the spec's Keras
    layers; raise WeightsError listing every problem. A layer's tensors are named by position, as
    ``conv1_conv[1]``; `unplaced` lists the file's tensors that belong to no layer at all."""
    expected: dict[str, list[WeightSlot]] = {}
    for slot in weight_slots(compiled):
        expected.setdefault(slot.keras_layer, []).append(slot)
    extra, missing, misshaped = list(unplaced), [], []
    for name, given in layers.items():
        values = given if isinstance(given, Mapping) else dict(enumerate(given))
        slots = {s.keras_index: s for s in expected.get(name, [])}
        extra += [f"{name}[{i}] {_shape(v)}" for i, v in sorted(values.items()) if i not in slots]
    for name, slots_of in expected.items():
        given = layers.get(name, {})
        values = given if isinstance(given, Mapping) else dict(enumerate(given))
        for slot in slots_of:
            label = f"{name}[{slot.keras_index}] ({slot.role})"
            value = values.get(slot.keras_index)
            if value is None:
                missing.append(f"{label} {slot.keras_shape}")
            elif tuple(value.shape) != slot.keras_shape or _bad_kind(value):
                misshaped.append(_misfit(label, value, slot.keras_shape))
    if problems := _problems(extra, missing, misshaped, compiled.name):
        raise WeightsError(path, *problems)
    out: dict[str, list[np.ndarray]] = {}
    for name, slots_of in expected.items():
        given = layers[name]
        values = given if isinstance(given, Mapping) else dict(enumerate(given))
        out[name] = [values[s.keras_index] for s in slots_of]
    return out


def _misfit(label: str, value: np.ndarray, want: tuple[int, ...]) -> str:
    if tuple(value.shape) != want:
        return f"{label}: {_shape(value)} in the file, {want} in the spec"
    return f"{label}: {value.dtype} values; weights must be floating point"


def counters_of(compiled: Compiled, state: Mapping[str, Any]) -> dict[str, int]:
    """The num_batches_tracked values a torch state dict holds, by key."""
    return {
        key: int(np.asarray(state[key]).reshape(-1)[0])
        for key in torch_buffers_without_keras(compiled)
        if key in state
    }
