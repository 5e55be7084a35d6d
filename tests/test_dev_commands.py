"""Development commands: a partial benchmark run never replaces the committed full results, and the GPU
check without a GPU says it skipped and exits 0."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _bench_run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("resgen_bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("argv", "where"),
    [
        ([], "results"),
        (["--only", "pipeline", "cli", "import", "torch", "options", "keras"], "results"),
        (["--only", "pipeline"], None),
        (["--only", "cli", "import"], None),
        (["--quick"], None),
        (["--only", "cli", "--out", "elsewhere"], "elsewhere"),
        (["--out", "elsewhere"], "elsewhere"),
    ],
)
def test_a_partial_bench_run_writes_only_where_told(argv: list[str], where: str | None) -> None:
    run = _bench_run()
    out = run.destination(run.parse_args(argv))
    if where is None:
        assert out is None
    elif where == "results":
        assert out == ROOT / "bench" / "results"
    else:
        assert out == Path(where)


def test_a_partial_bench_run_leaves_the_committed_results_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _bench_run()
    monkeypatch.setattr(run, "HERE", tmp_path)  # where the committed results would be
    fake = {"machine": {}, "targets": [], "wall_s": 0}
    monkeypatch.setattr(run, "run", lambda args: fake)
    monkeypatch.setattr(run, "markdown", lambda results: "TABLES")
    run.main(["--only", "cli"])
    assert list(tmp_path.iterdir()) == []
    assert "not written: a partial run" in capsys.readouterr().out
    run.main(["--only", "cli", "--out", str(tmp_path / "kept")])
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["cpu.json", "cpu.md"]


@pytest.mark.framework
def test_gpu_check_without_a_gpu_skips_and_exits_0() -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py")],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines() == ["skipped: no CUDA device"]
