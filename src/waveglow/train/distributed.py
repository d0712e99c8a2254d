"""Where this process sits in a ``torchrun`` job, and the few collectives training uses.

Launched by ``torchrun --nproc_per_node=N -m waveglow train ...``, each process trains on its share
of every batch through DistributedDataParallel (NCCL on GPUs, gloo on CPU); rank 0 alone logs and
writes. Without torchrun a process is rank 0 of 1 and every collective here does nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as torch_dist
from torch.nn.parallel import DistributedDataParallel

from ..model import WaveGlow


@dataclass(frozen=True)
class Distributed:
    """Where this process sits in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str | torch.device | None = None) -> Distributed:
    """Join the process group torchrun describes in the environment (NCCL on GPU, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not torch_dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch_dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return Distributed(rank, world_size, local_rank, device)


def leave(distributed: Distributed) -> None:
    """Leave the process group (the end of a run)."""
    if distributed.enabled and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def barrier(distributed: Distributed) -> None:
    """Wait until every rank gets here."""
    if distributed.enabled:
        torch_dist.barrier()


def wrap(model: WaveGlow, distributed: Distributed) -> torch.nn.Module:
    if not distributed.enabled:
        return model
    device_ids = [distributed.device.index] if distributed.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def all_reduce_sum(values: torch.Tensor, distributed: Distributed) -> torch.Tensor:
    if distributed.enabled:
        torch_dist.all_reduce(values, op=torch_dist.ReduceOp.SUM)
    return values


def all_gather(value: Any, distributed: Distributed) -> list[Any]:
    if not distributed.enabled:
        return [value]
    gathered: list[Any] = [None] * distributed.world_size
    torch_dist.all_gather_object(gathered, value)
    return gathered


def ranks_agree(model: torch.nn.Module, distributed: Distributed) -> bool:
    """True when every rank holds bit-identical weights (compared through per-tensor sums)."""
    if not distributed.enabled:
        return True
    with torch.no_grad():
        parameters = [p.detach().double() for p in model.parameters()]
        ramp = [
            torch.linspace(1, 2, p.numel(), dtype=torch.float64, device=p.device)
            for p in parameters
        ]
        fingerprint = torch.stack(
            [p.sum() for p in parameters]
            + [(p.flatten() * r).sum() for p, r in zip(parameters, ramp, strict=True)]
        ).cpu()
    gathered = all_gather(fingerprint, distributed)
    return all(torch.equal(gathered[0], other) for other in gathered[1:])
