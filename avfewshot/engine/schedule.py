"""Per-epoch learning-rate schedules (stepped once after every epoch).

Two warm-up families, chosen with ``train.warmup`` (only matters when ``train.warmup_epochs > 0``):

``ramp`` (the toolkit's own, the default)
    epoch e < W runs at (e+1)/(W+1)·lr; the decay (cosine / multistep / constant) then runs over the
    remaining ``epochs − W`` epochs, so a cosine reaches 0 after the last epoch (multistep milestones
    count from the first epoch). Kept as the default
    because it spends no epoch at a negligible rate and the cosine uses its whole span.

``constant`` / ``linear`` (Dassl.pytorch, the CoOp / CoCoOp / MaPLe / CLIP-Adapter configs)
    ``dassl/optim/lr_scheduler.py`` with its default ``WARMUP_RECOUNT = True``: epochs e < W run at
    ``warmup_lr`` (``WARMUP_CONS_LR``; ``linear``: ``WARMUP_MIN_LR`` at epoch 0, then lr·e/W). From
    epoch W on the successor scheduler runs with its count restarted at 0 but its length unchanged:
    a cosine over the full ``epochs`` (``MAX_EPOCH``), so epoch e >= W runs at
    lr·½(1 + cos(π(e − W)/epochs)): epoch W at the full lr, and the last epoch well above 0.
    Example (MaPLe, 5 epochs, W = 1, lr 3.5e-3): 1e-5, 3.5e-3, 3.17e-3, 2.29e-3, 1.21e-3.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..errors import UserError

WARMUPS = ("ramp", "constant", "linear")
SCHEDULES = ("cosine", "multistep", "constant")


def decay_factor(train, step: int, span: int) -> float:
    """The decay schedule's factor after ``step`` of its own epochs, over a length of ``span``."""
    if train.schedule == "constant":
        return 1.0
    if train.schedule == "cosine":
        span = max(1, span)
        return 0.5 * (1 + math.cos(math.pi * min(step, span) / span))
    if train.schedule == "multistep":
        return train.lr_gamma ** sum(step >= m for m in train.milestones)
    raise UserError(f"unknown train.schedule {train.schedule!r}; valid: {', '.join(SCHEDULES)}")


def lr_factor(train) -> Callable[[int], float]:
    """factor(e): the learning rate of epoch e (0-based, = number of finished epochs) over ``train.lr``."""
    warm = max(0, train.warmup_epochs)
    style = train.warmup
    if style not in WARMUPS:
        raise UserError(f"unknown train.warmup {style!r}; valid: {', '.join(WARMUPS)}")
    if warm and style != "ramp" and train.lr <= 0:
        raise UserError(f"train.warmup={style} needs train.lr > 0 (got {train.lr})")
    decay_factor(train, 0, 1)  # validate the schedule name now, not after the first epoch

    def factor(epoch: int) -> float:
        if style == "ramp":
            if epoch < warm:
                return (epoch + 1) / (warm + 1)
            if train.schedule == "multistep":  # milestones count from the first epoch
                return decay_factor(train, epoch, train.epochs)
            return decay_factor(train, epoch - warm, train.epochs - warm)
        if epoch < warm:  # Dassl's ConstantWarmupScheduler / LinearWarmupScheduler
            if style == "constant" or epoch == 0:
                return train.warmup_lr / train.lr
            return epoch / warm
        return decay_factor(train, epoch - warm, train.epochs)  # successor recounted, over MAX_EPOCH

    return factor


def make_scheduler(optimizer: torch.optim.Optimizer, cfg) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler for ``cfg.train`` (a RunConfig's); call ``step()`` once after every epoch."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg.train))
