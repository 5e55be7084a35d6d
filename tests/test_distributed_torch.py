"""Data-parallel training of the generated torch model (issue 17), in float64.

- DistributedDataParallel, two CPU processes over gloo: after two SGD steps both ranks hold the same
  parameters, those of one process that averages the gradients of the two half-batches with each
  BatchNorm normalizing with its own half's statistics (what DDP computes without SyncBatchNorm). Each
  rank's BatchNorm running statistics follow its own half, starting every step from rank 0's
  (DDP broadcasts rank 0's buffers at each forward).
- FSDP2 (``fully_shard``) over gloo on CPU: the same step.
- ``build_model(sync_batchnorm=True)``: every BatchNorm2d becomes nn.SyncBatchNorm with the same state
  dict keys; the step it must reproduce is the whole batch's, in one process. torch runs SyncBatchNorm
  under DDP on CUDA only, so the DDP run of it is marked ``gpu``.

Each rank is a process started by tests/distributed_processes.py (stopped whatever happens) running
tests/distributed_torch_worker.py. The two halves of every batch come from different distributions,
so per-half and whole-batch statistics differ.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

import resgen
from resgen.generated_module import import_generated
from tests.distributed_processes import run_ranks
from tests.helpers import backbone_spec

torch = pytest.importorskip("torch")

PRESET = "cifar_resnet20"
WORLD = 2
BATCH = 8  # 4 per rank
LR = 0.1
TOLERANCE = 1e-6  # float64; the runs below measure about 1e-16


def _source() -> str:
    return resgen.render(PRESET, "torch")


def _payload(steps: int, seed: int = 0) -> dict[str, Any]:
    """Starting weights and `steps` batches whose halves differ in mean and scale."""
    torch.manual_seed(seed)
    model = import_generated(_source(), "start").build_model().double()
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(steps, BATCH, 3, 32, 32, generator=generator, dtype=torch.float64)
    x[:, BATCH // 2 :] = 3.0 * x[:, BATCH // 2 :] + 1.5  # the second half: another distribution
    y = torch.randint(0, 10, (steps, BATCH), generator=generator)
    return {"source": _source(), "state": model.state_dict(), "x": x, "y": y, "lr": LR}


def _fresh(payload: dict[str, Any], **options: Any) -> Any:
    model = import_generated(payload["source"], "reference").build_model(**options).double()
    model.load_state_dict(payload["state"], strict=True)
    return model.train()


def _set_buffers(model: Any, values: dict[str, Any]) -> None:
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            buffer.copy_(values[name])


def _buffers(model: Any) -> dict[str, Any]:
    return {name: b.detach().clone() for name, b in model.named_buffers()}


def per_half_reference(payload: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One process: each step averages the gradients of the half-batches, each forward with its half's
    BatchNorm statistics. Returns the parameters and each rank's BatchNorm buffers: every step starts
    from rank 0's (DDP's broadcast) and updates them with the rank's own half."""
    model = _fresh(payload)
    optimizer = torch.optim.SGD(model.parameters(), lr=payload["lr"])
    ranks: list[dict[str, Any]] = []
    for x, y in zip(payload["x"], payload["y"], strict=True):
        start, ranks, share = _buffers(model), [], len(x) // WORLD
        optimizer.zero_grad()
        for rank in range(WORLD):
            part = slice(rank * share, (rank + 1) * share)
            _set_buffers(model, start)
            (torch.nn.functional.cross_entropy(model(x[part]), y[part]) / WORLD).backward()
            ranks.append(_buffers(model))
        optimizer.step()
        _set_buffers(model, ranks[0])
    return {k: p.detach() for k, p in model.named_parameters()}, ranks


def whole_batch_reference(payload: dict[str, Any], **options: Any) -> dict[str, Any]:
    """One process, plain SGD on the whole batch: the state dict after every step."""
    model = _fresh(payload, **options)
    optimizer = torch.optim.SGD(model.parameters(), lr=payload["lr"])
    for x, y in zip(payload["x"], payload["y"], strict=True):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _train_ranks(mode: str, payload: dict[str, Any], folder: Path) -> list[dict[str, Any]]:
    torch.save(payload, folder / "payload.pt")
    finished = run_ranks(
        "tests.distributed_torch_worker", [mode, str(folder / "payload.pt"), str(folder)], folder
    )
    assert finished.ok, finished.describe()
    return [torch.load(folder / f"rank{r}.pt") for r in range(WORLD)]


def _max_diff(a: dict[str, Any], b: dict[str, Any], keys: Any) -> float:
    return max(float((a[k].double().cpu() - b[k].double().cpu()).abs().max()) for k in keys)


def _statistics(state: dict[str, Any]) -> list[str]:
    return [k for k in state if k.endswith(("running_mean", "running_var"))]


def test_ddp_two_steps_equal_averaged_half_batch_gradients(tmp_path: Path, record_property: Any) -> None:
    payload = _payload(steps=2)
    rank0, rank1 = _train_ranks("ddp", payload, tmp_path)
    params, buffers = per_half_reference(payload)
    assert _max_diff(rank0, rank1, params) == 0.0  # identical on both ranks
    diff = _max_diff(rank0, params, params)
    record_property("max_abs_diff", diff)
    assert diff <= TOLERANCE
    moved = _max_diff(rank0, payload["state"], params)
    assert moved > 100 * TOLERANCE  # the steps did move the weights
    # BatchNorm running statistics: each rank's own half, from rank 0's at the start of each step
    stats = _statistics(rank0)
    for rank, state in enumerate((rank0, rank1)):
        assert _max_diff(state, buffers[rank], stats) <= TOLERANCE
        assert all(int(state[k]) == 2 for k in state if k.endswith("num_batches_tracked"))
    assert _max_diff(rank0, rank1, stats) > 1e-3  # the halves differ, so do the ranks' statistics
    # ... and none of them is the whole batch's (that needs SyncBatchNorm)
    assert _max_diff(rank0, whole_batch_reference(payload), stats) > 1e-3


def test_fsdp2_fully_shard_step_on_cpu(tmp_path: Path, record_property: Any) -> None:
    """FSDP2 shards every parameter over the two ranks (gloo, CPU); one step equals DDP's."""
    pytest.importorskip("torch.distributed.fsdp")
    payload = _payload(steps=1, seed=1)
    rank0, rank1 = _train_ranks("fsdp", payload, tmp_path)
    params, _ = per_half_reference(payload)
    assert _max_diff(rank0, rank1, params) == 0.0
    diff = _max_diff(rank0, params, params)
    record_property("max_abs_diff", diff)
    assert diff <= TOLERANCE


# --- synchronized BatchNorm ------------------------------------------------------------------------------


def test_sync_batchnorm_converts_every_batchnorm_and_keeps_the_keys() -> None:
    module = import_generated(_source(), "sync")
    plain, synced = module.build_model(), module.build_model(sync_batchnorm=True)
    count = sum(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert count > 0
    assert sum(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules()) == count
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in synced.modules())
    assert list(synced.state_dict()) == list(plain.state_dict())
    synced.load_state_dict(plain.state_dict(), strict=True)  # weights load both ways
    plain.load_state_dict(synced.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(synced.eval()(x), plain.eval()(x))
        fused = module.fuse_batchnorm(synced)  # folds SyncBatchNorm as it folds BatchNorm2d
        assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in fused.modules())
        assert torch.allclose(fused(x), plain(x), atol=1e-5)
    assert "sync_batchnorm=True converts every BatchNorm2d to nn.SyncBatchNorm" in " ".join(
        str(module.build_model.__doc__).split()
    )


def test_sync_batchnorm_keeps_frozen_batchnorms_in_eval_mode() -> None:
    """backbone.frozen_stages and norm_eval hold BatchNorms in eval mode in train(); SyncBatchNorm too."""
    spec = backbone_spec("resnet18", [2, 4], frozen_stages=1, norm_eval=True)
    model = import_generated(resgen.render(spec, "torch"), "frozen").build_model(sync_batchnorm=True)
    norms = [m for m in model.train().modules() if isinstance(m, torch.nn.SyncBatchNorm)]
    assert norms and not any(m.training for m in norms)


def test_group_norm_networks_have_no_sync_batchnorm_option() -> None:
    module = import_generated(resgen.render("resnet50_gn", "torch"), "group_norm")
    assert "sync_batchnorm" not in inspect.signature(module.build_model).parameters


def test_sync_batchnorm_target_is_the_whole_batch_step() -> None:
    """What DDP with SyncBatchNorm must reproduce: the whole batch's step, whose BatchNorm statistics are
    the whole batch's (mean, and unbiased variance in the running statistics) and not a half's."""
    payload = _payload(steps=1, seed=2)
    plain = whole_batch_reference(payload)
    synced = whole_batch_reference(payload, sync_batchnorm=True)  # outside a process group
    assert _max_diff(plain, synced, plain) == 0.0
    # the first BatchNorm reads the stem convolution: its statistics, from that convolution's output
    model = _fresh(payload)
    x = payload["x"][0]
    with torch.no_grad():
        conv = model.conv1(x)
    mean, var = conv.mean(dim=(0, 2, 3)), conv.var(dim=(0, 2, 3), unbiased=True)
    bn = model.bn1
    momentum = bn.momentum
    start_mean, start_var = payload["state"]["bn1.running_mean"], payload["state"]["bn1.running_var"]
    assert torch.allclose(
        plain["bn1.running_mean"], (1 - momentum) * start_mean + momentum * mean, atol=1e-12
    )
    assert torch.allclose(plain["bn1.running_var"], (1 - momentum) * start_var + momentum * var, atol=1e-12)
    # the halves' statistics are not the whole batch's: the variance of the whole is not their mean
    halves = conv.reshape(WORLD, len(x) // WORLD, *conv.shape[1:])
    half_vars = halves.var(dim=(1, 3, 4), unbiased=True)
    assert float((half_vars.mean(0) - var).abs().max()) > 1e-2


@pytest.mark.gpu
def test_ddp_with_sync_batchnorm_on_cuda_equals_the_whole_batch_step(
    tmp_path: Path, record_property: Any
) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    payload = _payload(steps=2, seed=3)
    rank0, rank1 = _train_ranks("ddp_sync", payload, tmp_path)
    whole = whole_batch_reference(payload)
    assert _max_diff(rank0, rank1, rank0) == 0.0
    keys = [k for k in whole if not k.endswith("num_batches_tracked")]
    scale = max(1.0, max(float(whole[k].abs().max()) for k in keys))
    diff = _max_diff(rank0, whole, keys) / scale
    record_property("max_rel_diff", diff)
    assert diff <= TOLERANCE


def test_ddp_refuses_sync_batchnorm_on_cpu(tmp_path: Path) -> None:
    """Why the numerical check of SyncBatchNorm needs CUDA: DDP refuses it in a CPU module."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    synced = import_generated(_source(), "sync_cpu").build_model(sync_batchnorm=True)
    store = f"file://{tmp_path / 'store'}"
    dist.init_process_group("gloo", init_method=store, rank=0, world_size=1)
    try:
        with pytest.raises(ValueError, match="SyncBatchNorm layers only work with GPU modules"):
            DistributedDataParallel(synced)
    finally:
        dist.destroy_process_group()
