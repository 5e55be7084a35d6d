"""How fast resgen itself is: the in-process pipeline per preset, its growth with depth, the CLI's
wall time, and the import time of resgen.

Nothing here imports a framework: the pipeline never does (tests/test_no_framework_imports.py).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from resgen import backends, load, lower, passes, validation
from resgen.compiler import Compiled
from resgen.generate import render

TARGETS = sorted(backends.TARGETS)
DEPTH_SERIES = {
    "cifar (basic, option A)": [
        "cifar_resnet20",
        "cifar_resnet32",
        "cifar_resnet44",
        "cifar_resnet56",
        "cifar_resnet110",
        "cifar_resnet1202",
    ],
    "pre-activation bottleneck": ["preact_resnet164", "preact_resnet1001"],
}


# --- in process --------------------------------------------------------------------------------------


def run_once(name: str) -> dict[str, float]:
    """Seconds of each stage for one preset: load, validate, lower, passes, then render per target."""
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    doc = load.load(name)
    t1 = time.perf_counter()
    model = validation.validate(doc)
    t2 = time.perf_counter()
    graph = lower.lower(model)
    t3 = time.perf_counter()
    analysis = passes.analyse(graph)
    t4 = time.perf_counter()
    times.update(load=t1 - t0, validate=t2 - t1, lower=t3 - t2, passes=t4 - t3)
    compiled = Compiled(doc, model, graph, analysis)
    for target in TARGETS:
        start = time.perf_counter()
        render(compiled, target)
        times[f"render_{target}"] = time.perf_counter() - start
    front = times["load"] + times["validate"] + times["lower"] + times["passes"]
    for target in TARGETS:
        times[f"total_{target}"] = front + times[f"render_{target}"]
    return times


def pipeline(names: list[str], reps: int) -> dict[str, dict[str, Any]]:
    """Median milliseconds of every stage and of the whole pipeline per target, per preset."""
    for name in names:  # first use compiles templates and warms caches: not part of the steady state
        run_once(name)
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        samples = [run_once(name) for _ in range(reps)]
        medians = {key: round(statistics.median(s[key] for s in samples) * 1e3, 3) for key in samples[0]}
        blocks = sum(stage.blocks for stage in validation.validate(load.load(name)).stages)
        results[name] = {"blocks": blocks, "reps": reps, "ms": medians}
    return results


def depth_growth(table: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per family: ms per block (least squares over the family) and the deep/shallow time ratio."""
    growth: dict[str, dict[str, Any]] = {}
    for family, names in DEPTH_SERIES.items():
        rows = [table[n] for n in names if n in table]
        if len(rows) < 2:
            continue
        blocks = [r["blocks"] for r in rows]
        entry: dict[str, Any] = {"presets": [n for n in names if n in table], "blocks": blocks}
        for target in TARGETS:
            ms = [r["ms"][f"total_{target}"] for r in rows]
            slope = statistics.linear_regression(blocks, ms).slope
            entry[target] = {
                "total_ms": ms,
                "us_per_block": round(slope * 1e3, 2),
                "deep_over_shallow": round(ms[-1] / ms[0], 2),
                "blocks_ratio": round(blocks[-1] / blocks[0], 2),
            }
        growth[family] = entry
    return growth


# --- processes: CLI and import time ------------------------------------------------------------------


@contextmanager
def bytecode_env(cached: bool) -> Iterator[dict[str, str]]:
    """Environment for child processes: with a private bytecode cache (as an installed package
    has), or with bytecode writing off (this repository's editable install in a sandbox that sets
    PYTHONDONTWRITEBYTECODE compiles resgen's sources in every process)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPYCACHEPREFIX", None)
    if not cached:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        yield env
        return
    with tempfile.TemporaryDirectory(prefix="resgen_pycache_") as prefix:
        env["PYTHONPYCACHEPREFIX"] = prefix
        yield env


def _wall(cmd: list[str], env: dict[str, str], reps: int) -> dict[str, Any]:
    """Median and spread of the wall time of a command (one warm-up run first)."""
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    walls = []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
    walls.sort()
    return {
        "median_s": round(statistics.median(walls), 4),
        "min_s": round(walls[0], 4),
        "max_s": round(walls[-1], 4),
        "reps": reps,
    }


def resgen_command() -> list[str]:
    """The installed `resgen` script next to this Python, else `python -m resgen`."""
    script = Path(sys.executable).with_name("resgen")
    return [str(script)] if script.exists() else [sys.executable, "-m", "resgen"]


def cli(reps: int) -> dict[str, Any]:
    """Wall time of `resgen render` (and, for scale, of a bare interpreter and `resgen validate`)."""
    results: dict[str, Any] = {"command": resgen_command()}
    with tempfile.TemporaryDirectory(prefix="resgen_bench_") as out:
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "resgen render resnet50 --target torch -o FILE": [
                *resgen_command(),
                "render",
                "resnet50",
                "--target",
                "torch",
                "-o",
                str(Path(out) / "resnet50.py"),
            ],
            "resgen render resnet50 --target keras -o FILE": [
                *resgen_command(),
                "render",
                "resnet50",
                "--target",
                "keras",
                "-o",
                str(Path(out) / "resnet50_keras.py"),
            ],
            "resgen render preact_resnet1001 --target torch -o FILE": [
                *resgen_command(),
                "render",
                "preact_resnet1001",
                "--target",
                "torch",
                "-o",
                str(Path(out) / "preact_resnet1001.py"),
            ],
            "resgen validate resnet50": [*resgen_command(), "validate", "resnet50"],
        }
        for label, cached in (("bytecode_cached", True), ("no_bytecode", False)):
            with bytecode_env(cached) as env:
                results[label] = {name: _wall(cmd, env, reps) for name, cmd in commands.items()}
    return results


FRAMEWORKS = ("torch", "tensorflow", "keras", "jax")
_IMPORT_PROBE = (
    "import time; t = time.perf_counter(); import {module}; s = time.perf_counter() - t; "
    f"import json, sys; frameworks = [m for m in {FRAMEWORKS!r} if m in sys.modules]; "
    "print(json.dumps({{'s': s, 'frameworks': frameworks}}))"
)


def import_times(reps: int) -> dict[str, Any]:
    """Median seconds to import resgen's modules in a fresh interpreter, and what else they pull in."""
    modules = ["resgen", "resgen.cli", "resgen.compiler, resgen.generate"]
    results: dict[str, Any] = {}
    with bytecode_env(True) as env:
        for module in modules:
            probe = [sys.executable, "-c", _IMPORT_PROBE.format(module=module)]
            subprocess.run(probe, env=env, check=True, capture_output=True)  # fills the bytecode cache
            secs = []
            frameworks: list[str] = []
            for _ in range(reps):
                out = subprocess.run(probe, env=env, check=True, capture_output=True, text=True).stdout
                probed = json.loads(out)
                secs.append(probed["s"])
                frameworks = probed["frameworks"]
            results[f"import {module}"] = {
                "median_ms": round(statistics.median(secs) * 1e3, 1),
                "frameworks_imported": frameworks,
            }
        results["top_imports_of_resgen.cli"] = top_imports(env)
    return results


def top_imports(env: dict[str, str], count: int = 10) -> list[dict[str, Any]]:
    """The slowest direct and indirect imports of resgen.cli (``python -X importtime``), by self time."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import resgen.cli"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        rows.append({"module": name, "self_ms": int(own) / 1e3, "cumulative_ms": int(cumulative) / 1e3})
    return sorted(rows, key=lambda r: -r["self_ms"])[:count]


def first_render(name: str = "resnet50") -> dict[str, float]:
    """In a fresh process: milliseconds of the first compile + render per target (templates compile)."""
    probe = (
        "import time, json; from resgen.compiler import compile_spec; from resgen.generate import render\n"
        "out = {}\n"
        f"for target in {TARGETS!r}:\n"
        f"    t = time.perf_counter(); render(compile_spec({name!r}), target)\n"
        "    out[target] = round((time.perf_counter() - t) * 1e3, 2)\n"
        "print(json.dumps(out))"
    )
    with bytecode_env(True) as env:
        subprocess.run([sys.executable, "-c", probe], env=env, check=True, capture_output=True)
        done = subprocess.run(
            [sys.executable, "-c", probe], env=env, check=True, capture_output=True, text=True
        )
    return json.loads(done.stdout)
