"""AVS losses (docs/supervised_heads.md §3): S4 first-frame BCE, MS3 five-frame BCE + masked audio-visual KL term.

Both BCEs are computed from logits (``binary_cross_entropy_with_logits``), which equals the released
BCELoss on the sigmoid without its log clamping.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch.nn import functional as F


def s4_loss(logits: torch.Tensor, first_masks: torch.Tensor, frames: int = 5) -> torch.Tensor:
    """BCE between frame 1 of every clip and its mask. logits (B*T, 1, H, W); first_masks (B, 1, H, W)
    or (B, H, W): S4 training has only the first frame's mask."""
    first = logits[::frames]
    target = first_masks.reshape(first.shape).to(first.dtype)
    return F.binary_cross_entropy_with_logits(first, target)


def masked_av_term(logits: torch.Tensor, tpavi_maps: Sequence[torch.Tensor], tpavi_audio: Sequence[torch.Tensor]) -> torch.Tensor:
    """Released A_MaskedV term, averaged over the stages: per stage, sigmoid(avg-pooled logits to the
    stage grid) weights the map, its spatial mean is the masked visual feature v, and the term is
    KL(softmax(a) || softmax(v)) **summed** over the B*T frames (no normalisation by batch size)."""
    total = logits.new_zeros(())
    for v_map, audio in zip(tpavi_maps, tpavi_audio):
        weights = torch.sigmoid(F.adaptive_avg_pool2d(logits, v_map.shape[-2:]))
        masked = (weights * v_map).mean((-2, -1))  # (B*T, C)
        a = F.softmax(audio.reshape(-1, audio.shape[-1]), dim=-1)
        total = total + F.kl_div(F.log_softmax(masked, dim=-1), a, reduction="sum")
    return total / len(tpavi_maps)


def ms3_loss(logits: torch.Tensor, masks: torch.Tensor, tpavi_maps: Sequence[torch.Tensor],
             tpavi_audio: Sequence[torch.Tensor], av_weight: float = 0.5) -> torch.Tensor:
    """BCE over all five frames + av_weight x :func:`masked_av_term`. masks (B*T, 1, H, W) or (B*T, H, W)."""
    bce = F.binary_cross_entropy_with_logits(logits, masks.reshape(logits.shape).to(logits.dtype))
    return bce + av_weight * masked_av_term(logits, tpavi_maps, tpavi_audio)
