"""Progress of long work: on a terminal a bar on stderr; in a pipe (or JSON output) nothing extra."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from resgen import progress

ROOT = Path(__file__).resolve().parent.parent


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_steps_write_nothing_to_a_pipe() -> None:
    pipe = io.StringIO()
    with progress.steps("parity deep", 3, stream=pipe) as step:
        step("building the torch and Keras models")
        step("torch -> Keras: outputs")
    assert pipe.getvalue() == ""
    assert not progress.on_terminal(pipe)


def test_steps_draw_a_bar_on_a_terminal() -> None:
    terminal = Terminal()
    with progress.steps("parity deep", 2, stream=terminal) as step:
        step("building the torch and Keras models")
        step("torch -> Keras: outputs")
    assert "parity deep" in terminal.getvalue()


def test_parity_report_piped_is_the_report_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI hands the parity check a reporter that writes nothing when stderr is not a terminal."""
    from click.testing import CliRunner

    from resgen import parity
    from resgen.cli import main

    told: list[str] = []

    def fake_check(compiled: object, *, device: str, progress: progress.Step) -> parity.ParityReport:
        progress("building the torch and Keras models")
        told.append("called")
        return parity.ParityReport("tiny", [32, 32, 3], device, 1e-4, {}, {})

    monkeypatch.setattr(parity, "check", fake_check)
    monkeypatch.setattr("resgen.cli.import_frameworks_quietly", lambda: None)
    result = CliRunner().invoke(main, ["parity", "cifar_resnet20", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert told == ["called"]
    assert json.loads(result.stdout)["spec"] == "tiny"
    assert result.stderr == ""


def _bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """bench/run.py with its measuring modules replaced by instant fakes."""
    spec = importlib.util.spec_from_file_location("resgen_bench_run_progress", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    monkeypatch.setitem(sys.modules, "machine", SimpleNamespace(describe=lambda root, device: {}))
    monkeypatch.setitem(sys.modules, "pipeline", SimpleNamespace(import_times=lambda n: {}, cli=lambda n: {}))
    monkeypatch.setattr(run, "markdown", lambda results: "TABLES")
    return run


def test_bench_piped_prints_results_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _bench(monkeypatch)
    run.main(["--only", "import", "cli"])
    out, err = capsys.readouterr()
    assert out == "TABLES\nnot written: a partial run (--only or --quick); give --out DIR to keep it\n"
    assert err == ""


def test_bench_on_a_terminal_shows_its_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    run = _bench(monkeypatch)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    run.run(run.parse_args(["--only", "import", "cli"]))
    assert "bench: " in terminal.getvalue() and "import time" in terminal.getvalue()
