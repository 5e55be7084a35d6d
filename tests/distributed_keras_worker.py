"""The Keras data-parallel checks of tests/test_distributed_keras.py, in a process of their own: Keras on
its JAX backend with two host CPU devices, which must be chosen before JAX and Keras are imported.

    KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 JAX_ENABLE_X64=1 \\
        python -m tests.distributed_keras_worker SPEC OUT.json

SPEC: a preset name or a spec file. It trains the generated Keras model one SGD step on a batch
whose two halves come from different distributions, on one device and under
keras.distribution.DataParallel over the two devices, from the same weights, and writes what the test
asserts: the largest differences of the weights and of the BatchNorm moving statistics, and how far
the statistics of one half alone are from the whole batch's. Then it runs resgen's train-step
parity (`resgen.parity_train.check_training`, torch on the whole batch against Keras) with
DataParallel in force, in float64.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any

import numpy as np

BATCH = 8
LR = 0.1


def _check_environment() -> None:
    if os.environ.get("KERAS_BACKEND") != "jax":
        raise SystemExit("run with KERAS_BACKEND=jax")
    import jax

    if len(jax.devices("cpu")) < 2:
        raise SystemExit("run with XLA_FLAGS=--xla_force_host_platform_device_count=2")


def _batch(shape: tuple[int, ...], classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, *shape)).astype("float32")
    x[BATCH // 2 :] = 3.0 * x[BATCH // 2 :] + 1.5  # the second device's half: another distribution
    return x, rng.integers(0, classes, size=BATCH)


def _trained(build: Any, start: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> Any:
    import keras

    model = build()
    model.set_weights(start)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=LR),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.train_on_batch(x, y)
    return model


def _statistics(model: Any) -> dict[str, np.ndarray]:
    import keras

    return {
        f"{layer.name}/{v.name}": np.asarray(v.numpy(), dtype=np.float64)
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
        for v in layer.non_trainable_variables
    }


def _max_diff(a: list[np.ndarray] | dict[str, np.ndarray], b: Any) -> float:
    pairs = zip(a.values(), b.values(), strict=True) if isinstance(a, dict) else zip(a, b, strict=True)
    return max(float(np.max(np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64)))) for p, q in pairs)


def one_step(spec: str) -> dict[str, Any]:
    """One device against DataParallel over two, from the same weights, float32."""
    import keras

    import resgen
    from resgen.generated_module import import_generated

    compiled = resgen.compile(spec)
    module = import_generated(resgen.render(compiled, "keras"), "data_parallel")
    keras.utils.set_random_seed(0)
    start = module.build_model().get_weights()
    x, y = _batch(compiled.graph.input_hwc, compiled.graph.classes or 1)
    single = _trained(module.build_model, start, x, y)
    half = _trained(module.build_model, start, x[: BATCH // 2], y[: BATCH // 2])
    devices = keras.distribution.list_devices("cpu")
    distribution = keras.distribution.DataParallel(devices=devices)
    with distribution.scope():
        parallel = _trained(module.build_model, start, x, y)
    kernel = parallel.trainable_variables[0].value
    return {
        "devices": len(devices),
        "variable_devices": len(kernel.sharding.device_set),
        "max_weight_diff": _max_diff(single.trainable_weights, parallel.trainable_weights),
        "largest_update": _max_diff(single.trainable_weights, _start_trainable(single, start)),
        "max_statistics_diff": _max_diff(_statistics(single), _statistics(parallel)),
        "half_statistics_diff": _max_diff(_statistics(half), _statistics(parallel)),
    }


def _start_trainable(model: Any, start: list[np.ndarray]) -> list[np.ndarray]:
    """The starting values of `model`'s trainable weights (model.weights order -> trainable ones)."""
    by_id = {id(v): value for v, value in zip(model.weights, start, strict=True)}
    return [by_id[id(v)] for v in model.trainable_weights]


def across_frameworks(spec: str) -> dict[str, Any]:
    """resgen's train-step parity (torch on the whole batch, Keras) with DataParallel in force."""
    import keras

    import resgen
    from resgen import parity_train

    devices: list[int] = []
    transfer = parity_train.torch_to_keras_model

    def transfer_and_look(compiled: Any, torch_model: Any, keras_model: Any) -> None:
        """resgen's weight transfer, noting over how many devices the Keras variables lie."""
        devices.append(len(keras_model.trainable_variables[0].value.sharding.device_set))
        transfer(compiled, torch_model, keras_model)

    parity_train.torch_to_keras_model = transfer_and_look
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=keras.distribution.list_devices("cpu"))
    )
    try:
        report = parity_train.check_training(resgen.compile(spec), lr=LR, batch=BATCH, seed=0)
    finally:
        keras.distribution.set_distribution(None)
        parity_train.torch_to_keras_model = transfer
    return {
        "variable_devices": devices,
        "passed": report.passed,
        "loss_torch": report.loss_torch,
        "loss_keras": report.loss_keras,
        "max_update_diff": report.max_update_diff,
        "max_mean_diff": report.max_mean_diff,
        "max_var_diff": report.max_var_diff,
        "tolerance": report.tolerance,
    }


def main(argv: list[str]) -> None:
    spec, out = argv
    _check_environment()
    # torchvision's and Triton's C extensions crash the process when loaded after TensorFlow (which
    # Keras loads for its data utilities, even on JAX): load them first, as tests/conftest.py does.
    with contextlib.suppress(ImportError):
        import torchvision  # noqa: F401
    with contextlib.suppress(ImportError):
        import triton.runtime  # noqa: F401
    import keras

    result = {
        "backend": keras.backend.backend(),
        "one_step": one_step(spec),
        "parity": across_frameworks(spec),
    }
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
