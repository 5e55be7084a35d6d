"""Backbones in both frameworks: the torch target equals timm's features_only models tap by tap, and
the Keras target equals the torch target at every tap (parity, both directions, at odd sizes)."""

from __future__ import annotations

from typing import Any

import pytest

import resgen
from resgen import parity
from resgen.generated_module import import_generated
from tests.helpers import backbone_spec
from tests.test_timm_family import random_state

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

ALL = ["stem", 1, 2, 3, 4]


def _generated(net: resgen.Compiled) -> Any:
    source = resgen.render(net, "torch")
    return import_generated(source, f"backbone_{net.name}_{len(source)}").build_model().eval()


def _outputs(ours: Any, reference: Any, net: resgen.Compiled) -> tuple[Any, Any]:
    """Both models' eval outputs on one random batch, after a strict load of the reference's state
    dict with randomized normalization tensors into ours."""
    ours, reference = ours.eval(), reference.eval()
    state = random_state(reference, seed=3)
    reference.load_state_dict(state)
    ours.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, *net.graph.input_hwc[:2], generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        return ours(x), reference(x)


def compare_taps(net: resgen.Compiled, reference: Any) -> list[tuple[float, float]]:
    """(max |ours - reference|, max |reference|) of every tap, after a strict load of the reference's
    state dict with randomized normalization tensors."""
    got, want = _outputs(_generated(net), reference, net)
    assert isinstance(got, list) and len(got) == len(want)
    assert [tuple(g.shape) for g in got] == [tuple(w.shape) for w in want]
    return [(float((g - w).abs().max()), float(w.abs().max())) for g, w in zip(got, want, strict=True)]


@pytest.mark.parametrize(
    ("features", "indices", "size"),
    [(ALL, (0, 1, 2, 3, 4), (61, 67)), (["stem", 2, 4], (0, 2, 4), (64, 64))],
)
def test_resnet50d_features_equal_timms(
    features: list[Any], indices: tuple[int, ...], size: tuple[int, int]
) -> None:
    net = resgen.compile(backbone_spec("resnet50d", features), input_size=size)
    reference = timm.create_model("resnet50d", pretrained=False, features_only=True, out_indices=indices)
    for diff, scale in compare_taps(net, reference):
        assert diff <= 1e-5 * max(1.0, scale)
    info = _generated(net).feature_info
    assert [d["num_chs"] for d in info] == reference.feature_info.channels()
    assert [d["reduction"] for d in info] == reference.feature_info.reduction()


def test_feature_info_names_modules_of_the_model() -> None:
    model = _generated(resgen.compile(backbone_spec("resnet18", ALL), input_size=(32, 32)))
    modules = dict(model.named_modules())
    assert [d["module"] for d in model.feature_info] == ["relu", "layer1", "layer2", "layer3", "layer4"]
    assert all(d["module"] in modules for d in model.feature_info)


def test_parity_compares_every_tap_both_ways_at_an_odd_size() -> None:
    net = resgen.compile(backbone_spec("resnet50d", ALL), input_size=(45, 39))
    report = parity.check(net)
    assert report.passed, parity.format_report(report)
    outputs = {(t.direction, t.tap) for t in report.taps if t.tap.startswith("out:")}
    taps = ["out:stem", "out:stage1", "out:stage2", "out:stage3", "out:stage4"]
    assert outputs == {(d, t) for d in ("torch->keras", "keras->torch") for t in taps}


def test_parity_fails_when_a_tap_is_wrong() -> None:
    """A Keras model returning stage 3's map in place of stage 2's fails the comparison of that tap."""
    net = resgen.compile(backbone_spec("resnet18", [2, 3, 4]), input_size=(33, 35))
    keras_source = resgen.render(net, "keras")
    lines = keras_source.splitlines()
    first = lines.index("    features.append(x)")
    planted = "\n".join(lines[:first] + lines[first + 1 :]).replace(
        "outputs=features,", "outputs=[features[0], *features],"
    )
    report = parity.check(net, keras_source=planted + "\n")
    failed = {t.tap for t in report.taps if not t.passed}
    assert not report.passed and "out:stage2" in failed


def _dilated(preset: str, output_stride: int, **backbone: Any) -> dict[str, Any]:
    from resgen import load

    data = dict(load.load(preset).data)
    data["name"] = f"{preset}_os{output_stride}"
    data["backbone"] = {"output_stride": output_stride, **backbone}
    return data


def _max_diff(source: str, net: resgen.Compiled, reference: Any) -> tuple[float, float]:
    """(max |ours - reference|, max |reference|) of the torch source after a strict load."""
    ours = import_generated(source, f"dilated_{net.name}_{len(source)}").build_model()
    got, want = _outputs(ours, reference, net)
    assert got.shape == want.shape
    return float((got - want).abs().max()), float(want.abs().max())


def _torchvision_os8() -> Any:
    torchvision = pytest.importorskip("torchvision")
    return torchvision.models.resnet50(replace_stride_with_dilation=[False, True, True])


def test_resnet50_output_stride_8_equals_torchvisions_dilated_resnet50() -> None:
    net = resgen.compile(_dilated("resnet50", 8), input_size=(37, 35))
    diff, scale = _max_diff(resgen.render(net, "torch"), net, _torchvision_os8())
    assert diff <= 1e-5 * max(1.0, scale)


def test_first_dilated_block_with_the_new_dilation_fails_the_comparison() -> None:
    """Planted: the first block of a dilated stage takes the stage's dilation (as whole_stage does),
    not the previous stage's as torchvision's does: the comparison must fail."""
    net = resgen.compile(_dilated("resnet50", 8), input_size=(37, 35))
    source = resgen.render(net, "torch")
    assert source.count("dilation=self.dilation") == 1
    planted = source.replace("dilation=self.dilation", "dilation=dilation")
    diff, scale = _max_diff(planted, net, _torchvision_os8())
    assert diff > 1e-3 * max(1.0, scale)


def test_whole_stage_equals_torchvision_with_every_block_dilated() -> None:
    """detectron2's rule: torchvision's dilated resnet50 with the first block of each dilated stage
    given the stage's dilation too."""
    net = resgen.compile(_dilated("resnet50", 8, dilation="whole_stage"), input_size=(37, 35))
    reference = _torchvision_os8()
    for stage, dilation in ((reference.layer3, 2), (reference.layer4, 4)):
        stage[0].conv2.dilation = stage[0].conv2.padding = (dilation, dilation)
    diff, scale = _max_diff(resgen.render(net, "torch"), net, reference)
    assert diff <= 1e-5 * max(1.0, scale)


@pytest.mark.parametrize(
    ("preset", "output_stride", "size"), [("resnet50d", 16, (61, 67)), ("resnet18", 8, (45, 39))]
)
def test_dilated_features_equal_timms(preset: str, output_stride: int, size: tuple[int, int]) -> None:
    """timm's output_stride: resnet50d's avg_down shortcut pools at stride 1 (AvgPool2dSame) where
    the stage dilates; resnet18's BasicBlock keeps the previous dilation in its first 3x3 only."""
    net = resgen.compile(backbone_spec(preset, ALL, output_stride=output_stride), input_size=size)
    reference = timm.create_model(preset, pretrained=False, features_only=True, output_stride=output_stride)
    for diff, scale in compare_taps(net, reference):
        assert diff <= 1e-5 * max(1.0, scale)
    info = _generated(net).feature_info
    assert [d["reduction"] for d in info] == reference.feature_info.reduction()


@pytest.mark.parametrize(("preset", "rule"), [("resnet50d", "torchvision"), ("resnet18", "whole_stage")])
def test_parity_with_dilation_at_an_odd_size(preset: str, rule: str) -> None:
    net = resgen.compile(backbone_spec(preset, ALL, output_stride=8, dilation=rule), input_size=(35, 33))
    report = parity.check(net)
    assert report.passed, parity.format_report(report)
    assert {t.direction for t in report.taps} == {"torch->keras", "keras->torch"}


# --- frozen stages and norm_eval ---------------------------------------------------------------------


def _frozen_net(preset: str, size: tuple[int, int], **backbone: Any) -> resgen.Compiled:
    stages = len(resgen.compile(preset).graph.network.stages)
    return resgen.compile(backbone_spec(preset, list(range(1, stages + 1)), **backbone), input_size=size)


@pytest.mark.parametrize(
    ("preset", "size", "backbone"),
    [
        ("resnet18", (32, 32), {"frozen_stages": 1, "norm_eval": True}),
        ("cifar_resnet20", (16, 16), {"frozen_stages": 1}),
        ("resnet18", (32, 32), {"norm_eval": True}),
    ],
)
def test_train_step_keeps_frozen_tensors_and_eval_statistics(
    preset: str, size: tuple[int, int], backbone: dict[str, Any]
) -> None:
    """One float64 SGD step in both frameworks: the frozen stages' tensors and the statistics of
    BatchNorms in eval mode are bit-identical to before, the rest matches across frameworks."""
    from resgen import parity_train

    report = parity_train.check_training(_frozen_net(preset, size, **backbone))
    assert report.passed, report
    assert report.kept_tensors > 0 and report.max_kept_change == 0.0
    assert report.loss_torch == pytest.approx(report.loss_keras, rel=1e-7)
    assert report.max_update_diff <= 1e-6
    assert report.max_mean_diff <= 1e-9 and report.max_var_diff <= 1e-9


def test_torch_train_keeps_frozen_batchnorms_in_eval_mode() -> None:
    net = _frozen_net("resnet18", (32, 32), frozen_stages=2)
    model = _generated(net).train()
    frozen_prefixes = ("conv1.", "bn1.", "layer1.", "layer2.")
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            assert module.training is not f"{name}.".startswith(frozen_prefixes), name
    assert [n for n, p in model.named_parameters() if not p.requires_grad] == [
        n for n, _ in model.named_parameters() if n.startswith(frozen_prefixes)
    ]
    assert any(n.startswith("layer3.") for n, p in model.named_parameters() if p.requires_grad)
    assert not model.eval().training and not model.bn1.training
    both = _generated(_frozen_net("resnet18", (32, 32), frozen_stages=1, norm_eval=True)).train()
    norms = [m for m in both.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    assert both.training and both.layer4[0].bn1.weight.requires_grad  # scale and offset still train


@pytest.mark.parametrize("target", ["torch", "keras"])
def test_train_step_parity_fails_when_frozen_batchnorms_train(target: str) -> None:
    """The harness sees a target that lets the frozen BatchNorms update their statistics."""
    from resgen import parity_train

    net = _frozen_net("cifar_resnet20", (16, 16), frozen_stages=1)
    source = resgen.render(net, target)
    if target == "torch":
        planted = source.replace("                    module.eval()\n", "                    pass\n")
    else:
        planted = source.replace("        layer.trainable = False\n", "        pass\n")
    assert planted != source
    report = parity_train.check_training(net, **{f"{target}_source": planted})
    assert not report.passed and report.max_kept_change > 0


def test_keras_model_with_frozen_and_eval_batchnorms_survives_save_and_load(tmp_path: Any) -> None:
    keras = pytest.importorskip("keras")
    np = pytest.importorskip("numpy")
    net = _frozen_net("resnet18", (32, 32), frozen_stages=1, norm_eval=True)
    module = import_generated(resgen.render(net, "keras"), "backbone_frozen_keras_save")
    model = module.build_model()
    assert any(type(layer).__name__ == "BatchNormEval" for layer in model.layers)
    frozen = sorted(layer.name for layer in model.layers if not layer.trainable)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    before = [keras.ops.convert_to_numpy(y) for y in model(x, training=True)]
    path = tmp_path / "frozen.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    after = [keras.ops.convert_to_numpy(y) for y in loaded(x, training=True)]
    for got, want in zip(after, before, strict=True):
        np.testing.assert_array_equal(got, want)  # norm_eval: training=True still uses the statistics
    assert sorted(layer.name for layer in loaded.layers if not layer.trainable) == frozen
