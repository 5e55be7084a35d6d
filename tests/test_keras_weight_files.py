"""keras.applications' weight files load into the generated Keras models by the usual idiom.

Both of Keras' weight files place weights by position in ``model.layers``, not by name: the legacy
``.h5`` that ``model.save("x.h5")`` writes (and keras.applications publishes), loaded without
``by_name``, and Keras 3's ``.weights.h5`` (``layers/conv2d_3/vars/0``: class name and position).
So a plain ``model.load_weights(file)`` of a keras.applications ResNet's file must give the
generated model the same outputs, and the generated model's ``.weights.h5`` must load back into
keras.applications. 50-layer variants in the default lane, 101 and 152 in the slow lane. The
Rosebrock presets keep the order of the tutorial's ResNet.build (``keras_layer_order: rosebrock``),
whose files, with Keras' automatic layer names, load only by position.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from resgen.weights_h5 import keras_paths
from tests import helpers
from tests.helpers import randomize_keras_batch_norm
from tests.test_keras_target import SEED_CONFIGS, seed_build

keras = pytest.importorskip("keras")

KERAS_APPLICATIONS = {
    "keras_resnet50": "ResNet50",
    "keras_resnet50v2": "ResNet50V2",
    "keras_resnet101": "ResNet101",
    "keras_resnet101v2": "ResNet101V2",
    "keras_resnet152": "ResNet152",
    "keras_resnet152v2": "ResNet152V2",
}
PRESETS = [
    name if name.startswith("keras_resnet50") else pytest.param(name, marks=pytest.mark.slow)
    for name in KERAS_APPLICATIONS
]
SHAPE = (64, 64, 3)
# The same weights in the same operations: only the order of float32 sums may differ.
TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def _fresh_keras_session() -> Any:
    yield
    keras.backend.clear_session()


def _randomized(model: Any, rng: np.random.Generator) -> Any:
    """`model` with random BatchNorm statistics and random biases, so that weights placed on the
    wrong layer of the same shape change the outputs."""
    randomize_keras_batch_norm(model, rng)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense) and layer.use_bias:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0.0, 0.1, bias.shape).astype("float32")])
    return model


def _reference(name: str) -> Any:
    return getattr(keras.applications, KERAS_APPLICATIONS[name])(weights=None, input_shape=SHAPE)


def _generated(name: str) -> Any:
    return helpers.generated_module("keras", name).build_model(input_shape=SHAPE)


def _max_diff(a: Any, b: Any, features: tuple[str, str] = ("avg_pool", "avg_pool")) -> float:
    """The largest difference of the two models' outputs and features (the layers named)."""
    x = np.random.default_rng(1).normal(0.0, 1.0, (2, *a.input.shape[1:])).astype("float32")
    diffs = []
    for model, feature in zip((a, b), features, strict=True):
        probe = keras.Model(model.input, [model.get_layer(feature).output, model.output])
        diffs.append([keras.ops.convert_to_numpy(y) for y in probe(x, training=False)])
    return max(float(np.abs(u - v).max()) for u, v in zip(*diffs, strict=True))


def _weighted_groups(model: Any) -> list[tuple[str, str]]:
    """(group in a .weights.h5 file, layer name) of every layer with weights, in Keras' order."""
    return [(group, layer) for group, layer, count in keras_paths(model) if count]


def _save(model: Any, path: Path) -> None:
    """A `.h5` path gets Keras' legacy HDF5 file (weights keyed by layer and placed in order), a
    `.weights.h5` path Keras 3's weights file (layers named by class and position)."""
    if path.name.endswith(".weights.h5"):
        model.save_weights(path)
    else:
        model.save(path)


@pytest.mark.parametrize("name", PRESETS)
def test_layers_in_keras_applications_order(name: str) -> None:
    assert _weighted_groups(_generated(name)) == _weighted_groups(_reference(name))


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("suffix", [".h5", ".weights.h5"])
def test_keras_applications_file_loads_without_by_name(name: str, suffix: str, tmp_path: Path) -> None:
    reference = _randomized(_reference(name), np.random.default_rng(0))
    path = tmp_path / f"{name}{suffix}"
    _save(reference, path)
    model = _generated(name)
    model.load_weights(path)
    diff = _max_diff(model, reference)
    print(f"{name}{suffix} into the generated model: max |diff| {diff:.3g}")
    assert diff <= TOLERANCE


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("suffix", [".h5", ".weights.h5"])
def test_generated_file_loads_into_keras_applications(name: str, suffix: str, tmp_path: Path) -> None:
    model = _randomized(_generated(name), np.random.default_rng(2))
    path = tmp_path / f"{name}{suffix}"
    _save(model, path)
    reference = _reference(name)
    reference.load_weights(path)
    diff = _max_diff(reference, model)
    print(f"{name}{suffix} into keras.applications: max |diff| {diff:.3g}")
    assert diff <= TOLERANCE


@pytest.mark.parametrize("name", sorted(SEED_CONFIGS))
@pytest.mark.parametrize("suffix", [".h5", ".weights.h5"])
def test_rosebrock_tutorial_file_loads_by_position(name: str, suffix: str, tmp_path: Path) -> None:
    seed = _randomized(seed_build(**SEED_CONFIGS[name][0]), np.random.default_rng(3))
    path = tmp_path / f"{name}{suffix}"
    _save(seed, path)
    model = helpers.generated_module("keras", name).build_model()
    model.load_weights(path)
    flatten = next(layer.name for layer in seed.layers if isinstance(layer, keras.layers.Flatten))
    diff = _max_diff(model, seed, ("flatten", flatten))
    print(f"{name}{suffix} from the tutorial's network: max |diff| {diff:.3g}")
    assert diff <= TOLERANCE
