"""Regenerate the golden files: one generated module per (preset, target) under tests/golden/.

    python tests/regen_golden.py            # every target
    python tests/regen_golden.py --target torch

Read the diff (`git diff tests/golden`) before committing: every change is a change users will see.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from resgen import backends, load
from resgen.compiler import compile_spec
from resgen.generate import render

GOLDEN = Path(__file__).resolve().parent / "golden"


def regenerate(targets: list[str]) -> int:
    written = 0
    for target in targets:
        folder = GOLDEN / target
        folder.mkdir(parents=True, exist_ok=True)
        for name in load.preset_names():
            (folder / f"{name}.py").write_text(render(compile_spec(name), target), encoding="utf-8")
            written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=sorted(backends.TARGETS), action="append")
    args = parser.parse_args()
    count = regenerate(args.target or sorted(backends.TARGETS))
    print(f"wrote {count} golden files under {GOLDEN}")


if __name__ == "__main__":
    main()
