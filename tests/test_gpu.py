"""GPU parity (marked `gpu`; skipped cleanly without CUDA).

On a CUDA machine, run them all with `python scripts/gpu_check.py`, which prints a one-line summary.
TensorFlow does not run there: the Keras output runs on Keras 3's torch (or JAX) backend, chosen with
KERAS_BACKEND before Keras is imported. Tolerances (DESIGN.md): TF32 off, 1e-3 x max(1, max|ref|);
TF32 on, a smoke test only (cosine similarity > 0.9999 and the same top-1).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

from resgen import parity  # noqa: E402
from resgen.compiler import compile_spec  # noqa: E402

pytestmark = pytest.mark.gpu

PRESETS = [
    ("resnet50", (64, 64)),
    ("resnext50_32x4d", (64, 64)),
    ("keras_resnet50v2", (33, 47)),
    ("cifar_resnet56", None),
    ("preact_resnet164", None),
    ("rosebrock_cifar10", None),
]


@pytest.fixture(autouse=True)
def tf32_off():
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def _torch_pair(name: str, size: tuple[int, int] | None):
    compiled = compile_spec(name, input_size=size)
    torch_module, _ = parity.import_targets(compiled)
    model = torch_module.build_model()
    parity.randomize_torch(compiled, model, seed=0)
    spec = compiled.spec
    x = np.random.default_rng(0).standard_normal(
        (4, spec.input.height, spec.input.width, spec.input.channels)
    )
    return compiled, model.eval(), x.astype(np.float32)


def _run(model, x: np.ndarray, device: str) -> np.ndarray:
    with torch.no_grad():
        return model.to(device)(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).to(device)).cpu().numpy()


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


@pytest.mark.parametrize(("name", "size"), PRESETS)
def test_torch_output_on_cuda_matches_cpu(name, size, record_property) -> None:
    _, model, x = _torch_pair(name, size)
    cpu = _run(model, x, "cpu")
    cuda = _run(model, x, "cuda")
    diff = _rel(cuda, cpu)
    record_property("max_rel_diff", diff)
    assert diff <= parity.GPU_TOLERANCE


@pytest.mark.parametrize("name", ["resnet50", "resnext50_32x4d", "wide_resnet50_2"])
def test_torch_output_on_cuda_matches_torchvision(name, record_property) -> None:
    torchvision = pytest.importorskip("torchvision")
    _, model, x = _torch_pair(name, (64, 64))
    reference = getattr(torchvision.models, name)().eval()
    reference.load_state_dict(model.state_dict(), strict=True)
    diff = _rel(_run(model, x, "cuda"), _run(reference, x, "cuda"))
    record_property("max_rel_diff", diff)
    assert diff <= 1e-5


@pytest.mark.parametrize(("name", "size"), PRESETS)
def test_keras_on_a_gpu_backend_matches_torch(name, size, record_property) -> None:
    keras = pytest.importorskip("keras")
    if keras.backend.backend() == "tensorflow":
        pytest.skip("TensorFlow is not the GPU backend here: run with KERAS_BACKEND=torch or jax")
    report = parity.check(compile_spec(name, input_size=size), device="cuda")
    record_property("max_rel_diff", max(t.max_abs_diff / t.scale for t in report.taps))
    record_property("keras_backend", keras.backend.backend())
    assert report.tolerance == parity.GPU_TOLERANCE
    assert report.tf32 == {"torch_matmul": False, "torch_cudnn": False}
    assert report.passed, parity.format_report(report)


@pytest.mark.parametrize(("name", "size"), [("resnet50", (64, 64)), ("keras_resnet50v2", (64, 64))])
def test_tf32_on_smoke(name, size, record_property) -> None:
    _, model, x = _torch_pair(name, size)
    cpu = _run(model, x, "cpu")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    cuda = _run(model, x, "cuda")
    a, b = cuda.reshape(len(x), -1), cpu.reshape(len(x), -1)
    cosine = float(np.min(np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))
    record_property("min_cosine", cosine)
    assert cosine > 0.9999
    assert (cuda.argmax(-1) == cpu.argmax(-1)).all()
