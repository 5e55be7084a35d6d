"""Data-parallel training of the generated Keras model on the JAX backend (issue 17).

tests/distributed_keras_worker.py runs in its own process with KERAS_BACKEND=jax and two host CPU
devices (XLA_FLAGS=--xla_force_host_platform_device_count=2), so that this process keeps its own
backend. Under keras.distribution.DataParallel over the two devices, with the two halves of the batch
drawn from different distributions:

- the BatchNorm moving statistics after one step are the whole batch's (those of one device on the
  whole batch, not those of either half): Keras on JAX computes them across devices;
- one SGD step equals the one-device step within 1e-5 (float32);
- resgen's train-step parity (`resgen.parity_train`, float64) holds with DataParallel in force: Keras
  over two devices and torch on the whole batch (what DDP with SyncBatchNorm computes) take the same
  step from the same weights, moved by resgen's weight transfer.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.distributed_processes import python_env, run_processes

STEP_TOLERANCE = 1e-5  # float32, relative to the largest update

# A small network for the default lane: cifar_resnet20's design with one block per stage, at 16x16.
SMALL_SPEC = {
    "format_version": 1,
    "name": "cifar_resnet8_small",
    "description": "ResNet-8 for the data-parallel tests: cifar_resnet20 with one block per stage",
    "input": {"height": 16, "width": 16, "channels": 3},
    "stem": {"kind": "conv", "filters": 16, "kernel_size": 3, "stride": 1, "norm": True},
    "block": {"kind": "basic"},
    "stages": [
        {"blocks": 1, "filters": 16, "stride": 1},
        {"blocks": 1, "filters": 32, "stride": 2},
        {"blocks": 1, "filters": 64, "stride": 2},
    ],
    "shortcut": {"kind": "zero_pad"},
    "norm": {"epsilon": 1e-5, "momentum": 0.9},
    "head": {"kind": "global_pool", "classes": 10, "output": "logits"},
}


def _data_parallel(spec: str, folder: Path) -> dict[str, Any]:
    for needed in ("jax", "keras", "torch"):
        if importlib.util.find_spec(needed) is None:
            pytest.skip(f"needs {needed}")
    out = folder / "result.json"
    env = python_env(
        KERAS_BACKEND="jax",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        JAX_ENABLE_X64="1",  # float64 for the train-step parity; the one-step checks run in float32
        JAX_PLATFORMS="cpu",
    )
    command = [sys.executable, "-m", "tests.distributed_keras_worker", spec, str(out)]
    finished = run_processes([command], [env], folder)
    assert finished.ok, finished.describe()
    return json.loads(out.read_text(encoding="utf-8"))


def _check(result: dict[str, Any], record_property: Any) -> None:
    assert result["backend"] == "jax"
    step = result["one_step"]
    assert step["devices"] == step["variable_devices"] == 2  # the variables live on both devices
    # (a) BatchNorm statistics: the whole batch's, and not one half's
    record_property("max_statistics_diff", step["max_statistics_diff"])
    assert step["max_statistics_diff"] <= STEP_TOLERANCE
    assert step["half_statistics_diff"] > 1e-2
    # (b) the step: the one-device step
    relative = step["max_weight_diff"] / step["largest_update"]
    record_property("max_rel_step_diff", relative)
    assert step["largest_update"] > 1e-3 and relative <= STEP_TOLERANCE
    # (c) across frameworks, float64: Keras DataParallel over two devices and torch on the whole batch
    parity = result["parity"]
    assert parity["variable_devices"] == [2]  # the Keras model it trained lay on both devices
    record_property("parity_max_update_diff", parity["max_update_diff"])
    assert parity["passed"], parity


def test_keras_data_parallel_on_jax_small_model(tmp_path: Path, record_property: Any) -> None:
    spec = tmp_path / "small.json"
    spec.write_text(json.dumps(SMALL_SPEC), encoding="utf-8")
    _check(_data_parallel(str(spec), tmp_path), record_property)


@pytest.mark.slow
def test_keras_data_parallel_on_jax_cifar_resnet20(tmp_path: Path, record_property: Any) -> None:
    _check(_data_parallel("cifar_resnet20", tmp_path), record_property)
