"""What several test modules share: running the CLI, golden files, generated modules, ruff, BatchNorm
statistics, hang guards.

Importing this module imports no framework (the fast lane imports it): the BatchNorm randomisers
import torch or take a Keras model, when called.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner, Result

from resgen.cli import main
from resgen.generated_module import import_generated

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
REGEN = "python tests/regen_golden.py"
# The golden files: a covering subset of the presets, so that every code path of both targets is
# pinned byte for byte. Basic and bottleneck blocks, post- and pre-activation; stride on the 3x3, on
# the first 1x1, on a stage's last block; grouped and widened 3x3s; projection, 1x1 max-pool and
# option A shortcuts, first-block projections of the pre-activated input; bias on none, all, or
# unnormalized convolutions; TensorFlow "same" padding and an input BatchNorm (Rosebrock's tutorial);
# logits and softmax heads, global and fixed pooling; L2; a network deep enough for Keras' recursion
# limit (cifar_resnet1202); timm's ResNetV2 module paths, with weight-standardized convolutions (BiT)
# and with a deep stem and average-pool shortcuts.
TORCHVISION_RESNETS = (  # torchvision.models' ResNets, each a preset of the same name
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
)
GOLDEN_PRESETS = (
    "resnet18",
    "resnet50",
    "resnext50_32x4d",
    "keras_resnet50",
    "keras_resnet50v2",
    "cifar_resnet20",
    "cifar_resnet1202",
    "preact_resnet164",
    "rosebrock_cifar10",
    "rosebrock_tiny_imagenet",
    "resnet50d",
    "resnetrs50",
    "ecaresnet26t",
    "resnet50_gn",
    "senet154",
    "resnetblur50",
    "resnetv2_50d",
    "resnetv2_50x1_bit",
)

# Deep presets whose code paths a shallower sibling covers (resnet152: resnet50, cifar_resnet1202:
# cifar_resnet20, ...): their framework tests are marked slow. One deep case stays in the default lane:
# preact_resnet1001's parity (tests/test_parity.py).
DEEP_PRESETS = frozenset(
    {
        "resnet152",
        "resnext101_32x8d",
        "resnext101_64x4d",
        "wide_resnet101_2",
        "keras_resnet152",
        "keras_resnet152v2",
        "cifar_resnet1202",
        "preact_resnet1001",
        # timm's family: resnet10t, resnet18d, resnet26d, resnet26t and resnet50c cover its code paths
        "resnet14t",
        "resnet26",
        "resnet34d",
        "resnet50d",
        "resnet50s",
        "resnet50t",
        "resnet101d",
        "resnet152d",
        "resnet200d",
        "resnext50d_32x4d",
        "seresnext50_32x4d",  # seresnet50 covers squeeze-and-excitation
        "seresnext101_32x8d",
        "seresnext101d_32x8d",
        "senet154",
        "ecaresnet50d",  # ecaresnet26t covers ECA
        "ecaresnet101d",
        "resnetrs101",  # resnetrs50 covers ResNet-RS
        "resnetv2_101x1_bit",  # resnetv2_50x1_bit covers BiT
    }
)


def preset_params(names: Iterable[str], *, keep: Iterable[str] = ()) -> list[Any]:
    """`names` for `pytest.mark.parametrize`; the deep presets among them, but `keep`, marked slow."""
    kept = set(keep)
    return [
        pytest.param(name, marks=pytest.mark.slow) if name in DEEP_PRESETS and name not in kept else name
        for name in names
    ]


# --- the command line ----------------------------------------------------------------------------------


def cli(*args: str) -> Result:
    """`resgen ARGS...` in this process."""
    return CliRunner().invoke(main, list(args))


def run_cli(*args: str) -> tuple[int, str, str]:
    """`resgen ARGS...`: exit code, stdout, stderr."""
    result = cli(*args)
    return result.exit_code, result.stdout, result.stderr


def assert_clean_failure(result: Result) -> list[str]:
    """Exit 2, nothing on stdout, no traceback; the stderr lines."""
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert isinstance(result.exception, SystemExit), result.exception
    return result.stderr.splitlines()


def render_in_subprocess(name: str, target: str, hash_seed: str) -> bytes:
    """`python -m resgen render NAME --target TARGET -o -` in a fresh interpreter with PYTHONHASHSEED set."""
    done = subprocess.run(
        [sys.executable, "-m", "resgen", "render", name, "--target", target, "-o", "-"],
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
        cwd=ROOT,
        check=True,
    )
    return done.stdout


# --- golden files and generated modules ----------------------------------------------------------------


def golden_path(target: str, name: str) -> Path:
    return GOLDEN / target / f"{name}.py"


@cache
def generated_text(target: str, name: str) -> str:
    """A preset's generated source for a target (rendered once per test session)."""
    import resgen

    return resgen.render(name, target)


@cache
def generated_module(target: str, name: str) -> ModuleType:
    """A preset's generated source, imported in memory (resgen.generated_module); one module each."""
    return import_generated(generated_text(target, name), f"resgen_generated_{target}_{name}")


def assert_ruff_clean(path: Path) -> None:
    """A generated file (or a folder of them) passes ruff's linter and is formatted, with ruff's defaults."""
    ruff = [sys.executable, "-m", "ruff"]
    lint = subprocess.run(
        [*ruff, "check", "--isolated", "--select", "E,F,W,I,B,UP,SIM", "--line-length", "88", str(path)],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run(
        [*ruff, "format", "--isolated", "--check", "--diff", str(path)], capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def channels_last(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A graph shape (C, H, W) as Keras has it (H, W, C); other shapes as they are."""
    return (*shape[1:], shape[0]) if len(shape) == 3 else shape


# --- non-trivial BatchNorm statistics ------------------------------------------------------------------


def randomize_torch_batch_norm(model: Any, seed: int = 1, *, signed_scales: bool = False) -> None:
    """Random running statistics and affine terms in every torch BatchNorm2d, so that epsilon, momentum
    and wiring mistakes show: mean ~ N(0, 0.1), var ~ U(0.5, 1.5), weight ~ U(0.5, 1.5) (N(0, 1), of
    both signs, with `signed_scales`), bias ~ N(0, 0.1)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                c = mod.num_features
                mod.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                mod.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                scale = torch.randn(c, generator=gen) if signed_scales else torch.rand(c, generator=gen) + 0.5
                mod.weight.copy_(scale)
                mod.bias.copy_(torch.randn(c, generator=gen) * 0.1)


def randomize_keras_batch_norm(model: Any, rng: Any) -> None:
    """Random weights in every Keras BatchNormalization, drawn from `rng` (a numpy Generator), so that
    epsilon, axis and moving statistics matter: gamma ~ U(0.5, 1.5), beta ~ N(0, 0.2), moving mean
    ~ N(0, 0.2), moving variance ~ U(0.5, 2)."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                    rng.normal(0.0, 0.2, beta.shape).astype("float32"),
                    rng.normal(0.0, 0.2, mean.shape).astype("float32"),
                    rng.uniform(0.5, 2.0, var.shape).astype("float32"),
                ]
            )


# --- hang guards ---------------------------------------------------------------------------------------

HANG_GUARD_S = 60  # far above any normal run: a guard against endless loops, not a speed claim


class Hung(BaseException):
    """Raised by `hang_guard`; a BaseException, so that no `except Exception` (the CLI's) swallows it."""


@contextlib.contextmanager
def hang_guard(seconds: int = HANG_GUARD_S) -> Iterator[None]:
    """Fail the test instead of hanging when the body runs for more than `seconds`.

    Uses SIGALRM (Unix, main thread); elsewhere the body simply runs unguarded.
    """
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(_signum: int, _frame: Any) -> None:
        raise Hung(f"still running after {seconds} s: an endless loop?")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def backbone_spec(preset: str, features: list[Any], **backbone: Any) -> dict[str, Any]:
    """A preset's spec data as a backbone: its head replaced by ``{kind: none}``, with `features`
    and the other backbone fields given."""
    from resgen import load

    data = dict(load.load(preset).data)
    data["name"] = f"{preset}_backbone"
    data["head"] = {"kind": "none"}
    data["backbone"] = {"features": features, **backbone}
    return data
