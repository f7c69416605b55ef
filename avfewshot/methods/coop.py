"""CoOp (Zhou et al., IJCV 2022) on both branches, fused.

Visual branch (official CoOp): a learned context of M tokens in CLIP's token-embedding space
(M=16, N(0, 0.02^2) by default; a phrase such as "a photo of a" initialises it and sets M to its
token count), class token at the end / middle / front, optionally class-specific (CSC); the
prompts run through the frozen CLIP text tower, the image feature comes from the frozen image tower.

Audio branch (CoOp-A, the toolkit's counterpart): the same context in RoBERTa's word-embedding
space (768-d), initialised from "The sounds of" (DG-SCT's CLAP template) so that epoch 0 equals
zero-shot CLAP; the sequence is [<s>][ctx][name][</s>][pad] with explicit position ids and pooling
at <s>; the audio feature comes from the frozen HTS-AT + audio projection.

Both branches give per-segment logits (B, T, K) = scale * cos(feature, text); they are fused with
the preset's fusion mode and trained jointly on the fused objective (``Method.loss``). The image
and audio embeddings do not depend on anything trained, so they come from the feature cache.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

from torch import nn

from ..config import choice
from .base import METHODS, MethodConfig
from .two_branch import BRANCHES, PromptBranch, TwoBranchMethod, phrase_or_count


@dataclass
class CoOpConfig(MethodConfig):
    n_ctx: int = 16  # CLIP context tokens (ignored when ctx_init is a phrase)
    ctx_init: str = ""  # "" = N(0, 0.02^2) (official default); a phrase such as "a photo of a" initialises
    class_token_position: str = choice("end", "end", "middle", "front")
    csc: bool = False  # class-specific context (ignored with an init phrase, as officially)
    audio_n_ctx: int = 16
    audio_ctx_init: str = "The sounds of"  # CoOp-A starts at zero-shot CLAP
    audio_class_token_position: str = choice("end", "end", "middle", "front")
    audio_csc: bool = False
    truncate_text: bool = False  # run the text towers only up to the longest real prompt (exact to ~1e-6)
    branches: List[str] = choice(lambda: list(BRANCHES), *BRANCHES)  # branches that learn prompts


@METHODS.register("coop")
class CoOp(TwoBranchMethod):
    name = "coop"
    Config = CoOpConfig

    def build_visual(self) -> nn.Module:
        c = self.cfg
        return PromptBranch(self.clip_learner(
            n_ctx=phrase_or_count(c.n_ctx, c.ctx_init), ctx_init=c.ctx_init,
            class_token_position=c.class_token_position, csc=c.csc, truncate=c.truncate_text))

    def build_audio(self) -> nn.Module:
        c = self.cfg
        return PromptBranch(self.clap_learner(
            n_ctx=phrase_or_count(c.audio_n_ctx, c.audio_ctx_init), ctx_init=c.audio_ctx_init,
            class_token_position=c.audio_class_token_position, csc=c.audio_csc, truncate=c.truncate_text))
