"""KgCoOp (Yao et al., CVPR 2023, arXiv 2303.13283): CoOp plus a knowledge-guided consistency term.

The learned prompts' text features are kept close to the hand-crafted ones:
L = L_task + lambda * sum over learned branches of (1 - mean_k cos(t_k(learned), t_k(hand-crafted))),
with the official lambda = 8 and context "a photo of a" (4 tokens). Here both branches learn prompts, so
the audio branch's learned CLAP prompts are held near "The sounds of {name}" in the same way. The
hand-crafted features are the frozen text towers' encodings of the branch templates (prompts/templates.yaml),
computed once. With lambda = 0 this is CoOp exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import torch
import torch.nn.functional as F

from ..config import bounded
from .base import METHODS, Scores
from .coop import CoOp, CoOpConfig


@dataclass
class KgCoOpConfig(CoOpConfig):
    ctx_init: str = "a photo of a"  # the official KgCoOp initialisation (4 context tokens)
    weight: float = bounded(8.0, low=0.0)  # lambda of the consistency term (official: 8.0)


@METHODS.register("kgcoop")
class KgCoOp(CoOp):
    name = "kgcoop"
    Config = KgCoOpConfig

    def __init__(self, backbone, task, class_names, cfg):
        super().__init__(backbone, task, class_names, cfg)
        with torch.no_grad():  # the hand-crafted prompts' features: the knowledge the learned ones stay near
            self.register_buffer("visual_anchor", F.normalize(self.encode_clip_prompts(), dim=-1), persistent=False)
            self.register_buffer("audio_anchor", F.normalize(self.encode_clap_prompts(), dim=-1), persistent=False)

    def consistency(self, scores: Scores) -> torch.Tensor:
        """Sum over branches of 1 - mean cosine between learned and hand-crafted class text features."""
        total = torch.zeros((), device=self.visual_anchor.device)
        for side in ("visual", "audio"):
            learned = scores.extras[f"{side}_text"]
            total = total + (1.0 - F.cosine_similarity(learned, getattr(self, f"{side}_anchor"), dim=-1).mean())
        return total

    def loss(self, batch: Dict, scores: Scores, epoch: int) -> Tuple[torch.Tensor, Dict[str, float]]:
        loss, parts = super().loss(batch, scores, epoch)
        consistency = self.consistency(scores)
        return loss + self.cfg.weight * consistency, {**parts, "consistency": float(consistency.detach())}
