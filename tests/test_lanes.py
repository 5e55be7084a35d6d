"""The test lanes of tests/conftest.py: the fast lane imports no framework, slow tests wait to be asked.

    python -m pytest -q -m "not framework"     # fast lane: no torch, TensorFlow or Keras
    python -m pytest -q                        # everything but slow tests
    python -m pytest -q -m slow                # the slow tests (or RESGEN_SLOW_TESTS=1 with any command)

Each lane is checked in a child pytest, so that this run's own imports do not count.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from resgen import load
from tests.conftest import FRAMEWORK_MODULES, FRAMEWORKS, TESTS, framework_excluded, slow_selected
from tests.helpers import DEEP_PRESETS, HANG_GUARD_S, ROOT

# Run in the child as `python -c CHILD ARGS...`: pytest on ARGS, then a JSON line of what it had loaded.
CHILD = (
    f"FRAMEWORKS = {FRAMEWORKS!r}\n"
    + """
import json, sys
import pytest

code = pytest.main(sys.argv[1:])
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(FRAMEWORKS))
print(json.dumps({"exit_code": int(code), "loaded": loaded}))
"""
)


def run_child_pytest(*args: str, env: dict[str, str] | None = None) -> tuple[dict[str, object], str]:
    """pytest ARGS in a fresh interpreter at the repository root: its report and its output."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env or os.environ.copy(),
        timeout=HANG_GUARD_S * 3,  # a hang guard, not a speed claim
    )
    lines = done.stdout.strip().splitlines()
    assert lines, done.stdout + done.stderr
    return json.loads(lines[-1]), done.stdout + done.stderr


# --- the -m expressions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markexpr", "excluded"),
    [
        ("", False),
        ("not framework", True),
        ("not framework and not slow", True),
        ("not (framework or gpu)", True),
        ("framework", False),
        ("slow", False),
        ("gpu", False),
        ("not slow", False),
        ("not gpu", False),
    ],
)
def test_which_expressions_leave_out_framework_tests(markexpr: str, excluded: bool) -> None:
    assert framework_excluded(markexpr) is excluded


def test_slow_tests_are_selected_by_the_expression_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RESGEN_SLOW_TESTS", raising=False)
    assert slow_selected("slow") and slow_selected("slow and not gpu")
    assert not slow_selected("") and not slow_selected("not framework") and not slow_selected("slowly")
    monkeypatch.setenv("RESGEN_SLOW_TESTS", "0")
    assert not slow_selected("")
    monkeypatch.setenv("RESGEN_SLOW_TESTS", "1")
    assert slow_selected("")


# --- which modules are framework modules -----------------------------------------------------------


def _top_level_framework_imports(path: Path) -> list[str]:
    """Frameworks a module imports when it is imported (outside functions and classes)."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            return
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
        elif (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) == "pytest.importorskip"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.append(str(node.args[0].value))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return sorted({name for name in found if name.split(".")[0] in FRAMEWORKS})


def test_modules_that_import_a_framework_are_framework_modules() -> None:
    modules = sorted(TESTS.glob("test_*.py"))
    importing = {path.name: _top_level_framework_imports(path) for path in modules}
    unlisted = {name: found for name, found in importing.items() if found and name not in FRAMEWORK_MODULES}
    assert not unlisted, f"add to FRAMEWORK_MODULES in tests/conftest.py: {unlisted}"
    assert {path.name for path in modules} >= FRAMEWORK_MODULES
    helpers = [TESTS / "conftest.py", TESTS / "helpers.py", TESTS / "strategies.py"]
    assert all(_top_level_framework_imports(path) == [] for path in helpers)


def test_deep_presets_are_presets() -> None:
    assert set(load.preset_names()) >= DEEP_PRESETS


# --- the lanes, in a child pytest ------------------------------------------------------------------


def test_fast_lane_collects_no_framework_module_and_imports_no_framework() -> None:
    report, output = run_child_pytest("-m", "not framework", "--collect-only", "-q", "-p", "no:cacheprovider")
    assert report["exit_code"] == 0, output
    assert report["loaded"] == [], output
    collected = {line.split("::")[0] for line in output.splitlines() if "::" in line}
    assert "tests/test_generated_module.py" in collected and "tests/test_lanes.py" in collected, output
    assert not {f"tests/{name}" for name in FRAMEWORK_MODULES} & collected, output


def _write_tests(folder: Path, source: str) -> Path:
    path = folder / "test_planted.py"
    path.write_text(source, encoding="utf-8")
    return path


def _plugin_args(path: Path, *args: str) -> list[str]:
    """Run `path` under tests/conftest.py (as a plugin: the file lies outside tests/) and pyproject.toml."""
    return [
        "-c",
        str(ROOT / "pyproject.toml"),
        "-p",
        "tests.conftest",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:hypothesispytest",  # the planted tests need no Hypothesis
        *args,
        str(path),
    ]


PLANTED_IMPORT = """import sys
import types


def test_loads_torch():
    sys.modules["torch"] = types.ModuleType("torch")
"""


def test_fast_lane_fails_when_a_test_imported_a_framework(tmp_path: Path) -> None:
    """The guard itself: a fast-lane test that loads a framework fails the session. (A stand-in module
    named torch is put in sys.modules: nothing is imported for real.)"""
    path = _write_tests(tmp_path, PLANTED_IMPORT)
    report, output = run_child_pytest(*_plugin_args(path, "-m", "not framework"))
    assert report["exit_code"] == 1, output
    assert "1 passed" in output and "the -m 'not framework' lane imported torch" in output, output


SLOW_TESTS = """import pytest


@pytest.mark.slow
def test_deep():
    pass


def test_shallow():
    pass
"""


def test_slow_tests_skip_unless_asked(tmp_path: Path) -> None:
    path = _write_tests(tmp_path, SLOW_TESTS)
    env = {k: v for k, v in os.environ.items() if k != "RESGEN_SLOW_TESTS"}
    report, output = run_child_pytest(*_plugin_args(path, "-rs"), env=env)
    assert report["exit_code"] == 0 and "1 passed, 1 skipped" in output, output
    assert "slow: set RESGEN_SLOW_TESTS=1 or select with -m slow" in output
    report, output = run_child_pytest(*_plugin_args(path, "-m", "slow"), env=env)
    assert report["exit_code"] == 0 and "1 passed, 1 deselected" in output, output
