"""Reading and writing weight files for `resgen weights convert`.

Formats, by file name:
- ``*.pt``, ``*.pth``, ``*.bin``: a torch state dict (`torch.save`), torch names;
- ``*.weights.h5``: Keras weights, read and written through the generated Keras model of the spec;
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
    if name.endswith(TORCH_SUFFIXES):
        return "torch"
    raise ValueError(
        f"{path}: unknown weight file type; use .pt/.pth/.bin (torch), .weights.h5 (Keras) or .safetensors"
    )


def read(compiled: Compiled, framework: str, path: Path) -> dict[str, Any]:
    """Weights of `framework` from `path`: a torch state dict, or Keras weights per layer."""
    kind = _kind(path)
    if framework == "torch":
        if kind == "h5":
            raise ValueError(f"{path}: a .weights.h5 file holds Keras weights; use --from keras")
        if kind == "safetensors":
            from safetensors.numpy import load_file

            return dict(load_file(str(path)))
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
        return {k: v.numpy() for k, v in state.items()}
    if kind == "torch":
        raise ValueError(f"{path}: a {path.suffix} file holds torch weights; use --from torch")
    slots = weights.weight_slots(compiled)
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
        if kind == "h5":
            raise ValueError(f"{path}: a .weights.h5 file holds Keras weights; use --to keras")
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
    model = keras_model(compiled)
    for name, layer_values in values.items():
        model.get_layer(name).set_weights(layer_values)
    model.save_weights(str(path))


def keras_model(compiled: Compiled) -> Any:
    from resgen.parity import import_source
    from resgen.render import render

    module = import_source(render(compiled, "keras"), f"resgen_keras_io_{compiled.spec.content_hash()}")
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
