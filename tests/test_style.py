"""The project's own source passes ruff's linter and formatter with the settings in pyproject.toml
(CI runs the same two commands; generated code is checked in test_golden.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT

SOURCES = ["resgen", "tests", "bench", "scripts"]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_project_source_is_ruff_clean(command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", *command, *SOURCES],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
