"""One rank of the torch data-parallel tests (tests/test_distributed_torch.py), started as torchrun starts
its workers: RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT in the environment.

    python -m tests.distributed_torch_worker MODE PAYLOAD OUT_DIR

MODE: ``ddp`` (DistributedDataParallel, gloo, CPU), ``ddp_sync`` (the same with
build_model(sync_batchnorm=True) on CUDA: NCCL with one GPU per rank, or gloo where ranks share a
GPU) or ``fsdp`` (FSDP2's fully_shard, gloo, CPU).
PAYLOAD (torch.save): the generated source, the starting state dict, the batches of every step
(``x``: steps x batch x C x H x W, float64; ``y``: steps x batch) and the learning rate. Each rank trains
on its share of every batch (rank r: the r-th slice) with plain SGD and cross-entropy, then writes its
state dict (parameters and BatchNorm buffers, on the CPU) to OUT_DIR/rank{r}.pt.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from resgen.generated_module import import_generated


def _wrap(mode: str, model: Any, device: torch.device) -> Any:
    if mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        return fully_shard(model)
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _full_state(mode: str, model: Any) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    if mode == "fsdp":  # parameters are DTensor shards: gather them
        return {
            k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().cpu() for k, v in state.items()
        }
    return {k: v.detach().cpu() for k, v in state.items()}


def main(argv: list[str]) -> None:
    mode, payload_path, out_dir = argv
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    cuda = mode == "ddp_sync"
    backend = "gloo"
    device = torch.device("cpu")
    if cuda:  # one GPU per rank with NCCL; on a machine with fewer GPUs, ranks share them over gloo
        count = torch.cuda.device_count()
        backend = "nccl" if count >= world else "gloo"
        device = torch.device("cuda", rank % count)
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    dist.init_process_group(backend, timeout=timedelta(seconds=60))
    try:
        payload = torch.load(payload_path, weights_only=False)
        module = import_generated(payload["source"], "distributed_model")
        options = {"sync_batchnorm": True} if mode == "ddp_sync" else {}
        model = module.build_model(**options).double()
        model.load_state_dict(payload["state"], strict=True)
        model.to(device).train()
        wrapped = _wrap(mode, model, device)
        optimizer = torch.optim.SGD(wrapped.parameters(), lr=payload["lr"])
        for x, y in zip(payload["x"], payload["y"], strict=True):
            share = len(x) // world
            part = slice(rank * share, (rank + 1) * share)
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(wrapped(x[part].to(device)), y[part].to(device))
            loss.backward()
            optimizer.step()
        state = _full_state(mode, model)
        torch.save(state, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
