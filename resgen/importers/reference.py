"""References: a model that exists in code, named where a spec is expected.

``timm:resnet50d``, ``torchvision:resnext50_32x4d``, ``keras:ResNet50V2`` (keras.applications) and
``path/to/models.py:resnet20`` (a class, a factory taking no arguments, or a model in a Python file).
`import_reference` builds the model with random weights (nothing is downloaded) and hands it to the
recogniser of its framework, which returns the spec. Only the framework a reference needs is imported.

A reference is told from a spec argument by its form alone: a spec file ends in .yaml, .yml or .json
and a preset name has no colon, so neither is ever taken for a reference; a path that exists as a
file is a spec file, whatever its name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resgen.importers.errors import BadReference
from resgen.importers.result import ImportedSpec

# The libraries a reference can name, by prefix.
LIBRARIES = ("timm", "torchvision", "keras")
_SPEC_SUFFIXES = (".yaml", ".yml", ".json")
_CALLABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A model name as the libraries spell them: timm's may carry a pretrained tag (resnet50.a1_in1k).
_MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")
_FILE_REFERENCE = re.compile(r"(?P<path>.+\.[pP][yY]):(?P<callable>[^:/\\]*)")
DEFAULT_SIDE = 224  # torchvision's and keras.applications' ImageNet size

# The recogniser of each framework: module and function, imported when a model needs it.
RECOGNISERS: dict[str, tuple[str, str]] = {
    "torch": ("resgen.importers.torch_model", "spec_from_torch"),
    "keras": ("resgen.importers.keras_model", "spec_from_keras"),
}


@dataclass(frozen=True)
class Reference:
    """A parsed reference: `kind` is timm, torchvision, keras or file; `name` the model name (or the
    callable's name); `path` the Python file for a file reference."""

    text: str
    kind: str
    name: str
    path: Path | None = None


@dataclass(frozen=True)
class Built:
    """A model built from a reference: the model, its framework (torch or keras), the input size the
    library declares for it (None where it declares none), and the library and version it came from."""

    model: Any
    framework: str
    input_size: tuple[int, int] | None
    origin: str


def is_reference(text: str) -> bool:
    """True when `text` is written as a reference rather than a spec file or a preset name."""
    if not isinstance(text, str) or not text or text.lower().endswith(_SPEC_SUFFIXES):
        return False
    if any(text.startswith(f"{library}:") for library in LIBRARIES):
        return not os.path.lexists(text)
    match = _FILE_REFERENCE.fullmatch(text)
    return match is not None and not os.path.lexists(text)


def parse_reference(text: str) -> Reference:
    """The parts of a reference; `BadReference` when it names nothing a reference can name."""
    if not is_reference(text):
        raise BadReference(
            "not a reference; write timm:NAME, torchvision:NAME, keras:NAME or FILE.py:CALLABLE"
        )
    library, _, name = text.partition(":")
    if library in LIBRARIES:
        if not _MODEL_NAME.fullmatch(name):
            what = "no model name" if not name else f"{name!r} is not a model name"
            raise BadReference(f"{what}; write {library}:NAME (for example {library}:{_EXAMPLES[library]})")
        return Reference(text, library, name)
    match = _FILE_REFERENCE.fullmatch(text)
    assert match is not None
    callable_name = match["callable"]
    if not _CALLABLE.fullmatch(callable_name):
        what = "no callable named" if not callable_name else f"{callable_name!r} is not a Python name"
        raise BadReference(f"{what}; write FILE.py:NAME, NAME a class or function in the file")
    return Reference(text, "file", callable_name, Path(match["path"]))


_EXAMPLES = {"timm": "resnet50d", "torchvision": "resnet50", "keras": "ResNet50V2"}


def spec_name(text: str) -> str:
    """A valid spec name from a model or callable name: other characters become underscores."""
    from resgen.spec import IDENTIFIER, name_problem

    name = re.sub(r"[^A-Za-z0-9_]", "_", text).strip("_") or "imported"
    if not name[0].isalpha():
        name = "model_" + name
    name = name[:64]
    if not re.fullmatch(IDENTIFIER, name) or name_problem(name):
        name = (name[:57] + "_model") if not name.endswith("_model") else name[:58] + "_net"
    return name


def import_reference(
    text: str, *, input_size: tuple[int, int] | None = None, name: str | None = None
) -> ImportedSpec:
    """The spec of the model `text` names, at `input_size` (height, width) or the model's own size."""
    return import_with_origin(text, input_size=input_size, name=name)[0]


def import_with_origin(
    text: str, *, input_size: tuple[int, int] | None = None, name: str | None = None
) -> tuple[ImportedSpec, str]:
    """`import_reference`, and where the model came from in words (``timm 1.0.31``)."""
    ref = parse_reference(text)
    built = BUILDERS[ref.kind](ref, input_size)
    size = input_size or built.input_size
    module_name, function_name = RECOGNISERS[built.framework]
    recognise: Callable[..., ImportedSpec] = getattr(importlib.import_module(module_name), function_name)
    model_name = name or spec_name(ref.name)
    if built.framework == "torch" and size is None:  # a Keras model may fix its own input shape
        raise BadReference(
            f"{ref.name} declares no input size; give one with --input-size HxW "
            "(or set INPUT_SIZE = (H, W) in the file)"
        )
    imported = recognise(built.model, name=model_name, input_size=size, source=text)
    if imported.source != text:
        imported = dataclasses.replace(imported, source=text)
    return imported, built.origin


def _version(module: Any) -> str:
    return str(getattr(module, "__version__", "unknown version"))


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def _build_timm(ref: Reference, input_size: tuple[int, int] | None) -> Built:
    import timm

    if not timm.is_model(ref.name):
        hint = _did_you_mean(ref.name, timm.list_models())
        raise BadReference(f"timm has no model {ref.name!r}{hint}")
    model = timm.create_model(ref.name, pretrained=False)
    config = getattr(model, "pretrained_cfg", None) or {}
    declared = config.get("input_size")
    size = (int(declared[-2]), int(declared[-1])) if declared and len(declared) >= 2 else None
    return Built(model, "torch", size, f"timm {_version(timm)}")


def _build_torchvision(ref: Reference, input_size: tuple[int, int] | None) -> Built:
    import torchvision

    # classification models only: detection and segmentation builders load backbone weights by default
    known = torchvision.models.list_models(module=torchvision.models)
    if ref.name not in known:
        hint = _did_you_mean(ref.name, known)
        raise BadReference(f"torchvision has no classification model {ref.name!r}{hint}")
    model = torchvision.models.get_model(ref.name, weights=None)
    return Built(model, "torch", (DEFAULT_SIDE, DEFAULT_SIDE), f"torchvision {_version(torchvision)}")


def _build_keras(ref: Reference, input_size: tuple[int, int] | None) -> Built:
    keras = import_keras_quietly()
    applications = keras.applications
    known = sorted(n for n in dir(applications) if n[:1].isupper() and callable(getattr(applications, n)))
    if ref.name not in known:
        hint = _did_you_mean(ref.name, known)
        raise BadReference(f"keras.applications has no model {ref.name!r}{hint}")
    shape = {"input_shape": (*input_size, 3)} if input_size else {}
    try:
        model = getattr(applications, ref.name)(weights=None, **shape)
    except ValueError as exc:  # a size the model does not accept
        raise BadReference(" ".join(str(exc).split())) from None
    return Built(model, "keras", _fixed_size(model), f"keras.applications, Keras {_version(keras)}")


def import_keras_quietly() -> Any:
    """Keras with TensorFlow, without TensorFlow's start-up lines on stderr.

    torch and torchvision, where installed, are imported first: torchvision's native code crashes the
    process when it is loaded after TensorFlow's (as `resgen diff keras:ResNet50 torchvision:resnet50`
    would).
    """
    if "keras" in sys.modules:
        return sys.modules["keras"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for first in ("torch", "torchvision"):
        if importlib.util.find_spec(first) is not None:
            with contextlib.suppress(ImportError):
                importlib.import_module(first)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as sink:
            os.dup2(sink.fileno(), 2)
            import keras
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return keras


def _fixed_size(model: Any) -> tuple[int, int] | None:
    """The height and width of a Keras model's input, where they are fixed."""
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, tuple) and len(shape) == 4 and all(isinstance(s, int) for s in shape[1:3]):
        return int(shape[1]), int(shape[2])
    return None


# How each kind of reference is built; tests replace entries to run without a framework.
BUILDERS: dict[str, Callable[[Reference, tuple[int, int] | None], Built]] = {
    "timm": _build_timm,
    "torchvision": _build_torchvision,
    "keras": _build_keras,
}


def _build_file(ref: Reference, input_size: tuple[int, int] | None) -> Built:
    from resgen.importers.python_file import build

    return build(ref, input_size)


BUILDERS["file"] = _build_file
