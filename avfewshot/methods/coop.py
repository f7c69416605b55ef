"""CoOp (Zhou et al., IJCV 2022) on both branches, fused; plus the scaffolding the other baselines share.

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

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
from torch import nn

from ..errors import UserError
from .base import METHODS, Method, MethodConfig, Scores
from .prompt_learners import ClapPromptLearner, ClipPromptLearner, cosine_logits, count_parameters
from .towers import TowerFeatures

BRANCHES = ("visual", "audio")


# -- shared scaffolding ------------------------------------------------------------------------
class FixedPromptBranch(nn.Module):
    """A branch left at zero-shot: the frozen features of the fixed template prompts."""

    def __init__(self, text_features: torch.Tensor):
        super().__init__()
        self.register_buffer("text", text_features.detach(), persistent=False)

    def logits(self, features: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return cosine_logits(features, self.text, scale)


class PromptBranch(nn.Module):
    """CoOp branch: text features from a learned-context prompt learner."""

    def __init__(self, learner):
        super().__init__()
        self.prompt_learner = learner

    def logits(self, features: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return cosine_logits(features, self.prompt_learner(), scale)


def check_branches(branches: List[str]) -> List[str]:
    bad = sorted(set(branches) - set(BRANCHES))
    if bad or not branches:
        raise UserError(f"method option branches={branches}: choose one or both of {', '.join(BRANCHES)}")
    return list(branches)


class TwoBranchBaseline(TowerFeatures, Method):
    """A visual module + an audio module on the frozen towers, fused with the shared fusion function.

    Subclasses build each adapted branch (``build_visual`` / ``build_audio``: a module with
    ``logits(features (B, T, D), scale) -> (B, T, K)``); a branch not listed in ``cfg.branches``
    keeps its zero-shot prompts.
    """

    cacheable_features = ("image", "audio")

    def __init__(self, backbone, task, class_names, cfg):
        super().__init__(backbone, task, class_names, cfg)
        branches = check_branches(cfg.branches)
        with torch.no_grad():
            zero_v = None if "visual" in branches else self.encode_clip_prompts()
            zero_a = None if "audio" in branches else self.encode_clap_prompts()
        self.visual_branch = self.build_visual() if zero_v is None else FixedPromptBranch(zero_v)
        self.audio_branch = self.build_audio() if zero_a is None else FixedPromptBranch(zero_a)

    def build_visual(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def build_audio(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, batch: Dict) -> Scores:
        l_v = self.visual_branch.logits(self.image_features(batch), self.clip_scale())
        l_a = self.audio_branch.logits(self.audio_features(batch), self.audio_scale())
        return Scores(fused=self.fuse(l_v, l_a), visual=l_v, audio=l_a)

    def parameter_groups(self) -> Dict[str, int]:
        """Trainable parameters of the image-text (CLIP) and audio-text (CLAP) modules."""
        return {"visual": count_parameters(self.visual_branch), "audio": count_parameters(self.audio_branch)}

    # -- prompt learners with this method's templates ----------------------------------------
    def clip_learner(self, **kwargs) -> ClipPromptLearner:
        return ClipPromptLearner(self.backbone.clip_text, self.class_names, template=self.cfg.clip_template, **kwargs)

    def clap_learner(self, **kwargs) -> ClapPromptLearner:
        return ClapPromptLearner(self.backbone.clap_text, self.class_names, template=self.cfg.clap_template,
                                 name_style=self.cfg.clap_name_style, **kwargs)


def phrase_or_count(n_ctx: int, ctx_init: str) -> Optional[int]:
    """CoOp's rule: an init phrase sets the context length to its token count."""
    return None if ctx_init and ctx_init.strip() else n_ctx


# -- CoOp ------------------------------------------------------------------------------------
@dataclass
class CoOpConfig(MethodConfig):
    n_ctx: int = 16  # CLIP context tokens (ignored when ctx_init is a phrase)
    ctx_init: str = ""  # "" = N(0, 0.02^2) (official default); a phrase such as "a photo of a" initialises
    class_token_position: str = "end"  # end | middle | front
    csc: bool = False  # class-specific context (ignored with an init phrase, as officially)
    audio_n_ctx: int = 16
    audio_ctx_init: str = "The sounds of"  # CoOp-A starts at zero-shot CLAP
    audio_class_token_position: str = "end"
    audio_csc: bool = False
    truncate_text: bool = False  # run the text towers only up to the longest real prompt (exact to ~1e-6)
    branches: List[str] = field(default_factory=lambda: list(BRANCHES))  # branches that learn prompts


@METHODS.register("coop")
class CoOp(TwoBranchBaseline):
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
