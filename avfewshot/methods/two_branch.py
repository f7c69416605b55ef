"""Scaffolding for methods made of a visual (CLIP) branch and an audio (CLAP) branch, fused.

The branch protocol. A branch is an ``nn.Module`` with

- ``reads``: ``"features"`` (the default) when it classifies the frozen towers' per-segment embeddings,
  which may then come from the feature cache, or ``"media"`` when it runs the tower itself (MaPLe puts
  prompt tokens inside the tower);
- ``encode(media, tower) -> (B, T, D)``: only for ``reads == "media"``; ``media`` is the batch's
  ``frames`` (B, T, 3, H, W) or ``audio`` (B, T, S);
- ``forward(features (B, T, D), scale) -> BranchOutput``: the branch's logits (B, T, K) and, when it has
  one set of class text features, those features (K, D) (learned prompts report theirs, so a loss can
  read them from ``Scores.extras`` without encoding the prompts twice).

``TwoBranchMethod.forward`` feeds each branch, fuses the two logits with the shared fusion function and
puts every branch's text features in ``Scores.extras["visual_text"]`` / ``["audio_text"]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
from torch import nn

from ..errors import UserError
from .base import Method, Scores
from .prompt_learners import ClapPromptLearner, ClipPromptLearner, cosine_logits, count_parameters
from .towers import TowerFeatures

BRANCHES = ("visual", "audio")
_MEDIA_KEY = {"visual": "frames", "audio": "audio"}
_FEATURE_NAME = {"visual": "image", "audio": "audio"}


@dataclass
class BranchOutput:
    logits: torch.Tensor  # (B, T, K)
    text: Optional[torch.Tensor] = None  # (K, D) class text features, when the branch has one set


class FixedPromptBranch(nn.Module):
    """A branch left at zero-shot: the frozen features of the fixed template prompts."""

    reads = "features"

    def __init__(self, text_features: torch.Tensor):
        super().__init__()
        self.register_buffer("text", text_features.detach(), persistent=False)

    def forward(self, features: torch.Tensor, scale: torch.Tensor) -> BranchOutput:
        return BranchOutput(cosine_logits(features, self.text, scale), self.text)


class PromptBranch(nn.Module):
    """CoOp branch: text features from a learned-context prompt learner."""

    reads = "features"

    def __init__(self, learner):
        super().__init__()
        self.prompt_learner = learner

    def forward(self, features: torch.Tensor, scale: torch.Tensor) -> BranchOutput:
        text = self.prompt_learner()
        return BranchOutput(cosine_logits(features, text, scale), text)


def check_branches(branches: List[str]) -> List[str]:
    bad = sorted(set(branches) - set(BRANCHES))
    if bad or not branches:
        raise UserError(f"method option branches={branches}: choose one or both of {', '.join(BRANCHES)}")
    return list(branches)


def phrase_or_count(n_ctx: int, ctx_init: str) -> Optional[int]:
    """CoOp's rule: an init phrase sets the context length to its token count."""
    return None if ctx_init and ctx_init.strip() else n_ctx


class TwoBranchMethod(TowerFeatures, Method):
    """A visual branch + an audio branch on the frozen towers, fused with the shared fusion function.

    Subclasses build each adapted branch (``build_visual`` / ``build_audio``, see the branch protocol
    above); a branch not listed in ``cfg.branches`` keeps its zero-shot prompts. Frozen features are
    read from the cache for every branch that reads features.
    """

    def __init__(self, backbone, task, class_names, cfg):
        super().__init__(backbone, task, class_names, cfg)
        branches = check_branches(cfg.branches)
        with torch.no_grad():
            zero_v = None if "visual" in branches else self.encode_clip_prompts()
            zero_a = None if "audio" in branches else self.encode_clap_prompts()
        self.visual_branch = self.build_visual() if zero_v is None else FixedPromptBranch(zero_v)
        self.audio_branch = self.build_audio() if zero_a is None else FixedPromptBranch(zero_a)
        self.cacheable_features = tuple(_FEATURE_NAME[side] for side in BRANCHES if self.branch(side).reads == "features")

    def build_visual(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def build_audio(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def branch(self, side: str) -> nn.Module:
        return self.visual_branch if side == "visual" else self.audio_branch

    def branch_output(self, side: str, batch: Dict) -> BranchOutput:
        branch = self.branch(side)
        if branch.reads == "media":
            tower = self.backbone.image if side == "visual" else self.backbone.audio
            features = branch.encode(batch[_MEDIA_KEY[side]], tower)
        else:
            features = self.image_features(batch) if side == "visual" else self.audio_features(batch)
        return branch(features, self.clip_scale() if side == "visual" else self.audio_scale())

    def forward(self, batch: Dict) -> Scores:
        v, a = self.branch_output("visual", batch), self.branch_output("audio", batch)
        extras = {f"{side}_text": out.text for side, out in (("visual", v), ("audio", a)) if out.text is not None}
        return Scores(fused=self.fuse(v.logits, a.logits), visual=v.logits, audio=a.logits, extras=extras)

    def parameter_groups(self) -> Dict[str, int]:
        """Trainable parameters of the image-text (CLIP) and audio-text (CLAP) modules."""
        return {"visual": count_parameters(self.visual_branch), "audio": count_parameters(self.audio_branch)}

    # -- prompt learners with this method's templates ----------------------------------------
    def clip_learner(self, **kwargs) -> ClipPromptLearner:
        return ClipPromptLearner(self.backbone.clip_text, self.class_names, template=self.cfg.clip_template, **kwargs)

    def clap_learner(self, **kwargs) -> ClapPromptLearner:
        return ClapPromptLearner(self.backbone.clap_text, self.class_names, template=self.cfg.clap_template,
                                 name_style=self.cfg.clap_name_style, **kwargs)
