"""Reading and writing weight files for `resgen weights convert`.

Formats, by file name:
- ``*.pt``, ``*.pth``, ``*.bin``: a torch state dict (`torch.save`), torch names;
- ``*.weights.h5``: Keras 3 weights, read and written through the generated Keras model of the spec
  (Keras 3 keys these files by layer order, not by name, so they fit only the model that wrote them);
- ``*.h5``: Keras' HDF5 format keyed by layer name (what ``model.save("x.h5")`` writes and what
  keras.applications' published checkpoints use), read and written directly, no model needed;
- ``*.safetensors``: torch state-dict keys for the torch side, ``LAYER/ROLE`` keys (for example
  ``conv2_block1_1_conv/kernel``) in Keras layouts for the Keras side.

In memory, torch weights are a state dict of numpy arrays and Keras weights a mapping from layer name
to the list that ``layer.get_weights()`` returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from resgen import weights
from resgen.compiler import Compiled

TORCH_SUFFIXES = (".pt", ".pth", ".bin")


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".safetensors"):
        return "safetensors"
    if name.endswith(".weights.h5"):
        return "h5"
    if name.endswith((".h5", ".hdf5")):
        return "h5_by_name"
    if name.endswith(TORCH_SUFFIXES):
        return "torch"
    raise ValueError(
        f"{path}: unknown weight file type; use .pt/.pth/.bin (torch), .weights.h5 (Keras) or .safetensors"
    )


def read(compiled: Compiled, framework: str, path: Path) -> dict[str, Any]:
    """Weights of `framework` from `path`: a torch state dict, or Keras weights per layer."""
    kind = _kind(path)
    if framework == "torch":
        if kind in ("h5", "h5_by_name"):
            raise ValueError(f"{path}: an HDF5 file holds Keras weights; use --from keras")
        if kind == "safetensors":
            from safetensors.numpy import load_file

            return dict(load_file(str(path)))
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
        return {k: v.numpy() for k, v in state.items()}
    if kind == "torch":
        raise ValueError(f"{path}: a {path.suffix} file holds torch weights; use --from torch")
    slots = weights.weight_slots(compiled)
    if kind == "h5_by_name":
        return read_h5_by_name(path, {s.keras_layer for s in slots})
    if kind == "safetensors":
        from safetensors.numpy import load_file

        flat = load_file(str(path))
        out: dict[str, list[np.ndarray]] = {}
        for slot in slots:
            key = f"{slot.keras_layer}/{slot.role}"
            if key not in flat:
                raise ValueError(f"{path}: no tensor {key!r}")
            out.setdefault(slot.keras_layer, []).append(flat[key])
        return out
    model = keras_model(compiled)
    model.load_weights(str(path))
    return {name: model.get_layer(name).get_weights() for name in {s.keras_layer for s in slots}}


def write(compiled: Compiled, framework: str, path: Path, values: dict[str, Any]) -> None:
    kind = _kind(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if framework == "torch":
        if kind in ("h5", "h5_by_name"):
            raise ValueError(f"{path}: an HDF5 file holds Keras weights; use --to keras")
        if kind == "safetensors":
            from safetensors.numpy import save_file

            save_file({k: np.ascontiguousarray(v) for k, v in values.items()}, str(path))
            return
        import torch

        torch.save({k: torch.from_numpy(np.array(v)) for k, v in values.items()}, path)
        return
    if kind == "torch":
        raise ValueError(f"{path}: a {path.suffix} file holds torch weights; use --to torch")
    if kind == "safetensors":
        from safetensors.numpy import save_file

        flat = {
            f"{slot.keras_layer}/{slot.role}": np.ascontiguousarray(
                values[slot.keras_layer][slot.keras_index]
            )
            for slot in weights.weight_slots(compiled)
        }
        save_file(flat, str(path))
        return
    if kind == "h5_by_name":
        roles: dict[str, list[str]] = {}
        for slot in weights.weight_slots(compiled):
            roles.setdefault(slot.keras_layer, []).append(slot.role)
        write_h5_by_name(path, values, roles)
        return
    model = keras_model(compiled)
    for name, layer_values in values.items():
        model.get_layer(name).set_weights(layer_values)
    model.save_weights(str(path))


def read_h5_by_name(path: Path, names: set[str]) -> dict[str, list[np.ndarray]]:
    """The weights of the named layers from a Keras HDF5 file keyed by layer name."""
    import h5py

    with h5py.File(path, "r") as handle:
        group = handle.get("model_weights", handle)
        present = {_text(n) for n in group.attrs.get("layer_names", [])}
        missing = sorted(names - present)
        if missing:
            raise ValueError(f"{path}: no layer {missing[0]!r} ({len(missing)} of {len(names)} missing)")
        return {
            name: [np.asarray(group[name][_text(w)]) for w in group[name].attrs["weight_names"]]
            for name in sorted(names)
        }


def write_h5_by_name(path: Path, values: dict[str, list[np.ndarray]], roles: dict[str, list[str]]) -> None:
    """Write weights in Keras' HDF5 layout keyed by layer name (what model.save("x.h5") writes)."""
    import h5py

    with h5py.File(path, "w") as handle:
        order = list(roles)  # the graph's layer order; Keras loads such files with by_name=True
        handle.attrs["layer_names"] = [name.encode() for name in order]
        handle.attrs["backend"] = b"resgen"
        for name in order:
            layer_values = values[name]
            group = handle.create_group(name)
            weight_names = [f"{name}/{role}" for role in roles[name]]
            group.attrs["weight_names"] = [w.encode() for w in weight_names]
            for weight_name, value in zip(weight_names, layer_values, strict=True):
                group.create_dataset(weight_name, data=np.asarray(value))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def keras_model(compiled: Compiled) -> Any:
    from resgen.generate import render
    from resgen.importing import import_generated

    module = import_generated(
        render(compiled, "keras"), f"resgen_keras_io_{compiled.graph.network.spec_hash}"
    )
    return module.build_model()


def convert(compiled: Compiled, source: str, in_path: Path, target: str, out_path: Path) -> int:
    """Convert a weight file between frameworks (or formats); return the number of tensors written."""
    values = read(compiled, source, in_path)
    if source == "torch" and target == "keras":
        values = weights.torch_to_keras(compiled, values)
    elif source == "keras" and target == "torch":
        values = weights.keras_to_torch(compiled, values)
    write(compiled, target, out_path, values)
    if target == "torch":
        return len(values)
    return sum(len(v) for v in values.values())
