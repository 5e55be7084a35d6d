"""Run the GPU checks on a CUDA machine and print a one-line summary: tests/test_gpu.py, and
DistributedDataParallel with SyncBatchNorm in tests/test_distributed_torch.py (two processes).

    python scripts/gpu_check.py            # Keras on its torch backend (TensorFlow is not needed)
    KERAS_BACKEND=jax python scripts/gpu_check.py

Needs resgen's dependencies, torch (CUDA build), keras, numpy and pytest; torchvision for the
torchvision comparison. Exit code: pytest's (0 when every check passed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402


class Summary:
    """Collects outcomes and the figures the tests record."""

    def __init__(self) -> None:
        self.outcomes: dict[str, int] = {"passed": 0, "failed": 0, "skipped": 0}
        self.worst: dict[str, float] = {}
        self.min_cosine = 1.0

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped:  # e.g. the whole module, without CUDA
            self.outcomes["skipped"] += 1

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and report.skipped):
            self.outcomes[report.outcome] = self.outcomes.get(report.outcome, 0) + 1
            kind = report.nodeid.split("::")[-1].split("[")[0]
            for key, value in report.user_properties:
                if key == "max_rel_diff":
                    self.worst[kind] = max(self.worst.get(kind, 0.0), float(value))
                elif key == "min_cosine":
                    self.min_cosine = min(self.min_cosine, float(value))


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def main() -> int:
    if not cuda_available():
        print("skipped: no CUDA device")
        return 0
    summary = Summary()
    code = pytest.main(
        [
            "-q",
            "-m",
            "gpu",
            str(ROOT / "tests" / "test_gpu.py"),
            str(ROOT / "tests" / "test_distributed_torch.py"),
            "-p",
            "no:cacheprovider",
        ],
        plugins=[summary],
    )
    import keras
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    diffs = ", ".join(f"{k.removeprefix('test_')} {v:.2e}" for k, v in sorted(summary.worst.items()))
    o = summary.outcomes
    print(
        f"GPU parity on {device}: {o['passed']} passed, {o['failed']} failed, {o['skipped']} skipped; "
        f"max rel diff: {diffs or 'n/a'}; TF32-on min cosine {summary.min_cosine:.6f}; "
        f"torch {torch.__version__}, keras {keras.__version__} ({keras.backend.backend()} backend), TF32 off"
    )
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
