"""The command line: commands, exit codes, JSON fields, and no traceback for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from resgen import load
from tests.helpers import ROOT
from tests.helpers import run_cli as run


def test_validate_presets_and_files() -> None:
    code, out, _ = run("validate", "resnet50", str(ROOT / "specs" / "cifar_resnet20.yaml"))
    assert code == 0
    assert "ok: resnet50" in out and "ok: cifar_resnet20" in out


def test_validate_reports_every_bad_spec(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    a.write_text("format_version: 1\n")
    b = tmp_path / "b.json"
    b.write_text("[1]")
    code, out, err = run("validate", "resnet18", str(a), str(b))
    assert code == 2 and out == ""
    assert f"{a}:1:1: error: block: required field is missing" in err
    assert f"{b}:1:1: error: the top level of a spec must be a mapping of fields" in err


def test_summary_json_fields() -> None:
    code, out, _ = run("summary", "resnet18", "--format", "json")
    assert code == 0
    data = json.loads(out)
    for key in ("name", "input_shape", "output_shape", "params", "non_trainable_params", "macs", "layers"):
        assert key in data
    assert data["input_shape"] == [3, 224, 224] and data["output_shape"] == [1000]
    assert data["shape_layout"] == "channels_first"
    assert data["params"] == sum(layer["params"] for layer in data["layers"])
    fc = data["layers"][-1]
    assert (fc["name"], fc["torch"], fc["keras"], fc["params"]) == ("head.fc", "fc", "predictions", 513_000)


def test_summary_table() -> None:
    code, out, _ = run("summary", "cifar_resnet20")
    assert code == 0
    assert "stage3.block3.conv2" in out and "269,722" in out and "64 x 8 x 8" in out


def test_schema_is_json_schema_with_docs() -> None:
    code, out, _ = run("schema")
    schema = json.loads(out)
    assert code == 0 and schema["title"] == "resgen ResNet spec"
    assert set(schema["required"]) >= {"format_version", "name", "input", "stem", "block", "stages", "head"}
    momentum = schema["$defs"]["BatchNorm"]["properties"]["momentum"]
    assert "Keras convention" in momentum["description"]
    assert schema["$defs"]["BottleneckBlock"]["additionalProperties"] is False


def test_presets_lists_every_shipped_spec() -> None:
    code, out, _ = run("presets")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == load.preset_names()
    assert len(out.splitlines()) == 58 and out.startswith("cifar_resnet110")
    assert "resnet50d " in out and "timm's resnet50d" in out


def test_unknown_preset_is_exit_2() -> None:
    code, _, err = run("summary", "resnet51")
    assert code == 2
    assert err.startswith("resnet51: error: no such file, and no preset of that name")


def test_module_entry_point_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [\n")
    proc = subprocess.run(
        [sys.executable, "-m", "resgen", "validate", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"{bad}:2:1: error: invalid YAML")
    assert "Traceback" not in proc.stderr


def test_wheel_carries_templates_and_presets(tmp_path: Path) -> None:
    """A wheel built from the repo works outside it: presets and templates ship inside the package."""
    pytest.importorskip("hatchling")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("resgen-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "resgen/specs/resnet50.yaml" in names
    assert any(n.startswith("resgen/templates/") for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    proc = subprocess.run(
        [sys.executable, "-m", "resgen", "summary", "resnet50", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["params"] == 25_557_032
