"""Options beyond the references (issue 8), each checked against the default build.

- channels_last: ``build_model(channels_last=True)`` computes what the default build computes;
- BatchNorm folding: ``fuse_batchnorm(model)`` is an eval-only copy whose outputs equal the unfused
  model's, with exactly the BatchNorms that directly follow a convolution folded (the graph says
  which), pre-activation BatchNorms left, and fewer parameters;
- torch.export and ``torch.compile(fullgraph=True)`` trace the generated models, plain and fused,
  without a graph break (the Dynamo check uses the "eager" backend, so no C++ compile; the
  inductor run is in the benchmarks, and here in the slow lane);
- Keras: the generated model compiled with ``jit_compile=True`` (XLA) predicts what it predicts
  without;
- the generated file grows with stages, not depth, in both targets.
"""

from __future__ import annotations

from functools import cache
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from resgen.compiler import compile_spec
from resgen.generate import render
from resgen.generated_module import import_generated
from tests.helpers import randomize_torch_batch_norm

torch = pytest.importorskip("torch")

SIDE = {"cifar_resnet20": 32, "rosebrock_cifar10": 32, "preact_resnet164": 32}  # others: 64x64
FUSED = [
    "resnet50",
    "keras_resnet50",
    "keras_resnet50v2",
    "cifar_resnet20",
    "rosebrock_cifar10",
    "preact_resnet164",
]


@cache
def torch_module(name: str) -> ModuleType:
    return import_generated(render(compile_spec(name), "torch"), f"resgen_perf_torch_{name}")


def side(name: str) -> int:
    return SIDE.get(name, 64)


def batch(name: str, n: int = 2) -> Any:
    return torch.randn(n, 3, side(name), side(name), generator=torch.Generator().manual_seed(2))


def randomized(name: str) -> Any:
    """A fresh model in eval mode with non-trivial BatchNorm statistics and affine parameters."""
    torch.manual_seed(0)
    model = torch_module(name).build_model()
    randomize_torch_batch_norm(model)
    return model.eval()


def logits(model: Any, x: Any) -> Any:
    """The classifier's output (before any softmax), so small probabilities do not hide a difference."""
    seen = []
    handle = model.fc.register_forward_hook(lambda mod, args, out: seen.append(out))
    with torch.no_grad():
        model(x)
    handle.remove()
    return seen[0]


def assert_close(actual: Any, expected: Any, rel: float) -> None:
    """DESIGN.md's form: max|a - b| <= rel * max(1, max|b|)."""
    bound = rel * max(1.0, float(expected.abs().max()))
    diff = float((actual - expected).abs().max())
    assert diff <= bound, f"max |a - b| = {diff:.3g} > {bound:.3g}"


def folded_pairs(name: str) -> int:
    """BatchNorms that read a convolution feeding nothing else: what fuse_batchnorm must fold."""
    graph = compile_spec(name).graph
    count = 0
    for bn in graph.of_kind("batch_norm"):
        (source,) = graph.inputs(bn.name)
        count += graph[source].kind == "conv2d" and len(graph.consumers(source)) == 1
    return count


def batch_norms(model: Any) -> int:
    return sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


# --- channels_last -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet18", "cifar_resnet20", "rosebrock_cifar10", "keras_resnet50v2"])
def test_channels_last_build_matches_default(name: str) -> None:
    model = randomized(name)
    fast = torch_module(name).build_model(channels_last=True).eval()
    assert fast.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    fast.load_state_dict(model.state_dict())
    x = batch(name)
    assert_close(logits(fast, x.to(memory_format=torch.channels_last)), logits(model, x), 1e-5)
    assert_close(logits(fast, x), logits(model, x), 1e-5)  # a contiguous input works too


# --- BatchNorm folding -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FUSED)
def test_fuse_batchnorm_matches_the_unfused_model(name: str) -> None:
    model = randomized(name)
    fused = torch_module(name).fuse_batchnorm(model)
    x = batch(name)
    assert_close(logits(fused, x), logits(model, x), 1e-4)
    with torch.no_grad():
        assert_close(fused(x), model(x), 1e-4)  # the model's own output (softmax where the spec asks)
    assert not fused.training
    folded = folded_pairs(name)
    assert folded > 0
    assert batch_norms(fused) == batch_norms(model) - folded  # pre-activation BatchNorms stay
    assert params(fused) < params(model)


def test_fuse_batchnorm_leaves_the_model_alone() -> None:
    model = randomized("cifar_resnet20").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = torch_module("cifar_resnet20").fuse_batchnorm(model)
    assert model.training and batch_norms(model) == 19 and batch_norms(fused) == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_fuse_batchnorm_leaves_batchnorm_before_a_convolution() -> None:
    """keras_resnet50v2: every block's preact_bn reads an addition (or the stem's pool): none folds;
    preact_resnet164: the stem's convolution feeds only the first block's preact_bn: it folds."""
    v2 = torch_module("keras_resnet50v2").fuse_batchnorm(randomized("keras_resnet50v2"))
    assert all(isinstance(block.preact_bn, torch.nn.BatchNorm2d) for block in v2.layer1)
    assert isinstance(v2.post_bn, torch.nn.BatchNorm2d)
    assert isinstance(v2.layer1[0].bn1, torch.nn.Identity)
    preact = torch_module("preact_resnet164").fuse_batchnorm(randomized("preact_resnet164"))
    assert isinstance(preact.layer1[0].preact_bn, torch.nn.Identity)
    assert isinstance(preact.layer1[1].preact_bn, torch.nn.BatchNorm2d)
    assert preact.conv1.bias is not None


def test_fuse_batchnorm_keeps_a_convolution_bias() -> None:
    """keras_resnet50's convolutions have a bias of their own: the folded bias includes it."""
    model = randomized("keras_resnet50")
    with torch.no_grad():
        model.conv1.bias.uniform_(-1.0, 1.0)
    fused = torch_module("keras_resnet50").fuse_batchnorm(model)
    x = batch("keras_resnet50")
    assert_close(logits(fused, x), logits(model, x), 1e-4)


# --- torch.export and torch.compile ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar_resnet20", "rosebrock_cifar10", "keras_resnet50v2"])
def test_fused_model_exports(name: str) -> None:
    fused = torch_module(name).fuse_batchnorm(randomized(name))
    x = batch(name, 1)
    exported = torch.export.export(fused, (x,))
    with torch.no_grad():
        assert_close(exported.module()(x), fused(x), 1e-6)


@pytest.mark.parametrize("name", ["cifar_resnet20", "rosebrock_cifar10"])
@pytest.mark.parametrize("build", ["plain", "fused", "channels_last"])
def test_compiles_without_graph_breaks(name: str, build: str) -> None:
    """fullgraph=True raises on any graph break; the eager backend checks tracing without codegen."""
    model = randomized(name)
    if build == "fused":
        model = torch_module(name).fuse_batchnorm(model)
    elif build == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    x = batch(name)
    with torch.no_grad():
        assert_close(compiled(x), model(x), 1e-6)


def test_train_step_compiles_without_graph_breaks() -> None:
    model = torch_module("cifar_resnet20").build_model().train()
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    loss = compiled(batch("cifar_resnet20")).square().mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.slow  # inductor compiles C++
def test_inductor_compile_matches_eager() -> None:
    model = torch_module("cifar_resnet20").fuse_batchnorm(randomized("cifar_resnet20"))
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)
    x = batch("cifar_resnet20")
    with torch.no_grad():
        assert_close(compiled(x), model(x), 1e-4)


# --- Keras jit_compile -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar_resnet20", "rosebrock_cifar10"])
def test_keras_jit_compile_matches(name: str) -> None:
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("jit_compile is checked on the TensorFlow backend")
    module = import_generated(render(compile_spec(name), "keras"), f"resgen_perf_keras_{name}")
    keras.utils.set_random_seed(0)
    model = module.build_model()
    x = np.random.default_rng(0).standard_normal((2, *module.INPUT_SHAPE)).astype("float32")
    model.compile(jit_compile=False)
    plain = model.predict_on_batch(x)
    model.compile(jit_compile=True)
    assert model.jit_compile is True  # Keras turns XLA off, with a warning, for models it cannot compile
    xla = model.predict_on_batch(x)
    bound = 1e-4 * max(1.0, float(np.abs(plain).max()))
    assert float(np.abs(xla - plain).max()) <= bound
    assert (xla.argmax(axis=1) == plain.argmax(axis=1)).all()
    keras.backend.clear_session()


# --- zero overhead: size grows with stages, not depth ------------------------------------------------


@pytest.mark.parametrize("target", ["torch", "keras"])
def test_generated_size_grows_with_stages_not_depth(target: str) -> None:
    shallow = render(compile_spec("cifar_resnet20"), target).count("\n")
    deep = render(compile_spec("cifar_resnet1202"), target).count("\n")
    assert deep <= 300
    assert deep - shallow <= 10  # keras: a recursion-limit note for very deep graphs
    preact = [render(compile_spec(n), target).count("\n") for n in ("preact_resnet164", "preact_resnet1001")]
    assert preact[1] - preact[0] <= 10 and max(preact) <= 300
