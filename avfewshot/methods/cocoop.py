"""CoCoOp (Zhou et al., CVPR 2022) on both branches, fused.

Visual branch (official CoCoOp, config c4_ctxv1): 4 context tokens initialised from "a photo of a" and
a meta-net Linear(512 -> 32) + ReLU + Linear(32 -> 512) (both with bias) reading the L2-normalised
image feature; its output pi(x) is added to every context token, so every image (here: every
one-second segment) gets its own C prompts and its own text encoding.

Audio branch (CoCoOp-A): 3 context tokens in RoBERTa's word-embedding space initialised from
"The sounds of", and a meta-net Linear(512 -> 32) + ReLU + Linear(32 -> 768) reading the normalised
CLAP audio embedding, added to every context token.

Cost and exact shortcuts: B*T*C text passes per step and branch. ``truncate_text`` runs the text
towers only up to the longest real prompt (CLIP: the longest EOT index + 1, exact because the mask
is causal; RoBERTa: the longest attention mask), and evaluation encodes the prompts in chunks of
``chunk_size`` sequences. ``conditioning=clip`` (non-official, labelled as such) conditions on the
clip's mean normalised feature instead, one prompt set per clip instead of per segment.
The image and audio embeddings come from the feature cache.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from ..config import choice
from ..errors import UserError
from .base import METHODS, MethodConfig
from .two_branch import BRANCHES, BranchOutput, TwoBranchMethod, phrase_or_count
from .prompt_learners import MetaNet, cosine_logits

CONDITIONINGS = ("segment", "clip")


class ConditionalPromptBranch(nn.Module):
    """Prompt learner + meta-net: per-sample text features from the sample's own feature."""

    def __init__(self, learner, feature_dim: int, conditioning: str = "segment"):
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise UserError(f"unknown CoCoOp conditioning {conditioning!r}; valid: {', '.join(CONDITIONINGS)} "
                            f"(segment is the official per-image rule)")
        self.conditioning = conditioning
        self.prompt_learner = learner
        self.meta_net = MetaNet(feature_dim, learner.width)

    reads = "features"

    def forward(self, features: torch.Tensor, scale: torch.Tensor) -> BranchOutput:
        """features (B, T, D) -> logits (B, T, K); the text features are per sample, so none is reported."""
        return BranchOutput(self.logits(features, scale))

    def logits(self, features: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        b, t, d = features.shape
        normed = F.normalize(features, dim=-1)
        if self.conditioning == "clip":
            cond = F.normalize(normed.mean(dim=1), dim=-1)  # (B, D)
            text = self.prompt_learner(self.meta_net(cond))  # (B, K, D)
            return scale * torch.einsum("btd,bkd->btk", normed, F.normalize(text, dim=-1))
        flat = normed.reshape(b * t, d)
        text = self.prompt_learner(self.meta_net(flat))  # (B*T, K, D)
        return cosine_logits(flat, text, scale).view(b, t, -1)


@dataclass
class CoCoOpConfig(MethodConfig):
    n_ctx: int = 4  # ignored when ctx_init is a phrase
    ctx_init: str = "a photo of a"
    audio_n_ctx: int = 4
    audio_ctx_init: str = "The sounds of"
    truncate_text: bool = True  # exact shortcut (within ~1e-6 of the full-length encoding)
    chunk_size: int = 1024  # text sequences per tower call at evaluation (bounds memory)
    conditioning: str = choice("segment", *CONDITIONINGS)  # segment (official: one prompt set per image) | clip (non-official)
    branches: List[str] = choice(lambda: list(BRANCHES), *BRANCHES)


@METHODS.register("cocoop")
class CoCoOp(TwoBranchMethod):
    name = "cocoop"
    Config = CoCoOpConfig

    def build_visual(self) -> nn.Module:
        c = self.cfg
        learner = self.clip_learner(n_ctx=phrase_or_count(c.n_ctx, c.ctx_init), ctx_init=c.ctx_init,
                                    truncate=c.truncate_text, chunk_size=c.chunk_size)
        return ConditionalPromptBranch(learner, self.backbone.image.output_dim, c.conditioning)

    def build_audio(self) -> nn.Module:
        c = self.cfg
        learner = self.clap_learner(n_ctx=phrase_or_count(c.audio_n_ctx, c.audio_ctx_init), ctx_init=c.audio_ctx_init,
                                    truncate=c.truncate_text, chunk_size=c.chunk_size)
        return ConditionalPromptBranch(learner, self.backbone.audio.output_dim, c.conditioning)
