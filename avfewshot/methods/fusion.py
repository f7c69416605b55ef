"""Fusing the image-text and audio-text logits, and the matching training objective.

Modes (one shared function for every method, so baselines and DG-SCT are compared fairly):

- ``confidence`` (the paper's rule, default): per segment, each branch's confidence is its top
  softmax probability, y_v = max_c softmax(l_v)_c and y_a = max_c softmax(l_a)_c (positive, so the
  denominator y_v + y_a is never negative and never below 2/K); w1 = y_v / (y_v + y_a), w2 = 1 - w1;
  fused score S = w1 * l_v + w2 * l_a. Training loss L = w1 * CE(l_v) + w2 * CE(l_a) with the same
  weights, **detached**: they say how much to trust each branch and are not themselves optimised.
  The weights are one pair per segment, not per class: per-class weights (as the released code
  computes them) make the fused ranking inconsistent across classes - a class one branch rejects
  gets almost all its score from the other branch and can outrank a class both branches support.
- ``confidence_raw``: the released zero-shot / pretraining code: w1 = l_v / (l_v + l_a) on the raw
  scaled logits, S = (l_v^2 + l_a^2) / (l_v + l_a). Cosine logits can be negative or cancel, so a
  denominator with |d| < eps is replaced by eps with d's sign (+eps for exactly 0). Loss: CE(S).
- ``sum``: the released few-shot code, S = a * l_v + b * l_a (a = b = 2 by default). Loss: CE(S).
- ``visual`` / ``audio``: one branch only (the zero-shot CLIP / CLAP baselines).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F

FUSION_MODES = ("confidence", "confidence_raw", "sum", "visual", "audio")


def check_mode(mode: str) -> str:
    if mode not in FUSION_MODES:
        from ..errors import UserError

        raise UserError(f"unknown fusion {mode!r}; valid: {', '.join(FUSION_MODES)}")
    return mode


def confidence_weights(l_v: torch.Tensor, l_a: torch.Tensor) -> torch.Tensor:
    """w1 = y_v / (y_v + y_a), y = top softmax probability over classes; shape (..., 1)."""
    y_v = l_v.softmax(dim=-1).amax(dim=-1, keepdim=True)
    y_a = l_a.softmax(dim=-1).amax(dim=-1, keepdim=True)
    return y_v / (y_v + y_a)


def raw_confidence_weights(l_v: torch.Tensor, l_a: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The official w1 = l_v / (l_v + l_a) on raw logits, with a same-sign epsilon floor."""
    d = l_v + l_a
    sign = torch.where(d < 0, -torch.ones_like(d), torch.ones_like(d))
    d = torch.where(d.abs() < eps, sign * eps, d)
    return l_v / d


def fuse(l_v, l_a, mode: str, sum_weights: Sequence[float] = (2.0, 2.0)) -> torch.Tensor:
    if mode == "visual":
        return l_v
    if mode == "audio":
        return l_a
    if mode == "sum":
        return sum_weights[0] * l_v + sum_weights[1] * l_a
    if mode == "confidence":
        w1 = confidence_weights(l_v, l_a)
        return w1 * l_v + (1 - w1) * l_a
    if mode == "confidence_raw":
        w1 = raw_confidence_weights(l_v, l_a)
        return w1 * l_v + (1 - w1) * l_a
    check_mode(mode)
    raise AssertionError(mode)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, reduce: bool = True) -> torch.Tensor:
    """CE with a probability target over the last axis; mean over all leading axes when reduce."""
    loss = -(target * F.log_softmax(logits, dim=-1)).sum(dim=-1)
    return loss.mean() if reduce else loss


def fused_loss(
    l_v: torch.Tensor,
    l_a: torch.Tensor,
    target: torch.Tensor,
    mode: str,
    sum_weights: Sequence[float] = (2.0, 2.0),
) -> Tuple[torch.Tensor, dict]:
    """The training objective for a fusion mode. All logits and target share their shape (..., K)."""
    if mode == "confidence":
        w1 = confidence_weights(l_v, l_a).detach().squeeze(-1)
        ce_v = soft_cross_entropy(l_v, target, reduce=False)
        ce_a = soft_cross_entropy(l_a, target, reduce=False)
        loss = (w1 * ce_v + (1 - w1) * ce_a).mean()
        return loss, {"loss_v": float(ce_v.detach().mean()), "loss_a": float(ce_a.detach().mean()), "w_v": float(w1.mean())}
    fused = fuse(l_v, l_a, mode, sum_weights)
    loss = soft_cross_entropy(fused, target)
    return loss, {"loss_fused": float(loss.detach())}
