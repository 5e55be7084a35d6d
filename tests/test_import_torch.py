"""Importing torch models: torchvision's and timm's ResNets become specs that reproduce them exactly.

Each imported spec compiles; torchvision's ten import to the shipped preset's network (resgen's
semantic diff says "same"); for every model the generated torch module loads the original's state
dict with ``strict=True`` and computes its function within 1e-5 at a small odd input size, with
timm's parameter count. Models the spec language cannot express are refused with the module path
and the construct. Nothing is downloaded (``pretrained=False``, ``weights=None``).
"""

from __future__ import annotations

from typing import Any

import pytest

import resgen
from resgen.generated_module import import_generated
from resgen.importers.errors import NotExpressible
from resgen.importers.torch_model import spec_from_torch
from tests.helpers import TORCHVISION_RESNETS
from tests.test_timm_family import random_state

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
torchvision = pytest.importorskip("torchvision")

SIZE = (65, 47)  # small and odd: ceil-mode pools get a partial window, padding reaches the edge

TORCHVISION_FAST = ("resnet18", "resnext50_32x4d", "wide_resnet50_2")

# One model per family of timm's resnet and resnetv2 modules.
TIMM_FAST = [
    "resnet18d",
    "resnet26t",
    "ecaresnetlight",
    "seresnext26d_32x4d",
    "resnetblur18",
    "resnetaa34d",
    "resnetrs50",
    "resnetv2_18",
    "resnetv2_50x1_bit",
    "resnet50_gn",
]
# What the spec language cannot say, with the module it is found in and the construct.
NOT_EXPRESSIBLE = {
    "ecaresnet50d_pruned": ("layer1.1", "a block width"),
    "ecaresnet101d_pruned": ("layer1.1", "a block width"),
    "resnetv2_50d_evos": ("stem.norm1", "EvoNorm2dS0 is not expressible"),
    "resnetv2_50d_frn": ("stem.norm1", "FilterResponseNormTlu2d is not expressible"),
}


def size_for(name: str) -> tuple[int, int]:
    """timm's floor-mode anti-aliasing pools need even maps where its ceil-mode shortcut pools
    meet them: an odd size that stays even deeper down for resnetaa models."""
    return (161, 129) if "aa" in name else SIZE


def timm_names() -> list[str]:
    return timm.list_models(module="resnet") + timm.list_models(module="resnetv2")


def imported(model: Any, name: str, size: tuple[int, int] = SIZE) -> dict[str, Any]:
    return spec_from_torch(model, name=name, input_size=size, source=f"test:{name}").data


def generated_with(net: resgen.Compiled, state: dict[str, Any]) -> Any:
    """The generated torch module holding `state` (loaded strictly), built without initializing
    (on the meta device) where every tensor it holds comes from `state`."""
    module = import_generated(resgen.render(net, "torch"), f"imported_{net.name}")
    with torch.device("meta"):
        ours = module.build_model()
    ours.load_state_dict(state, strict=True, assign=True)
    if any(t.is_meta for t in (*ours.parameters(), *ours.buffers())):  # a buffer not in state dicts
        ours = module.build_model()
        ours.load_state_dict(state, strict=True)
    return ours.eval()


def compare(net: resgen.Compiled, model: Any) -> tuple[float, float]:
    """(max |ours - model|, max |model|) in eval mode at the network's input size, after a strict
    load of the model's weights (normalization tensors randomized, far from 0 and 1)."""
    state = random_state(model, seed=1)
    model.load_state_dict(state)
    ours = generated_with(net, state)
    x = torch.randn(2, 3, *net.graph.input_hwc[:2], generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got, want = ours(x), model.eval()(x)
        if not torch.isfinite(want).all():  # the deepest nets overflow float32 with these statistics
            got, want = ours.double()(x.double()), model.double()(x.double())
    return float((got - want).abs().max()), float(want.abs().max())


def check_reproduces(model: Any, name: str) -> None:
    """The imported spec's torch module loads `model`'s weights strictly and computes its function."""
    data = imported(model, name, size_for(name))
    net = resgen.compile(data)
    params = sum(p.numel() for p in model.parameters())
    assert resgen.summary(net)["params"] == params
    diff, scale = compare(net, model)
    assert diff <= 1e-5 * max(1.0, scale), f"{name}: max |diff| {diff:.3g} (scale {scale:.3g})"


@pytest.mark.parametrize(
    "name",
    [n if n in TORCHVISION_FAST else pytest.param(n, marks=pytest.mark.slow) for n in TORCHVISION_RESNETS],
)
def test_torchvision_imports_to_the_shipped_preset(name: str) -> None:
    model = torchvision.models.get_model(name, weights=None)
    data = imported(model, name, (224, 224))
    assert resgen.diff(data, name).same
    check_reproduces(model, name)


@pytest.mark.parametrize("name", TIMM_FAST)
def test_timm_family_imports_and_reproduces(name: str) -> None:
    check_reproduces(timm.create_model(name, pretrained=False), name)


@pytest.mark.slow
def test_every_timm_resnet_imports_or_names_what_it_cannot() -> None:
    names = timm_names()
    refused = {}
    for name in names:
        model = timm.create_model(name, pretrained=False)
        try:
            check_reproduces(model, name)
        except NotExpressible as error:
            refused[name] = str(error)
    assert set(refused) == set(NOT_EXPRESSIBLE), refused
    assert len(names) - len(refused) >= 0.95 * len(names)


@pytest.mark.parametrize("name", sorted(NOT_EXPRESSIBLE))
def test_what_cannot_be_expressed_is_named(name: str) -> None:
    where, construct = NOT_EXPRESSIBLE[name]
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    with pytest.raises(NotExpressible) as caught:
        imported(model, name)
    assert caught.value.where == where
    assert construct in caught.value.construct
    assert str(caught.value).startswith(f"{where}: ")


def test_a_meta_model_imports_without_computing() -> None:
    with torch.device("meta"):
        model = timm.create_model("resnet50d", pretrained=False)
    data = imported(model, "resnet50d", (224, 224))
    assert resgen.diff(data, "resnet50d").network_changes == ()


def test_notes_comment_fields_the_spec_has() -> None:
    with torch.device("meta"):
        model = timm.create_model("resnet26t", pretrained=False)
    result = spec_from_torch(model, name="resnet26t", input_size=(256, 256), source="timm:resnet26t")
    assert result.source == "timm:resnet26t"
    assert result.notes[0] == "Every layer read from the traced torch model (torch.fx)."
    assert "tiered" in result.field_notes["stem.widths"]
    assert "avg_down" in result.field_notes["shortcut.downsample"]
    for dotted in result.field_notes:
        part: Any = result.data
        for key in dotted.split("."):
            part = part[key]  # every note names a field the spec sets
