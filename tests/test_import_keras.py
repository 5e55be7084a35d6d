"""Importing Keras models: keras.applications' ResNets and resgen's own generated Keras files become
specs of the same network (`resgen diff` says so, and keras.applications' weights give the same
outputs in the generated model); what no spec expresses is refused, naming the layer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from resgen import api  # noqa: E402
from resgen.compiler import Compiled  # noqa: E402
from resgen.diffs import SpecDiff  # noqa: E402
from resgen.generated_module import import_generated  # noqa: E402
from resgen.importers.errors import NotExpressible  # noqa: E402
from resgen.importers.keras_model import spec_from_keras  # noqa: E402
from resgen.load import preset_names  # noqa: E402
from resgen.spec import Spec  # noqa: E402
from tests.helpers import randomize_keras_batch_norm  # noqa: E402

APPLICATIONS = {
    "ResNet50": "keras_resnet50",
    "ResNet50V2": "keras_resnet50v2",
    "ResNet101": "keras_resnet101",
    "ResNet101V2": "keras_resnet101v2",
    "ResNet152": "keras_resnet152",
    "ResNet152V2": "keras_resnet152v2",
}
FAST_APPLICATIONS = ("ResNet50", "ResNet50V2")
ROUND_TRIP = (
    "cifar_resnet20",
    "resnet18",
    "resnet50d",
    "seresnext50_32x4d",
    "resnetv2_50x1_bit",
    "rosebrock_cifar10",
)
SIZE = (65, 71)  # odd, and not square: every padding and stride convention shows


def _params(names: Any, fast: tuple[str, ...]) -> list[Any]:
    return [pytest.param(n, marks=() if n in fast else pytest.mark.slow) for n in names]


def assert_same_network(data: dict[str, Any], preset: Compiled | str) -> SpecDiff:
    d = api.diff(data, preset)
    changes = [(c.where, c.old, c.new) for c in d.network_changes]
    graph = (d.graph.added[:5], d.graph.removed[:5], [(c.name, c.attrs) for c in d.graph.changed[:5]])
    assert d.same, f"{changes}; layers added, removed, changed: {graph}"
    return d


def _import(model: Any, name: str, source: str, input_size: tuple[int, int] | None = None) -> dict[str, Any]:
    imported = spec_from_keras(model, name=name, input_size=input_size, source=source)
    Spec.model_validate(imported.data)  # valid as a file holds it
    assert imported.source == source and imported.notes
    return imported.data


@pytest.mark.parametrize("app", _params(APPLICATIONS, FAST_APPLICATIONS))
def test_keras_applications_import_as_the_shipped_preset(app: str) -> None:
    """keras.applications' ResNet imports to its preset's network; its weights, loaded by layer name
    into the model generated from the imported spec, give the same outputs (same framework: 1e-5)."""
    rng = np.random.default_rng(3)
    reference = getattr(keras.applications, app)(weights=None, input_shape=(*SIZE, 3))
    randomize_keras_batch_norm(reference, rng)
    data = _import(reference, "imported", f"keras:{app}")
    assert data["input"] == {"height": SIZE[0], "width": SIZE[1], "channels": 3}
    d = assert_same_network(data, api.compile(APPLICATIONS[app], input_size=SIZE))
    assert d.same  # keras.applications pads its max-pool with zeros, as the presets say

    model = import_generated(api.render(data, "keras"), "imported").build_model()
    ref_weighted = {layer.name: layer for layer in reference.layers if layer.weights}
    gen_weighted = {layer.name: layer for layer in model.layers if layer.weights}
    assert set(ref_weighted) == set(gen_weighted)
    for layer_name, layer in ref_weighted.items():
        gen_weighted[layer_name].set_weights(layer.get_weights())
    x = rng.normal(0.0, 1.0, (2, *SIZE, 3)).astype("float32")
    probe = ["avg_pool", "predictions"]
    expected = keras.Model(reference.input, [reference.get_layer(n).output for n in probe])(x, training=False)
    got = keras.Model(model.input, [model.get_layer(n).output for n in probe])(x, training=False)
    for e, g in zip(expected, got, strict=True):
        e, g = keras.ops.convert_to_numpy(e), keras.ops.convert_to_numpy(g)
        diff = float(np.abs(g - e).max())
        print(f"{app}: max |diff| {diff:.3g} (max |ref| {float(np.abs(e).max()):.3g})")
        assert diff <= 1e-5 * max(1.0, float(np.abs(e).max()))


OTHER_PRESETS = [p for p in preset_names() if p not in ROUND_TRIP]


@pytest.mark.parametrize(
    "preset", [*ROUND_TRIP, *(pytest.param(p, marks=pytest.mark.slow) for p in OTHER_PRESETS)]
)
def test_generated_keras_file_imports_as_its_preset(preset: str) -> None:
    """Render a preset for Keras, build it, import it: the same network as the preset."""
    model = import_generated(api.render(preset, "keras"), preset).build_model()
    data = _import(model, preset, f"{preset}.py:build_model")
    assert_same_network(data, preset)
    # the order of the layers, which Keras' weight files follow, is kept too (Rosebrock's differs)
    order = api.compile(preset).graph.network.keras_layer_order
    assert data.get("keras_layer_order", "keras_applications") == order


# --- refusals ------------------------------------------------------------------------------------


def _tiny(branch: Any, *, operations: bool = False) -> Any:
    """A stem and one residual block whose branch `branch(x)` builds; a head after it. With
    `operations`, the block adds and activates with keras.ops functions rather than layers."""
    layers = keras.layers
    inputs = keras.Input((32, 32, 3), name="input")
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    if operations:
        x = keras.ops.relu(keras.ops.add(branch(x), x))
    else:
        x = layers.Add(name="block1_add")([branch(x), x])
        x = layers.Activation("relu", name="block1_out")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, layers.Dense(10, name="predictions")(x))


def _conv_bn(x: Any, name: str, *, relu: bool) -> Any:
    layers = keras.layers
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x) if relu else x


@pytest.mark.parametrize("operations", [False, True])
def test_a_plain_block_imports(operations: bool) -> None:
    """The control for the refusals below: the same model with a plain basic block is a spec, also
    where it adds and activates with keras.ops functions (they are read as the layers they equal)."""
    model = _tiny(
        lambda x: _conv_bn(_conv_bn(x, "block1_1", relu=True), "block1_2", relu=False), operations=operations
    )
    data = _import(model, "tiny", "tiny.py:build")
    assert data["block"] == {"kind": "basic"}
    assert data["stages"] == [{"blocks": 1, "filters": 16, "stride": 1}]
    assert data["stem"] == {"kind": "conv", "filters": 16, "kernel_size": 3, "stride": 1, "norm": True}
    assert data["head"] == {"kind": "global_pool", "classes": 10}
    assert data["keras_layer_order"] == "rosebrock"  # Add([branch, x]): the residual branch first


def test_a_depthwise_convolution_in_a_block_is_refused_by_name() -> None:
    def branch(x: Any) -> Any:
        x = _conv_bn(x, "block1_1", relu=True)
        x = keras.layers.DepthwiseConv2D(3, padding="same", name="block1_dw")(x)
        return keras.layers.BatchNormalization(name="block1_dw_bn")(x)

    with pytest.raises(NotExpressible) as caught:
        spec_from_keras(_tiny(branch), name="tiny", input_size=None, source="tiny.py:build")
    assert caught.value.where == "block1_dw"
    assert "DepthwiseConv2D" in caught.value.construct


def test_a_concatenation_is_refused_by_name() -> None:
    def branch(x: Any) -> Any:
        a = _conv_bn(x, "block1_a", relu=True)
        b = _conv_bn(x, "block1_b", relu=True)
        x = keras.layers.Concatenate(name="block1_cat")([a, b])
        return _conv_bn(x, "block1_2", relu=False)

    with pytest.raises(NotExpressible) as caught:
        spec_from_keras(_tiny(branch), name="tiny", input_size=None, source="tiny.py:build")
    assert caught.value.where == "block1_cat"
    assert str(caught.value).startswith("block1_cat: Concatenate")


def test_a_block_of_four_convolutions_is_refused_at_its_addition() -> None:
    def branch(x: Any) -> Any:
        for i in range(1, 5):
            x = _conv_bn(x, f"block1_{i}", relu=i < 4)
        return x

    with pytest.raises(NotExpressible) as caught:
        spec_from_keras(_tiny(branch), name="tiny", input_size=None, source="tiny.py:build")
    assert caught.value.where == "block1_add"
    assert "4 convolutions" in caught.value.construct


def test_additions_in_both_orders_are_refused_at_the_first_that_differs() -> None:
    layers = keras.layers
    inputs = keras.Input((32, 32, 3), name="input")
    x = _conv_bn(inputs, "stem", relu=True)
    for i, residual_first in ((1, True), (2, False)):
        branch = _conv_bn(_conv_bn(x, f"block{i}_1", relu=True), f"block{i}_2", relu=False)
        x = layers.Add(name=f"block{i}_add")([branch, x] if residual_first else [x, branch])
        x = layers.Activation("relu", name=f"block{i}_out")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    model = keras.Model(inputs, layers.Dense(10, name="predictions")(x))
    with pytest.raises(NotExpressible) as caught:
        spec_from_keras(model, name="tiny", input_size=None, source="tiny.py:build")
    assert caught.value.where == "block2_add"
    assert "different orders" in caught.value.construct


def test_input_size_comes_from_the_model_or_the_caller() -> None:
    module = import_generated(api.render("cifar_resnet20", "keras"), "cifar_resnet20")
    model = module.build_model(input_shape=(None, None, 3))
    with pytest.raises(NotExpressible, match="input size is not fixed"):
        spec_from_keras(model, name="cifar_resnet20", input_size=None, source="cifar.py:build_model")
    data = _import(model, "cifar_resnet20", "cifar.py:build_model", input_size=(40, 48))
    assert data["input"] == {"height": 40, "width": 48, "channels": 3}
    assert api.diff(data, api.compile("cifar_resnet20", input_size=(40, 48))).same


def _variant(preset: str, **changes: dict[str, Any]) -> dict[str, Any]:
    data = api.compile(preset).spec.model_dump(mode="json")
    for key, value in changes.items():
        data[key] = {**data[key], **value}
    return data


VARIANTS = {
    "training_parts": _variant(
        "resnet18",
        regularization={"drop_path": 0.1, "l2": 1e-4, "head": 5e-4},
        head={"dropout": 0.2},
        init={"zero_init_last": True},
        input={"height": 64, "width": 64},
    ),
    "preactivation_basic_se": _variant(
        "cifar_resnet20",
        block={"preactivation": True, "attention": {"kind": "se", "ratio": 0.25, "divisor": 8}},
        regularization={"drop_path": 0.2},
    ),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_field_of_a_variant_comes_back(variant: str) -> None:
    """Drop path, dropout, L2 by role, zero_init_last, attention in pre-activation blocks: each is
    read back into the field it came from, not only into an equal layer graph."""
    data = VARIANTS[variant]
    model = import_generated(api.render(data, "keras"), data["name"]).build_model()
    d = assert_same_network(_import(model, data["name"], "variant.py:build_model"), data)
    assert [c.where for c in d.changes if c.where != "description"] == []


def test_a_drop_path_rate_off_the_linear_schedule_is_refused_at_its_block() -> None:
    data = VARIANTS["training_parts"]
    model = import_generated(api.render(data, "keras"), data["name"]).build_model()
    drops = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout) and layer.noise_shape]
    drops[2].rate = 0.5  # the third block's: the schedule has 0.1 * 2 / 7
    with pytest.raises(NotExpressible, match=r"drop-path rate of 0\.5") as caught:
        spec_from_keras(model, name="resnet18", input_size=None, source="variant.py:build_model")
    assert caught.value.where == "conv3_block1_add"
