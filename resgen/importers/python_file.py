"""A model from a Python file: ``path/to/models.py:resnet20`` names a class, a function taking no
arguments, or a model object in that file.

The file is run as a module of its own (its folder first on the import path while it runs, so that
it can import its neighbours). What the callable returns decides the framework, by its type: a
``torch.nn.Module`` or a ``keras.Model``; the framework is the one the file itself imported. A file may
state the input size its model expects with ``INPUT_SIZE = (H, W)`` (or one number for a square).
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib.util
import inspect
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from resgen.errors import shown
from resgen.importers.errors import BadReference
from resgen.importers.reference import Built, Reference, _fixed_size, _version, import_keras_quietly

# A file that imports one of these and finds it missing gets resgen's "install the extra" message.
_FRAMEWORK_PACKAGES = ("torch", "torchvision", "timm", "keras", "tensorflow", "numpy")
_MENTIONS_KERAS = re.compile(rb"\b(keras|tensorflow)\b")


def build(ref: Reference, input_size: tuple[int, int] | None) -> Built:
    """Run the file, build its model with the file's own (random) initialisation, and say what it is."""
    assert ref.path is not None
    module = _run(ref.path)
    missing = object()
    target = getattr(module, ref.name, missing)
    if target is missing:
        public = [n for n in vars(module) if not n.startswith("_")]
        close = difflib.get_close_matches(ref.name, public, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise BadReference(f"{shown(ref.path)} defines no {ref.name!r}{hint}")
    model = target if framework_of(target) else _call(target, ref.name)
    framework = framework_of(model)
    if framework is None:
        raise BadReference(
            f"{ref.name} gives a {type(model).__name__}, not a torch.nn.Module or a keras.Model"
        )
    size = _declared_size(module, ref) or (_fixed_size(model) if framework == "keras" else None)
    library = sys.modules["torch" if framework == "torch" else "keras"]
    words = "torch" if framework == "torch" else "Keras"
    return Built(model, framework, size, f"{words} {_version(library)}")


def framework_of(value: Any) -> str | None:
    """ "torch" for a torch.nn.Module, "keras" for a keras.Model, else None; only frameworks already
    imported (by the file) are asked, so none is imported here."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.nn.Module):
        return "torch"
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(value, keras.Model):
        return "keras"
    return None


def _run(path: Path) -> ModuleType:
    try:
        if not path.is_file():
            raise BadReference(f"{shown(path)}: {'not a file' if path.exists() else 'no such file'}")
        source = path.read_bytes()
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, a file that cannot be read
        raise BadReference(
            f"{shown(path)}: cannot be read: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    if _MENTIONS_KERAS.search(source):
        import_keras_quietly()  # torch first, and no TensorFlow start-up lines
    digest = hashlib.sha256(str(path.resolve()).encode("utf-8")).hexdigest()[:12]
    name = f"_resgen_import_{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BadReference(f"{shown(path)}: cannot be read as a Python module")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in _FRAMEWORK_PACKAGES:
            raise
        raise BadReference(f"{shown(path)}: cannot be imported: {_one_line(exc)}") from None
    except SyntaxError as exc:
        raise BadReference(f"{shown(path)}:{exc.lineno}: invalid Python: {exc.msg}") from None
    except Exception as exc:  # the file's own code failed: the user's problem, said in one line
        raise BadReference(f"{shown(path)}: cannot be imported: {_one_line(exc)}") from None
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
    return module


def _call(target: Any, name: str) -> Any:
    if not callable(target):
        raise BadReference(f"{name} is a {type(target).__name__}, not a class or a function")
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        needed = [
            p.name
            for p in signature.parameters.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if needed:
            raise BadReference(
                f"{name} needs arguments ({', '.join(needed)}); name a class or function that takes "
                f"none, such as `def {name}_default(): return {name}(...)` in the file"
            )
    try:
        return target()
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in _FRAMEWORK_PACKAGES:
            raise
        raise BadReference(f"{name}() failed: {_one_line(exc)}") from None
    except Exception as exc:
        raise BadReference(f"{name}() failed: {_one_line(exc)}") from None


def _declared_size(module: ModuleType, ref: Reference) -> tuple[int, int] | None:
    declared = getattr(module, "INPUT_SIZE", None)
    if declared is None:
        return None
    if isinstance(declared, int) and not isinstance(declared, bool):
        declared = (declared, declared)
    if (
        isinstance(declared, tuple | list)
        and len(declared) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 4096 for s in declared)
    ):
        return int(declared[0]), int(declared[1])
    raise BadReference(f"{shown(ref.path or '')}: INPUT_SIZE must be (H, W), each from 1 to 4096")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
