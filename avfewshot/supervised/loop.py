"""A minimal device-agnostic fit loop for the supervised models (the shared engine's run builder will replace it).

Adam with a StepLR schedule, one evaluation per epoch on the selection split, the best epoch's trainable
state kept (ties keep the earlier epoch), early stopping after ``early_stop`` epochs without gain. The
released AVE accumulation quirk (gradients zeroed every batch, a step every 2nd) is not reproduced.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch

from ..errors import UserError


@dataclass
class FitResult:
    best_epoch: int
    best_metric: float
    history: List[Dict[str, float]] = field(default_factory=list)


def _to_device(batch, device):
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def fit(model, train_batches: Callable[[], object], evaluate: Callable[[], Dict[str, float]], main_metric: str,
        epochs: int, lr: float, step_size: int = 3, gamma: float = 0.35, weight_decay: float = 0.0,
        early_stop: Optional[int] = None, device: str = "cpu") -> FitResult:
    """Train ``model`` (a SupervisedModel) and load its best state on the selection split back into it.

    ``train_batches()`` returns an iterable of batches for one epoch; ``evaluate()`` returns metrics.
    """
    if epochs < 1:
        raise UserError(f"epochs={epochs}: must be >= 1")
    params = model.trainable_parameters()
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
    best = FitResult(best_epoch=0, best_metric=float("-inf"))
    best_state = None
    stale = 0
    for epoch in range(1, epochs + 1):
        model.train()
        losses = []
        for batch in train_batches():
            if batch is None:
                continue
            batch = _to_device(batch, device)
            outputs = model(batch)
            loss, _ = model.loss(batch, outputs, epoch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        scheduler.step()
        scores = evaluate()
        scores = {**scores, "epoch": epoch, "train_loss": sum(losses) / max(len(losses), 1)}
        best.history.append(scores)
        if main_metric not in scores:
            raise UserError(f"fit: the evaluation has no {main_metric!r}; it returned {sorted(scores)}")
        if scores[main_metric] > best.best_metric:
            best.best_metric, best.best_epoch, stale = float(scores[main_metric]), epoch, 0
            best_state = model.trainable_state()
        else:
            stale += 1
            if early_stop is not None and stale >= early_stop:
                break
    if best_state is not None:
        model.load_trainable_state(best_state)
    return best
