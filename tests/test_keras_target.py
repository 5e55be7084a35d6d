"""The Keras 3 target: generated models build, match the graph, and are the networks they claim.

- every golden builds; each graph node's shape equals its Keras layer's output shape, the weight
  counts equal the graph's totals, and every layer carries the settings the spec states;
- the six keras_* presets are keras.applications' ResNets: weights copied by layer name give the
  same pooled features and outputs;
- the two rosebrock_* presets are the seed's ``ResNet.build`` (re-implemented below from the
  tutorial's description), layer for layer;
- option-A models survive save/load, rendering is byte-identical under two hash seeds, one training
  step gives a finite loss, and no generated file imports tensorflow.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import resgen
from resgen import load
from resgen.compiler import Compiled, compile_document, compile_spec
from resgen.generate import render
from resgen.graph import (
    AvgPool,
    BatchNorm,
    Conv2d,
    Dense,
    Dropout,
    GroupNorm,
    MaxPool,
    PadMode,
    PadValue,
    ZeroPadShortcut,
)
from resgen.naming import keras_name, keras_names, keras_pad_name
from tests import helpers
from tests.helpers import (
    assert_ruff_clean,
    channels_last,
    generated_text,
    preset_params,
    randomize_keras_batch_norm,
    render_in_subprocess,
)

keras = pytest.importorskip("keras")

PRESETS = load.preset_names()
KERAS_APPLICATIONS = {
    "keras_resnet50": "ResNet50",
    "keras_resnet101": "ResNet101",
    "keras_resnet152": "ResNet152",
    "keras_resnet50v2": "ResNet50V2",
    "keras_resnet101v2": "ResNet101V2",
    "keras_resnet152v2": "ResNet152V2",
}
# Large ImageNet inputs are scaled down for speed; 72 gives even and odd feature maps (36, 18, 9, 5).
SMALL_SIDE = 72


def tolerance(reference: np.ndarray) -> float:
    """DESIGN.md: max|a - b| <= 1e-4 * max(1, max|b|) on CPU float32."""
    return 1e-4 * max(1.0, float(np.abs(reference).max()))


@pytest.fixture(autouse=True)
def _fresh_keras_session() -> Any:
    yield
    keras.backend.clear_session()


def generated_module(name: str) -> ModuleType:
    return helpers.generated_module("keras", name)


def compile_at(name: str, side: int | None) -> Compiled:
    """The preset compiled as it is, or with its input resized to side x side."""
    return resgen.compile(name, input_size=None if side is None else (side, side))


# Floor-mode anti-aliasing pools meet ceil-mode shortcut pools: every map they meet must be even.
EVEN_SIDE = {"resnetaa50d": 64}


def build_side(name: str) -> int | None:
    height = compile_spec(name).spec.input.height
    return EVEN_SIDE.get(name, SMALL_SIDE) if height > SMALL_SIDE else None


def build(name: str, side: int | None) -> Any:
    module = generated_module(name)
    if side is None:
        return module.build_model()
    return module.build_model(input_shape=(side, side, module.INPUT_SHAPE[2]))


def count(weights: list[Any]) -> int:
    return sum(int(np.prod(w.shape)) for w in weights)


# --- the backend ---------------------------------------------------------------------------------


def test_generated_source_imports_only_keras_and_stdlib() -> None:
    for name in PRESETS:
        text = generated_text("keras", name)
        tree = ast.parse(text)
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add((node.module or "").split(".")[0])
        assert "tensorflow" not in imported, name
        assert imported <= {"keras", "math", "sys"}, (name, imported)  # math: ECA's kernel rule
        assert "tensorflow" not in text, name


# Shallow and deep presets of one design: their files must be as long, whatever the depth.
SAME_DESIGN = [
    ("cifar_resnet20", "cifar_resnet1202"),
    ("resnet50", "resnet152"),
    ("resnet50d", "resnet200d"),
    ("seresnext50_32x4d", "seresnext101_32x8d"),
]


def test_file_grows_with_stages_not_depth() -> None:
    lines = {name: len(generated_text("keras", name).splitlines()) for name in PRESETS}
    for short, deep in SAME_DESIGN:
        assert abs(lines[deep] - lines[short]) < 10, (short, deep)
    assert max(lines.values()) < 400, max(lines.items(), key=lambda kv: kv[1])


@pytest.mark.parametrize("seed_pair", [("0", "1")])
@pytest.mark.parametrize("name", ["cifar_resnet20", "keras_resnet50v2", "rosebrock_cifar10"])
def test_render_is_byte_identical_under_hash_seeds(name: str, seed_pair: tuple[str, str]) -> None:
    outputs = [render_in_subprocess(name, "keras", seed) for seed in seed_pair]
    assert outputs[0] == outputs[1]
    assert outputs[0] == generated_text("keras", name).encode("utf-8")


def test_odd_spec_text_renders_clean_code(tmp_path: Path) -> None:
    """A long description with both quote kinds and a backslash, a dropout head: still ruff-clean."""
    data = dict(load.load("resnet18").data)
    data["description"] = (
        'A "quoted" description with the seed\'s words, a back\\slash, ünïcode and enough words '
        + "to need more than one line of source " * 4
    )
    data["head"] = {**data["head"], "dropout": 0.25}
    compiled = compile_document(load.parse(json.dumps(data).encode(), "odd.json", json_input=True))
    text = render(compiled, "keras")
    path = tmp_path / "odd.py"
    path.write_text(text, encoding="utf-8")
    assert_ruff_clean(path)
    namespace: dict[str, Any] = {}
    exec(compile(text, str(path), "exec"), namespace)
    assert namespace["DESCRIPTION"] == data["description"]
    model = namespace["build_model"](input_shape=(64, 64, 3))
    assert model.get_layer("dropout").rate == 0.25


# --- every preset: shapes, counts, settings ---------------------------------------------------------


def _check_settings(compiled: Compiled, by_name: dict[str, Any]) -> None:
    """Every layer carries what its graph layer states (structural: epsilon 1e-5 vs 1.001e-5 is
    invisible in outputs, so it is checked by value)."""
    graph = compiled.graph
    net = graph.network
    for x in graph:
        node, op = x.name, x.op
        layer = by_name[keras_name(graph, node)]
        if isinstance(op, Conv2d):
            k, s = op.kernel_size, op.stride
            assert layer.kernel_size == (k, k) and layer.strides == (s, s), node
            assert layer.groups == op.groups and layer.use_bias == op.bias, node
            assert layer.data_format == "channels_last", node
            standardized = op.standardize is not None
            assert (type(layer).__name__ == "StdConv2D") == standardized, node
            assert getattr(layer, "ws_epsilon", None) == op.standardize, node
            _check_l2(layer, net.l2.of(x.l2_role), node)
            pads = compiled.analysis[node].padding
            if op.padding is PadMode.TF_SAME and k > 1:
                assert layer.padding == "same", node
            elif layer.padding == "same":
                assert s == 1 and pads == ((k // 2, k // 2), (k // 2, k // 2)), node
            elif k > 1:
                pad = by_name[keras_pad_name(layer.name)]
                assert tuple(map(tuple, pad.padding)) == pads, node
        elif isinstance(op, GroupNorm):
            assert (layer.groups, layer.epsilon) == (op.groups, net.norm.epsilon), node
        elif isinstance(op, BatchNorm):
            assert layer.epsilon == net.norm.epsilon and layer.momentum == net.norm.momentum, node
            assert layer.axis in (-1, 3), node
        elif isinstance(op, MaxPool):
            k, s, p = op.kernel_size, op.stride, op.padding
            assert layer.pool_size == (k, k) and layer.strides == (s, s) and layer.padding == "valid", node
            pad = by_name[keras_pad_name(layer.name)] if p else None
            if pad is not None and type(pad).__name__ == "NegInfPadding2D":  # -inf, as nn.MaxPool2d pads
                assert op.pad_value is PadValue.NEG_INF and pad.padding == p, node
            elif pad is not None:
                assert tuple(map(tuple, pad.padding)) == ((p, p), (p, p)), node
        elif isinstance(op, AvgPool):
            k, s = op.kernel_size, op.stride
            assert layer.pool_size == (k, k) and layer.strides == (s, s), node
            # ceil mode: TensorFlow's "same" pads only at the end, and excludes it from the average
            assert layer.padding == ("same" if op.ceil_mode else "valid"), node
        elif isinstance(op, Dense):
            assert layer.units == op.out_features and layer.use_bias == op.bias, node
            _check_l2(layer, net.l2.of(x.l2_role), node)
            fused = [graph[c].kind for c in graph.consumers(node)] == ["softmax"]
            assert layer.get_config()["activation"] == ("softmax" if fused else "linear"), node
        elif isinstance(op, Dropout):
            assert layer.rate == op.rate, node
        elif isinstance(op, ZeroPadShortcut):
            config = layer.get_config()
            expected = (op.stride, op.pad_before, op.pad_after)
            assert (config["stride"], config["pad_before"], config["pad_after"]) == expected, node


def _check_l2(layer: Any, l2: float, node: str) -> None:
    if l2 > 0:
        assert isinstance(layer.kernel_regularizer, keras.regularizers.L2), node
        assert layer.kernel_regularizer.l2 == pytest.approx(l2), node
    else:
        assert layer.kernel_regularizer is None, node


@pytest.mark.parametrize("name", preset_params(PRESETS))
def test_golden_builds_with_predicted_shapes_counts_and_settings(name: str) -> None:
    side = build_side(name)
    compiled = compile_at(name, side)
    graph = compiled.graph
    model = build(name, side)
    by_name = {layer.name: layer for layer in model.layers}
    mismatched = []
    for x in graph:
        layer = by_name[keras_name(graph, x.name)]
        runtime = tuple(layer.output.shape[1:])
        shape = compiled.analysis.shape(x.name)
        if x.kind == "channel_conv1d":  # ECA's Conv1D reads the (1, 1, C) map as a (C, 1) sequence
            runtime = (*runtime[:-2], 1, 1, runtime[-2]) if runtime[-1] == 1 else runtime
            runtime = runtime[-3:]
        if runtime != channels_last(shape):
            mismatched.append(f"{x.name}: graph {shape} (C,H,W), keras {runtime}")
    assert not mismatched, "\n".join(mismatched)

    expected = compiled.analysis.totals()
    assert count(model.trainable_weights) == expected["params"]
    assert count(model.non_trainable_weights) == expected["non_trainable_params"]
    if side is not None and compiled.spec.head.kind == "global_pool":
        assert compile_spec(name).analysis.totals()["params"] == expected["params"]
    _check_settings(compiled, by_name)
    # every weight-carrying layer is a graph node: names are the graph's, nothing extra
    weighted = {layer.name for layer in model.layers if layer.weights}
    assert weighted <= set(keras_names(graph).values())


# --- keras.applications ------------------------------------------------------------------------


def outputs_of(model: Any, names: list[str], x: np.ndarray) -> list[np.ndarray]:
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    return [keras.ops.convert_to_numpy(y) for y in probe(x, training=False)]


@pytest.mark.parametrize("name", preset_params(sorted(KERAS_APPLICATIONS)))
def test_keras_applications_weights_load_by_name_and_outputs_match(name: str) -> None:
    rng = np.random.default_rng(0)
    shape = (64, 64, 3)
    reference = getattr(keras.applications, KERAS_APPLICATIONS[name])(weights=None, input_shape=shape)
    randomize_keras_batch_norm(reference, rng)
    model = generated_module(name).build_model(input_shape=shape)

    ref_weighted = {layer.name: layer for layer in reference.layers if layer.weights}
    gen_weighted = {layer.name: layer for layer in model.layers if layer.weights}
    assert set(ref_weighted) == set(gen_weighted)
    for layer_name, layer in ref_weighted.items():
        gen_weighted[layer_name].set_weights(layer.get_weights())
    assert count(model.trainable_weights) == count(reference.trainable_weights)
    assert count(model.non_trainable_weights) == count(reference.non_trainable_weights)

    x = rng.normal(0.0, 1.0, (2, *shape)).astype("float32")
    ref_pool, ref_out = outputs_of(reference, ["avg_pool", "predictions"], x)
    gen_pool, gen_out = outputs_of(model, ["avg_pool", "predictions"], x)
    pool_diff = float(np.abs(gen_pool - ref_pool).max())
    out_diff = float(np.abs(gen_out - ref_out).max())
    scale = float(np.abs(ref_pool).max())
    print(f"{name}: max |diff| pooled {pool_diff:.3g} (max |ref| {scale:.3g}), outputs {out_diff:.3g}")
    assert pool_diff <= tolerance(ref_pool)
    assert out_diff <= tolerance(ref_out)
    assert (gen_out.argmax(-1) == ref_out.argmax(-1)).all()


# --- the seed: Rosebrock's ResNet.build, re-implemented from the tutorial ------------------------


def _seed_residual_module(
    data: Any,
    k: int,
    stride: tuple[int, int],
    *,
    red: bool = False,
    reg: float = 1e-4,
    eps: float = 2e-5,
    mom: float = 0.9,
) -> Any:
    """Pre-activation bottleneck: BN-ReLU, 1x1 K/4, BN-ReLU, 3x3 K/4 (stride), BN-ReLU, 1x1 K;
    with `red`, the shortcut is a strided 1x1 convolution of the first activation."""
    from keras import layers as kl

    def l2() -> Any:
        return keras.regularizers.l2(reg)

    shortcut = data
    act1 = kl.Activation("relu")(kl.BatchNormalization(axis=-1, epsilon=eps, momentum=mom)(data))
    conv1 = kl.Conv2D(int(k * 0.25), (1, 1), use_bias=False, kernel_regularizer=l2())(act1)
    act2 = kl.Activation("relu")(kl.BatchNormalization(axis=-1, epsilon=eps, momentum=mom)(conv1))
    conv2 = kl.Conv2D(
        int(k * 0.25), (3, 3), strides=stride, padding="same", use_bias=False, kernel_regularizer=l2()
    )(act2)
    act3 = kl.Activation("relu")(kl.BatchNormalization(axis=-1, epsilon=eps, momentum=mom)(conv2))
    conv3 = kl.Conv2D(k, (1, 1), use_bias=False, kernel_regularizer=l2())(act3)
    if red:
        shortcut = kl.Conv2D(k, (1, 1), strides=stride, use_bias=False, kernel_regularizer=l2())(act1)
    return kl.add([conv3, shortcut])


def seed_build(
    width: int,
    height: int,
    depth: int,
    classes: int,
    stages: tuple[int, ...],
    filters: tuple[int, ...],
    *,
    reg: float = 1e-4,
    eps: float = 2e-5,
    mom: float = 0.9,
    dataset: str = "cifar",
) -> Any:
    """The seed's ResNet.build, in Keras 3."""
    from keras import layers as kl

    def l2() -> Any:
        return keras.regularizers.l2(reg)

    inputs = keras.Input(shape=(height, width, depth))
    x = kl.BatchNormalization(axis=-1, epsilon=eps, momentum=mom)(inputs)
    if dataset == "cifar":
        x = kl.Conv2D(filters[0], (3, 3), use_bias=False, padding="same", kernel_regularizer=l2())(x)
    elif dataset == "tiny_imagenet":
        x = kl.Conv2D(filters[0], (5, 5), use_bias=False, padding="same", kernel_regularizer=l2())(x)
        x = kl.BatchNormalization(axis=-1, epsilon=eps, momentum=mom)(x)
        x = kl.Activation("relu")(x)
        x = kl.ZeroPadding2D((1, 1))(x)
        x = kl.MaxPooling2D((3, 3), strides=(2, 2))(x)
    for i in range(len(stages)):
        stride = (1, 1) if i == 0 else (2, 2)
        x = _seed_residual_module(x, filters[i + 1], stride, red=True, eps=eps, mom=mom)
        for _ in range(stages[i] - 1):
            x = _seed_residual_module(x, filters[i + 1], (1, 1), eps=eps, mom=mom)
    x = kl.BatchNormalization(axis=-1, epsilon=eps, momentum=mom)(x)
    x = kl.Activation("relu")(x)
    x = kl.AveragePooling2D((8, 8))(x)
    x = kl.Flatten()(x)
    x = kl.Dense(classes, kernel_regularizer=l2())(x)
    x = kl.Activation("softmax")(x)
    return keras.Model(inputs, x, name="resnet")


SEED_CONFIGS: dict[str, tuple[dict[str, Any], int, int]] = {
    # name: (build arguments, trainable, non-trainable weights) as the tutorial has them
    "rosebrock_cifar10": (
        {
            "width": 32,
            "height": 32,
            "depth": 3,
            "classes": 10,
            "stages": (9, 9, 9),
            "filters": (64, 64, 128, 256),
            "dataset": "cifar",
            "reg": 0.0005,  # as the book trains it
        },
        873_872,
        12_230,
    ),
    "rosebrock_tiny_imagenet": (
        {
            "width": 64,
            "height": 64,
            "depth": 3,
            "classes": 200,
            "stages": (3, 4, 6),
            "filters": (64, 128, 256, 512),
            "dataset": "tiny_imagenet",
            "reg": 0.0005,
        },
        2_252_046,
        13_702,
    ),
}


@pytest.mark.parametrize("name", sorted(SEED_CONFIGS))
def test_rosebrock_presets_are_the_seed_layer_for_layer(name: str) -> None:
    kwargs, trainable, non_trainable = SEED_CONFIGS[name]
    reference = seed_build(**kwargs)
    model = generated_module(name).build_model()
    assert count(reference.trainable_weights) == trainable == count(model.trainable_weights)
    assert count(reference.non_trainable_weights) == non_trainable == count(model.non_trainable_weights)

    # Layer for layer: the same kinds of layers in the same order, with the same settings.
    def kinds(m: Any) -> list[tuple[str, tuple[tuple[int, ...], ...]]]:
        return [
            (type(layer).__name__, tuple(tuple(w.shape) for w in layer.weights))
            for layer in m.layers
            if layer.weights or isinstance(layer, keras.layers.Add | keras.layers.MaxPooling2D)
        ]

    assert kinds(reference) == kinds(model)
    rng = np.random.default_rng(1)
    randomize_keras_batch_norm(reference, rng)
    ref_layers = [layer for layer in reference.layers if layer.weights]
    gen_layers = [layer for layer in model.layers if layer.weights]
    for ref, gen in zip(ref_layers, gen_layers, strict=True):
        for attr in ("epsilon", "momentum", "use_bias", "strides", "padding", "kernel_size"):
            if hasattr(ref, attr):
                assert getattr(ref, attr) == getattr(gen, attr), (gen.name, attr)
        if getattr(ref, "kernel_regularizer", None) is not None:
            assert gen.kernel_regularizer.l2 == pytest.approx(ref.kernel_regularizer.l2), gen.name
        gen.set_weights(ref.get_weights())

    side = kwargs["height"]
    x = rng.normal(0.0, 1.0, (2, side, side, 3)).astype("float32")
    flatten = next(layer for layer in reference.layers if isinstance(layer, keras.layers.Flatten))
    ref_feat, ref_out = [
        keras.ops.convert_to_numpy(y)
        for y in keras.Model(reference.input, [flatten.output, reference.output])(x, training=False)
    ]
    gen_feat, gen_out = outputs_of(model, ["flatten", "predictions"], x)
    feat_diff = float(np.abs(gen_feat - ref_feat).max())
    out_diff = float(np.abs(gen_out - ref_out).max())
    scale = float(np.abs(ref_feat).max())
    print(f"{name}: max |diff| features {feat_diff:.3g} (max |ref| {scale:.3g}), outputs {out_diff:.3g}")
    assert feat_diff <= tolerance(ref_feat)
    assert out_diff <= tolerance(ref_out)


# --- serialization and training ----------------------------------------------------------------


def test_option_a_model_survives_save_and_load(tmp_path: Path) -> None:
    model = generated_module("cifar_resnet20").build_model()
    assert any(type(layer).__name__ == "ZeroPadShortcut" for layer in model.layers)
    x = np.random.default_rng(2).normal(0.0, 1.0, (2, 32, 32, 3)).astype("float32")
    before = keras.ops.convert_to_numpy(model(x, training=False))
    path = tmp_path / "cifar_resnet20.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    after = keras.ops.convert_to_numpy(loaded(x, training=False))
    np.testing.assert_array_equal(before, after)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


def test_weight_standardized_model_survives_save_and_load(tmp_path: Path) -> None:
    """BiT's StdConv2D is registered serializable and keeps its epsilon."""
    model = generated_module("resnetv2_50x1_bit").build_model(input_shape=(33, 31, 3))
    x = np.random.default_rng(4).normal(0.0, 1.0, (1, 33, 31, 3)).astype("float32")
    path = tmp_path / "bit.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(loaded(x)))
    conv = loaded.get_layer("conv1_conv")
    assert type(conv).__name__ == "StdConv2D" and conv.ws_epsilon == 1e-8


def test_weight_standardization_standardizes_each_output_channel() -> None:
    layer = generated_module("resnetv2_50x1_bit").StdConv2D(2, 3, use_bias=False)
    layer.build((1, 5, 5, 4))
    kernel = np.random.default_rng(5).normal(0.5, 3.0, (3, 3, 4, 2)).astype("float32")
    layer.kernel.assign(kernel)
    x = np.random.default_rng(6).normal(0.0, 1.0, (1, 5, 5, 4)).astype("float32")
    mean = kernel.mean(axis=(0, 1, 2), keepdims=True)
    standardized = (kernel - mean) / np.sqrt(kernel.var(axis=(0, 1, 2), keepdims=True) + 1e-8)  # biased
    expected = keras.ops.convert_to_numpy(keras.ops.conv(x, standardized))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-5)


def test_option_a_shortcut_subsamples_and_pads_channels() -> None:
    layer = generated_module("cifar_resnet20").ZeroPadShortcut(stride=2, pad_before=3, pad_after=5)
    x = np.random.default_rng(3).normal(0.0, 1.0, (2, 7, 7, 4)).astype("float32")
    y = keras.ops.convert_to_numpy(layer(x))
    expected = np.pad(x[:, ::2, ::2, :], [(0, 0), (0, 0), (0, 0), (3, 5)])
    np.testing.assert_array_equal(y, expected)


def test_one_training_step_gives_a_finite_loss() -> None:
    compiled = compile_spec("cifar_resnet20")
    logits = not compiled.graph.of_kind("softmax")
    model = generated_module("cifar_resnet20").build_model()
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=logits),
    )
    rng = np.random.default_rng(4)
    x = rng.normal(0.0, 1.0, (4, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, (4,))
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_layer_names_are_unique_and_cover_the_graph() -> None:
    for name in ("keras_resnet50v2", "rosebrock_cifar10", "cifar_resnet20", "resnext50_32x4d"):
        graph = compile_spec(name).graph
        names = keras_names(graph)
        fused = {n for n in names if graph[n].kind == "softmax"}
        distinct = [v for k, v in names.items() if k not in fused]
        assert len(distinct) == len(set(distinct)), name


_OTHER_BACKEND_SCRIPT = """
import sys
import numpy as np
import keras
from resgen.generated_module import import_generated
with open(sys.argv[1], encoding="utf-8") as file:
    module = import_generated(file.read(), "generated")
model = module.build_model()
model.load_weights(sys.argv[2])
x = np.load(sys.argv[3])
np.save(sys.argv[4], keras.ops.convert_to_numpy(model(x, training=False)))
print(keras.backend.backend())
"""


def test_generated_model_runs_on_the_torch_backend(tmp_path: Path) -> None:
    """Same file, same weights, Keras on torch: the same outputs (option A's custom layer included)."""
    pytest.importorskip("torch")
    name = "cifar_resnet20"
    model = generated_module(name).build_model()
    randomize_keras_batch_norm(model, np.random.default_rng(5))
    source = tmp_path / f"{name}.py"
    source.write_text(generated_text("keras", name), encoding="utf-8")
    weights = tmp_path / "model.weights.h5"
    model.save_weights(weights)
    x = np.random.default_rng(6).normal(0.0, 1.0, (2, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _OTHER_BACKEND_SCRIPT,
            str(source),
            str(weights),
            str(tmp_path / "x.npy"),
            str(tmp_path / "y.npy"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": "torch"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "torch"
    got = np.load(tmp_path / "y.npy")
    assert float(np.abs(got - expected).max()) <= tolerance(expected)


@pytest.mark.parametrize("name", ["cifar_resnet20", "resnetv2_50"])
def test_build_model_takes_num_classes(name: str) -> None:
    module = generated_module(name)
    assert compile_spec(name).spec.head.classes == module.NUM_CLASSES
    assert module.build_model().output.shape[-1] == module.NUM_CLASSES
    side = min(module.INPUT_SHAPE[0], 32)
    model = module.build_model(input_shape=(side, side, module.INPUT_SHAPE[2]), num_classes=7)
    assert tuple(model.output.shape) == (None, 7)
    out = model(np.zeros((2, side, side, module.INPUT_SHAPE[2]), dtype="float32"), training=False)
    assert tuple(out.shape) == (2, 7)
