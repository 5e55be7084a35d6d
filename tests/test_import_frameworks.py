"""References built with the real libraries: timm, torchvision, keras.applications and Python files
with torch and Keras models, random weights, nothing downloaded. The recognisers are stand-ins
(tests/import_fakes.py): what is tested is what they are given and what is imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from resgen.importers import reference
from resgen.importers.errors import BadReference
from tests import import_fakes
from tests.helpers import ROOT, cli


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> import_fakes.Calls:
    return import_fakes.install(monkeypatch, builders=False)


# Run in a fresh interpreter: which frameworks importing one reference loads.
_PROBE = textwrap.dedent(
    """
    import json, sys, types
    from resgen.importers import reference
    from resgen.importers.result import ImportedSpec
    from resgen import load
    seen = []
    def recognise(model, *, name, input_size, source):
        seen.append([type(model).__module__, name, list(input_size)])
        return ImportedSpec(dict(load.load("resnet18").data, name=name), source)
    module = types.ModuleType("resgen.importers.torch_model")
    module.spec_from_torch = recognise
    sys.modules[module.__name__] = module
    reference.import_reference(sys.argv[1])
    libraries = {"torch", "torchvision", "timm", "keras", "tensorflow"}
    loaded = sorted({m.split(".")[0] for m in sys.modules} & libraries)
    print(json.dumps({"seen": seen, "loaded": loaded}))
    """
)


@pytest.mark.parametrize(
    ("ref", "loaded"),
    [
        ("torchvision:resnet18", ["torch", "torchvision"]),
        ("timm:resnet18d", ["timm", "torch", "torchvision"]),
    ],
)
def test_a_torch_reference_imports_no_keras_or_tensorflow(ref: str, loaded: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, ref],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["loaded"] == loaded
    assert "keras" not in report["loaded"] and "tensorflow" not in report["loaded"]
    assert report["seen"][0][1:] == [reference.spec_name(ref.partition(":")[2]), [224, 224]]


@pytest.mark.parametrize(("name", "size"), [("resnet50d", (224, 224)), ("resnet50.a1h_in1k", (176, 176))])
def test_timm_models_are_built_at_their_published_size(
    calls: import_fakes.Calls, name: str, size: tuple
) -> None:
    reference.import_reference(f"timm:{name}")
    framework, model, kwargs = calls.seen[-1]
    assert framework == "torch" and isinstance(model, torch.nn.Module)
    assert kwargs == {"name": reference.spec_name(name), "input_size": size, "source": f"timm:{name}"}
    reference.import_reference(f"timm:{name}", input_size=(96, 128))
    assert calls.seen[-1][2]["input_size"] == (96, 128)


def test_unknown_names_suggest_the_nearest(calls: import_fakes.Calls) -> None:
    with pytest.raises(BadReference, match=r"timm has no model 'resnet50dd'; did you mean resnet50d"):
        reference.import_reference("timm:resnet50dd")
    with pytest.raises(BadReference, match=r"no classification model 'resnet5'; did you mean resnet50"):
        reference.import_reference("torchvision:resnet5")
    # detection builders load backbone weights by default: refused, nothing downloaded
    with pytest.raises(BadReference, match="no classification model 'fasterrcnn_resnet50_fpn'"):
        reference.import_reference("torchvision:fasterrcnn_resnet50_fpn")
    assert calls.seen == []


def test_torchvision_models_are_torch_modules_at_224(calls: import_fakes.Calls) -> None:
    reference.import_reference("torchvision:resnext50_32x4d")
    framework, model, kwargs = calls.seen[-1]
    assert framework == "torch" and type(model).__module__ == "torchvision.models.resnet"
    assert kwargs["input_size"] == (224, 224) and kwargs["name"] == "resnext50_32x4d"


def test_keras_applications_are_keras_models_at_the_size_asked(calls: import_fakes.Calls) -> None:
    import keras

    reference.import_reference("keras:ResNet50V2", input_size=(64, 96))
    framework, model, kwargs = calls.seen[-1]
    assert framework == "keras" and isinstance(model, keras.Model)
    assert model.input_shape == (None, 64, 96, 3) and kwargs["input_size"] == (64, 96)
    with pytest.raises(
        BadReference, match=r"keras\.applications has no model 'ResNet50v2'; did you mean ResNet50V2"
    ):
        reference.import_reference("keras:ResNet50v2")


TORCH_FILE = """
import torch.nn as nn
import torch.nn.functional as F

{size}

class Net(nn.Module):
    resgen_preset = "cifar_resnet20"

    def __init__(self, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(F.relu(self.conv(x)), 1).flatten(1))

def make():
    return Net(classes=100)

instance = Net()
"""


@pytest.mark.parametrize("name", ["Net", "make", "instance"])
def test_a_torch_file_gives_a_class_a_factory_or_a_model(
    calls: import_fakes.Calls, name: str, tmp_path: Path
) -> None:
    models = tmp_path / "cifar_models.py"
    models.write_text(TORCH_FILE.format(size="INPUT_SIZE = (32, 32)"))
    imported = reference.import_reference(f"{models}:{name}")
    framework, model, kwargs = calls.seen[-1]
    assert framework == "torch" and type(model).__name__ == "Net"
    assert kwargs["input_size"] == (32, 32) and kwargs["name"] == name
    assert imported.source == f"{models}:{name}"


def test_a_torch_file_without_a_size_needs_input_size(calls: import_fakes.Calls, tmp_path: Path) -> None:
    models = tmp_path / "models.py"
    models.write_text(TORCH_FILE.format(size=""))
    with pytest.raises(BadReference, match="Net declares no input size; give one with --input-size HxW"):
        reference.import_reference(f"{models}:Net")
    result = cli("import", f"{models}:Net", "-o", "-", "--input-size", "32x32")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"# Imported by resgen from {models}:Net (torch {torch.__version__}).")


def test_a_keras_file_gives_its_fixed_input_size(calls: import_fakes.Calls, tmp_path: Path) -> None:
    models = tmp_path / "keras_models.py"
    models.write_text(
        "import keras\n\n"
        "def tiny():\n"
        "    inputs = keras.Input((40, 48, 3))\n"
        "    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3)(inputs))\n"
        "    return keras.Model(inputs, keras.layers.Dense(10)(x))\n"
    )
    reference.import_reference(f"{models}:tiny")
    framework, _, kwargs = calls.seen[-1]
    assert framework == "keras" and kwargs["input_size"] == (40, 48)


_DIFF = textwrap.dedent(
    """
    import sys, types
    from resgen import load
    from resgen.cli import main
    from resgen.importers.result import ImportedSpec
    def recognise(model, *, name, input_size, source):
        return ImportedSpec(dict(load.load("resnet18").data, name=name), source)
    for framework, function in (("torch", "spec_from_torch"), ("keras", "spec_from_keras")):
        module = types.ModuleType(f"resgen.importers.{framework}_model")
        setattr(module, function, recognise)
        sys.modules[module.__name__] = module
    main(["diff", "keras:ResNet50", "torchvision:resnet18"])
    """
)


def test_a_keras_reference_then_a_torchvision_one_in_one_process() -> None:
    """torchvision's native code crashes a process that loaded TensorFlow first; a Keras reference
    loads torch and torchvision before Keras, so that a diff can name both."""
    result = subprocess.run(
        [sys.executable, "-c", _DIFF], capture_output=True, text=True, cwd=ROOT, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "oneDNN" not in result.stderr and "absl" not in result.stderr


@pytest.mark.parametrize(
    ("ref", "preset"),
    [
        ("torchvision:resnet18", "resnet18"),
        ("torchvision:resnext50_32x4d", "resnext50_32x4d"),
        ("timm:resnet50d", "resnet50d"),
        ("keras:ResNet50V2", "keras_resnet50v2"),
    ],
)
def test_an_imported_library_model_is_its_preset_end_to_end(ref: str, preset: str, tmp_path: Path) -> None:
    """With the real recognisers (skipped where they are not installed): the written file, and the
    reference itself, diff as the same network as the shipped preset."""
    framework = "keras" if ref.startswith("keras:") else "torch"
    pytest.importorskip(f"resgen.importers.{framework}_model")
    out = tmp_path / "imported.yaml"
    result = cli("import", ref, "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert out.read_text().startswith(f"# Imported by resgen from {ref} (")
    for spec in (str(out), ref):
        diff = cli("diff", spec, preset)
        assert diff.exit_code == 0, diff.stdout + diff.stderr
