"""Test lanes: which tests need a framework, which are slow, and the guard that keeps the fast lane fast.

Markers (registered in pyproject.toml):

- ``framework``: the test imports torch, TensorFlow or Keras. Every test in a module of
  `FRAMEWORK_MODULES` gets it here; a test elsewhere that needs a framework carries it itself.
  ``python -m pytest -q -m "not framework"`` does not even import those modules (`pytest_ignore_collect`),
  and fails the session if torch, TensorFlow or Keras was imported all the same.
- ``slow``: a deep preset whose code path a shallow one already covers. Skipped unless
  ``RESGEN_SLOW_TESTS=1`` is set or the ``-m`` expression names ``slow`` (``python -m pytest -q -m slow``).
- ``gpu``: needs a CUDA device (tests/test_gpu.py skips itself without one).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

# Quiet TensorFlow's start-up chatter in test logs; it does not change results.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TESTS = Path(__file__).resolve().parent
# Test modules that import a framework at import time or in most of their tests.
FRAMEWORK_MODULES = frozenset(
    {
        "test_backbone_frameworks.py",
        "test_distributed_keras.py",
        "test_distributed_torch.py",
        "test_export.py",
        "test_gpu.py",
        "test_import_frameworks.py",
        "test_import_keras.py",
        "test_import_torch.py",
        "test_import_styles.py",
        "test_import_torch_files.py",
        "test_keras_target.py",
        "test_keras_weight_files.py",
        "test_mixed_precision.py",
        "test_parity.py",
        "test_performance_options.py",
        "test_schema_parity.py",
        "test_stage_blocks_frameworks.py",
        "test_torch_target.py",
        "test_timm_family.py",
        "test_training_parts.py",
        "test_weights.py",
        "test_weights_files.py",
    }
)
# What the fast lane must not import (top-level package names).
FRAMEWORKS = ("torch", "torchvision", "tensorflow", "keras", "jax", "jaxlib")
_OTHER_MARKERS = ("slow", "gpu")


def framework_excluded(markexpr: str) -> bool:
    """True when the ``-m`` expression deselects every test marked ``framework``, whatever else it has."""
    if not markexpr.strip():
        return False
    from _pytest.mark.expression import Expression

    expression = Expression.compile(markexpr)
    for flags in itertools.product((False, True), repeat=len(_OTHER_MARKERS)):
        marks = {"framework", *(m for m, on in zip(_OTHER_MARKERS, flags, strict=True) if on)}
        if expression.evaluate(_matcher(marks)):
            return False
    return True


def _matcher(marks: set[str]) -> Any:
    def matches(name: str, /, **kwargs: Any) -> bool:
        return name in marks and not kwargs  # keyword arguments: none of our markers take any

    return matches


def slow_selected(markexpr: str) -> bool:
    """Slow tests run when RESGEN_SLOW_TESTS=1 or the ``-m`` expression names ``slow``."""
    return os.environ.get("RESGEN_SLOW_TESTS", "") not in ("", "0") or bool(re.search(r"\bslow\b", markexpr))


def _markexpr(config: pytest.Config) -> str:
    return config.getoption("markexpr", "") or ""


def _in_framework_module(path: Path) -> bool:
    return path.name in FRAMEWORK_MODULES and path.parent == TESTS


_preloaded = False


def _load_torchvision_first() -> None:
    """torchvision 0.29's C extension (and Triton's) crashes the process (segmentation fault) when it
    is loaded after TensorFlow 2.21; loaded first, both work. Called before the first framework test module is
    imported and before the first framework test runs, never in the fast lane."""
    global _preloaded
    if not _preloaded:
        _preloaded = True
        with contextlib.suppress(ImportError):
            import torchvision  # noqa: F401
        with contextlib.suppress(ImportError):  # the same for Triton (torch.export and ONNX export use it)
            import triton.runtime  # noqa: F401


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if _in_framework_module(collection_path) and framework_excluded(_markexpr(config)):
        return True
    return None


def pytest_collectstart(collector: pytest.Collector) -> None:
    if isinstance(collector, pytest.Module) and _in_framework_module(collector.path):
        _load_torchvision_first()


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m deselection sees the items
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = slow_selected(_markexpr(config))
    skip_slow = pytest.mark.skip(reason="slow: set RESGEN_SLOW_TESTS=1 or select with -m slow")
    for item in items:
        if _in_framework_module(item.path):
            item.add_marker(pytest.mark.framework)
        if not run_slow and item.get_closest_marker("slow") is not None:
            item.add_marker(skip_slow)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("framework") is not None:
        _load_torchvision_first()


def loaded_frameworks() -> list[str]:
    return sorted({name.split(".")[0] for name in sys.modules} & set(FRAMEWORKS))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The fast lane fails if anything in it imported a framework (a test that needs the marker)."""
    if not framework_excluded(_markexpr(session.config)):
        return
    loaded = loaded_frameworks()
    if loaded:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = (
            f"the -m 'not framework' lane imported {', '.join(loaded)}: mark the test that needs it "
            "@pytest.mark.framework (or list its module in tests/conftest.py's FRAMEWORK_MODULES)"
        )
        if reporter is not None:
            reporter.write_line(f"ERROR: {message}", red=True)
        else:
            print(f"ERROR: {message}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
