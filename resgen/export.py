"""Export a spec's generated model for serving, and prove that the artifact computes what the model does.

Three formats: ``onnx`` (torch's ONNX exporter, through `torch.export`), ``torch-export`` (an
`ExportedProgram`, saved with `torch.export.save`) and ``saved-model`` (the Keras model's
``model.export(..., format="tf_saved_model")``). Batch, height and width stay dynamic: each within
the sizes the network accepts (`accepted_sizes`): any size from the smallest that reaches every
layer, unless a head flattens a feature map into a classifier, which fixes the sizes it takes.

`check` runs the artifact (onnxruntime; the loaded exported program; the reloaded SavedModel) on
random inputs against the framework model, at batch 1 and 7, at the spec's size and an odd size,
with the parity harness's tolerance: ``max|a - b| <= 1e-4 * max(1, max|b|)``.

torch, Keras, onnxruntime and TensorFlow are imported lazily, by the functions that need them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resgen.compiler import Compiled, compile_document, with_input_size
from resgen.errors import SpecErrors
from resgen.graph import Scope

TOLERANCE = 1e-4
FORMATS = {"onnx": "torch", "torch-export": "torch", "saved-model": "keras"}
MAX_SIDE = 4096  # the largest height or width a spec's input section allows
BATCHES = (1, 7)


@dataclass(frozen=True)
class SideRange:
    """The sizes one input axis accepts: every size from `low` to `high`, both included."""

    low: int
    high: int


@dataclass(frozen=True)
class CheckResult:
    batch: int
    height: int
    width: int
    max_abs_diff: float
    scale: float  # max(1, max|framework output|)

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= TOLERANCE * self.scale


# --- the sizes a network accepts ------------------------------------------------------------------------


def accepted_sizes(compiled: Compiled) -> tuple[SideRange, SideRange]:
    """Heights and widths (each with the other at the spec's) that an export accepts.

    A size is accepted when the spec compiles at it with the same parameter count (a head that
    flattens a feature map into its classifier has more inputs on a larger map, so it fixes a range of
    sizes) and every feature map before the head keeps at least 2 pixels a side (torch.export treats a
    side of 1 as a special case it cannot keep dynamic). Both ends are found by bisection (the
    accepted sizes are one interval); a range reaching `MAX_SIDE` has no upper end.
    """
    params = compiled.analysis.totals()["params"]
    height, width = compiled.graph.input_hwc[:2]

    def same(h: int, w: int) -> bool:
        try:
            other = compile_document(with_input_size(compiled.doc, h, w))
        except SpecErrors:
            return False
        maps = [other.analysis.shape(layer.name) for layer in other.graph if layer.scope is not Scope.HEAD]
        wide = all(min(shape[1:]) >= 2 for shape in maps if len(shape) == 3)
        return wide and other.analysis.totals()["params"] == params

    if not same(height, width):  # a network whose maps shrink to 1 pixel at its own size: as it is
        return SideRange(height, height), SideRange(width, width)
    return (
        SideRange(_first(lambda h: same(h, width), 1, height), _last(lambda h: same(h, width), height)),
        SideRange(_first(lambda w: same(height, w), 1, width), _last(lambda w: same(height, w), width)),
    )


def _first(ok: Any, low: int, high: int) -> int:
    """The smallest size in [low, high] where `ok` holds, given that it holds at `high` and from there up."""
    while low < high:
        mid = (low + high) // 2
        low, high = (low, mid) if ok(mid) else (mid + 1, high)
    return high


def _last(ok: Any, low: int) -> int:
    """The largest size in [low, MAX_SIDE] where `ok` holds, given that it holds at `low`."""
    high = MAX_SIDE
    if ok(high):
        return high
    while low < high - 1:
        mid = (low + high) // 2
        low, high = (mid, high) if ok(mid) else (low, mid)
    return low


def check_sizes(compiled: Compiled) -> list[tuple[int, int]]:
    """The spec's size, and an odd one (height and width odd and different) that the network accepts."""
    height, width = compiled.graph.input_hwc[:2]
    rows, cols = accepted_sizes(compiled)
    odd = (_odd_in(rows, height + 1), _odd_in(cols, height + 15))
    return [(height, width)] + ([odd] if odd != (height, width) else [])


def _odd_in(side: SideRange, wanted: int) -> int:
    """An odd size of `side` near `wanted` (or its only size)."""
    size = min(max(wanted, side.low), side.high)
    if size % 2 == 0:
        size = size + 1 if size + 1 <= side.high else size - 1
    return size if side.low <= size <= side.high else side.low


# --- building the framework model -------------------------------------------------------------------------


def framework_model(compiled: Compiled, to: str, weights_path: Path | None, *, seed: int = 0) -> Any:
    """The framework model that `to` exports, in inference mode: with the weights of `weights_path`, or
    random ones whose BatchNorm statistics are far from their defaults (so the check can see them)."""
    from resgen import parity, weights_io

    torch_module, keras_module = _modules(compiled, FORMATS[to])
    if FORMATS[to] == "torch":
        import torch

        model = torch_module.build_model()
        if weights_path is None:
            parity.randomize_torch(compiled, model, seed, signed_scales=True)
        else:
            checkpoint = weights_io.read(compiled, "torch", weights_path)
            state = {k: torch.from_numpy(np.asarray(v)) for k, v in checkpoint.tensors.items()}
            state.update({k: torch.tensor(v) for k, v in checkpoint.counters.items()})
            model.load_state_dict(state, strict=False)  # BatchNorm counters a file may lack stay at 0
        return model.eval()
    rows, cols = accepted_sizes(compiled)
    fixed = rows.low == rows.high and cols.low == cols.high
    height, width, channels = compiled.graph.input_hwc
    shape = (height, width, channels) if fixed or _flattens(compiled) else (None, None, channels)
    model = keras_module.build_model(input_shape=shape)
    if weights_path is None:
        _randomize_keras(model, seed)
    else:
        for name, values in weights_io.read(compiled, "keras", weights_path).tensors.items():
            model.get_layer(name).set_weights(values)
    return model


def _modules(compiled: Compiled, framework: str) -> tuple[Any, Any]:
    from resgen.generate import render
    from resgen.generated_module import import_generated

    tag = f"{compiled.name}_{compiled.graph.network.spec_hash}"
    source = render(compiled, framework)
    module = import_generated(source, f"resgen_export_{framework}_{tag}")
    return (module, None) if framework == "torch" else (None, module)


def _flattens(compiled: Compiled) -> bool:
    """Whether the classifier reads a flattened map (its input size then must be known when built)."""
    rows, cols = accepted_sizes(compiled)
    return (rows.high, cols.high) != (MAX_SIDE, MAX_SIDE)


def _randomize_keras(model: Any, seed: int) -> None:
    """Random BatchNorm scales of both signs, offsets and moving statistics (kernels keep their init)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ != "BatchNormalization":
            continue
        values = []
        for var in layer.weights:
            n = var.shape[0]
            role = var.path.rsplit("/", 1)[-1]
            if role == "gamma":
                values.append((rng.uniform(0.5, 1.5, n) * rng.choice([-1.0, 1.0], n)).astype("float32"))
            elif role == "moving_variance":
                values.append(rng.uniform(0.5, 1.5, n).astype("float32"))
            else:  # beta, moving_mean
                values.append(rng.normal(0.0, 0.1, n).astype("float32"))
        layer.set_weights(values)


# --- export ---------------------------------------------------------------------------------------------


def export(compiled: Compiled, to: str, path: Path, model: Any) -> None:
    """Write `model` (from `framework_model`) to `path` in format `to`, batch, height and width dynamic."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if FORMATS[to] == "torch":
        _export_torch(compiled, to, path, model)
        return
    import keras

    channels = compiled.graph.input_hwc[2]
    rows, cols = accepted_sizes(compiled)
    height = None if rows.low < rows.high else rows.low
    width = None if cols.low < cols.high else cols.low
    spec = keras.InputSpec(shape=(None, height, width, channels), dtype="float32")
    model.export(str(path), format="tf_saved_model", input_signature=[spec], verbose=False)


def torch_dynamic_shapes(compiled: Compiled) -> tuple[dict[int, Any]]:
    """`dynamic_shapes` for the generated model's one input: batch from 1, height and width within the
    sizes the network accepts (an axis with one size stays static)."""
    from torch.export import Dim

    rows, cols = accepted_sizes(compiled)
    dims: dict[int, Any] = {0: Dim("batch", min=1, max=1 << 16)}
    for axis, name, side in ((2, "height", rows), (3, "width", cols)):
        if side.low < side.high:
            dims[axis] = Dim(name, min=side.low, max=side.high)
    return (dims,)


def _example(compiled: Compiled) -> Any:
    import torch

    height, width, channels = compiled.graph.input_hwc
    return torch.randn(2, channels, height, width, generator=torch.Generator().manual_seed(0))


def _export_torch(compiled: Compiled, to: str, path: Path, model: Any) -> None:
    import torch

    args = (_example(compiled),)
    dynamic = torch_dynamic_shapes(compiled)
    if to == "torch-export":
        torch.export.save(torch.export.export(model, args, dynamic_shapes=dynamic), str(path))
        return
    program = torch.onnx.export(model, args, dynamo=True, dynamic_shapes=dynamic, verbose=False)
    program.save(str(path), external_data=False)


# --- the check -------------------------------------------------------------------------------------------


def check(compiled: Compiled, to: str, path: Path, model: Any) -> list[CheckResult]:
    """Run the artifact at `path` and `model` on the same random inputs; one result per batch and size."""
    run = _runner(to, path)
    results = []
    rng = np.random.default_rng(7)
    channels = compiled.graph.input_hwc[2]
    for height, width in check_sizes(compiled):
        for batch in BATCHES:
            x = rng.standard_normal((batch, height, width, channels)).astype("float32")  # NHWC
            expected = _framework_outputs(to, model, x)
            actual = run(x)
            diff = max(float(np.max(np.abs(a - e))) for a, e in zip(actual, expected, strict=True))
            scale = max(1.0, max(float(np.max(np.abs(e))) for e in expected))
            results.append(CheckResult(batch, height, width, diff, scale))
    return results


def _as_list(outputs: Any) -> list[np.ndarray]:
    if isinstance(outputs, dict):
        outputs = [outputs[k] for k in sorted(outputs)]
    if not isinstance(outputs, list | tuple):
        outputs = [outputs]
    return [np.asarray(o.detach().numpy() if hasattr(o, "detach") else o) for o in outputs]


def _framework_outputs(to: str, model: Any, x_nhwc: np.ndarray) -> list[np.ndarray]:
    if FORMATS[to] == "keras":
        return _as_list(_keras_at(model, x_nhwc.shape[1:])(x_nhwc, training=False))
    import torch

    with torch.no_grad():
        return _as_list(model(torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2).copy())))


def _keras_at(model: Any, shape: tuple[int, ...]) -> Any:
    """`model`, or where it was built for another input size (a classifier reading a flattened map), the
    same model and weights built at `shape`."""
    if all(a in (None, b) for a, b in zip(model.inputs[0].shape[1:], shape, strict=True)):
        return model
    import keras

    clone = keras.models.clone_model(model, input_tensors=keras.Input(shape=shape, name="input"))
    clone.set_weights(model.get_weights())
    return clone


def _runner(to: str, path: Path) -> Any:
    """A function from an NHWC batch to the artifact's outputs, as numpy arrays."""
    if to == "onnx":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: _as_list(session.run(None, {name: x.transpose(0, 3, 1, 2).copy()}))
    if to == "torch-export":
        import torch

        program = torch.export.load(str(path)).module()

        def run_program(x: np.ndarray) -> list[np.ndarray]:
            with torch.no_grad():
                return _as_list(program(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())))

        return run_program
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return lambda x: _as_list([o.numpy() for o in _as_list_tf(loaded.serve(tf.constant(x)))])


def _as_list_tf(outputs: Any) -> list[Any]:
    if isinstance(outputs, dict):
        return [outputs[k] for k in sorted(outputs)]
    return list(outputs) if isinstance(outputs, list | tuple) else [outputs]
