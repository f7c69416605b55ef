"""Mixed precision for a run: ``train.precision`` = fp32 | bf16 | fp16.

Forward and loss run under ``torch.autocast`` for the run's device type; fp16 also scales the loss (a
``GradScaler``) so small gradients survive; trainable parameters and the optimizer state stay fp32.
"""
from __future__ import annotations

import contextlib

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_context(device_type: str, precision: str):
    """The autocast region for ``precision`` on ``device_type`` (a no-op context for fp32 and for ``meta``)."""
    if precision == "fp32" or device_type == "meta":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=DTYPES[precision])


def grad_scaler(device_type: str, precision: str):
    """A gradient scaler for fp16, else None."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device_type)
