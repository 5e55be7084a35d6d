"""Generated torch models against the hand-written references, and the generated options.

References: torchvision's resnet18 and resnet50, timm's resnet50d and seresnext50_32x4d
(``pretrained=False``), and `cifar_reference.resnet56` for cifar_resnet56. Each generated model
loads its reference's state dict (``strict=True``), after the reference's BatchNorm statistics
were calibrated on a random batch, so both hold the same weights and compute the same function
(the largest output difference is recorded with every comparison).

Every comparison is interleaved (`timing.compare`): eval forward under ``torch.inference_mode`` at
batch 1 and 8, and a train step (forward, cross-entropy, backward, SGD with momentum) at batch 8.
On CUDA the forward and train step also run under bf16 autocast, and channels_last is compared
against torchvision in channels_last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import cifar_reference
import timm
import torch
import torchvision
from timing import Comparison, compare
from torch import nn

from resgen.compiler import compile_spec
from resgen.generate import render
from resgen.generated_module import import_generated


@dataclass(frozen=True)
class Case:
    preset: str
    reference: str  # label of the reference implementation
    make_reference: Callable[[], nn.Module]
    side: int  # input height and width
    classes: int


def cases(image_side: int) -> list[Case]:
    return [
        Case("resnet18", "torchvision.models.resnet18", torchvision.models.resnet18, image_side, 1000),
        Case("resnet50", "torchvision.models.resnet50", torchvision.models.resnet50, image_side, 1000),
        Case("cifar_resnet56", "bench/cifar_reference.resnet56", cifar_reference.resnet56, 32, 10),
        Case(
            "resnet50d",
            "timm resnet50d",
            lambda: timm.create_model("resnet50d", pretrained=False),
            image_side,
            1000,
        ),
        Case(
            "seresnext50_32x4d",
            "timm seresnext50_32x4d",
            lambda: timm.create_model("seresnext50_32x4d", pretrained=False),
            image_side,
            1000,
        ),
    ]


SAMPLE_S = 0.2  # shortest sample of a forward comparison: several calls of a fast model per sample

_MODULES: dict[str, ModuleType] = {}


def generated(preset: str) -> ModuleType:
    """The generated torch module of a preset, rendered and imported once."""
    if preset not in _MODULES:
        _MODULES[preset] = import_generated(render(compile_spec(preset), "torch"), f"resgen_bench_{preset}")
    return _MODULES[preset]


@torch.no_grad()
def calibrate_batch_norm(model: nn.Module, x: torch.Tensor) -> None:
    """Running statistics of every BatchNorm from one batch, so activations stay of order one."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch sets the statistics
    model.train()
    model(x)
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    model.eval()


def twins(case: Case, device: str) -> tuple[nn.Module, nn.Module]:
    """(generated, reference), with the same weights, in eval mode, on `device`."""
    torch.manual_seed(0)
    reference = case.make_reference()
    calibrate_batch_norm(reference, torch.randn(16, 3, case.side, case.side))
    model = generated(case.preset).build_model()
    model.load_state_dict(reference.state_dict(), strict=True)
    return model.to(device).eval(), reference.to(device).eval()


def max_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """The largest |a(x) - b(x)|, and the largest |b(x)| to judge it by."""
    with torch.inference_mode():
        out_a, out_b = a(x).float(), b(x).float()
        return {
            "max_abs_diff": float((out_a - out_b).abs().max()),
            "max_abs_output": float(out_b.abs().max()),
        }


def forward_fn(model: nn.Module, x: torch.Tensor, autocast: bool) -> Callable[[], object]:
    def run() -> object:
        with torch.inference_mode(), torch.autocast(x.device.type, torch.bfloat16, enabled=autocast):
            return model(x)

    return run


def train_fn(model: nn.Module, x: torch.Tensor, classes: int, autocast: bool) -> Callable[[], object]:
    """One SGD step: forward in train mode, cross-entropy, backward, update."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    target = torch.randint(0, classes, (x.shape[0],), generator=torch.Generator().manual_seed(0)).to(x.device)

    def step() -> object:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, torch.bfloat16, enabled=autocast):
            loss = nn.functional.cross_entropy(model(x), target)
        loss.backward()
        optimizer.step()
        return loss

    return step


def precisions(device: str) -> list[tuple[str, bool]]:
    """(label, bf16 autocast) of the runs per device: fp32 everywhere, bf16 autocast on CUDA too."""
    return [("fp32", False), ("bf16-autocast", True)] if device == "cuda" else [("fp32", False)]


def _sync(device: str) -> Callable[[], None]:
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def _record(kind: str, a_label: str, b_label: str, comparison: Comparison, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "a": a_label, "b": b_label, **extra, **comparison.to_json()}


def reference_comparisons(
    image_side: int, device: str, batches: list[int], reps: int, train_batch: int
) -> list[dict[str, Any]]:
    """Generated vs reference: eval forward per batch size and one train step, per case."""
    rows = []
    sync = _sync(device)
    modes = precisions(device)
    for case in cases(image_side):
        for precision, autocast in modes:
            for batch in batches:
                model, reference = twins(case, device)
                x = torch.randn(batch, 3, case.side, case.side, device=device)
                diff = max_diff(model, reference, x)
                c = compare(
                    forward_fn(model, x, autocast),
                    forward_fn(reference, x, autocast),
                    reps=reps,
                    min_sample_s=SAMPLE_S,
                    sync=sync,
                )
                rows.append(
                    _record(
                        "eval forward",
                        f"generated {case.preset}",
                        case.reference,
                        c,
                        batch=batch,
                        side=case.side,
                        precision=precision,
                        **diff,
                    )
                )
                print(f"  {case.preset} forward b{batch} {precision}: ratio {c.ratio:.3f}", flush=True)
            model, reference = twins(case, device)
            x = torch.randn(train_batch, 3, case.side, case.side, device=device)
            c = compare(
                train_fn(model, x, case.classes, autocast),
                train_fn(reference, x, case.classes, autocast),
                reps=reps,
                min_sample_s=SAMPLE_S,
                sync=sync,
            )
            rows.append(
                _record(
                    "train step",
                    f"generated {case.preset}",
                    case.reference,
                    c,
                    batch=train_batch,
                    side=case.side,
                    precision=precision,
                )
            )
            print(f"  {case.preset} train b{train_batch} {precision}: ratio {c.ratio:.3f}", flush=True)
    return rows


def option_comparisons(image_side: int, device: str, batches: list[int], reps: int) -> list[dict[str, Any]]:
    """The generated options: BN folded vs not, channels_last vs not, and channels_last vs torchvision."""
    rows = []
    sync = _sync(device)
    for case in cases(image_side):
        module = generated(case.preset)
        for batch in batches:
            model, _ = twins(case, device)
            fused = module.fuse_batchnorm(model)
            x = torch.randn(batch, 3, case.side, case.side, device=device)
            diff = max_diff(fused, model, x)
            c = compare(
                forward_fn(fused, x, False),
                forward_fn(model, x, False),
                reps=reps,
                min_sample_s=SAMPLE_S,
                sync=sync,
            )
            rows.append(
                _record(
                    "BN folded (fuse_batchnorm) vs unfused, eval forward",
                    f"fuse_batchnorm({case.preset})",
                    f"generated {case.preset}",
                    c,
                    batch=batch,
                    side=case.side,
                    **diff,
                    params=(_params(fused), _params(model)),
                )
            )
            print(f"  {case.preset} fused b{batch}: ratio {c.ratio:.3f}", flush=True)
    for case in cases(image_side)[:2] if device == "cpu" else cases(image_side):
        batch = max(batches)
        model, reference = twins(case, device)
        x = torch.randn(batch, 3, case.side, case.side, device=device)
        xl = x.contiguous(memory_format=torch.channels_last)
        model_cl = generated(case.preset).build_model(channels_last=True).to(device).eval()
        model_cl.load_state_dict(model.state_dict())
        reference_cl = reference.to(memory_format=torch.channels_last)
        diff = max_diff(model_cl, model, xl)
        autocast = device == "cuda"
        c = compare(
            forward_fn(model_cl, xl, autocast),
            forward_fn(model, x, autocast),
            reps=reps,
            min_sample_s=SAMPLE_S,
            sync=sync,
        )
        rows.append(
            _record(
                "channels_last vs contiguous, eval forward",
                f"build_model(channels_last=True) {case.preset}",
                f"generated {case.preset}",
                c,
                batch=batch,
                side=case.side,
                precision="bf16-autocast" if autocast else "fp32",
                **diff,
            )
        )
        c = compare(
            forward_fn(model_cl, xl, autocast),
            forward_fn(reference_cl, xl, autocast),
            reps=reps,
            min_sample_s=SAMPLE_S,
            sync=sync,
        )
        rows.append(
            _record(
                "channels_last, generated vs reference, eval forward",
                f"generated {case.preset} (channels_last)",
                f"{case.reference} (channels_last)",
                c,
                batch=batch,
                side=case.side,
                precision="bf16-autocast" if autocast else "fp32",
            )
        )
        print(f"  {case.preset} channels_last b{batch}: ratio {c.ratio:.3f}", flush=True)
    return rows


def compile_comparisons(image_side: int, device: str, batch: int, reps: int) -> list[dict[str, Any]]:
    """torch.compile(fullgraph=True) (inductor): generated vs reference, both compiled. Slow to compile."""
    rows = []
    sync = _sync(device)
    for case in cases(image_side)[1:]:
        model, reference = twins(case, device)
        x = torch.randn(batch, 3, case.side, case.side, device=device)
        compiled_model = torch.compile(model, fullgraph=True)
        compiled_reference = torch.compile(reference, fullgraph=True)
        c = compare(
            forward_fn(compiled_model, x, False),
            forward_fn(compiled_reference, x, False),
            reps=reps,
            min_sample_s=SAMPLE_S,
            sync=sync,
        )
        rows.append(
            _record(
                "torch.compile(fullgraph=True), eval forward",
                f"generated {case.preset} (compiled)",
                f"{case.reference} (compiled)",
                c,
                batch=batch,
                side=case.side,
            )
        )
        print(f"  {case.preset} compiled b{batch}: ratio {c.ratio:.3f}", flush=True)
    return rows


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
