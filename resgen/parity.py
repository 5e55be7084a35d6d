"""The proof that one spec is one function: build both targets, move weights, compare outputs.

`check(compiled)` renders the torch and Keras sources, imports them, gives the torch model random
weights with non-trivial BatchNorm statistics, copies them into the Keras model (torch -> keras), and
compares the outputs (every feature map of a backbone) and one tap per stage in eval mode; then
does the same from random Keras weights (keras -> torch). The tolerance is DESIGN.md's:
``max|a - b| <= 1e-4 * max(1, max|b|)`` on CPU float32, plus the same top-1 class (for a
classifier); 1e-3 on a GPU with TF32 off. The building blocks (`import_targets`,
`randomize_torch`, the weight transfers) are shared with the train-mode check in `resgen.parity_train`.

torch and Keras are imported here, lazily, by the functions that need them: importing this module is cheap.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from resgen import weights
from resgen.compiler import Compiled
from resgen.generate import render
from resgen.generated_module import import_generated
from resgen.graph import SHAPE_LAYOUT
from resgen.naming import keras_name, torch_module, torch_path, torch_stage_path
from resgen.progress import Step, quiet

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter is not a result

CHECK_STEPS = 5  # what check() tells its progress reporter
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
        height, width, channels = self.input_shape
        data["input_shape"] = [channels, height, width]  # as every JSON output: channels first
        data["shape_layout"] = SHAPE_LAYOUT
        data["passed"] = self.passed
        return data


def build_models(
    compiled: Compiled, *, torch_source: str | None = None, keras_source: str | None = None
) -> tuple[Any, Any]:
    """Fresh torch and Keras models of `compiled` (from given sources, e.g. with a planted bug)."""
    torch_module, keras_module = import_targets(compiled, torch_source, keras_source)
    return torch_module.build_model(), keras_module.build_model(input_shape=compiled.graph.input_hwc)


def import_targets(
    compiled: Compiled, torch_source: str | None = None, keras_source: str | None = None
) -> tuple[ModuleType, ModuleType]:
    """The generated torch and Keras modules of `compiled`, imported."""
    tag = f"{compiled.name}_{compiled.graph.network.spec_hash}"
    torch_module = import_generated(torch_source or render(compiled, "torch"), f"resgen_torch_{tag}")
    keras_module = import_generated(keras_source or render(compiled, "keras"), f"resgen_keras_{tag}")
    return torch_module, keras_module


# --- random weights with non-trivial BatchNorm statistics ------------------------------------------


def randomize_torch(compiled: Compiled, model: Any, seed: int, *, signed_scales: bool = False) -> None:
    """Random weights with BatchNorm statistics that are far from their defaults yet realistic.

    Kernels get He-normal values and BN affine terms random values (with `signed_scales`, scales of
    both signs, so that no layer after a BatchNorm sees only one sign: a padding-value bug cannot
    hide behind a BN-ReLU); the last layer of every residual
    branch is scaled down (trained ResNets' branches are small next to the identity path), so that
    rounding errors are not amplified from block to block. The running statistics are then measured
    on a random batch (activations stay near unit scale however deep the net) and perturbed, so that a
    transfer that drops or mixes them up cannot go unnoticed.
    """
    import torch

    input_shape = compiled.graph.input_hwc
    gen = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
        for gn in (m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)):
            gn.weight.copy_(torch.rand(gn.num_channels, generator=gen) + 0.5)
            gn.bias.copy_(torch.randn(gn.num_channels, generator=gen) * 0.1)
        for bn in norms:
            scale = torch.rand(bn.num_features, generator=gen) + 0.5
            if signed_scales:
                scale *= torch.randint(0, 2, (bn.num_features,), generator=gen) * 2 - 1
            bn.weight.copy_(scale)
            bn.bias.copy_(torch.randn(bn.num_features, generator=gen) * 0.1)
            bn.reset_running_stats()
        modules = dict(model.named_modules())
        for path in _branch_ends(compiled):
            modules[path].weight.mul_(RESIDUAL_BRANCH_SCALE)
        momenta = [bn.momentum for bn in norms]
        for bn in norms:
            bn.momentum = None  # cumulative average: after one batch, the running stats are its stats
        h, w, c = input_shape
        model.train()
        model(torch.randn((4, c, h, w), generator=gen))
        model.eval()
        for bn, momentum in zip(norms, momenta, strict=True):
            bn.momentum = momentum
            n = bn.num_features
            bn.running_var.mul_(torch.rand(n, generator=gen) * 0.45 + 0.8)
            bn.running_mean.add_(torch.randn(n, generator=gen) * 0.05 * bn.running_var.sqrt())


RESIDUAL_BRANCH_SCALE = 0.2


def _branch_ends(compiled: Compiled) -> list[str]:
    """torch paths of the last weighted layer of every residual branch (what feeds each addition)."""
    graph = compiled.graph
    ends = []
    for add in graph.of_kind("add"):
        end = graph.inputs(add.name)[0]
        # through drop-path and channel attention's product to the BatchNorm
        while torch_module(graph, end) is None or graph[end].kind == "drop_path":
            end = graph.inputs(end)[0]
        ends.append(torch_path(graph, end))
    return ends


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
    last = {stage: layers[-1] for (stage, _), layers in graph.block_layers().items()}  # later blocks win
    return [
        (f"stage{s}", torch_stage_path(graph, s), keras_name(graph, x.name)) for s, x in sorted(last.items())
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
    labels = output_labels(compiled)
    outs = out if isinstance(out, (list, tuple)) else [out]
    if len(outs) != len(labels):
        raise ValueError(f"the torch model returns {len(outs)} outputs, the spec {len(labels)}")
    for label, tensor in zip(labels, outs, strict=True):
        array = tensor.cpu().numpy()
        result[label] = array.transpose(0, 2, 3, 1) if array.ndim == 4 else array
    return result


def output_labels(compiled: Compiled) -> list[str]:
    """Labels of the model's outputs: "output" for a classifier, one per feature tap of a backbone."""
    return [f"out:{tap.name}" for tap in compiled.graph.network.taps] or ["output"]


def keras_forward(compiled: Compiled, model: Any, x_nhwc: np.ndarray) -> dict[str, np.ndarray]:
    import keras

    taps = stage_taps(compiled)
    outputs = [model.get_layer(k).output for _, _, k in taps] + list(model.outputs)
    probe = keras.Model(model.inputs[0], outputs)
    outs = probe(x_nhwc, training=False)
    result = {label: keras.ops.convert_to_numpy(o) for (label, _, _), o in zip(taps, outs, strict=False)}
    labels = output_labels(compiled)
    if len(model.outputs) != len(labels):
        raise ValueError(f"the Keras model has {len(model.outputs)} outputs, the spec {len(labels)}")
    for label, o in zip(labels, outs[len(taps) :], strict=True):
        result[label] = keras.ops.convert_to_numpy(o)
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
    signed_scales: bool = False,
    progress: Step = quiet,
) -> ParityReport:
    """Both directions of weight transfer, compared at every stage and at the output.

    `signed_scales` draws BatchNorm scales of both signs (see `randomize_torch`). `progress` is told
    each of the CHECK_STEPS steps as it starts (`resgen.progress.steps`).
    """
    tolerance = GPU_TOLERANCE if device.startswith("cuda") else CPU_TOLERANCE
    versions, tf32 = environment(device)
    report = ParityReport(
        spec=compiled.name,
        input_shape=list(compiled.graph.input_hwc),
        device=device,
        tolerance=tolerance,
        versions=versions,
        tf32=tf32,
    )
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *report.input_shape)).astype(np.float32)

    # Each model is built once: every transfer overwrites all of the receiving model's weights.
    progress("building the torch and Keras models")
    torch_model, keras_model = build_models(compiled, torch_source=torch_source, keras_source=keras_source)
    progress("torch -> Keras: random weights, transfer")
    randomize_torch(compiled, torch_model, seed, signed_scales=signed_scales)
    torch_to_keras_model(compiled, torch_model, keras_model)
    progress("torch -> Keras: outputs")
    reference = torch_forward(compiled, torch_model, x, device)
    _compare(report, "torch->keras", reference, keras_forward(compiled, keras_model, x))

    # keras -> torch: a second random draw placed in the Keras model; the torch model is scrambled with
    # a third before the weights are read back from Keras, so every value it ends with came through Keras.
    progress("Keras -> torch: random weights, transfer")
    randomize_torch(compiled, torch_model, seed + 1, signed_scales=signed_scales)
    torch_to_keras_model(compiled, torch_model, keras_model)
    randomize_torch(compiled, torch_model, seed + 2)
    keras_to_torch_model(compiled, keras_model, torch_model)
    progress("Keras -> torch: outputs")
    reference = keras_forward(compiled, keras_model, x)
    _compare(report, "keras->torch", reference, torch_forward(compiled, torch_model, x, device))
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
    if "output" in reference:  # a classifier; a backbone's feature maps are compared above
        same = np.argmax(reference["output"], axis=-1) == np.argmax(other["output"], axis=-1)
        report.same_top1 = report.same_top1 and bool(np.all(same))


def format_report(report: ParityReport) -> str:
    """The report as a few readable lines."""
    size = "x".join(map(str, report.input_shape))
    lines = [
        f"parity {report.spec}: input {size} (HxWxC), device {report.device}, "
        f"tolerance {report.tolerance:g} x max(1, max|ref|)",
        "  " + ", ".join(f"{k} {v}" for k, v in report.versions.items()),
    ]
    for t in report.taps:
        mark = "ok  " if t.passed else "FAIL"
        lines.append(
            f"  {mark} {t.direction:13} {t.tap:8} max|diff| {t.max_abs_diff:.3g} (scale {t.scale:.3g})"
        )
    lines.append(f"  top-1 {'agrees' if report.same_top1 else 'DIFFERS'}")
    lines.append("PASS" if report.passed else "FAIL")
    return "\n".join(lines)
