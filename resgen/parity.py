"""The proof that one spec is one function: build both targets, move weights, compare outputs.

`check(compiled)` renders the torch and Keras sources, imports them, gives the torch model random
weights with non-trivial BatchNorm statistics, copies them into the Keras model (torch -> keras), and
compares the outputs and one tap per stage in eval mode; then does the same from random Keras weights
(keras -> torch). The tolerance is DESIGN.md's: ``max|a - b| <= 1e-4 * max(1, max|b|)`` on CPU float32,
plus the same top-1 class; 1e-3 on a GPU with TF32 off.

torch and Keras are imported here, lazily, by the functions that need them: importing this module is cheap.
"""

from __future__ import annotations

import importlib.util
import platform
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from resgen import weights
from resgen.compiler import Compiled
from resgen.lower import layers
from resgen.naming import keras_name
from resgen.render import render

CPU_TOLERANCE = 1e-4
GPU_TOLERANCE = 1e-3


@dataclass(frozen=True)
class TapResult:
    tap: str  # "stage1" ... or "output"
    direction: str  # "torch->keras" or "keras->torch"
    max_abs_diff: float
    scale: float  # max(1, max|reference|)
    passed: bool


@dataclass
class ParityReport:
    spec: str
    input_shape: list[int]  # H, W, C as the models were built
    device: str
    tolerance: float
    versions: dict[str, str]
    tf32: dict[str, bool]
    taps: list[TapResult] = field(default_factory=list)
    same_top1: bool = True

    @property
    def passed(self) -> bool:
        return self.same_top1 and all(t.passed for t in self.taps)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        return data


def import_source(source: str, module_name: str) -> ModuleType:
    """Import generated source as a module (from a real file, so tracebacks and inspect work)."""
    folder = Path(tempfile.mkdtemp(prefix="resgen_"))
    path = folder / f"{module_name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def build_models(
    compiled: Compiled, *, torch_source: str | None = None, keras_source: str | None = None
) -> tuple[Any, Any]:
    """Fresh torch and Keras models of `compiled` (from given sources, e.g. with a planted bug)."""
    tag = f"{compiled.name}_{compiled.spec.content_hash()}"
    torch_module = import_source(torch_source or render(compiled, "torch"), f"resgen_torch_{tag}")
    keras_module = import_source(keras_source or render(compiled, "keras"), f"resgen_keras_{tag}")
    spec = compiled.spec
    shape = (spec.input.height, spec.input.width, spec.input.channels)
    return torch_module.build_model(), keras_module.build_model(input_shape=shape)


# --- random weights with non-trivial BatchNorm statistics ------------------------------------------


def randomize_torch(model: Any, seed: int) -> None:
    """Random weights everywhere, BN statistics and affine terms far from their 0/1 defaults."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            elif isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)


def randomize_keras(compiled: Compiled, model: Any, seed: int) -> None:
    """The same kind of random weights, drawn on the Keras side."""
    rng = np.random.default_rng(seed)
    by_layer: dict[str, list[weights.WeightSlot]] = {}
    for slot in weights.weight_slots(compiled):
        by_layer.setdefault(slot.keras_layer, []).append(slot)
    for layer_name, slots in by_layer.items():
        values = []
        for slot in slots:
            shape = slot.keras_shape
            if slot.role == "kernel":
                fan_in = int(np.prod(shape[:-1]))
                values.append(rng.standard_normal(shape) * (2.0 / fan_in) ** 0.5)
            elif slot.role in ("gamma", "moving_variance"):
                values.append(rng.random(shape) + 0.5)
            else:  # bias, beta, moving_mean
                values.append(rng.standard_normal(shape) * 0.1)
        model.get_layer(layer_name).set_weights([v.astype(np.float32) for v in values])


# --- transfer and forward ----------------------------------------------------------------------------


def torch_to_keras_model(compiled: Compiled, torch_model: Any, keras_model: Any) -> None:
    for layer_name, values in weights.torch_to_keras(compiled, torch_model.state_dict()).items():
        keras_model.get_layer(layer_name).set_weights(values)


def keras_to_torch_model(compiled: Compiled, keras_model: Any, torch_model: Any) -> None:
    import torch

    names = {s.keras_layer for s in weights.weight_slots(compiled)}
    state = weights.keras_to_torch(compiled, {n: keras_model.get_layer(n).get_weights() for n in names})
    torch_model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}, strict=True)


def stage_taps(compiled: Compiled) -> list[tuple[str, str, str]]:
    """(tap label, torch module path, Keras layer name) of the last layer of every stage."""
    graph = compiled.graph
    last: dict[int, str] = {}
    for name in layers(graph):
        node = graph.nodes[name]
        if node["scope"] == "stage":
            last[node["stage"]] = name
    preact = compiled.spec.block.preactivation
    return [
        (f"stage{s}", f"layer{s}", keras_name(graph.nodes[n], preactivation=preact))
        for s, n in sorted(last.items())
    ]


def torch_forward(compiled: Compiled, model: Any, x_nhwc: np.ndarray, device: str) -> dict[str, np.ndarray]:
    """Output and stage taps of the torch model, as channels-last numpy arrays."""
    import torch

    taps = stage_taps(compiled)
    captured: dict[str, Any] = {}
    modules = dict(model.named_modules())
    hooks = [
        modules[path].register_forward_hook(lambda _m, _i, out, label=label: captured.__setitem__(label, out))
        for label, path, _ in taps
    ]
    try:
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))).to(device)
            out = model.to(device).eval()(x)
    finally:
        for hook in hooks:
            hook.remove()
    result = {label: captured[label].cpu().numpy().transpose(0, 2, 3, 1) for label, _, _ in taps}
    result["output"] = out.cpu().numpy()
    return result


def keras_forward(compiled: Compiled, model: Any, x_nhwc: np.ndarray) -> dict[str, np.ndarray]:
    import keras

    taps = stage_taps(compiled)
    probe = keras.Model(model.inputs, [model.get_layer(k).output for _, _, k in taps] + list(model.outputs))
    outs = probe(x_nhwc, training=False)
    result = {label: keras.ops.convert_to_numpy(o) for (label, _, _), o in zip(taps, outs, strict=False)}
    result["output"] = keras.ops.convert_to_numpy(outs[-1])
    return result


def environment(device: str) -> tuple[dict[str, str], dict[str, bool]]:
    import keras
    import torch

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "numpy": np.__version__,
    }
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    if device.startswith("cuda"):
        versions["device_name"] = torch.cuda.get_device_name(0)
    tf32 = {
        "torch_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "torch_cudnn": bool(torch.backends.cudnn.allow_tf32),
    }
    return versions, tf32


def check(
    compiled: Compiled,
    *,
    device: str = "cpu",
    batch: int = 2,
    seed: int = 0,
    torch_source: str | None = None,
    keras_source: str | None = None,
) -> ParityReport:
    """Both directions of weight transfer, compared at every stage and at the output."""
    tolerance = GPU_TOLERANCE if device.startswith("cuda") else CPU_TOLERANCE
    versions, tf32 = environment(device)
    spec = compiled.spec
    report = ParityReport(
        spec=compiled.name,
        input_shape=[spec.input.height, spec.input.width, spec.input.channels],
        device=device,
        tolerance=tolerance,
        versions=versions,
        tf32=tf32,
    )
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *report.input_shape)).astype(np.float32)

    torch_model, keras_model = build_models(compiled, torch_source=torch_source, keras_source=keras_source)
    randomize_torch(torch_model, seed)
    torch_to_keras_model(compiled, torch_model, keras_model)
    _compare(
        report,
        "torch->keras",
        torch_forward(compiled, torch_model, x, device),
        keras_forward(compiled, keras_model, x),
    )

    torch_model, keras_model = build_models(compiled, torch_source=torch_source, keras_source=keras_source)
    randomize_keras(compiled, keras_model, seed + 1)
    keras_to_torch_model(compiled, keras_model, torch_model)
    _compare(
        report,
        "keras->torch",
        keras_forward(compiled, keras_model, x),
        torch_forward(compiled, torch_model, x, device),
    )
    return report


def _compare(
    report: ParityReport, direction: str, reference: dict[str, np.ndarray], other: dict[str, np.ndarray]
) -> None:
    for tap, ref in reference.items():
        got = other[tap]
        if got.shape != ref.shape:
            report.taps.append(TapResult(tap, direction, float("inf"), 1.0, False))
            continue
        diff = float(np.max(np.abs(got.astype(np.float64) - ref.astype(np.float64))))
        scale = max(1.0, float(np.max(np.abs(ref))))
        passed = bool(np.isfinite(diff)) and diff <= report.tolerance * scale
        report.taps.append(TapResult(tap, direction, diff, scale, passed))
    same = np.argmax(reference["output"], axis=-1) == np.argmax(other["output"], axis=-1)
    report.same_top1 = report.same_top1 and bool(np.all(same))
