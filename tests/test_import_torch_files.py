"""Importing hand-written torch models: CIFAR ResNets in the common styles (tests/import_models/) and
resgen's own generated torch modules (the round trip: every preset, rendered, imports to itself)."""

from __future__ import annotations

from typing import Any

import pytest

import resgen
from resgen.generated_module import import_generated
from resgen.importers.torch_model import spec_from_torch
from resgen.load import preset_names
from tests.helpers import randomize_torch_batch_norm
from tests.import_models import cifar_resnets

torch = pytest.importorskip("torch")

CIFAR = ["resnet20", "resnet32", "resnet20_b", "preact_resnet20", "preact_bottleneck29"]
EXPECTED_SHORTCUT = {"resnet20": "zero_pad", "resnet32": "zero_pad", "resnet20_b": "projection"}


def generated_copy(model: Any, data: dict[str, Any]) -> Any:
    """The imported spec's generated torch model with `model`'s state-dict values copied in order."""
    source = resgen.render(data, "torch")
    ours = import_generated(source, f"imported_{data['name']}").build_model()
    theirs = list(model.state_dict().values())
    keys = list(ours.state_dict())
    assert len(keys) == len(theirs)
    ours.load_state_dict(dict(zip(keys, theirs, strict=True)), strict=True)
    return ours


@pytest.mark.parametrize("factory", CIFAR)
def test_cifar_file_imports_and_reproduces(factory: str) -> None:
    torch.manual_seed(0)
    model = getattr(cifar_resnets, factory)()
    randomize_torch_batch_norm(model, 1, signed_scales=True)
    data = spec_from_torch(
        model, name=factory, input_size=(32, 32), source=f"cifar_resnets.py:{factory}"
    ).data
    if factory in EXPECTED_SHORTCUT:
        assert data["shortcut"]["kind"] == EXPECTED_SHORTCUT[factory]
    ours = generated_copy(model, data).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got, want = ours(x), model.eval()(x)
    assert float((got - want).abs().max()) <= 1e-5 * max(1.0, float(want.abs().max()))


@pytest.mark.parametrize(
    ("factory", "preset"), [("resnet20", "cifar_resnet20"), ("resnet32", "cifar_resnet32")]
)
def test_option_a_file_imports_to_the_shipped_cifar_preset(factory: str, preset: str) -> None:
    model = getattr(cifar_resnets, factory)()
    data = spec_from_torch(model, name=preset, input_size=(32, 32), source=f"cifar_resnets.py:{factory}").data
    assert resgen.diff(data, preset).same


def round_trip(preset: str) -> None:
    net = resgen.compile(preset)
    height, width, _ = net.graph.input_hwc
    model = import_generated(resgen.render(net, "torch"), f"round_trip_{preset}").build_model()
    data = spec_from_torch(model, name=preset, input_size=(height, width), source=f"{preset}.py").data
    d = resgen.diff(data, preset)
    assert d.same, (d.graph, [c.where for c in d.network_changes])


ROUND_TRIP_FAST = (
    "resnet18",
    "cifar_resnet20",
    "resnet26t",
    "resnetv2_50x1_bit",
    "keras_resnet50v2",
    "seresnet50",
)


@pytest.mark.parametrize("preset", ROUND_TRIP_FAST)
def test_round_trip_of_a_rendered_preset(preset: str) -> None:
    round_trip(preset)


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(set(preset_names()) - set(ROUND_TRIP_FAST)))
def test_round_trip_of_every_preset(preset: str) -> None:
    round_trip(preset)


def test_an_activation_the_spec_lacks_is_named_with_its_module() -> None:
    from resgen.importers.errors import NotExpressible

    model = cifar_resnets.resnet20_b()
    model.layer2[1].bn1 = torch.nn.Sequential(model.layer2[1].bn1, torch.nn.SiLU())
    with pytest.raises(NotExpressible) as caught:
        spec_from_torch(model, name="silu", input_size=(32, 32), source="test")
    assert str(caught.value) == "layer2.1.bn1.1: SiLU is not expressible"


def test_a_concatenation_is_named_with_its_module() -> None:
    from resgen.importers.errors import NotExpressible

    class Concat(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x: Any) -> Any:
            return torch.cat([self.conv(x), x], 1)

    with pytest.raises(NotExpressible, match="cat is not expressible"):
        spec_from_torch(Concat(), name="concat", input_size=(16, 16), source="test")
