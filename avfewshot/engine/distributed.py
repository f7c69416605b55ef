"""Multi-process training under ``torchrun`` (DistributedDataParallel; gloo on CPU, nccl on each rank's GPU).

The engine is the same code path with or without it: ``Context`` says who we are; the epoch
sampler draws one permutation per (seed, epoch) and gives rank r the positions r, r + W, ...,
so with the global batch fixed, every optimiser step sees the same clips as a one-process run
(exactly, when the train set size is a multiple of the global batch). Evaluation is sharded the
same way and the predictions are gathered before the metrics, which rank 0 writes alone.
"""
from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Iterator, List

import torch
from torch.utils.data import Sampler


@dataclass
class Context:
    rank: int = 0
    world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> List:
        """Every rank's ``obj`` in rank order (on every rank)."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out


_CONTEXT = Context()


def context() -> Context:
    return _CONTEXT


def process_rank() -> int:
    """This process's rank: the process group's when one is running, else torchrun's ``RANK``, else 0."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return process_rank() == 0


def init_from_environment(device: str = "auto") -> Context:
    """Join the process group torchrun describes in the environment (no-op without torchrun).

    nccl when this rank trains on its GPU (``train.device`` auto with CUDA, or cuda), else gloo."""
    global _CONTEXT
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _CONTEXT
    if not torch.distributed.is_initialized():
        from .device import resolve_device

        on_gpu = resolve_device(device).type == "cuda"
        if on_gpu:
            torch.cuda.set_device(resolve_device(device))
        torch.distributed.init_process_group(backend="nccl" if on_gpu else "gloo")
        atexit.register(leave_process_group)
    _CONTEXT = Context(rank=torch.distributed.get_rank(), world=torch.distributed.get_world_size())
    return _CONTEXT


def leave_process_group() -> None:
    """Destroy the process group this module joined (registered at exit when joining).

    Without it the interpreter can exit while gloo's threads still run, and a rank that finished its work
    aborts ("terminate called without an active exception"), so torchrun reports a failed run."""
    global _CONTEXT
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    _CONTEXT = Context()


class EpochShardSampler(Sampler):
    """A seeded permutation (or the identity, for evaluation) sharded round-robin over ranks."""

    def __init__(self, size: int, ctx: Context, seed: int = 0, shuffle: bool = True):
        self.size, self.ctx, self.seed, self.shuffle = size, ctx, seed, shuffle

    def _order(self) -> List[int]:
        if not self.shuffle:
            return list(range(self.size))
        return torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed)).tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self._order()[self.ctx.rank :: self.ctx.world])

    def __len__(self) -> int:
        return len(range(self.ctx.rank, self.size, self.ctx.world))


def wrap(method, ctx: Context):
    """The module whose forward the training loop calls (DDP over the trainable parameters)."""
    if not ctx.enabled:
        return method
    from torch.nn.parallel import DistributedDataParallel

    device = next((p.device for p in method.parameters()), torch.device("cpu"))
    ids = [device] if device.type == "cuda" else None  # each rank's own GPU
    return DistributedDataParallel(method, device_ids=ids, find_unused_parameters=False, broadcast_buffers=False)
