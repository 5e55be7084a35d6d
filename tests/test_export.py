"""`resgen export`: torch output through the ONNX exporter and torch.export, Keras output as a SavedModel,
batch, height and width dynamic; `--check` runs the artifact against the framework model.

The bug this guards: TensorFlow "same" padding (Conv2dSame) must stay symbolic in the input size, or
exporting with dynamic height and width freezes it (onnxruntime then fails at other sizes, torch.export
with named dimensions reports violated constraints).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import resgen
from resgen import export as exporter
from resgen.compiler import compile_spec
from resgen.generated_module import import_generated
from tests.helpers import cli

torch = pytest.importorskip("torch")

# TensorFlow "same" padding with a stride-2 3x3 next to a 1x1 projection (whose output side is
# (size - 1) // 2 + 1: the two must agree symbolically at every size), global pooling: any input size.
TINY_TF_SAME = """\
format_version: 1
name: tiny_tf_same
input: {height: 32, width: 32, channels: 3}
stem: {kind: conv, filters: 8, kernel_size: 5, stride: 2, norm: true}
block: {kind: basic}
stages:
  - {blocks: 1, filters: 8, stride: 1}
  - {blocks: 1, filters: 16, stride: 2}
shortcut: {kind: projection}
padding: tf_same
head: {kind: global_pool, classes: 5, output: logits}
"""


@pytest.fixture
def tiny_spec(tmp_path: Path) -> str:
    path = tmp_path / "tiny_tf_same.yaml"
    path.write_text(TINY_TF_SAME)
    return str(path)


def _model(spec: str) -> tuple[object, object]:
    compiled = compile_spec(spec)
    model = exporter.framework_model(compiled, "torch-export", None)
    return compiled, model


def test_tf_same_padding_exports_with_named_dynamic_height_and_width(tiny_spec: str) -> None:
    from torch.export import Dim

    _, model = _model(tiny_spec)
    dims = {0: Dim("batch", min=1, max=64), 2: Dim("h", min=16, max=512), 3: Dim("w", min=16, max=512)}
    program = torch.export.export(model, (torch.randn(2, 3, 32, 32),), dynamic_shapes=(dims,))
    for shape in ((3, 3, 33, 47), (1, 3, 16, 17), (2, 3, 64, 31)):
        x = torch.randn(shape)
        with torch.no_grad():
            assert torch.allclose(program.module()(x), model(x), atol=1e-5), shape


def test_tf_same_padding_is_tensorflows_at_every_size() -> None:
    """Padding by kernel - 1 in all (TensorFlow's amount before) is TensorFlow's "same" convolution."""
    conv_cls = import_generated(resgen.render("rosebrock_cifar10", "torch"), "tf_same_sizes").Conv2dSame
    for kernel, stride in ((3, 2), (5, 2), (3, 1), (1, 2), (7, 3)):
        conv = conv_cls(2, 3, kernel_size=kernel, stride=stride, bias=False)
        for side in range(5, 14):
            x = torch.randn(1, 2, side, side + 1)
            expected = []
            for size in x.shape[-2:]:
                total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
                expected.append((total // 2, total - total // 2))
            (top, bottom), (left, right) = expected
            padded = torch.nn.functional.pad(x, (left, right, top, bottom))
            want = torch.nn.functional.conv2d(padded, conv.weight, stride=stride)
            assert torch.equal(conv(x), want), (kernel, stride, side)


def test_accepted_sizes() -> None:
    rows, cols = exporter.accepted_sizes(compile_spec("rosebrock_cifar10"))
    assert (rows.low, rows.high) == (cols.low, cols.high) == (29, 60)  # 8x8 pool, flatten into fc
    assert exporter.check_sizes(compile_spec("rosebrock_cifar10")) == [(32, 32), (33, 47)]
    rows, _ = exporter.accepted_sizes(compile_spec("cifar_resnet20"))
    assert rows.high == exporter.MAX_SIDE


def test_onnx_of_rosebrock_runs_at_33x47_and_equals_torch(tmp_path: Path) -> None:
    out = tmp_path / "rosebrock.onnx"
    result = cli("export", "rosebrock_cifar10", "--to", "onnx", "-o", str(out), "--check")
    assert result.exit_code == 0, result.output
    assert "batch 7 at 33x47" in result.stdout and "MISMATCH" not in result.stdout
    assert out.is_file()


@pytest.mark.parametrize("to", ["torch-export", "saved-model"])
def test_export_check_passes(tiny_spec: str, tmp_path: Path, to: str) -> None:
    out = tmp_path / ("tiny.pt2" if to == "torch-export" else "tiny_saved_model")
    result = cli("export", tiny_spec, "--to", to, "-o", str(out), "--check")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("batch")]
    assert len(lines) == 4 and all(line.endswith(" ok") for line in lines), result.stdout


def test_check_fails_against_another_model(tiny_spec: str, tmp_path: Path) -> None:
    compiled, model = _model(tiny_spec)
    out = tmp_path / "tiny.pt2"
    exporter.export(compiled, "torch-export", out, model)
    other = exporter.framework_model(compiled, "torch-export", None, seed=1)
    results = exporter.check(compiled, "torch-export", out, other)
    assert results and not any(r.passed for r in results)


def test_weights_are_the_ones_exported(tiny_spec: str, tmp_path: Path) -> None:
    compiled, model = _model(tiny_spec)
    weights = tmp_path / "w.pt"
    torch.save(model.state_dict(), weights)
    out = tmp_path / "tiny.pt2"
    result = cli("export", tiny_spec, "--to", "torch-export", "-o", str(out), "--weights", str(weights))
    assert result.exit_code == 0, result.output
    assert all(r.passed for r in exporter.check(compiled, "torch-export", out, model))
