"""Shared helpers for methods that read the frozen towers: prompt encoding, per-segment features, fusion."""
from __future__ import annotations

from typing import Dict

import torch

from .. import prompts
from . import fusion as fusion_lib
from . import text_check


class TowerFeatures:
    """Mixin for ``Method`` subclasses (needs ``self.backbone``, ``self.cfg``, ``self.class_names``)."""

    features = None  # a FeatureStore set by the engine when the feature cache is on
    #: branches that classify with class-prompt text features (checked once when the method is built)
    text_branches = ("visual", "audio")

    # -- text ------------------------------------------------------------------------------
    def clip_prompts(self):
        return prompts.class_prompts(self.class_names, "clip", self.cfg.clip_template)

    def clap_prompts(self):
        return prompts.class_prompts(self.class_names, "clap", self.cfg.clap_template, self.cfg.clap_name_style)

    def encode_clip_prompts(self) -> torch.Tensor:
        text = self.backbone.clip_text
        return self._checked("visual", text(text.tokenize(self.clip_prompts())))

    def encode_clap_prompts(self) -> torch.Tensor:
        text = self.backbone.clap_text
        ids, mask = text.tokenize(self.clap_prompts())
        return self._checked("audio", text(ids, mask))

    def _checked(self, branch: str, features: torch.Tensor) -> torch.Tensor:
        """Record (once per branch) whether the fixed class prompts' features collapsed; warn if they did."""
        reports = self.__dict__.setdefault("_text_reports", {})
        if branch not in reports:
            reports[branch] = text_check.check_and_warn(features, self.class_names, branch)
        return features

    def check_text_features(self) -> None:
        """Check the class prompts of every text branch not checked yet (methods that learn their prompts
        encode the fixed ones here: a collapsed tower collapses learned prompts the same way)."""
        reports = self.__dict__.setdefault("_text_reports", {})
        with torch.no_grad():
            for branch in self.text_branches:
                if branch not in reports:
                    (self.encode_clip_prompts if branch == "visual" else self.encode_clap_prompts)()

    def text_feature_report(self) -> list:
        """The checks, for metrics.json: one dict per branch (max cosine, closest classes, effective rank)."""
        return [dict(r) for _, r in sorted(self.__dict__.get("_text_reports", {}).items())]

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
