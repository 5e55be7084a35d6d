"""Cross-framework parity: weights move both ways and the two outputs of one spec agree.

Every preset is checked in both directions on the CPU, ImageNet-sized ones at small or odd input sizes
(odd sizes expose padding bugs that even sizes hide). The harness is itself tested: each classic bug,
planted in a copy of a generated file (or in the weight conversion), must make it fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("keras")

from resgen import parity, parity_train, weights
from resgen.cli import main
from resgen.compiler import compile_spec
from resgen.generate import render
from tests.helpers import preset_params

# Input (height, width) per preset: None keeps the spec's own size.
SIZES: dict[str, tuple[int, int] | None] = {
    "resnet18": (33, 47),
    "resnet34": (64, 64),
    "resnet50": (64, 64),
    "resnet101": (64, 64),
    "resnet152": (48, 48),
    "resnext50_32x4d": (47, 33),
    "resnext101_32x8d": (48, 48),
    "resnext101_64x4d": (48, 48),
    "wide_resnet50_2": (64, 64),
    "wide_resnet101_2": (48, 48),
    "keras_resnet50": (33, 47),
    "keras_resnet101": (64, 64),
    "keras_resnet152": (48, 48),
    "keras_resnet50v2": (33, 47),
    "keras_resnet101v2": (64, 64),
    "keras_resnet152v2": (48, 48),
    "cifar_resnet20": (33, 47),
    "cifar_resnet32": None,
    "cifar_resnet44": None,
    "cifar_resnet56": None,
    "cifar_resnet110": None,
    "cifar_resnet1202": None,
    "preact_resnet164": (33, 47),
    "preact_resnet1001": None,
    "rosebrock_cifar10": (33, 47),
    "rosebrock_tiny_imagenet": (65, 71),
    # timm's family at odd sizes: ceil-mode average pools have a partial window at the edge there
    "resnet10t": (97, 71),
    "resnet14t": (65, 47),
    "resnet18d": (65, 47),
    "resnet26": (65, 47),
    "resnet26d": (97, 71),
    "resnet26t": (65, 47),
    "resnet34d": (65, 47),
    "resnet50c": (65, 47),
    "resnet50d": (65, 47),
    "resnet50s": (65, 47),
    "resnet50t": (65, 47),
    "resnet101d": (49, 47),
    "resnet152d": (49, 47),
    "resnet200d": (49, 47),
    "resnext50d_32x4d": (65, 47),
    "seresnet50": (65, 47),
    "seresnext50_32x4d": (65, 47),
    "seresnext101_32x8d": (49, 47),
    "seresnext101d_32x8d": (49, 47),
    "senet154": (49, 47),
    "resnetaa50d": (65, 33),
    "resnetblur50": (65, 47),
    "ecaresnet26t": (65, 47),
    "ecaresnet50d": (65, 47),
    "ecaresnet101d": (49, 47),
    "resnetrs50": (65, 47),
    "resnetrs101": (49, 47),
    "resnet50_gn": (65, 47),
    "resnetv2_50": (65, 47),
    "resnetv2_50d": (65, 47),
    "resnetv2_50x1_bit": (65, 47),
    "resnetv2_101x1_bit": (49, 47),
}


def test_every_preset_is_covered() -> None:
    from resgen import load

    assert set(SIZES) == set(load.preset_names())


@pytest.mark.parametrize("name", preset_params(sorted(SIZES), keep={"preact_resnet1001"}))
def test_parity_both_directions(name: str) -> None:
    report = parity.check(compile_spec(name, input_size=SIZES[name]))
    failed = [t for t in report.taps if not t.passed]
    assert report.passed, parity.format_report(report)
    assert not failed
    directions = {t.direction for t in report.taps}
    assert directions == {"torch->keras", "keras->torch"}
    taps = {t.tap for t in report.taps}
    assert "output" in taps and "stage1" in taps


def test_parity_json_report() -> None:
    result = CliRunner().invoke(
        main, ["parity", "cifar_resnet20", "--input-size", "17", "23", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["passed"] is True and data["device"] == "cpu" and data["tolerance"] == 1e-4
    assert data["input_shape"] == [3, 17, 23] and data["shape_layout"] == "channels_first"
    assert {"torch", "keras", "keras_backend"} <= set(data["versions"])
    assert set(data["tf32"]) == {"torch_matmul", "torch_cudnn"}
    tap = data["taps"][0]
    assert {"tap", "direction", "max_abs_diff", "scale", "passed"} <= set(tap)


def test_parity_with_keras_on_the_torch_backend() -> None:
    """The Keras output is backend-agnostic: the same parity holds with Keras running on torch."""
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    args = ["parity", "rosebrock_cifar10", "--input-size", "33", "47", "--format", "json"]
    proc = subprocess.run([sys.executable, "-m", "resgen", *args], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["passed"] and data["versions"]["keras_backend"] == "torch"
    assert "tensorflow" not in data["versions"]


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("cifar_resnet20", None),
        ("rosebrock_cifar10", None),
        ("keras_resnet50v2", (32, 32)),
        ("resnet18", (32, 32)),
    ],
)
def test_train_step_parity(name: str, size: tuple[int, int] | None) -> None:
    report = parity_train.check_training(compile_spec(name, input_size=size))
    assert report.passed, report
    assert report.loss_torch == pytest.approx(report.loss_keras, rel=1e-7)
    assert report.max_update_diff <= 1e-6
    assert report.max_var_diff <= 1e-9 and report.max_mean_diff <= 1e-9


def test_train_step_includes_l2() -> None:
    """The seed's L2 penalty is in both losses: Keras' l2(r) term equals torch's weight decay 2r."""
    compiled = compile_spec("rosebrock_cifar10")
    with_l2 = parity_train.check_training(compiled)
    assert with_l2.passed
    without = parity_train.check_training(
        compile_spec("rosebrock_cifar10"),
        keras_source=render(compiled, "keras").replace(
            "kernel_regularizer=keras.regularizers.L2(0.0001)", "kernel_regularizer=None"
        ),
    )
    assert not without.passed  # the penalty is a visible part of the loss
    torch_module, _ = parity.import_targets(compiled)
    groups = torch_module.param_groups(torch_module.build_model())
    assert sorted(g["weight_decay"] for g in groups) == pytest.approx([0.0, 2e-4, 1e-3])


# --- the harness catches the classic bugs --------------------------------------------------------------


def _fails(report: parity.ParityReport) -> bool:
    return not report.passed


def test_planted_stride2_same_padding_fails() -> None:
    compiled = compile_spec("resnet18", input_size=(64, 64))
    source = render(compiled, "keras")
    planted, count = re.subn(
        r'residual = layers\.ZeroPadding2D\(\n[^\n]*\n[^\n]*\n[^\n]*_1_pad",\n    \)\(x\)\n'
        r"    residual = layers\.Conv2D\(\n        filters,\n        3,\n        strides=stride,\n",
        "residual = layers.Conv2D(\n        filters,\n        3,\n        strides=stride,\n"
        '        padding="same",\n',
        source,
    )
    assert count == 1
    planted = planted.replace(")(residual)\n", ")(x)\n", 1)
    report = parity.check(compiled, keras_source=planted)
    assert _fails(report)
    # the stem and shapes still agree: the bug shows in the first stage with a strided block
    assert all(t.passed for t in report.taps if t.tap == "stage1")


def test_planted_keras_default_epsilon_fails() -> None:
    compiled = compile_spec("cifar_resnet20")
    source = render(compiled, "keras")
    assert "epsilon=1e-05" in source
    report = parity.check(compiled, keras_source=source.replace("epsilon=1e-05", "epsilon=0.001"))
    assert _fails(report)


def test_planted_unconverted_momentum_fails_in_training() -> None:
    compiled = compile_spec("cifar_resnet20")
    source = render(compiled, "torch")
    assert "BN_MOMENTUM = 0.1" in source
    planted = source.replace("BN_MOMENTUM = 0.1", "BN_MOMENTUM = 0.9")  # Keras' number used as torch's
    assert parity.check(compiled, torch_source=planted).passed  # invisible in eval mode ...
    report = parity_train.check_training(compiled, torch_source=planted)
    assert not report.passed  # ... but the running statistics after one step differ
    assert report.max_var_diff > 1e-2 or report.max_mean_diff > 1e-2


def test_planted_l2_as_weight_decay_r_fails_in_training() -> None:
    """Keras' l2(r) is torch weight decay 2r; using r (a common slip) must be caught."""
    compiled = compile_spec("rosebrock_cifar10")
    source = render(compiled, "torch")
    assert '"blocks": 0.0002' in source
    report = parity_train.check_training(
        compiled, torch_source=source.replace('"blocks": 0.0002', '"blocks": 0.0001')
    )
    assert not report.passed
    assert report.loss_torch < report.loss_keras


def test_planted_missing_kernel_transpose_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    original = weights.to_keras

    def reshape_only(slot: weights.WeightSlot, array: np.ndarray) -> np.ndarray:
        if slot.op == "conv2d" and slot.role == "kernel":
            return np.asarray(array).reshape(slot.keras_shape)  # the bug: reshape instead of transpose
        return original(slot, array)

    monkeypatch.setattr(weights, "to_keras", reshape_only)
    assert _fails(parity.check(compile_spec("cifar_resnet20")))


def test_planted_stride_on_wrong_conv_fails() -> None:
    compiled = compile_spec("resnet50", input_size=(64, 64))
    source = render(compiled, "torch")
    good = "        self.conv1 = conv1x1(in_planes, width)\n"
    assert good in source and "conv3x3(width, width, stride)" in source
    planted = source.replace(good, "        self.conv1 = conv1x1(in_planes, width, stride)\n").replace(
        "conv3x3(width, width, stride)", "conv3x3(width, width)"
    )
    report = parity.check(compiled, torch_source=planted)
    assert _fails(report)


def test_harness_passes_the_unplanted_sources() -> None:
    """The same sources without the plants pass, so the failures above are the bugs' doing."""
    compiled = compile_spec("resnet50", input_size=(64, 64))
    assert parity.check(compiled, torch_source=render(compiled, "torch")).passed
