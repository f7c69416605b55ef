"""DG-SCT (arXiv 2311.05152): dual-guided spatial-channel-temporal adapters in every block of the frozen
CLIP ViT and CLAP HTS-AT, with two text branches and a fused audio-visual classifier.

Per segment (N = B·T rows, video-major):

- adapted encoders (``adapters/injection.py``): v (N, D) CLIP image embedding, a (N, D) CLAP audio embedding;
- image-text branch: CoOp context (``n_ctx`` shared vectors before the class name, ``prompt_learners``) through
  the frozen CLIP text tower; the CLIP-Adapter mix 0.2·MLP(x) + 0.8·x on both v and the text features;
  y_v = exp(CLIP logit scale) · cos(v', t');
- audio-text branch: the fixed CLAP prompts ("The sounds of {name}"), encoded once at construction (they
  never change, so re-encoding them every step as the released code does is pure waste; under
  ``model.frozen_towers=released`` RoBERTa is in training mode, so they are re-encoded, with dropout, at
  every training step as released);
  y_a = s_a · cos(a, t_a), s_a = exp(CLAP logit scale) (``audio_logit_scale=raw``: the stored log value);
- fusion and objective: ``methods/fusion.py`` (``confidence`` in the paper preset, ``sum`` in dgsct-official);
- optional audio-visual contrastive term of the released code: ``fc_a1`` (D→D) on a, segment means of v
  (before its CLIP-Adapter) and fc_a1(a), L2-normalised, × ``contrastive_scale``; CE of the B×B logits
  (both directions) against the identity.

Objectives (``objective``):

- ``fusion`` (paper): the fusion mode's loss (``fusion.fused_loss``) + ``contrastive_weight``·(L_ai + L_ia)
  when the contrastive term is on;
- ``official``: the released scripts' weighting, per task, on the event loss L_e = CE(fused scores):
  ``ave``: 500·L_e + 2·L_ai + 1.5·L_ia for epochs 1–10, then 5·L_e + ...; ``llp_cls`` and pretraining:
  Σ wᵢ·Lᵢ with wᵢ = Lᵢ/(e + L_e + L_ai + L_ia) + 1/e (not detached, e = 1-based epoch); ``ave_cls``: the
  same but with the released parenthesis bug w₃ = L_ia/e + (L_e + L_ai + L_ia) + 1/e
  (``official_fixed`` uses the llp rule for ave_cls too).

``None`` for ``objective`` / ``av_contrastive`` follows the fusion: ``sum`` (the dgsct-official preset) means
the official objective with the contrastive term, any other fusion the paper objective without it.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..adapters.injection import AdaptedEncoders
from ..config import choice
from ..errors import UserError
from . import fusion as fusion_lib
from .base import METHODS, Method, MethodConfig, Scores
from .prompt_learners import ClipAdapter, ClipPromptLearner, cosine_logits
from .towers import TowerFeatures

#: α, β, γ of the modulation per task (docs/dgsct.md §3.3); pretraining uses the zero-shot values
TASK_MODULATION: Dict[str, Tuple[float, float, float]] = {
    "ave": (0.2, 0.05, 0.01),
    "ave_cls": (0.2, 0.05, 0.05),
    "llp_cls": (0.2, 0.05, 0.05),
    "vggsound40k": (0.3, 0.01, 0.05),
}
DEFAULT_MODULATION = (0.2, 0.05, 0.05)
OBJECTIVES = ("fusion", "official", "official_fixed")
CTX_INITS = ("random", "template")
#: trainable parts that do not depend on the class list (transferred by pretraining bundles)
TRANSFERABLE_PREFIXES = ("encoders.", "image_adapter.", "text_adapter.", "prompt_learner.ctx", "av_head.")


@dataclass
class DGSCTConfig(MethodConfig):
    """DG-SCT options. Switches for the paper's ablations: a switched-off part has no parameters."""

    a2v: bool = True  # visual units guided by audio
    v2a: bool = True  # audio units guided by the image
    channel: bool = True  # C
    spatial: bool = True  # S
    temporal: bool = True  # T
    latent_exchange: bool = True  # LAVisH latent-token exchange inside each unit
    temporal_mode: str = choice("gate", "gate", "rnn")  # gate (released: per-segment sigmoid) | rnn (paper: RNN over the T segments)
    alpha: Optional[float] = None  # None: from the task (TASK_MODULATION)
    beta: Optional[float] = None
    gamma: Optional[float] = None
    reduction: int = 8  # bottleneck width C / reduction
    conv_groups: int = 2
    latent_tokens: int = 2
    segments: int = 10  # T segments per clip (rows are video-major)
    n_ctx: int = 4  # shared CoOp context vectors (class name at the end)
    ctx_init: str = choice("random", "random", "template")  # random: N(0, 0.02) as the released code | template: words of "a photo of a"
    clip_adapter_ratio: float = 0.2
    clip_adapter_reduction: int = 4
    av_contrastive: Optional[bool] = None  # None: on with the official objective
    contrastive_scale: float = 100.0
    contrastive_weight: float = 1.0  # weight of L_ai + L_ia in the "fusion" objective
    objective: Optional[str] = choice(None, *OBJECTIVES)  # fusion | official | official_fixed ; None: official iff fusion == sum
    # activation checkpointing: none | units (recompute each DG-SCT unit in backward: far less memory,
    # little more compute) | steps (recompute each paired step: least memory, ~1/3 more compute)
    checkpoint: str = "none"

    def resolved_objective(self) -> str:
        objective = self.objective or ("official" if self.fusion == "sum" else "fusion")
        if objective not in OBJECTIVES:
            raise UserError(f"method.objective={objective!r}: valid are {', '.join(OBJECTIVES)}")
        return objective

    def uses_contrastive(self) -> bool:
        if self.av_contrastive is None:
            return self.resolved_objective() != "fusion"
        return bool(self.av_contrastive)

    def modulation(self, task_name: str) -> Tuple[float, float, float]:
        base = TASK_MODULATION.get(task_name, DEFAULT_MODULATION)
        return tuple(b if v is None else float(v) for v, b in zip((self.alpha, self.beta, self.gamma), base))


class AudioVisualContrastive(nn.Module):
    """The released code's audio-visual contrastive head: logits between clip-level image and audio."""

    def __init__(self, dim: int, scale: float, segments: int):
        super().__init__()
        self.fc_a1 = nn.Linear(dim, dim)
        self.scale, self.segments = float(scale), int(segments)

    def forward(self, image: torch.Tensor, audio: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """image, audio (B·T, D) -> (audio→image, image→audio) logits, each (B, B)."""
        audio = self.fc_a1(audio)
        v = F.normalize(image.view(-1, self.segments, image.shape[-1]).mean(dim=1), dim=-1)
        a = F.normalize(audio.view(-1, self.segments, audio.shape[-1]).mean(dim=1), dim=-1)
        return self.scale * a @ v.t(), self.scale * v @ a.t()


@METHODS.register("dgsct")
class DGSCT(TowerFeatures, Method):
    name = "dgsct"
    Config = DGSCTConfig
    supports_released_towers = True

    def __init__(self, backbone, task, class_names, cfg: DGSCTConfig):
        super().__init__(backbone, task, class_names, cfg)
        if cfg.ctx_init not in CTX_INITS:
            raise UserError(f"method.ctx_init={cfg.ctx_init!r}: valid are {', '.join(CTX_INITS)}")
        self.objective = cfg.resolved_objective()
        alpha, beta, gamma = cfg.modulation(task.name)
        self.modulation = (alpha, beta, gamma)
        unit_options = dict(alpha=alpha, beta=beta, gamma=gamma, channel=cfg.channel, spatial=cfg.spatial,
                            temporal=cfg.temporal, latent_exchange=cfg.latent_exchange, temporal_mode=cfg.temporal_mode,
                            reduction=cfg.reduction, conv_groups=cfg.conv_groups,
                            num_latent_tokens=cfg.latent_tokens, segments=cfg.segments)
        self.encoders = AdaptedEncoders(backbone.image, backbone.audio, unit_options, a2v=cfg.a2v, v2a=cfg.v2a,
                                        checkpoint=cfg.checkpoint)
        from .prompt_learners import template_prefix, branch_template

        template, _ = branch_template("clip", cfg.clip_template)
        ctx_init = template_prefix(template) if cfg.ctx_init == "template" else None
        self.prompt_learner = ClipPromptLearner(backbone.clip_text, self.class_names, template=cfg.clip_template,
                                                n_ctx=cfg.n_ctx, ctx_init=ctx_init, truncate=True)
        dim = backbone.image.output_dim
        self.image_adapter = ClipAdapter(dim, cfg.clip_adapter_reduction, cfg.clip_adapter_ratio)
        self.text_adapter = ClipAdapter(dim, cfg.clip_adapter_reduction, cfg.clip_adapter_ratio)
        with torch.no_grad():
            self.register_buffer("clap_text", F.normalize(self.encode_clap_prompts(), dim=-1), persistent=False)
        self.av_head = (AudioVisualContrastive(backbone.audio.output_dim, cfg.contrastive_scale, cfg.segments)
                        if cfg.uses_contrastive() else None)
        self.released_towers = bool(backbone.released_towers())
        if self.released_towers:
            self._adopt_tower_statistics(backbone)

    def _adopt_tower_statistics(self, backbone) -> None:
        """model.frozen_towers=released: HTS-AT's bn0 updates its running statistics in training (as released),
        so they start from the built values and are part of this method's state (checkpoints, resume)."""
        if self.encoders.checkpoint == "steps":
            raise UserError("method.checkpoint=steps recomputes HTS-AT blocks, whose drop-path masks are random under "
                            "model.frozen_towers=released; use method.checkpoint=units or none")
        backbone.reset_tower_statistics()
        self.tower_statistics = nn.ModuleList(backbone.tower_batch_norms())

    def clap_text_features(self) -> torch.Tensor:
        """(K, D) normalised CLAP prompt features: fixed, or re-encoded (with RoBERTa dropout) at every
        training step under model.frozen_towers=released, as the released code does."""
        if self.released_towers and self.training and self.backbone.clap_text.training:
            with torch.no_grad():  # RoBERTa is frozen: nothing upstream of the prompts needs a gradient
                return F.normalize(self.encode_clap_prompts(), dim=-1)
        return self.clap_text

    # -- forward ---------------------------------------------------------------------------------
    def text_features(self) -> torch.Tensor:
        """(K, D) CLIP text features of the learned prompts after the text CLIP-Adapter."""
        return self.text_adapter(self.prompt_learner())

    def forward(self, batch: Dict[str, Any]) -> Scores:
        frames, audio = batch["frames"], batch["audio"]
        b, t = frames.shape[:2]
        if t != self.cfg.segments:
            raise UserError(f"DG-SCT was built for {self.cfg.segments} segments per clip but the batch has {t}; "
                            f"set method.segments={t}")
        out = self.encoders(frames.flatten(0, 1), audio.flatten(0, 1))
        l_v = cosine_logits(self.image_adapter(out.image), self.text_features(), self.clip_scale())
        l_a = cosine_logits(out.audio, self.clap_text_features(), self.audio_scale())
        l_v, l_a = l_v.view(b, t, -1), l_a.view(b, t, -1)
        extras = {}
        if self.av_head is not None:
            extras["logits_audio_image"], extras["logits_image_audio"] = self.av_head(out.image, out.audio)
        return Scores(fused=self.fuse(l_v, l_a), visual=l_v, audio=l_a, extras=extras)

    # -- objective -------------------------------------------------------------------------------
    def contrastive_losses(self, scores: Scores) -> Tuple[torch.Tensor, torch.Tensor]:
        l_ai, l_ia = scores.extras["logits_audio_image"], scores.extras["logits_image_audio"]
        target = torch.arange(l_ai.shape[0], device=l_ai.device)
        return F.cross_entropy(l_ai, target), F.cross_entropy(l_ia, target)

    def loss(self, batch: Dict[str, Any], scores: Scores, epoch: int) -> Tuple[torch.Tensor, Dict[str, float]]:
        has_contrast = self.av_head is not None and "logits_audio_image" in scores.extras
        if self.objective == "fusion":
            loss, parts = super().loss(batch, scores, epoch)
            if has_contrast:
                l_ai, l_ia = self.contrastive_losses(scores)
                loss = loss + self.cfg.contrastive_weight * (l_ai + l_ia)
                parts = {**parts, "loss_ai": float(l_ai.detach()), "loss_ia": float(l_ia.detach())}
            return loss, parts
        target = self.task.training_targets(batch, self.task_num_classes)
        l_e = fusion_lib.soft_cross_entropy(self.task.reduce(scores.fused), target)
        zero = l_e.new_zeros(())
        l_ai, l_ia = self.contrastive_losses(scores) if has_contrast else (zero, zero)
        loss = official_weighting(self.task.name, self.objective, epoch + 1, l_e, l_ai, l_ia)
        return loss, {"loss_event": float(l_e.detach()), "loss_ai": float(l_ai.detach()), "loss_ia": float(l_ia.detach())}

    # -- what transfers, what is counted ---------------------------------------------------------
    def transferable_state(self) -> Dict[str, torch.Tensor]:
        """Adapters (with their BatchNorm statistics), both CLIP-Adapters, the shared text context and the
        contrastive head: nothing here depends on the class list (the released zero-shot code re-draws the
        context at random; here the pretrained context transfers, and so does the 'background' prompt of
        segment-level AVE, whose class name VGG-Sound 40K pretraining trained with the same context)."""
        return {k: v for k, v in self.trainable_state().items() if k.startswith(TRANSFERABLE_PREFIXES)}

    def parameter_groups(self) -> "OrderedDict[str, int]":
        """Trainable parameters per direction, site and audio stage, then the heads."""
        groups: "OrderedDict[str, int]" = OrderedDict()
        pairing = self.encoders.pairing
        for name, units in self.encoders.units().items():
            direction = "A2V (visual units)" if name.startswith("visual") else "V2A (audio units)"
            if name.startswith("visual"):
                site = "V1 after attention" if name.endswith("p1") else "V2 around MLP"
            else:
                site = "A1 after the Swin block" if name.endswith("p1") else "A2 after A1"
            for step, unit in zip(pairing.steps, units):
                key = f"{direction} {site}, audio stage {step.audio_stage + 1}"
                groups[key] = groups.get(key, 0) + sum(p.numel() for p in unit.parameters() if p.requires_grad)
        for label, module in (("CLIP-Adapter (image)", self.image_adapter), ("CLIP-Adapter (text)", self.text_adapter),
                              ("text context", self.prompt_learner), ("AV contrastive fc_a1", self.av_head)):
            if module is not None:
                groups[label] = sum(p.numel() for p in module.parameters() if p.requires_grad)
        return groups


def official_weighting(task: str, objective: str, epoch: int, l_e: torch.Tensor, l_ai: torch.Tensor,
                       l_ia: torch.Tensor) -> torch.Tensor:
    """The released scripts' total loss (``epoch`` is 1-based; weights are not detached, as released)."""
    if task == "ave":
        return (500.0 if epoch <= 10 else 5.0) * l_e + 2.0 * l_ai + 1.5 * l_ia
    total = l_e + l_ai + l_ia
    w1 = l_e / (epoch + total) + 1.0 / epoch
    w2 = l_ai / (epoch + total) + 1.0 / epoch
    if task == "ave_cls" and objective == "official":
        w3 = l_ia / epoch + total + 1.0 / epoch  # main_AVE_class.py's misplaced parenthesis
    else:
        w3 = l_ia / (epoch + total) + 1.0 / epoch
    return w1 * l_e + w2 * l_ai + w3 * l_ia
