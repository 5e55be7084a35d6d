"""Regenerate the golden files under tests/golden/: the covering subset of presets in
tests/helpers.py's GOLDEN_PRESETS, for every target, written by resgen's own ``render --out-dir``.

    python tests/regen_golden.py            # every target
    python tests/regen_golden.py --target torch

Read the diff (`git diff tests/golden`) before committing: every change is a change users will see.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from resgen import backends
from resgen.cli import main as resgen_main
from tests.helpers import GOLDEN, GOLDEN_PRESETS


def regenerate(targets: list[str]) -> None:
    for target in targets:
        folder = GOLDEN / target
        for stray in folder.glob("*.py"):
            if stray.stem not in GOLDEN_PRESETS:
                stray.unlink()
        args = ["render", *GOLDEN_PRESETS, "--target", target, "--out-dir", str(folder)]
        resgen_main(args, standalone_mode=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=sorted(backends.TARGETS), action="append")
    args = parser.parse_args()
    regenerate(args.target or sorted(backends.TARGETS))


if __name__ == "__main__":
    main()
