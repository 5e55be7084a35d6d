"""resgen's benchmark suite: one command, results in bench/results/.

    python bench/run.py                   # everything, CPU, a few minutes on 2 cores
    python bench/run.py --quick           # fewer repetitions, a smoke run (about a minute)
    python bench/run.py --only pipeline cli import   # resgen itself only: no framework needed
    python bench/run.py --only cli --out /tmp/bench  # a partial run writes only where told

A partial run (--only a subset, or --quick) never replaces the committed full results: without --out it
prints its tables and writes nothing.
    python bench/run.py --device cuda     # forward/train ratios on a GPU (fp32 and bf16 autocast)

See bench/README.md for what is measured and how to read the results.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from resgen.progress import Step, quiet, steps

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SECTIONS = ("pipeline", "cli", "import", "torch", "options", "keras")

# Targets of issue 8 (benchmarks, not tests).
PIPELINE_TARGETS_MS = {"resnet50": 20.0, "preact_resnet1001": 150.0}
CLI_TARGET_S = 0.5
CLI_TARGET_COMMAND = "resgen render resnet50 --target torch -o FILE"
FORWARD_RATIO_TARGET = 1.02


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per model comparison")
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="input side of the ImageNet models (default 112 on CPU, 224 on CUDA); CIFAR models use 32",
    )
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="eval forward batch sizes")
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--compile", action="store_true", help="also torch.compile(fullgraph=True) (slow)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for <device>.json/.md (default: bench/results for a full run; partial: none)",
    )
    return parser.parse_args(argv)


def partial(args: argparse.Namespace) -> bool:
    """A run whose numbers must not replace the committed full results: some sections, or --quick."""
    return set(args.only) != set(SECTIONS) or args.quick


def destination(args: argparse.Namespace) -> Path | None:
    """Where results go: --out if given, bench/results for a full run, nowhere for a partial one."""
    if args.out is not None:
        return args.out
    return None if partial(args) else HERE / "results"


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the chosen sections; the torch sections import torch before any TensorFlow import."""
    import machine

    reps = args.reps or (5 if args.quick else 15)
    side = args.image_size or (224 if args.device == "cuda" else 112)
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": {
            "reps": reps,
            "image_side": side,
            "cifar_side": 32,
            "batches": args.batches,
            "train_batch": args.train_batch,
        },
        "machine": machine.describe(ROOT, args.device),
    }
    started = time.perf_counter()
    chosen = [s for s in SECTIONS if s in args.only and (s != "keras" or args.device == "cpu")]
    # a progress bar on a terminal only (stderr): piped output carries the results alone
    with steps("bench", len(chosen)) as step:
        _sections(args, results, reps, side, step)
    results["machine"]["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    results["wall_s"] = round(time.perf_counter() - started, 1)
    results["targets"] = targets(results)
    return results


def _sections(args: argparse.Namespace, results: dict[str, Any], reps: int, side: int, step: Step) -> None:
    """Run the chosen sections into `results`, telling `step` each one as it starts."""
    import machine

    if "pipeline" in args.only:
        import pipeline

        step("pipeline (in process)")
        from resgen import load

        table = pipeline.pipeline(load.preset_names(), 3 if args.quick else 9)
        results["pipeline"] = {
            "per_preset": table,
            "depth_growth": pipeline.depth_growth(table),
            "first_render_in_fresh_process_ms": pipeline.first_render(),
        }
    if "cli" in args.only:
        import pipeline

        step("CLI wall time")
        results["cli"] = pipeline.cli(3 if args.quick else 10)
    if "import" in args.only:
        import pipeline

        step("import time")
        results["import"] = pipeline.import_times(3 if args.quick else 10)
    if {"torch", "options"} & set(args.only):
        results.update(run_torch(args, reps, side, step))
        results["machine"].update(machine.torch_info(args.device))
    if "keras" in args.only and args.device == "cpu":
        import keras_models

        step("keras: generated ResNet50 vs keras.applications")
        results["keras"] = keras_models.comparisons(side, args.batches, reps)


def run_torch(args: argparse.Namespace, reps: int, side: int, step: Step = quiet) -> dict[str, Any]:
    import torch
    import torchvision  # noqa: F401 (before TensorFlow: its C extension crashes if loaded after)

    if args.threads:
        torch.set_num_threads(args.threads)

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
    import torch_models

    out: dict[str, Any] = {}
    if "torch" in args.only:
        step("torch: generated vs references")
        out["torch"] = torch_models.reference_comparisons(
            side, args.device, args.batches, reps, args.train_batch
        )
    if "options" in args.only:
        step("torch: options")
        out["options"] = torch_models.option_comparisons(side, args.device, args.batches, reps)
        if args.compile:
            out["options"] += torch_models.compile_comparisons(side, args.device, max(args.batches), reps)
    return out


# --- targets and the markdown report ------------------------------------------------------------------


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 8 that this run measured: figure, measured value, limit, met or not."""
    rows: list[dict[str, Any]] = []
    table = results.get("pipeline", {}).get("per_preset", {})
    for name, limit in PIPELINE_TARGETS_MS.items():
        for target in ("torch", "keras"):
            if name in table:
                ms = table[name]["ms"][f"total_{target}"]
                rows.append(_target(f"pipeline {name} -> {target} (in process)", ms, limit, "ms"))
    cli = results.get("cli", {}).get("bytecode_cached", {})
    if CLI_TARGET_COMMAND in cli:
        rows.append(
            _target(f"CLI wall: {CLI_TARGET_COMMAND}", cli[CLI_TARGET_COMMAND]["median_s"], CLI_TARGET_S, "s")
        )
    forward = [r for r in results.get("torch", []) + results.get("keras", []) if "eval forward" in r["kind"]]
    for r in forward:
        label = f"forward ratio {r['a']} / {r['b']}, batch {r['batch']}"
        if r.get("precision", "fp32") != "fp32":
            label += f" ({r['precision']})"
        if "keras" in r["kind"] or "ResNet50" in r["b"]:
            label += f" [{r['kind'].split(', ', 1)[1]}]"
        rows.append(_target(label, r["ratio"], FORWARD_RATIO_TARGET, "x"))
    return rows


def _target(figure: str, value: float, limit: float, unit: str) -> dict[str, Any]:
    return {
        "figure": figure,
        "measured": round(value, 4),
        "limit": limit,
        "unit": unit,
        "met": value <= limit,
    }


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    s = results["settings"]
    lines = [
        f"# resgen benchmark results ({m['device']})",
        "",
        f"Command: `{results['command']}` (wall {results['wall_s']} s). Generated by bench/run.py; "
        "the JSON next to this file has every number.",
        "",
        f"Machine: {m['cpu']}, {m['usable_cores']} usable cores of {m['logical_cores']}, "
        f"{m['memory_gib']} GiB; {m['os']}; Python {m['python']}"
        + (f"; GPU {m['gpu']} (CUDA {m['cuda']})" if m.get("gpu") else "")
        + ".",
        f"Versions: {', '.join(f'{k} {v}' for k, v in m['versions'].items())}. Commit {m['git']}.",
        f"Load average at start {_loads(m.get('load_average_at_start'))}, at end "
        f"{_loads(m.get('load_average_at_end'))} (a shared machine: absolute times are noisy, "
        "interleaved ratios much less so).",
        "",
        f"Settings: ImageNet models at {s['image_side']}x{s['image_side']}, CIFAR at 32x32; eval "
        f"batches {s['batches']}, train batch {s['train_batch']}; {s['reps']} interleaved repetitions "
        f"per comparison; torch threads {m.get('torch_threads')}.",
        "",
    ]
    if results.get("targets"):
        lines += ["## Targets (issue 8)", "", "| figure | measured | target | met |", "|---|---|---|---|"]
        for t in results["targets"]:
            unit = t["unit"]
            lines.append(
                f"| {t['figure']} | {t['measured']:g} {unit} | ≤ {t['limit']:g} {unit} | {_yes(t['met'])} |"
            )
        lines.append("")
    lines += _pipeline_md(results)
    lines += _cli_md(results)
    lines += _models_md(results)
    return "\n".join(lines) + "\n"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _per_target(*what: str) -> list[str]:
    return [f"{w} {t}" for w in what for t in ("torch", "keras")]


def _loads(values: list[float] | None) -> str:
    return "n/a" if not values else " / ".join(f"{v:.2f}" for v in values)


def _yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def _pipeline_md(results: dict[str, Any]) -> list[str]:
    p = results.get("pipeline")
    if not p:
        return []
    lines = [
        "## Pipeline in process (median ms): load + validate + lower + passes + render",
        "",
        _row(["preset", "blocks", "load", "validate", "lower", "passes", *_per_target("render", "total")]),
        _row(["---"] * 10),
    ]
    for name, row in p["per_preset"].items():
        ms = row["ms"]
        cells = [ms[k] for k in ("load", "validate", "lower", "passes", "render_torch", "render_keras")]
        cells += [ms["total_torch"], ms["total_keras"]]
        lines.append(f"| {name} | {row['blocks']} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    lines += ["", "Growth with depth (whole pipeline):", ""]
    lines += [
        _row(["family", "presets (blocks)", "target", "total ms", "µs per block", "deep / shallow (blocks)"]),
        _row(["---"] * 6),
    ]
    for family, g in p["depth_growth"].items():
        presets = ", ".join(f"{n} ({b})" for n, b in zip(g["presets"], g["blocks"], strict=True))
        for target in ("torch", "keras"):
            t = g[target]
            totals = " → ".join(f"{v:.1f}" for v in t["total_ms"])
            lines.append(
                f"| {family} | {presets} | {target} | {totals} | {t['us_per_block']} | "
                f"{t['deep_over_shallow']}x ({t['blocks_ratio']}x) |"
            )
    first = p["first_render_in_fresh_process_ms"]
    lines += [
        "",
        "First compile + render of resnet50 in a fresh process (Jinja compiles the templates once): "
        + ", ".join(f"{k} {v} ms" for k, v in first.items())
        + ".",
        "",
    ]
    return lines


def _cli_md(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    cli = results.get("cli")
    if cli:
        lines += [
            "## CLI wall time (median s)",
            "",
            "With a bytecode cache (as a pip-installed package has; a private PYTHONPYCACHEPREFIX) and "
            "without (PYTHONDONTWRITEBYTECODE=1, as this sandbox sets for the editable checkout).",
            "",
            "| command | cached bytecode | no bytecode |",
            "|---|---|---|",
        ]
        for command, row in cli["bytecode_cached"].items():
            lines.append(
                f"| `{command}` | {row['median_s']:.3f} | {cli['no_bytecode'][command]['median_s']:.3f} |"
            )
        lines.append("")
    imports = results.get("import")
    if imports:
        lines += [
            "## Import time (fresh interpreter, cached bytecode)",
            "",
            "| import | median ms | frameworks |",
        ]
        lines.append("|---|---|---|")
        for label, row in imports.items():
            if label.startswith("import "):
                lines.append(
                    f"| `{label}` | {row['median_ms']} | {', '.join(row['frameworks_imported']) or 'none'} |"
                )
        lines += ["", "Slowest imports under `import resgen.cli` (self time, `python -X importtime`):", ""]
        lines += [
            ", ".join(
                f"{r['module']} {r['self_ms']:.1f} ms" for r in imports["top_imports_of_resgen.cli"][:6]
            ),
            "",
        ]
    return lines


def _models_md(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for key, title in (
        ("torch", "Generated torch models vs references"),
        ("options", "Generated torch options"),
        ("keras", "Generated Keras ResNet50 vs keras.applications.ResNet50"),
    ):
        rows = results.get(key)
        if not rows:
            continue
        lines += [
            f"## {title}",
            "",
            "A / B: median ms per call of each, and the median (interquartile range) of the interleaved "
            "per-repetition ratios A / B; below 1 means A is faster.",
            "",
            "| measure | A | B | batch | side | A ms | B ms | A / B | max abs diff (of max abs output) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            kind = r["kind"] + (f" ({r['precision']})" if r.get("precision", "fp32") != "fp32" else "")
            diff = f"{r['max_abs_diff']:.1e} of {r['max_abs_output']:.2g}" if "max_abs_diff" in r else ""
            lines.append(
                f"| {kind} | {r['a']} | {r['b']} | {r['batch']} | {r['side']} | "
                f"{r['a_time']['median_ms']:.2f} | {r['b_time']['median_ms']:.2f} | "
                f"{r['ratio']:.3f} ({r['ratio_p25']:.3f}–{r['ratio_p75']:.3f}) | {diff} |"
            )
        lines.append("")
    return lines


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sys.path.insert(0, str(HERE))
    results = run(args)
    out = destination(args)
    if out is None:
        print(markdown(results))
        print("not written: a partial run (--only or --quick); give --out DIR to keep it")
    else:
        out.mkdir(parents=True, exist_ok=True)
        stem = out / args.device
        stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        stem.with_suffix(".md").write_text(markdown(results), encoding="utf-8")
        print(f"wrote {stem}.json and {stem}.md")
    for t in results["targets"]:
        verdict = "ok  " if t["met"] else "MISS"
        print(f"  {verdict} {t['figure']}: {t['measured']:g} {t['unit']} (≤ {t['limit']:g})")


if __name__ == "__main__":
    main()
