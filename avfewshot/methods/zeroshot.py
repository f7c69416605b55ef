"""Zero-shot baselines: CLIP image-text, CLAP audio-text, and the fused audio-visual classifier.

Text features of the fixed prompts are computed once; image and audio features come from the
frozen towers (through the feature cache when enabled). Logits are temperature-scaled cosines.
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F

from .base import METHODS, Method, MethodConfig, Scores
from .towers import TowerFeatures


@METHODS.register("zeroshot")
class ZeroShot(TowerFeatures, Method):
    """Fused CLIP + CLAP zero-shot classifier (the fusion mode decides how branches combine)."""

    name = "zeroshot"
    zero_shot = True
    Config = MethodConfig
    cacheable_features = ("image", "audio")
    branches = ("visual", "audio")
    text_branches = branches

    def __init__(self, backbone, task, class_names, cfg):
        super().__init__(backbone, task, class_names, cfg)
        with torch.no_grad():
            if "visual" in self.branches:
                self.register_buffer("clip_text", F.normalize(self.encode_clip_prompts(), dim=-1), persistent=False)
            if "audio" in self.branches:
                self.register_buffer("clap_text", F.normalize(self.encode_clap_prompts(), dim=-1), persistent=False)

    def forward(self, batch: Dict) -> Scores:
        l_v = l_a = None
        if "visual" in self.branches:
            img = F.normalize(self.image_features(batch), dim=-1)
            l_v = self.clip_scale() * img @ self.clip_text.t()
        if "audio" in self.branches:
            aud = F.normalize(self.audio_features(batch), dim=-1)
            l_a = self.audio_scale() * aud @ self.clap_text.t()
        if l_v is None:
            return Scores(fused=l_a, audio=l_a)
        if l_a is None:
            return Scores(fused=l_v, visual=l_v)
        return Scores(fused=self.fuse(l_v, l_a), visual=l_v, audio=l_a)


@METHODS.register("zeroshot_clip")
class ZeroShotCLIP(ZeroShot):
    name = "zeroshot_clip"
    branches = text_branches = ("visual",)


@METHODS.register("zeroshot_clap")
class ZeroShotCLAP(ZeroShot):
    name = "zeroshot_clap"
    branches = text_branches = ("audio",)
