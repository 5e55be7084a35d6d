"""Backbones in both frameworks: the torch target equals timm's features_only models tap by tap, and
the Keras target equals the torch target at every tap (parity, both directions, at odd sizes)."""

from __future__ import annotations

from typing import Any

import pytest

import resgen
from resgen import parity
from resgen.importing import import_generated
from tests.helpers import backbone_spec
from tests.test_timm_family import random_state

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

ALL = ["stem", 1, 2, 3, 4]


def _generated(net: resgen.Compiled) -> Any:
    source = resgen.render(net, "torch")
    return import_generated(source, f"backbone_{net.name}_{len(source)}").build_model().eval()


def compare_taps(net: resgen.Compiled, reference: Any) -> list[tuple[float, float]]:
    """(max |ours - reference|, max |reference|) of every tap, after a strict load of the reference's
    state dict with randomized normalization tensors."""
    ours = _generated(net)
    reference = reference.eval()
    state = random_state(reference, seed=3)
    reference.load_state_dict(state)
    ours.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, *net.graph.input_hwc[:2], generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        got, want = ours(x), reference(x)
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
