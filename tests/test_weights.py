"""Weight mapping and `resgen weights convert`: reference checkpoints run in the other framework."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import Result

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
keras = pytest.importorskip("keras")

from resgen import load, parity, weights, weights_io  # noqa: E402
from resgen.compiler import compile_document, compile_spec  # noqa: E402
from tests.helpers import cli, randomize_keras_batch_norm  # noqa: E402


def convert_cli(spec: str, source: str, src: Path, target: str, dst: Path) -> Result:
    return cli("weights", "convert", spec, "--from", source, str(src), "--to", target, str(dst))


def test_slots_cover_the_torchvision_state_dict() -> None:
    compiled = compile_spec("resnet50")
    state = torchvision.models.resnet50().state_dict()
    keys = {s.torch_key for s in weights.weight_slots(compiled)}
    assert keys | set(weights.torch_buffers_without_keras(compiled)) == set(state)


def test_layout_conversions_round_trip_exactly() -> None:
    compiled = compile_spec("resnext50_32x4d")
    state = torchvision.models.resnext50_32x4d().state_dict()
    as_keras = weights.torch_to_keras(compiled, state)
    assert as_keras["conv2_block1_2_conv"][0].shape == (3, 3, 4, 128)  # HWIO, grouped: in/groups
    assert as_keras["predictions"][0].shape == (2048, 1000)  # Dense (in, out)
    back = weights.keras_to_torch(compiled, as_keras)
    for key, value in state.items():
        np.testing.assert_array_equal(back[key], value.numpy())


def test_conv_kernel_is_transposed_not_reshaped() -> None:
    compiled = compile_spec("cifar_resnet20")
    slot = next(s for s in weights.weight_slots(compiled) if s.node == "stem.conv" and s.role == "kernel")
    kernel = np.arange(16 * 3 * 3 * 3, dtype=np.float32).reshape(16, 3, 3, 3)  # O, I, H, W
    hwio = weights.to_keras(slot, kernel)
    assert hwio[1, 2, 0, 5] == kernel[5, 0, 1, 2]


FLAT_HEAD_SPEC = b"""format_version: 1
name: flat_head
input: {height: 16, width: 24, channels: 2}
stem: {kind: conv, filters: 8, kernel_size: 3, stride: 1}
block: {kind: basic}
stages:
  - {blocks: 1, filters: 8, stride: 1}
  - {blocks: 1, filters: 16, stride: 2}
head: {kind: pool_flatten, pool_size: 2, classes: 5}
"""


def test_dense_after_a_flattened_map_permutes_the_input_axis() -> None:
    """torch flattens (C, H, W) and Keras (H, W, C): with a 2x3 map the dense rows must move."""
    compiled = compile_document(load.parse(FLAT_HEAD_SPEC, "flat_head.yaml"))
    slot = next(s for s in weights.weight_slots(compiled) if s.op == "dense" and s.role == "kernel")
    assert slot.flatten_chw == (16, 4, 6)
    report = parity.check(compiled)
    assert report.passed, parity.format_report(report)


def test_convert_torchvision_checkpoint_to_keras(tmp_path: Path) -> None:
    """A torchvision state dict becomes Keras weights (.weights.h5) with the same outputs."""
    compiled = compile_spec("resnet18", input_size=(64, 64))
    reference = torchvision.models.resnet18().eval()
    parity.randomize_torch(compiled, reference, seed=3)
    checkpoint = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), checkpoint)
    out = tmp_path / "resnet18.weights.h5"
    result = convert_cli("resnet18", "torch", checkpoint, "keras", out)
    assert result.exit_code == 0, result.output
    assert "wrote 102 tensors" in result.stderr  # 21 convs, 20 BNs x 4, fc x 2 ... as Keras weights

    model = weights_io.keras_model(compiled)
    model.load_weights(str(out))
    x = np.random.default_rng(0).standard_normal((2, 64, 64, 3)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    got = np.asarray(model(x, training=False))
    assert np.max(np.abs(got - expected)) <= 1e-4 * max(1.0, np.max(np.abs(expected)))


def test_convert_keras_applications_checkpoint_to_torch(tmp_path: Path) -> None:
    """A keras.applications checkpoint (HDF5 keyed by layer name) runs in the torch output."""
    compiled = compile_spec("keras_resnet50v2", input_size=(64, 64))
    reference = keras.applications.ResNet50V2(weights=None, input_shape=(64, 64, 3))
    randomize_keras_batch_norm(reference, np.random.default_rng(5))
    checkpoint = tmp_path / "resnet50v2.h5"
    reference.save(checkpoint)  # Keras' HDF5 format, weights keyed by layer name
    out = tmp_path / "resnet50v2.safetensors"
    result = convert_cli("keras_resnet50v2", "keras", checkpoint, "torch", out)
    assert result.exit_code == 0, result.output

    from safetensors.torch import load_file

    torch_module, _ = parity.import_targets(compiled)
    model = torch_module.build_model().eval()
    state = load_file(str(out))
    state.update({k: torch.tensor(0) for k in weights.torch_buffers_without_keras(compiled)})
    model.load_state_dict(state, strict=True)
    x = np.random.default_rng(1).standard_normal((2, 64, 64, 3)).astype(np.float32)
    expected = np.asarray(reference(x, training=False))
    with torch.no_grad():
        got = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert np.max(np.abs(got - expected)) <= 1e-4 * max(1.0, np.max(np.abs(expected)))
    assert (got.argmax(-1) == expected.argmax(-1)).all()


def test_convert_round_trip_through_every_format(tmp_path: Path) -> None:
    compiled = compile_spec("cifar_resnet20")
    torch_module, _ = parity.import_targets(compiled)
    model = torch_module.build_model()
    parity.randomize_torch(compiled, model, seed=7)
    start = tmp_path / "start.pt"
    torch.save(model.state_dict(), start)
    steps = [
        ("torch", start, "keras", tmp_path / "a.h5"),
        ("keras", tmp_path / "a.h5", "keras", tmp_path / "b.safetensors"),
        ("keras", tmp_path / "b.safetensors", "keras", tmp_path / "c.weights.h5"),
        ("keras", tmp_path / "c.weights.h5", "torch", tmp_path / "d.safetensors"),
        ("torch", tmp_path / "d.safetensors", "torch", tmp_path / "e.pth"),
    ]
    for source, src, target, dst in steps:
        weights_io.convert(compiled, source, src, target, dst)
    final = torch.load(tmp_path / "e.pth", weights_only=True)
    for key, value in model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(final[key], value), key


def test_convert_errors_are_clear(tmp_path: Path) -> None:
    wrong = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18().state_dict(), wrong)
    result = convert_cli("resnet34", "torch", wrong, "keras", tmp_path / "x.h5")
    assert result.exit_code == 2
    assert f"{wrong}: error: the weights do not fit spec 'resnet34' (" in result.stderr
    assert f"{wrong}: error: missing: layer1.2.conv1.weight (64, 64, 3, 3)" in result.stderr
    result = convert_cli("resnet18", "torch", wrong, "keras", tmp_path / "x.npz")
    assert result.exit_code == 2 and "unknown weight file type" in result.stderr
    assert "Traceback" not in result.stderr


def test_convert_is_quiet_and_blames_the_output_file_at_fault(tmp_path: Path) -> None:
    """No TensorFlow or absl log lines on stderr, only resgen's own line; a bad output name is
    reported against the output file, not the input."""
    import subprocess
    import sys

    compiled = compile_spec("cifar_resnet20")
    torch_module, _ = parity.import_targets(compiled)
    start = tmp_path / "start.pt"
    torch.save(torch_module.build_model().state_dict(), start)
    out = tmp_path / "out.weights.h5"
    command = [sys.executable, "-m", "resgen", "weights", "convert", "cifar_resnet20"]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run(
        [*command, "--from", "torch", str(start), "--to", "keras", str(out)],
        capture_output=True, text=True, timeout=600, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [f"wrote {proc.stderr.split()[1]} tensors to {out}"]
    result = convert_cli("cifar_resnet20", "torch", start, "keras", tmp_path / "x.npz")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{tmp_path / 'x.npz'}: error: unknown weight file type")
