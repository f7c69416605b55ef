"""Shared pieces of the prompt-learning methods: cosine logits, the CoCoOp meta-net, the CLIP-Adapter and a
trainable-parameter count. Shared by the baselines (CoOp, CoCoOp, CLIP-Adapter, MaPLe) and DG-SCT.

The learnable text prompts live in text_prompts.py (assembly, ``TextPromptLearner``), clip_prompts.py
(``ClipPromptLearner``) and clap_prompts.py (``ClapPromptLearner``); their names are re-exported here, so
``from .prompt_learners import ClipPromptLearner`` keeps working.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..precision import autocast_disabled
from ..errors import UserError
from .clap_prompts import ClapPromptLearner, overwrite_layer_inputs
from .clip_prompts import ClipPromptLearner
from .text_prompts import CLASS_TOKEN_POSITIONS, TextPromptLearner, branch_template, place, template_prefix

__all__ = [
    "CLASS_TOKEN_POSITIONS",
    "ClapPromptLearner",
    "ClipAdapter",
    "ClipPromptLearner",
    "MetaNet",
    "TextPromptLearner",
    "branch_template",
    "cosine_logits",
    "count_parameters",
    "overwrite_layer_inputs",
    "place",
    "template_prefix",
]


def cosine_logits(features: torch.Tensor, text: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """scale * cos. features (..., D) with text (C, D) -> (..., C); with per-sample text (N, C, D) and
    features (N, D) -> (N, C). Always fp32, under autocast too: the scale (~100) multiplies the
    rounding of low-precision cosines, and the product is small."""
    scale = scale.float() if isinstance(scale, torch.Tensor) else scale
    with autocast_disabled(features.device.type):
        features = F.normalize(features.float(), dim=-1)
        text = F.normalize(text.float(), dim=-1)
        if text.dim() == 2:
            return scale * features @ text.t()
        return scale * torch.einsum("nd,ncd->nc", features, text)


# -- small learnable modules ------------------------------------------------------------------
class MetaNet(nn.Module):
    """CoCoOp's meta-net: Linear(in -> in/16) + ReLU + Linear(-> out), both with bias."""

    def __init__(self, in_dim: int, out_dim: int, hidden: Optional[int] = None):
        super().__init__()
        hidden = hidden or max(1, in_dim // 16)
        self.linear1 = nn.Linear(in_dim, hidden)
        self.relu = nn.ReLU()
        self.linear2 = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.relu(self.linear1(x)))


class ClipAdapter(nn.Module):
    """CLIP-Adapter: A(f) = ReLU(W2 ReLU(W1 f)), bias-free, d -> d/reduction -> d.

    ``forward(f)`` = ratio * A(f) + (1 - ratio) * f (the residual mix, not normalised);
    ``residual(f)`` = A(f) alone (for callers that mix differently, as DG-SCT's released code does).
    """

    def __init__(self, dim: int, reduction: int = 4, ratio: float = 0.2):
        super().__init__()
        if reduction < 1 or dim % reduction:
            raise UserError(f"CLIP-Adapter reduction {reduction} must divide the feature width {dim}")
        if not 0.0 <= ratio <= 1.0:
            raise UserError(f"CLIP-Adapter ratio {ratio} must lie in [0, 1]")
        self.ratio = float(ratio)
        self.fc = nn.Sequential(
            nn.Linear(dim, dim // reduction, bias=False),
            nn.ReLU(),
            nn.Linear(dim // reduction, dim, bias=False),
            nn.ReLU(),
        )

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.ratio == 0.0:
            return x
        return self.ratio * self.fc(x) + (1.0 - self.ratio) * x


def count_parameters(module: Optional[nn.Module]) -> int:
    """Trainable parameters of a module (0 for None)."""
    if module is None:
        return 0
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
