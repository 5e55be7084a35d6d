"""A stage's own block kind against the frameworks: the mixed-kind spec of timm's test_resnet has timm's
counts, its generated torch module loads timm's state dict with ``strict=True`` and computes timm's
function; ``resgen import timm:test_resnet`` gives that spec; Keras and torch agree both ways; kinds
mixed within one stage are still refused. timm builds with ``pretrained=False``: nothing is downloaded."""

from __future__ import annotations

import pytest

import resgen
from resgen import parity
from resgen.importers.errors import NotExpressible
from resgen.importers.torch_model import spec_from_torch
from tests.test_stage_blocks import MIXED
from tests.test_timm_family import compare

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")


def test_counts_are_timms() -> None:
    model = timm.create_model("test_resnet", pretrained=False)
    summary = resgen.summary(MIXED)
    assert summary["params"] == sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for name, b in model.named_buffers() if not name.endswith("num_batches_tracked"))
    assert summary["non_trainable_params"] == buffers


def test_loads_timms_state_dict_and_computes_the_same_at_an_odd_size() -> None:
    torch.manual_seed(0)
    net = resgen.compile(MIXED, input_size=(97, 71))
    diff, scale = compare(net, timm.create_model("test_resnet", pretrained=False))
    assert diff <= 1e-5 * max(1.0, scale), f"max |diff| {diff:.3g} (scale {scale:.3g})"


def test_fused_module_computes_the_same() -> None:
    from resgen.generated_module import import_generated

    module = import_generated(resgen.render(MIXED, "torch"), "stage_blocks_fuse")
    model = module.build_model().eval()
    for m in model.modules():  # zero_init_last would hide a wrongly folded last BatchNorm
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.uniform_(m.running_var, 0.5, 1.5)
            torch.nn.init.normal_(m.running_mean)
    x = torch.randn(2, 3, 65, 47, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = model(x)
        fused = module.fuse_batchnorm(model)
        got = fused(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.layer3.modules())
    assert float((got - want).abs().max()) <= 1e-4 * max(1.0, float(want.abs().max()))


def test_import_of_timms_test_resnet_gives_the_spec() -> None:
    model = timm.create_model("test_resnet", pretrained=False)
    data = spec_from_torch(model, name="test_resnet", input_size=(160, 160), source="timm:test_resnet").data
    assert data["block"] == {"kind": "basic"}
    assert [s.get("block") for s in data["stages"]] == [None, None, "bottleneck", None]
    assert resgen.diff(MIXED, data).same


def test_keras_and_torch_agree_both_ways() -> None:
    report = parity.check(resgen.compile(MIXED, input_size=(65, 47)))
    assert report.passed, parity.format_report(report)
    assert {t.direction for t in report.taps} == {"torch->keras", "keras->torch"}
    assert {"stage3", "output"} <= {t.tap for t in report.taps}


def test_kinds_mixed_within_one_stage_are_refused() -> None:
    from timm.models.resnet import BasicBlock, Bottleneck, ResNet

    model = ResNet(block=BasicBlock, layers=(1, 2, 1, 1), channels=(32, 48, 64, 96), num_classes=10)
    model.layer2[1] = Bottleneck(48, 12)  # 12 * 4 = 48 channels: the shapes still fit
    with pytest.raises(NotExpressible, match=r"layer2\.1.*a block kind 'bottleneck' where other blocks"):
        spec_from_torch(model, name="mixed_stage", input_size=(65, 47), source="test")


def test_the_generated_keras_model_imports_as_the_spec() -> None:
    from resgen.generated_module import import_generated
    from resgen.importers.keras_model import spec_from_keras

    model = import_generated(resgen.render(MIXED, "keras"), "stage_blocks_keras").build_model()
    data = spec_from_keras(model, name="mixed_blocks", input_size=None, source="mixed.py:build_model").data
    assert [s.get("block") for s in data["stages"]] == [None, None, "bottleneck", None]
    assert resgen.diff(MIXED, data).same
