"""Keras' two HDF5 weight files, read and written with h5py, in memory (the caller writes the bytes).

- ``*.h5`` keyed by layer name (what ``model.save("x.h5")`` writes and keras.applications publishes):
  the root (or its ``model_weights`` group) lists ``layer_names``; each layer's group lists its
  ``weight_names``, in the order of ``layer.get_weights()``.
- ``*.weights.h5`` (Keras 3's ``model.save_weights``): keyed by position, not by name. Keras walks
  ``model.layers`` in order and files each layer under its class name in snake case, numbered in
  order of appearance (``layers/conv2d``, ``layers/conv2d_1``, ...), its variables under ``vars/0``,
  ``vars/1``, ... (trainable first). `keras_paths` reproduces that walk from the generated model, so
  the file is read and checked without handing it to Keras (which would skip what does not fit), and
  written in the layout ``model.load_weights`` reads.

Both carry torch's BatchNorm counters (``num_batches_tracked``, which Keras has no place for) in a
root attribute, ``resgen_num_batches_tracked`` (JSON), so a torch -> Keras -> torch round trip keeps
them; Keras ignores the attribute.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from resgen.weights_check import WeightsError

COUNTERS_ATTR = "resgen_num_batches_tracked"
_VAR = re.compile(r"(layers/[^/]+)/vars/(0|[1-9][0-9]{0,5})")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _open(data: bytes, path: Path) -> Any:
    import h5py

    try:
        return h5py.File(io.BytesIO(data), "r")
    except Exception as exc:  # h5py's errors for a file that is not HDF5, or a damaged one
        raise WeightsError(path, f"not a readable HDF5 file ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _counters(handle: Any, path: Path) -> dict[str, int]:
    raw = handle.attrs.get(COUNTERS_ATTR)
    if raw is None:
        return {}
    try:
        counters = json.loads(_text(raw))
        return {str(k): int(v) for k, v in counters.items()}
    except (ValueError, TypeError, AttributeError):
        raise WeightsError(path, f"the attribute {COUNTERS_ATTR} is not a JSON object of integers") from None


def read_by_name(data: bytes, path: Path) -> tuple[dict[str, list[np.ndarray]], dict[str, int]]:
    """Every layer's weights from a Keras HDF5 file keyed by layer name, and the stored counters."""
    with _open(data, path) as handle:
        try:
            group = handle.get("model_weights", handle)
            if "layer_names" not in group.attrs:
                raise WeightsError(path, "not a Keras weights file (no layer_names attribute)")
            layers: dict[str, list[np.ndarray]] = {}
            for raw in group.attrs["layer_names"]:
                name = _text(raw)
                weight_names = [_text(w) for w in group[name].attrs.get("weight_names", [])]
                if weight_names:
                    layers[name] = [np.asarray(group[name][w]) for w in weight_names]
            return layers, _counters(handle, path)
        except WeightsError:
            raise
        except Exception as exc:  # a truncated or damaged file fails while its datasets are read
            raise WeightsError(path, f"a damaged Keras HDF5 file ({_first_line(exc)})") from None


def write_by_name(
    values: dict[str, list[np.ndarray]], roles: dict[str, list[str]], counters: dict[str, int]
) -> bytes:
    """Keras' HDF5 layout keyed by layer name (what model.save("x.h5") writes), as bytes."""
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        order = list(roles)  # the graph's layer order; Keras loads such files with by_name=True
        handle.attrs["layer_names"] = [name.encode() for name in order]
        handle.attrs["backend"] = b"resgen"
        if counters:
            handle.attrs[COUNTERS_ATTR] = json.dumps(counters, sort_keys=True)
        for name in order:
            group = handle.create_group(name)
            weight_names = [f"{name}/{role}" for role in roles[name]]
            group.attrs["weight_names"] = [w.encode() for w in weight_names]
            for weight_name, value in zip(weight_names, values[name], strict=True):
                group.create_dataset(weight_name, data=np.asarray(value))
    return buffer.getvalue()


def keras_paths(model: Any) -> list[tuple[str, str, int]]:
    """(group in a .weights.h5 file, layer name, number of variables) for every layer of `model`, in
    the order and with the names Keras' ``save_weights`` uses."""
    used: dict[str, int] = {}
    out = []
    for layer in model.layers:
        base = _snake_case(type(layer).__name__)
        used[base] = used.get(base, -1) + 1
        name = base if used[base] == 0 else f"{base}_{used[base]}"
        out.append((f"layers/{name}", layer.name, len(layer.weights)))
    return out


def _snake_case(name: str) -> str:
    """Keras' ``naming.to_snake_case``: ``BatchNormalization`` -> ``batch_normalization``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()
    return name if name[0] != "_" else "private" + name


def read_by_order(
    data: bytes, path: Path, model: Any
) -> tuple[dict[str, dict[int, np.ndarray]], list[str], dict[str, int]]:
    """The weights of a ``.weights.h5`` file placed on `model`'s layers by position, the file's
    tensors that fit no layer, and the stored counters."""
    places = {group: layer for group, layer, _ in keras_paths(model)}
    layers: dict[str, dict[int, np.ndarray]] = {}
    unplaced: list[str] = []
    with _open(data, path) as handle:
        try:
            if "layers" not in handle:
                raise WeightsError(path, "not a Keras 3 weights file (no 'layers' group)")
            datasets: list[tuple[str, Any]] = []
            handle.visititems(lambda n, o: datasets.append((n, o)) if hasattr(o, "shape") else None)
            for name, dataset in datasets:
                value = np.asarray(dataset)
                match = _VAR.fullmatch(name)
                if match and match[1] in places:
                    layers.setdefault(places[match[1]], {})[int(match[2])] = value
                else:
                    unplaced.append(f"{name} {tuple(value.shape)}")
            return layers, unplaced, _counters(handle, path)
        except WeightsError:
            raise
        except Exception as exc:
            raise WeightsError(path, f"a damaged Keras weights file ({_first_line(exc)})") from None


def write_by_order(model: Any, values: dict[str, list[np.ndarray]], counters: dict[str, int]) -> bytes:
    """A ``.weights.h5`` file for `model` as Keras' ``save_weights`` lays it out, as bytes."""
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        if counters:
            handle.attrs[COUNTERS_ATTR] = json.dumps(counters, sort_keys=True)
        layers = handle.create_group("layers")
        for group, layer, count in keras_paths(model):
            own = layers.create_group(group.removeprefix("layers/")).create_group("vars")
            layer_values = values.get(layer, [])
            if len(layer_values) != count:
                raise ValueError(f"layer {layer}: {len(layer_values)} weights for {count} variables")
            for i, value in enumerate(layer_values):
                own.create_dataset(str(i), data=np.asarray(value))
        handle.create_group("vars")
    return buffer.getvalue()
