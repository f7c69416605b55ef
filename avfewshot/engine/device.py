"""Where a run computes: ``train.device`` resolved for this process, and batches moved there.

``auto`` is this rank's GPU (``LOCAL_RANK``, as torchrun sets it) when CUDA is available, else the CPU; ``cuda``
is the same GPU, required; ``cuda:N`` a given GPU; ``cpu`` the CPU; ``meta`` builds shapes without memory (for
counting parameters). Every CUDA call is behind ``torch.cuda.is_available()``, so the CPU path never touches it.
"""
from __future__ import annotations

import os
from typing import Any, Dict

import torch

from ..errors import UserError


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def resolve_device(spec: str) -> torch.device:
    """The ``torch.device`` for ``train.device`` in this process (a one-line error when it cannot be had)."""
    if spec == "auto":
        return torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")
    if spec in ("cpu", "meta"):
        return torch.device(spec)
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"train.device={spec} but this machine has no usable CUDA device (torch "
                            f"{torch.__version__}); use train.device=cpu or auto")
        index = int(spec.split(":", 1)[1]) if ":" in spec else local_rank()
        if index >= torch.cuda.device_count():
            raise UserError(f"train.device={spec}: there are {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    raise UserError(f"train.device={spec!r} is not valid; choose auto, cpu, cuda or cuda:N")


def to_device(batch: Dict[str, Any], device: torch.device) -> Dict[str, Any]:
    """Every tensor of the batch on ``device`` (non-blocking from pinned memory on CUDA); other values as they are."""
    if device.type == "cpu":
        return batch
    non_blocking = device.type == "cuda"
    return {k: v.to(device, non_blocking=non_blocking) if torch.is_tensor(v) else v for k, v in batch.items()}


def describe(device: torch.device) -> Dict[str, str]:
    """For metrics.json: the device's name and, on CUDA, the CUDA and cuDNN versions."""
    out = {"device": str(device)}
    if device.type == "cuda":
        out["device_name"] = torch.cuda.get_device_name(device)
        out["cuda"] = str(torch.version.cuda)
        out["cudnn"] = str(torch.backends.cudnn.version())
    else:
        import platform

        out["device_name"] = platform.processor() or platform.machine()
    return out
