"""``FILE.py:CALLABLE`` references that name no model: each is one located line and exit 2.

The files here import no framework (the fast lane runs them); files with real torch and Keras models
are in tests/test_import_frameworks.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import import_fakes
from tests.helpers import assert_clean_failure, cli

CASES = {
    "misspelled": (
        "def resnet20():\n    return 1\n",
        "resnt20",
        "defines no 'resnt20'; did you mean resnet20?",
    ),
    "arguments": (
        "def resnet20(depth, width=1):\n    return 1\n",
        "resnet20",
        "resnet20 needs arguments (depth)",
    ),
    "raises": ("x = 1 / 0\n", "x", "cannot be imported: ZeroDivisionError: division by zero"),
    "syntax": ("def f(:\n    pass\n", "f", ":1: invalid Python: "),
    "missing_module": ("import resgen_no_such_module\n", "f", "No module named 'resgen_no_such_module'"),
    "not_a_model": (
        "def f():\n    return [1, 2]\n",
        "f",
        "f gives a list, not a torch.nn.Module or a keras.Model",
    ),
    "not_callable": ("f = 3\n", "f", "f is a int, not a class or a function"),
    "factory_fails": (
        "def f():\n    raise ValueError('bad\\nwidth')\n",
        "f",
        "f() failed: ValueError: bad width",
    ),
    "class_needs_args": (
        "class Net:\n    def __init__(self, depth):\n        pass\n",
        "Net",
        "Net needs arguments (depth)",
    ),
}


@pytest.fixture(autouse=True)
def recognisers(monkeypatch: pytest.MonkeyPatch) -> import_fakes.Calls:
    return import_fakes.install(monkeypatch)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_file_that_names_no_model_is_one_line(case: str, tmp_path: Path) -> None:
    text, name, message = CASES[case]
    models = tmp_path / f"{case}.py"
    models.write_text(text)
    ref = f"{models}:{name}"
    lines = assert_clean_failure(cli("import", ref, "-o", str(tmp_path / "r.yaml")))
    assert len(lines) == 1 and lines[0].startswith(f"{ref}: error: ") and message in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{case}.py"]


def test_a_missing_framework_in_the_file_names_the_extra(tmp_path: Path) -> None:
    models = tmp_path / "models.py"
    models.write_text("raise ModuleNotFoundError(\"No module named 'timm'\", name='timm')\n")
    lines = assert_clean_failure(cli("summary", f"{models}:f"))
    assert "needs timm, which is not installed" in lines[0] and "resgen[frameworks]" in lines[0]


def test_the_files_folder_is_importable_while_it_runs_and_only_then(tmp_path: Path) -> None:
    import sys

    (tmp_path / "neighbour_of_models.py").write_text("VALUE = [7]\n")
    models = tmp_path / "models.py"
    models.write_text("from neighbour_of_models import VALUE\n\ndef f():\n    return VALUE\n")
    lines = assert_clean_failure(cli("summary", f"{models}:f"))
    assert "f gives a list" in lines[0]
    assert str(tmp_path) not in sys.path
    sys.modules.pop("neighbour_of_models", None)


def test_a_missing_or_non_file_path_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "dir.py"
    folder.mkdir()
    lines = assert_clean_failure(cli("summary", f"{folder}:f"))
    assert lines == [f"{folder}:f: error: {folder}: not a file"]
    lines = assert_clean_failure(cli("summary", f"{tmp_path / 'none.py'}:f"))
    assert lines == [f"{tmp_path / 'none.py'}:f: error: {tmp_path / 'none.py'}: no such file"]


@pytest.mark.parametrize("path", ["mod\x00els.py", "x" * 5000 + ".py", "a/" * 3000 + "m.py"])
def test_a_hostile_file_path_is_one_line(path: str) -> None:
    lines = assert_clean_failure(cli("graph", f"{path}:f"))
    assert len(lines) == 1 and ": error: " in lines[0] and lines[0].isprintable()
    assert "internal error" not in lines[0]
