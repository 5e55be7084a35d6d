"""resgen.generated_module: generated source becomes a working module and leaves nothing behind.

No framework: a few lines of plain Python stand in for a generated file.
"""

from __future__ import annotations

import inspect
import linecache
import sys
import tempfile
import traceback
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from resgen.generated_module import PSEUDO_FILE_PREFIX, import_generated, pseudo_filename

SOURCE = '''"""A tiny stand-in for a generated model file."""

import sys

SEEN_IN_SYS_MODULES = __name__ in sys.modules


class Doubler:
    def __call__(self, x):
        return 2 * x


def build_model():
    """Build the model."""
    return Doubler()
'''

RAISING = """VALUE = 1


def helper():
    raise ValueError("raised by generated code")


helper()
"""


@pytest.fixture
def isolated_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty folder as tempfile.gettempdir() and as the working directory: whatever the import
    writes to either would land there."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.chdir(folder)
    assert tempfile.gettempdir() == str(folder)
    yield folder
    assert list(folder.iterdir()) == [], "import_generated wrote into the temporary folder"


def test_module_works_and_leaves_nothing_behind(isolated_tmp: Path) -> None:
    before = set(sys.modules)
    module = import_generated(SOURCE, "resgen_test_tiny")
    assert isinstance(module, types.ModuleType)
    assert module.__name__ == "resgen_test_tiny"
    assert module.build_model()(21) == 42
    assert type(module.build_model()).__module__ == "resgen_test_tiny"
    assert module.SEEN_IN_SYS_MODULES  # registered while its code ran ...
    assert set(sys.modules) == before  # ... and not afterwards
    assert list(isolated_tmp.iterdir()) == []


def test_each_call_gives_a_fresh_module() -> None:
    first = import_generated(SOURCE, "resgen_test_fresh")
    second = import_generated(SOURCE, "resgen_test_fresh")
    assert first is not second and first.Doubler is not second.Doubler
    assert "resgen_test_fresh" not in sys.modules


def test_source_is_found_by_inspect_and_linecache() -> None:
    module = import_generated(SOURCE, "resgen_test_inspect")
    filename = pseudo_filename(SOURCE, "resgen_test_inspect")
    assert filename.startswith(PSEUDO_FILE_PREFIX + "resgen_test_inspect ")
    assert module.__file__ == filename
    assert module.build_model.__code__.co_filename == filename
    assert inspect.getsource(module.build_model).startswith("def build_model():")
    assert inspect.getsource(module.Doubler.__call__).strip().startswith("def __call__(self, x):")
    assert inspect.getsource(module) == SOURCE
    line = SOURCE.splitlines().index("def build_model():") + 1
    assert linecache.getline(filename, line) == "def build_model():\n"
    linecache.checkcache()  # there is no file to compare with: the lines stay
    assert linecache.getline(filename, line) == "def build_model():\n"


def test_raising_source_leaves_nothing_behind_and_names_the_pseudo_file(isolated_tmp: Path) -> None:
    before = set(sys.modules)
    with pytest.raises(ValueError, match="raised by generated code") as info:
        import_generated(RAISING, "resgen_test_raising")
    assert set(sys.modules) == before
    assert list(isolated_tmp.iterdir()) == []
    text = "".join(traceback.format_exception(info.value))
    filename = pseudo_filename(RAISING, "resgen_test_raising")
    assert f'File "{filename}", line 5, in helper' in text
    assert 'raise ValueError("raised by generated code")' in text  # the generated line itself
    assert f'File "{filename}", line 8, in <module>' in text


def test_syntax_error_names_the_pseudo_file(isolated_tmp: Path) -> None:
    before = set(sys.modules)
    with pytest.raises(SyntaxError) as info:
        import_generated("x = 1\ndef broken(:\n    pass\n", "resgen_test_syntax")
    assert info.value.filename.startswith(PSEUDO_FILE_PREFIX + "resgen_test_syntax ")
    assert info.value.lineno == 2
    assert set(sys.modules) == before


def test_a_module_of_the_same_name_is_put_back() -> None:
    """While the code runs its name points at it; afterwards the earlier entry is restored."""
    existing = types.ModuleType("resgen_test_taken")
    sys.modules["resgen_test_taken"] = existing
    try:
        module = import_generated(SOURCE, "resgen_test_taken")
        assert module.SEEN_IN_SYS_MODULES and module is not existing
        assert sys.modules["resgen_test_taken"] is existing
        with pytest.raises(ValueError):
            import_generated(RAISING, "resgen_test_taken")
        assert sys.modules["resgen_test_taken"] is existing
    finally:
        del sys.modules["resgen_test_taken"]
