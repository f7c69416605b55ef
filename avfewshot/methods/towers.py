"""Shared helpers for methods that read the frozen towers: prompt encoding, per-segment features, fusion."""
from __future__ import annotations

from typing import Dict

import torch

from .. import prompts
from . import fusion as fusion_lib


class TowerFeatures:
    """Mixin for ``Method`` subclasses (needs ``self.backbone``, ``self.cfg``, ``self.class_names``)."""

    features = None  # a FeatureStore set by the engine when the feature cache is on

    # -- text ------------------------------------------------------------------------------
    def clip_prompts(self):
        return prompts.class_prompts(self.class_names, "clip", self.cfg.clip_template)

    def clap_prompts(self):
        return prompts.class_prompts(self.class_names, "clap", self.cfg.clap_template, self.cfg.clap_name_style)

    def encode_clip_prompts(self) -> torch.Tensor:
        text = self.backbone.clip_text
        return text(text.tokenize(self.clip_prompts()))

    def encode_clap_prompts(self) -> torch.Tensor:
        text = self.backbone.clap_text
        ids, mask = text.tokenize(self.clap_prompts())
        return text(ids, mask)

    # -- per-segment frozen features ---------------------------------------------------------
    def _image(self, batch: Dict) -> torch.Tensor:
        frames = batch["frames"]
        b, t = frames.shape[:2]
        return self.backbone.image(frames.flatten(0, 1)).view(b, t, -1)

    def _audio(self, batch: Dict) -> torch.Tensor:
        audio = batch["audio"]
        b, t = audio.shape[:2]
        return self.backbone.audio(audio.flatten(0, 1)).view(b, t, -1)

    def image_features(self, batch: Dict) -> torch.Tensor:
        if self.features is not None and "image" in self.cacheable_features:
            return self._on_device(self.features.get("image", batch, self._image))
        return self._image(batch)

    def audio_features(self, batch: Dict) -> torch.Tensor:
        if self.features is not None and "audio" in self.cacheable_features:
            return self._on_device(self.features.get("audio", batch, self._audio))
        return self._audio(batch)

    def _on_device(self, features: torch.Tensor) -> torch.Tensor:
        """Cached features (kept on the CPU) on the towers' device."""
        return features.to(self.backbone.clip_logit_scale.device, non_blocking=True)

    def fuse(self, l_v: torch.Tensor, l_a: torch.Tensor) -> torch.Tensor:
        return fusion_lib.fuse(l_v, l_a, self.cfg.fusion, self.cfg.sum_weights)
