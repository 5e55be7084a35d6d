"""The training-time parts in both targets: drop-path with timm's schedule, initialization as the spec
states it (timm's zero_init_last included), and L2 by role. Each is checked against timm where timm
has it, statistically where it is random, and with a planted bug where a slip would go unseen.

timm builds its models with ``pretrained=False``: nothing is downloaded.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest

import resgen
from resgen import parity
from resgen.compiler import Compiled
from resgen.generated_module import import_generated
from resgen.graph import Distribution, LayerGraph
from resgen.load import load
from resgen.naming import keras_name, torch_path

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
keras = pytest.importorskip("keras")


def with_fields(name: str, **sections: dict[str, Any]) -> dict[str, Any]:
    """A preset's spec data with some sections replaced (a new name, so generated modules differ)."""
    data = copy.deepcopy(load(name).data)
    data.update(sections, name=f"{name}_{'_'.join(sections)}")
    return data


def torch_module_of(net: Compiled, source: str | None = None) -> Any:
    return import_generated(source or resgen.render(net, "torch"), f"training_{net.name}_{id(source)}")


def keras_model_of(net: Compiled, source: str | None = None, size: tuple[int, int] = (64, 64)) -> Any:
    module = import_generated(source or resgen.render(net, "keras"), f"training_k_{net.name}_{id(source)}")
    return module.build_model(input_shape=(*size, 3))


# --- drop-path -----------------------------------------------------------------------------------------

DROP_PATH_50D = with_fields("resnet50d", regularization={"drop_path": 0.1})


def timm_rates(name: str, rate: float) -> list[float]:
    model = timm.create_model(name, pretrained=False, drop_path_rate=rate)
    blocks = [b for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for b in stage]
    return [0.0 if b.drop_path is None else b.drop_path.drop_prob for b in blocks]


def torch_rates(model: Any) -> list[float]:
    stages = [m for n, m in model.named_children() if n.startswith("layer")]
    return [block.drop_path.drop_prob for stage in stages for block in stage]


def keras_rates(net: Compiled, model: Any) -> list[float]:
    return [model.get_layer(keras_name(net.graph, x.name)).rate for x in net.graph.of_kind("drop_path")]


def test_drop_path_rates_are_timms_in_both_targets() -> None:
    net = resgen.compile(DROP_PATH_50D)
    expected = timm_rates("resnet50d", 0.1)
    assert len(expected) == 16 and expected[0] == 0.0 and expected[-1] == pytest.approx(0.1)
    assert [x.op.rate for x in net.graph.of_kind("drop_path")] == pytest.approx(expected, abs=1e-12)
    assert torch_rates(torch_module_of(net).build_model()) == pytest.approx(expected, abs=1e-12)
    assert keras_rates(net, keras_model_of(net)) == pytest.approx(expected, abs=1e-7)
    # no parameters: timm's state dict still loads strictly
    timm_state = timm.create_model("resnet50d", pretrained=False, drop_path_rate=0.1).state_dict()
    torch_module_of(net).build_model().load_state_dict(timm_state, strict=True)


@pytest.mark.parametrize(
    ("target", "correct", "planted"),
    [
        ("torch", "/ (self.num_blocks - 1)", "/ self.num_blocks"),  # index / N
        (  # the index restarts in every stage
            "torch",
            '"""One stage of `blocks` blocks; the first one carries the stride."""\n',
            '"""One stage of `blocks` blocks; the first one carries the stride."""\n'
            "        self.block_index = 0\n",
        ),
        ("keras", "/ (NUM_BLOCKS - 1)", "/ NUM_BLOCKS"),
    ],
)
def test_planted_wrong_drop_path_schedule_fails(target: str, correct: str, planted: str) -> None:
    net = resgen.compile(DROP_PATH_50D)
    source = resgen.render(net, target)
    assert correct in source
    bad = source.replace(correct, planted)
    expected = timm_rates("resnet50d", 0.1)
    if target == "torch":
        rates = torch_rates(torch_module_of(net, bad).build_model())
    else:
        rates = keras_rates(net, keras_model_of(net, bad))
    assert rates != pytest.approx(expected, abs=1e-7)


def drop_statistics(out: np.ndarray, rate: float) -> tuple[float, float]:
    """(fraction of samples dropped, value of the kept ones) of a drop-path applied to ones;
    every sample must be dropped or kept as a whole."""
    flat = out.reshape(out.shape[0], -1)
    dropped = np.all(flat == 0.0, axis=1)
    kept = flat[~dropped]
    assert np.allclose(kept, kept[0, 0]), "a sample partly dropped"
    return float(dropped.mean()), float(kept[0, 0])


SAMPLES = 20_000


def test_drop_path_in_training_drops_whole_samples_and_rescales() -> None:
    net = resgen.compile(DROP_PATH_50D)
    rate = 0.1  # the last block's
    bound = 5 * math.sqrt(rate * (1 - rate) / SAMPLES)  # five standard deviations of the fraction
    ones = np.ones((SAMPLES, 3, 2, 2), np.float32)

    layer = torch_module_of(net).build_model().layer4[2].drop_path
    assert layer.drop_prob == pytest.approx(rate)
    torch.manual_seed(0)
    fraction, value = drop_statistics(layer.train()(torch.from_numpy(ones)).numpy(), rate)
    assert abs(fraction - rate) <= bound and value == pytest.approx(1 / (1 - rate), rel=1e-6)
    assert torch.equal(layer.eval()(torch.from_numpy(ones)), torch.from_numpy(ones))

    keras_layer = keras_model_of(net).get_layer("conv5_block3_drop_path")
    out = keras.ops.convert_to_numpy(keras_layer(ones.transpose(0, 2, 3, 1), training=True))
    fraction, value = drop_statistics(out, rate)
    assert abs(fraction - rate) <= bound and value == pytest.approx(1 / (1 - rate), rel=1e-6)
    assert np.array_equal(keras.ops.convert_to_numpy(keras_layer(ones, training=False)), ones)


def test_drop_path_leaves_eval_outputs_unchanged_and_parity_holds() -> None:
    plain = resgen.compile("resnet10t", input_size=(65, 47))
    dropping = resgen.compile(
        with_fields("resnet10t", regularization={"drop_path": 0.2}), input_size=(65, 47)
    )
    x = np.random.default_rng(0).standard_normal((2, 65, 47, 3)).astype(np.float32)
    a, b = torch_module_of(plain).build_model(), torch_module_of(dropping).build_model()
    parity.randomize_torch(plain, a, seed=1)
    b.load_state_dict(a.state_dict(), strict=True)
    ya, yb = parity.torch_forward(plain, a, x, "cpu"), parity.torch_forward(dropping, b, x, "cpu")
    assert np.array_equal(ya["output"], yb["output"])
    ka, kb = keras_model_of(plain, size=(65, 47)), keras_model_of(dropping, size=(65, 47))
    for layer in ka.layers:
        if layer.weights:
            kb.get_layer(layer.name).set_weights(layer.get_weights())
    assert np.array_equal(
        parity.keras_forward(plain, ka, x)["output"], parity.keras_forward(dropping, kb, x)["output"]
    )
    report = parity.check(dropping)
    assert report.passed, parity.format_report(report)


# --- initialization ------------------------------------------------------------------------------------


def _fans(op: Any, in_features: int) -> tuple[int, int]:
    """(fan_in, fan_out) as torch and Keras both count them (groups divide only the fan-in)."""
    if op.kind == "conv2d":
        area = op.kernel_size**2
        return op.in_channels // op.groups * area, op.out_channels * area
    if op.kind == "channel_conv1d":
        return op.kernel_size, op.kernel_size
    return in_features, op.out_features


def _check(values: np.ndarray, dist: Distribution, fan_in: int, fan_out: int, what: str) -> np.ndarray:
    """Check one tensor against its distribution; returns its values divided by the expected
    standard deviation, pooled by the caller for a tight overall check."""
    values = values.astype(np.float64).ravel()
    n = values.size
    if dist is Distribution.ZEROS:
        assert not values.any(), what
        return values
    if dist is Distribution.HE_NORMAL_FAN_OUT:
        sigma = math.sqrt(2.0 / fan_out)
    elif dist is Distribution.NORMAL_0_01:
        sigma = 0.01
    else:
        bound = (
            1 / math.sqrt(fan_in)
            if dist is Distribution.UNIFORM_FAN_IN
            else math.sqrt(6 / (fan_in + fan_out))
        )
        assert np.abs(values).max() <= bound * (1 + 1e-6), what
        if n >= 1000:
            assert np.abs(values).max() >= 0.95 * bound, what
        sigma = bound / math.sqrt(3)
    std = values.std()
    assert abs(values.mean()) <= 5 * sigma / math.sqrt(n), what
    assert abs(std / sigma - 1) <= max(0.04, 5 / math.sqrt(2 * n)), f"{what}: std {std:.4g} vs {sigma:.4g}"
    return values / sigma


def _expected(graph: LayerGraph, layer: Any, part: str) -> Distribution:
    init = graph.network.init
    if part == "bias":
        return init.bias
    if layer.zero_init:
        return Distribution.ZEROS
    if layer.role == "fc":  # the classifier, a dense layer or a 1x1 convolution (timm's ResNetV2)
        return init.dense
    return {"conv2d": init.conv, "channel_conv1d": init.eca}[layer.kind]


INIT_PRESETS = [
    "resnet18",
    "seresnet50",
    "ecaresnet26t",
    "keras_resnet50",
    "rosebrock_cifar10",
    "resnetv2_50x1_bit",  # timm's ResNetV2: its 1x1-convolution classifier from N(0, 0.01^2), bias 0
]


@pytest.mark.parametrize("name", INIT_PRESETS)
def test_initialization_has_the_stated_distribution_in_both_targets(name: str) -> None:
    net = resgen.compile(name, input_size=(64, 64))
    graph = net.graph
    torch_params = dict(torch_module_of(net).build_model().named_parameters())
    keras_model = keras_model_of(net)
    ratios: dict[tuple[str, Distribution], list[np.ndarray]] = {}
    for layer in graph:
        if layer.kind in ("batch_norm", "group_norm"):
            path = torch_path(graph, layer.name)
            gamma, beta = keras_model.get_layer(keras_name(graph, layer.name)).get_weights()[:2]
            scale = 0.0 if layer.zero_init else 1.0
            assert (torch_params[f"{path}.weight"] == scale).all() and (gamma == scale).all(), path
            assert not torch_params[f"{path}.bias"].any() and not beta.any(), path
        if layer.kind not in ("conv2d", "dense", "channel_conv1d"):
            continue
        inputs = graph.inputs(layer.name)
        fan_in, fan_out = _fans(layer.op, net.analysis.shape(inputs[0])[0])
        path = torch_path(graph, layer.name)
        keras_weights = keras_model.get_layer(keras_name(graph, layer.name)).get_weights()
        parts = [("weight", keras_weights[0])]
        if getattr(layer.op, "bias", False):
            parts.append(("bias", keras_weights[1]))
        for part, keras_values in parts:
            dist = _expected(graph, layer, part)
            for target, values in (
                ("torch", torch_params[f"{path}.{part}"].detach().numpy()),
                ("keras", keras_values),
            ):
                ratio = _check(values, dist, fan_in, fan_out, f"{target} {path}.{part} ({dist})")
                ratios.setdefault((target, dist), []).append(ratio)
    for (target, dist), found in ratios.items():  # all layers of a distribution, pooled: tighter
        pooled = np.concatenate(found)
        if dist is not Distribution.ZEROS:
            assert abs(pooled.std() - 1) <= max(0.01, 5 / math.sqrt(2 * pooled.size)), (target, dist)


@pytest.mark.parametrize("name", ["resnet18d", "resnet50d", "seresnet50", "resnet50_gn"])
def test_zero_init_last_zeroes_what_timm_zeroes(name: str) -> None:
    def zero_params(model: Any) -> set[str]:
        return {k for k, v in model.named_parameters() if not v.detach().any()}

    net = resgen.compile(name)
    ours = zero_params(torch_module_of(net).build_model())
    assert ours == zero_params(timm.create_model(name, pretrained=False))
    last = "bn2" if name == "resnet18d" else "bn3"
    assert {k for k in ours if k.endswith(".weight")} == {
        f"layer{r.stage}.{r.block - 1}.{last}.weight" for r in net.graph.blocks
    }


def test_zero_init_last_zeroes_the_same_keras_layers() -> None:
    net = resgen.compile("resnet18d", input_size=(64, 64))
    model = keras_model_of(net)
    zeroed = {
        layer.name
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.get_weights()[0].any()
    }
    assert zeroed == {keras_name(net.graph, x.name) for x in net.graph if x.zero_init}
    assert len(zeroed) == 8 and all(n.endswith("_2_bn") for n in zeroed)


# --- L2 by role ----------------------------------------------------------------------------------------


def test_l2_by_role_in_keras_equals_torch_weight_decay() -> None:
    """Rosebrock's tutorial: reg=0.0005 on the stem and the classifier, 1e-4 in every residual module.
    Each Keras layer's regularizer holds its role's factor, and the Keras penalty equals the torch
    optimizer's decay contribution, sum over groups of (decay / 2) * sum(w ** 2)."""
    net = resgen.compile("rosebrock_cifar10")
    torch_model = torch_module_of(net).build_model()
    keras_model = keras_model_of(net, size=(32, 32))
    parity.torch_to_keras_model(net, torch_model, keras_model)
    for layer in net.graph:
        if layer.kind in ("conv2d", "dense"):
            factor = keras_model.get_layer(keras_name(net.graph, layer.name)).kernel_regularizer.l2
            expected = 5e-4 if layer.l2_role in ("stem", "head") else 1e-4
            assert factor == pytest.approx(expected), layer.name
    assert keras_model.get_layer("conv1_conv").kernel_regularizer.l2 == pytest.approx(5e-4)
    assert keras_model.get_layer("conv2_block1_0_conv").kernel_regularizer.l2 == pytest.approx(1e-4)
    keras_penalty = float(sum(keras.ops.convert_to_numpy(loss) for loss in keras_model.losses))
    groups = torch_module_of(net).param_groups(torch_model)
    torch_penalty = sum(
        g["weight_decay"] / 2 * sum(float((p.detach().double() ** 2).sum()) for p in g["params"])
        for g in groups
    )
    assert keras_penalty == pytest.approx(torch_penalty, rel=1e-5)
    assert sorted(g["weight_decay"] for g in groups) == pytest.approx([0.0, 2e-4, 1e-3])
