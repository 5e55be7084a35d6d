"""The generated Keras ResNet50 against keras.applications.ResNet50 (forward), same weights.

The generated model takes keras.applications' weights by layer name, so both compute the same
function; the largest output difference is recorded. Two ways of running a forward pass are
timed: ``model(x, training=False)`` (eager, layer by layer: shows any Python work per layer)
and ``model.predict_on_batch(x)`` (the compiled predict function). Then the generated model
compiled with ``jit_compile=True`` (XLA) against ``jit_compile=False``, at the largest batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from timing import compare

from resgen.compiler import compile_spec
from resgen.generate import render
from resgen.generated_module import import_generated

PRESET = "keras_resnet50"
SAMPLE_S = 0.25  # shortest sample: TensorFlow's timings on a small machine are noisy


def twins(side: int) -> tuple[keras.Model, keras.Model]:
    """(generated, keras.applications.ResNet50) with the same weights (copied by layer name)."""
    keras.utils.set_random_seed(0)
    module = import_generated(render(compile_spec(PRESET), "keras"), "resgen_bench_keras_resnet50")
    model = module.build_model(input_shape=(side, side, 3))
    reference = keras.applications.ResNet50(weights=None, input_shape=(side, side, 3))
    for layer in reference.layers:
        if layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())
    return model, reference


def _call(model: keras.Model, x: np.ndarray) -> Callable[[], object]:
    def run() -> object:
        return model(x, training=False)

    return run


def _predict(model: keras.Model, x: np.ndarray) -> Callable[[], object]:
    def run() -> object:
        return model.predict_on_batch(x)

    return run


def comparisons(side: int, batches: list[int], reps: int) -> list[dict[str, Any]]:
    model, reference = twins(side)
    for m in (model, reference):
        m.compile(jit_compile=False)
    rows = []
    for batch in batches:
        x = np.random.default_rng(batch).standard_normal((batch, side, side, 3)).astype("float32")
        expected = reference.predict_on_batch(x)
        diff = {
            "max_abs_diff": float(np.abs(model.predict_on_batch(x) - expected).max()),
            "max_abs_output": float(np.abs(expected).max()),
        }
        for how, make in (("model(x, training=False)", _call), ("predict_on_batch", _predict)):
            c = compare(make(model, x), make(reference, x), reps=reps, min_sample_s=SAMPLE_S)
            rows.append(
                {
                    "kind": f"eval forward, {how}",
                    "a": f"generated {PRESET}",
                    "b": "keras.applications.ResNet50",
                    "batch": batch,
                    "side": side,
                    **diff,
                    **c.to_json(),
                }
            )
            print(f"  keras ResNet50 {how} b{batch}: ratio {c.ratio:.3f}", flush=True)
    return rows + jit_comparison(model, side, max(batches), reps)


def jit_comparison(model: keras.Model, side: int, batch: int, reps: int) -> list[dict[str, Any]]:
    """The generated model's predict with jit_compile=True (XLA) against jit_compile=False."""
    x = np.random.default_rng(0).standard_normal((batch, side, side, 3)).astype("float32")
    plain = keras.models.clone_model(model)
    plain.set_weights(model.get_weights())
    plain.compile(jit_compile=False)
    model.compile(jit_compile=True)
    expected = plain.predict_on_batch(x)
    diff = {
        "max_abs_diff": float(np.abs(model.predict_on_batch(x) - expected).max()),
        "max_abs_output": float(np.abs(expected).max()),
    }
    c = compare(_predict(model, x), _predict(plain, x), reps=reps, min_sample_s=SAMPLE_S)
    print(f"  keras ResNet50 jit_compile b{batch}: ratio {c.ratio:.3f}", flush=True)
    return [
        {
            "kind": "jit_compile=True vs False, predict_on_batch",
            "a": f"generated {PRESET} (XLA)",
            "b": f"generated {PRESET}",
            "batch": batch,
            "side": side,
            **diff,
            **c.to_json(),
        }
    ]
