"""Linear probe on the frozen fused features: the simplest trainable method, proving the engine.

Per segment, the L2-normalised image and audio embeddings each feed a linear classifier
(initialised from the zero-shot text weights, so epoch 0 equals the zero-shot classifier up to
temperature); the two branch logits are fused like every other method.
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from .base import METHODS, Method, MethodConfig, Scores
from .towers import TowerFeatures


@METHODS.register("linear_probe")
class LinearProbe(TowerFeatures, Method):
    name = "linear_probe"
    Config = MethodConfig
    cacheable_features = ("image", "audio")

    def __init__(self, backbone, task, class_names, cfg):
        super().__init__(backbone, task, class_names, cfg)
        with torch.no_grad():
            clip_text = F.normalize(self.encode_clip_prompts(), dim=-1)
            clap_text = F.normalize(self.encode_clap_prompts(), dim=-1)
        self.visual_head = nn.Linear(clip_text.shape[1], len(class_names))
        self.audio_head = nn.Linear(clap_text.shape[1], len(class_names))
        with torch.no_grad():
            self.visual_head.weight.copy_(clip_text * self.clip_scale())
            self.visual_head.bias.zero_()
            self.audio_head.weight.copy_(clap_text * self.audio_scale())
            self.audio_head.bias.zero_()

    def forward(self, batch: Dict) -> Scores:
        img = F.normalize(self.image_features(batch), dim=-1)
        aud = F.normalize(self.audio_features(batch), dim=-1)
        l_v = self.visual_head(img)
        l_a = self.audio_head(aud)
        return Scores(fused=self.fuse(l_v, l_a), visual=l_v, audio=l_a)
