"""CLIP-Adapter (Gao et al., IJCV 2023) on both branches, fused.

Visual branch (official code, with the width fixed for ViT: d = 512): A(f) = ReLU(W2 ReLU(W1 f)),
bias-free, d -> d/4 -> d, mixed on the raw image feature f' = ratio * A(f) + (1 - ratio) * f with
ratio 0.2, then compared by cosine with the frozen text features of the fixed template
("a photo of a {}."). 131,072 parameters.

Audio branch (CLIP-Adapter-A): the same 512 -> 128 -> 512 adapter on the CLAP audio projection's
output, against the frozen "The sounds of {}" text features.

``text_adapter=true`` adds a second adapter on each branch's text features, as DG-SCT's released
code does (the paper's text variant is not in the official CLIP-Adapter code).

Everything frozen is cached: the text features are computed once at construction, the image and
audio embeddings come from the feature cache, so training is an MLP on cached vectors.
With ratio 0 the method is exactly the zero-shot classifier.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import nn

from ..config import choice
from .base import METHODS, MethodConfig
from .two_branch import BRANCHES, BranchOutput, TwoBranchMethod
from .prompt_learners import ClipAdapter, cosine_logits


class AdapterBranch(nn.Module):
    """Adapter on the (cached) embedding against fixed, precomputed text features."""

    def __init__(self, text_features: torch.Tensor, ratio: float, reduction: int, text_adapter: bool):
        super().__init__()
        dim = text_features.shape[-1]
        self.register_buffer("text", text_features.detach(), persistent=False)
        self.adapter = ClipAdapter(dim, reduction, ratio)
        self.text_adapter: Optional[ClipAdapter] = ClipAdapter(dim, reduction, ratio) if text_adapter else None

    reads = "features"

    def forward(self, features: torch.Tensor, scale: torch.Tensor) -> BranchOutput:
        text = self.text if self.text_adapter is None else self.text_adapter(self.text)
        return BranchOutput(cosine_logits(self.adapter(features), text, scale), text)


@dataclass
class ClipAdapterConfig(MethodConfig):
    ratio: float = 0.2  # residual ratio alpha (hard-coded 0.2 in the official code)
    reduction: int = 4
    audio_ratio: float = 0.2
    audio_reduction: int = 4
    text_adapter: bool = False  # also adapt the text features (DG-SCT's released code does)
    branches: List[str] = choice(lambda: list(BRANCHES), *BRANCHES)


@METHODS.register("clip_adapter")
class ClipAdapterMethod(TwoBranchMethod):
    name = "clip_adapter"
    Config = ClipAdapterConfig

    def build_visual(self) -> nn.Module:
        with torch.no_grad():
            text = self.encode_clip_prompts()
        return AdapterBranch(text, self.cfg.ratio, self.cfg.reduction, self.cfg.text_adapter)

    def build_audio(self) -> nn.Module:
        with torch.no_grad():
            text = self.encode_clap_prompts()
        return AdapterBranch(text, self.cfg.audio_ratio, self.cfg.audio_reduction, self.cfg.text_adapter)
