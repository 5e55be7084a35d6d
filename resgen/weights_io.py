"""Reading and writing weight files for `resgen weights convert`.

Formats, by file name:
- ``*.pt``, ``*.pth``, ``*.bin``: a torch state dict (`torch.save`), torch names. Read with
  ``torch.load(weights_only=True)``: a file that holds pickled Python objects other than tensors is
  refused and nothing in it runs. A state dict wrapped as ``{"state_dict": ...}`` (or ``model``,
  ``model_state_dict``), or saved from ``nn.DataParallel`` (``module.`` keys), is unwrapped;
- ``*.weights.h5``: Keras 3 weights (``model.save_weights``), keyed by layer order (resgen.weights_h5);
- ``*.h5``: Keras' HDF5 format keyed by layer name (what ``model.save("x.h5")`` writes and what
  keras.applications' published checkpoints use);
- ``*.safetensors``: torch state-dict keys for the torch side, ``LAYER/ROLE`` keys (for example
  ``conv2_block1_1_conv/kernel``) in Keras layouts for the Keras side.

Every file read is checked against the spec (resgen.weights_check) before anything is written, also
when both sides are the same framework: extra, missing or misshaped tensors are listed and nothing is
written. float16, bfloat16 and float64 tensors are read as float32, with a note. torch's BatchNorm
counters (``num_batches_tracked``) travel through Keras files as metadata (an HDF5 attribute or
safetensors metadata), so a torch -> Keras -> torch round trip keeps them; a Keras file without them
gives 0, a fresh model's value. Files are written through resgen.files' atomic writer: complete or
not at all, with the permissions `render` gives, and nothing in the temporary directory.
"""

from __future__ import annotations

import io
import json
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resgen import files, weights, weights_h5
from resgen.compiler import Compiled
from resgen.weights_check import Precision, WeightsError, counters_of, fit_keras, fit_torch

TORCH_SUFFIXES = (".pt", ".pth", ".bin")
WRAPPERS = ("state_dict", "model_state_dict", "model")
COUNTERS_KEY = "resgen.num_batches_tracked"  # safetensors metadata


@dataclass
class Checkpoint:
    """Weights of one framework, checked against the spec: a torch state dict (numpy values, without
    the BatchNorm counters) or Keras weights per layer name; the counters; notes for the user."""

    tensors: dict[str, Any]
    counters: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".safetensors"):
        return "safetensors"
    if name.endswith(".weights.h5"):
        return "h5"
    if name.endswith((".h5", ".hdf5")):
        return "h5_by_name"
    if name.endswith(TORCH_SUFFIXES):
        return "torch"
    raise WeightsError(
        path,
        "unknown weight file type; use .pt/.pth/.bin (torch), .h5 or .weights.h5 (Keras) or .safetensors",
    )


def _fits(framework: str, path: Path, *, writing: bool) -> str:
    found = kind(path)
    option = "--to" if writing else "--from"
    if framework == "torch" and found in ("h5", "h5_by_name"):
        raise WeightsError(path, f"an HDF5 file holds Keras weights; use {option} keras")
    if framework == "keras" and found == "torch":
        raise WeightsError(path, f"a {path.suffix} file holds torch weights; use {option} torch")
    return found


def _contents(path: Path) -> bytes:
    """The bytes of a regular file; never opens a device, FIFO or socket (which could block or never
    end)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise WeightsError(path, "no such file") from None
    if not stat.S_ISREG(mode):
        raise WeightsError(path, f"{files.file_type(mode)}, not a weight file")
    data = path.read_bytes()
    if not data:
        raise WeightsError(path, "the file is empty")
    return data


def read(compiled: Compiled, framework: str, path: Path) -> Checkpoint:
    """The weights of `framework` in `path`, checked against the spec."""
    found = _fits(framework, path, writing=False)
    data = _contents(path)
    precision = Precision()
    notes: list[str] = []
    if framework == "torch":
        if found == "safetensors":
            state, meta = _read_safetensors(data, path, precision)
            counters = _meta_counters(meta, path)
        else:
            state = _read_torch(data, path, precision, notes)
            counters = {}
        state = fit_torch(compiled, state, path)
        counters.update(counters_of(compiled, state))
        buffers = set(weights.torch_buffers_without_keras(compiled))
        tensors: dict[str, Any] = {k: v for k, v in state.items() if k not in buffers}
    else:
        layers, unplaced, counters = _read_keras(compiled, found, data, path, precision)
        tensors = fit_keras(compiled, layers, path, unplaced)
        tensors = {name: [precision.float32(v) for v in values] for name, values in tensors.items()}
    if note := precision.note():
        notes.append(note)
    return Checkpoint(tensors, counters, notes)


def _read_torch(data: bytes, path: Path, precision: Precision, notes: list[str]) -> dict[str, np.ndarray]:
    import pickle

    import torch

    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols are not the user's concern
            warnings.simplefilter("ignore")
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's restricted unpickler refused the file
        text = str(exc)
        if "GLOBAL" in text or "unsupported global" in text.lower():
            raise WeightsError(
                path,
                "the file holds pickled Python objects other than tensors; resgen reads only plain "
                "state dicts (torch.load with weights_only=True) and ran nothing from it",
            ) from None
        lines = [line.strip() for line in text.splitlines()]
        detail = next((line for line in lines if line.startswith("Unsupported")), _first_line(exc))
        raise WeightsError(path, f"not a readable torch file ({detail})") from None
    except Exception as exc:  # torch's errors for a truncated or damaged file
        raise WeightsError(path, f"not a readable torch file ({_first_line(exc)})") from None
    for _ in range(2):
        inner = next((k for k in WRAPPERS if isinstance(obj, dict) and isinstance(obj.get(k), dict)), None)
        if inner is None or all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        notes.append(f"note: read the state dict under {inner!r}")
        obj = obj[inner]
    if not isinstance(obj, dict):
        raise WeightsError(path, f"holds a {type(obj).__name__}, not a state dict")
    bad = [str(k) for k, v in obj.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if bad:
        raise WeightsError(
            path, f"not a state dict: {bad[0]!r} is not a named tensor ({len(bad)} such entries)"
        )
    if obj and all(k.startswith("module.") for k in obj):
        notes.append("note: removed the 'module.' prefix of nn.DataParallel from every key")
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return {k: _torch_array(v, precision) for k, v in obj.items()}


def _torch_array(tensor: Any, precision: Precision) -> np.ndarray:
    import torch

    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16
        precision.seen["bfloat16"] += 1
        tensor = tensor.float()
    return precision.float32(tensor.numpy()) if tensor.is_floating_point() else tensor.numpy()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _read_safetensors(
    data: bytes, path: Path, precision: Precision
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors.torch import load

    try:
        tensors = load(data)
        header = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + header]).get("__metadata__") or {}
    except Exception as exc:  # safetensors' errors for a truncated or damaged file
        raise WeightsError(path, f"not a readable safetensors file ({_first_line(exc)})") from None
    return {k: _torch_array(v, precision) for k, v in tensors.items()}, meta


def _meta_counters(meta: dict[str, str], path: Path) -> dict[str, int]:
    if COUNTERS_KEY not in meta:
        return {}
    try:
        return {str(k): int(v) for k, v in json.loads(meta[COUNTERS_KEY]).items()}
    except (ValueError, TypeError, AttributeError):
        raise WeightsError(path, f"the metadata {COUNTERS_KEY!r} is not a JSON object of integers") from None


def _read_keras(
    compiled: Compiled, found: str, data: bytes, path: Path, precision: Precision
) -> tuple[dict[str, Any], list[str], dict[str, int]]:
    if found == "h5_by_name":
        layers, counters = weights_h5.read_by_name(data, path)
        return layers, [], counters
    if found == "h5":
        return weights_h5.read_by_order(data, path, keras_model(compiled))
    flat, meta = _read_safetensors(data, path, precision)
    index = {(s.keras_layer, s.role): s.keras_index for s in weights.weight_slots(compiled)}
    placed: dict[str, dict[int, np.ndarray]] = {}
    unplaced = []
    for key, value in flat.items():
        layer, _, role = key.rpartition("/")
        if (layer, role) in index:
            placed.setdefault(layer, {})[index[layer, role]] = value
        else:
            unplaced.append(f"{key} {tuple(value.shape)}")
    return placed, unplaced, _meta_counters(meta, path)


def write(compiled: Compiled, framework: str, path: Path, checkpoint: Checkpoint) -> None:
    """Write `checkpoint` (weights of `framework`) to `path`, atomically."""
    found = _fits(framework, path, writing=True)
    files.write_atomic({path: _encode(compiled, framework, found, checkpoint)})


def _encode(compiled: Compiled, framework: str, found: str, checkpoint: Checkpoint) -> bytes:
    values, counters = checkpoint.tensors, checkpoint.counters
    if framework == "torch":
        state = dict(values)
        all_counters = {k: counters.get(k, 0) for k in weights.torch_buffers_without_keras(compiled)}
        if found == "safetensors":
            state.update({k: np.asarray(v, dtype=np.int64) for k, v in all_counters.items()})
            return _safetensors(state, {})
        import torch

        tensors = {k: torch.from_numpy(np.array(v)) for k, v in state.items()}
        tensors.update({k: torch.tensor(v, dtype=torch.long) for k, v in all_counters.items()})
        buffer = io.BytesIO()
        torch.save(tensors, buffer)
        return buffer.getvalue()
    slots = weights.weight_slots(compiled)
    if found == "safetensors":
        flat = {f"{s.keras_layer}/{s.role}": values[s.keras_layer][s.keras_index] for s in slots}
        return _safetensors(flat, {COUNTERS_KEY: json.dumps(counters, sort_keys=True)} if counters else {})
    if found == "h5_by_name":
        roles: dict[str, list[str]] = {}
        for slot in slots:
            roles.setdefault(slot.keras_layer, []).append(slot.role)
        return weights_h5.write_by_name(values, roles, counters)
    return weights_h5.write_by_order(keras_model(compiled), values, counters)


def _safetensors(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=metadata or None)


def keras_model(compiled: Compiled) -> Any:
    from resgen.generate import render
    from resgen.generated_module import import_generated

    module = import_generated(
        render(compiled, "keras"), f"resgen_keras_io_{compiled.graph.network.spec_hash}"
    )
    return module.build_model()


def convert(
    compiled: Compiled, source: str, in_path: Path, target: str, out_path: Path
) -> tuple[int, list[str]]:
    """Convert a weight file between frameworks (or formats); return the number of tensors written and
    notes for the user. Raises WeightsError naming the file at fault."""
    _fits(target, out_path, writing=True)  # an output name resgen cannot write fails before any work
    import h5py  # noqa: F401  (the frameworks extra: a core install is told so before any file is read)
    import safetensors  # noqa: F401
    import torch  # noqa: F401

    checkpoint = read(compiled, source, in_path)
    if source == "torch" and target == "keras":
        checkpoint.tensors = weights.torch_to_keras(compiled, checkpoint.tensors)
    elif source == "keras" and target == "torch":
        checkpoint.tensors = weights.keras_to_torch(compiled, checkpoint.tensors)
        for key in weights.torch_buffers_without_keras(compiled):
            checkpoint.tensors.pop(key, None)
    write(compiled, target, out_path, checkpoint)
    if target == "torch":
        return len(checkpoint.tensors) + len(weights.torch_buffers_without_keras(compiled)), checkpoint.notes
    return sum(len(v) for v in checkpoint.tensors.values()), checkpoint.notes
