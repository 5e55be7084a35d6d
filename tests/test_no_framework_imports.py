"""Rendering, validating, summarizing, diffing and drawing never import a framework (DESIGN.md).

Each command runs in a fresh interpreter through the real CLI entry point; afterwards the child
reports which of torch, tensorflow, keras and jax (or any of their submodules) it has loaded.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

FRAMEWORKS = ("torch", "torchvision", "tensorflow", "keras", "jax", "jaxlib")

# Run in the child as `python -c PROBE ARGS...`: the CLI on ARGS, then a JSON line of what it loaded.
PROBE = (
    f"FRAMEWORKS = {FRAMEWORKS!r}\n"
    + """
import json, sys
from click.testing import CliRunner
from resgen.cli import main

result = CliRunner().invoke(main, sys.argv[1:])
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(FRAMEWORKS))
print(json.dumps({"exit_code": result.exit_code, "loaded": loaded, "output": result.output[-2000:]}))
"""
)


def run_probe(probe: str, argv: list[str]) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


COMMANDS = {
    "render torch": (["render", "resnet50", "--target", "torch", "-o", "{tmp}/resnet50.py"], 0),
    "render keras": (["render", "rosebrock_cifar10", "--target", "keras", "-o", "{tmp}/rosebrock.py"], 0),
    "render --check": (["render", "cifar_resnet20", "--target", "torch", "--out-dir", "{tmp}", "--check"], 1),
    "validate": (["validate", "resnet50", "keras_resnet50v2", "preact_resnet164"], 0),
    "summary": (["summary", "keras_resnet50", "--format", "json"], 0),
    "summary table": (["summary", "cifar_resnet20"], 0),
    "diff": (["diff", "resnet18", "resnet34", "--format", "markdown"], 1),
    "graph mermaid": (["graph", "preact_resnet164"], 0),
    "graph dot": (["graph", "rosebrock_tiny_imagenet", "--format", "dot", "--detail", "layers"], 0),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_imports_no_framework(command: str, tmp_path: Path) -> None:
    args, expected_exit = COMMANDS[command]
    argv = [a.format(tmp=tmp_path) for a in args]
    report = run_probe(PROBE, argv)
    assert report["exit_code"] == expected_exit, report["output"]
    assert report["loaded"] == [], f"`resgen {' '.join(argv)}` imported {report['loaded']}"


@pytest.mark.framework  # its child imports torch
def test_probe_sees_a_framework_import() -> None:
    """The probe itself works: a child that imports a framework is reported."""
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    probe = PROBE.replace("from resgen.cli import main", "import torch\nfrom resgen.cli import main")
    assert run_probe(probe, ["validate", "cifar_resnet20"])["loaded"] == ["torch"]
