"""Stand-ins for the model builders and recognisers of `resgen import`, so that references, the
command and every command that takes a reference are tested without a framework.

`install(monkeypatch)` makes ``timm:NAME``, ``torchvision:NAME`` and ``keras:NAME`` build a `FakeModel`
and the recognisers turn it into the data of a shipped preset (``timm:resnet50d`` -> preset
resnet50d, ``keras:ResNet50V2`` -> keras_resnet50v2), recording every call. Names starting with
``blur`` are models no spec can express; ``missing:`` names raise the error of an absent framework.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

from resgen import load
from resgen.importers import reference
from resgen.importers.errors import BadReference, NotExpressible
from resgen.importers.result import ImportedSpec

KERAS_PRESETS = {"ResNet50": "keras_resnet50", "ResNet50V2": "keras_resnet50v2"}


@dataclass(frozen=True)
class FakeModel:
    library: str
    name: str


@dataclass
class Calls:
    """What the recognisers were given: (framework, model, keyword arguments) per call."""

    seen: list[tuple[str, Any, dict[str, Any]]] = field(default_factory=list)


def preset_data(model: Any) -> dict[str, Any]:
    """The preset a model stands for: a `FakeModel`'s name, or a real model's `resgen_preset`
    attribute (set by a test), else resnet18."""
    name = model.name if isinstance(model, FakeModel) else getattr(model, "resgen_preset", "resnet18")
    preset = KERAS_PRESETS.get(name, name)
    return dict(load.load(preset).data)


def _builder(library: str, framework: str) -> Any:
    def build(ref: reference.Reference, input_size: tuple[int, int] | None) -> reference.Built:
        if ref.name.startswith("missing"):
            raise ModuleNotFoundError(f"No module named {library!r}", name=library)
        known = set(load.preset_names()) | set(KERAS_PRESETS) | {"blurpool", "badspec"}
        if ref.name not in known:
            raise BadReference(f"{library} has no model {ref.name!r}")
        size = input_size or (224, 224)
        return reference.Built(FakeModel(library, ref.name), framework, size, f"{library} 9.9.9")

    return build


def _recogniser(framework: str, calls: Calls) -> Any:
    def recognise(model: Any, **kwargs: Any) -> ImportedSpec:
        calls.seen.append((framework, model, kwargs))
        if not isinstance(model, FakeModel):
            data = preset_data(model)
            data["name"] = kwargs["name"]
            return ImportedSpec(data, kwargs["source"], ("a real model",), {})
        if model.name == "blurpool":
            raise NotExpressible("layer1.0.conv2", "BlurPool2d with filter size 5 is not expressible")
        if model.name == "badspec":
            data = preset_data(FakeModel(model.library, "resnet18"))
            data["stages"] = [{"blocks": 0, "filters": 64, "stride": 1}]
        else:
            data = preset_data(model)
        data["name"] = kwargs["name"]
        if kwargs["input_size"] is not None:
            height, width = kwargs["input_size"]
            data["input"] = {**data["input"], "height": height, "width": width}
        notes = (f"{model.name} as {model.library} builds it.",)
        field_notes = {"stages.1": "a note on the second stage", "head.classes": "ImageNet"}
        return ImportedSpec(data, kwargs["source"], notes, field_notes)

    return recognise


def install(monkeypatch: pytest.MonkeyPatch, *, builders: bool = True) -> Calls:
    """Fake recognisers (and, unless `builders` is False, fake builders) for this test; returns the
    record of recogniser calls. With the real builders, a model's name picks the preset."""
    calls = Calls()
    for library, framework in (("timm", "torch"), ("torchvision", "torch"), ("keras", "keras")):
        if builders:
            monkeypatch.setitem(reference.BUILDERS, library, _builder(library, framework))
    for framework, (module_name, function_name) in reference.RECOGNISERS.items():
        module = types.ModuleType(module_name)
        setattr(module, function_name, _recogniser(framework, calls))
        monkeypatch.setitem(sys.modules, module_name, module)
    return calls
