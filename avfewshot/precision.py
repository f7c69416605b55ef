"""Precision names -> dtypes and autocast contexts, shared by the trainer, the benchmarks and the towers.

``train.precision`` (fp32 | bf16 | fp16) is the dtype forward and loss run in under autocast;
``model.frozen_dtype`` the dtype the frozen towers' matmul weights are stored in. Low-precision frozen
weights only make sense with the same autocast precision (otherwise every call would cast them), so
``check_precision_pair`` refuses the other combinations. Trainable parameters and optimizer state
stay fp32 in every case.
"""
from __future__ import annotations

import contextlib
import logging
from typing import ContextManager, Optional

import torch

from .errors import UserError

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def dtype_of(name: str) -> torch.dtype:
    """fp32 | bf16 | fp16 -> the torch dtype."""
    if name not in _DTYPES:
        raise UserError(f"unknown precision {name!r}; valid: {', '.join(PRECISIONS)}")
    return _DTYPES[name]


def name_of(dtype: torch.dtype) -> str:
    for name, value in _DTYPES.items():
        if value == dtype:
            return name
    raise ValueError(f"no precision name for {dtype}")


def frozen_dtype_for(precision: str) -> str:
    """The frozen towers' storage dtype that suits a run precision: the same (no per-call weight casts)."""
    dtype_of(precision)
    return precision


def check_precision_pair(precision: str, frozen_dtype: str) -> None:
    """``model.frozen_dtype`` is fp32 or equal to ``train.precision``."""
    dtype_of(precision)
    dtype_of(frozen_dtype)
    if frozen_dtype not in ("fp32", precision):
        raise UserError(f"model.frozen_dtype={frozen_dtype} needs train.precision={frozen_dtype} (the towers compute "
                        f"in their weights' dtype); set train.precision={frozen_dtype} or model.frozen_dtype=fp32")


def device_type_of(device) -> str:
    """'cpu' / 'cuda' / 'meta' of a device, a device string or a tensor."""
    if isinstance(device, torch.Tensor):
        return device.device.type
    return torch.device(device).type


def autocast_context(device_type: str, precision: str) -> ContextManager:
    """``torch.autocast`` for bf16 / fp16 on ``device_type`` ('cpu' or 'cuda'); a no-op for fp32 and on meta."""
    dtype = dtype_of(precision)
    if precision == "fp32" or device_type == "meta":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)


def active_autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    """The dtype autocast casts to on ``device_type`` right now, or None when autocast is off there."""
    if device_type not in ("cpu", "cuda") or not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def to_autocast_dtype(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the dtype autocast computes in on its device (``x`` itself when autocast is off there).

    For the LayerNorms that read a fp32 residual stream: fed the stream in bf16 / fp16 they normalise in
    fp32 all the same (ATen's mixed-dtype kernel), return the low dtype the next GEMM wants (the cast
    moves before the norm instead of after it), and keep half the bytes for backward."""
    low = active_autocast_dtype(x.device.type)
    return x if low is None or x.dtype == low or not x.is_floating_point() else x.to(low)


def autocast_disabled(device_type: str) -> ContextManager:
    """Leave autocast for a region whose dtypes are chosen by hand (the hand-written kernels)."""
    if device_type not in ("cpu", "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)


_LOGGED = set()


def log_once(message: str) -> None:
    """Log a kernel-path choice the first time it is made in this process."""
    if message not in _LOGGED:
        _LOGGED.add(message)
        logging.getLogger("avfewshot").info(message)


def grad_scaler(device_type: str, precision: str):
    """A gradient scaler for fp16 (small gradients would underflow), else None."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device_type)


def optimizer_step(optimizer, scaler) -> None:
    """``optimizer.step()``, through the fp16 gradient scaler when there is one (``grad_scaler``)."""
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
