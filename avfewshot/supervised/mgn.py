"""The MGN head of the supervised AVVP runner (docs/supervised.md §2) and its losses.

Input side: fc_a (Ca → d), fc_v (Cv → d); a temporal gate (BiLSTMs + 2-layer encoders at d_gate,
video ×(1 + γ·σ(Linear(audio enc)))); optionally the R(2+1)D-18 clip features (T × 512 from the LLP
feature release) through fc_st, concatenated with the video and fused back to d. The released model
computes the gated audio but feeds the *ungated* audio to its grouping, so its video-side gate branch
(video BiLSTM, video encoder, video gate) gets no gradient; by default the grouping reads the gated
audio (each stream ×(1 + γ·gate of the other), as described), ``gated_audio=False`` is the released form.

Grouping: per modality 3 attention blocks over [T segments ; 25 class tokens] and a grouping block;
audio first gets a HAN-style grouping against the T visual segments; then 6 blocks over both class-token
sets and a cross-modal grouping. Outputs: video-level p = σ(Linear) of the 25 groups, p_a and p_v per
stream, and frame probabilities p_a × (1 + softmax_T(softmax_groups(qkᵀ))) (DG-SCT's form).

Loss: BCE(p, y) + BCE(p_a, y) + BCE(p_v, 0.9y + 0.05) with probabilities clamped to [1e-7, 1 − 1e-7],
plus CE(fc_cls(class tokens), 0..24) for both streams. With mixup the targets y are the mixed ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .mgn_blocks import ModalityTrans
from .temporal import BiLSTMPair, TemporalEncoder

PROB_EPS = 1e-7
ST_FEATURE_DIM = 512  # R(2+1)D-18 clip features of the LLP release (feats/r2plus1d_18/<id>.npy, T x 512)


@dataclass
class MGNConfig:
    visual_dim: int = 1536
    audio_dim: int = 768
    num_classes: int = 25
    segments: int = 10
    dim: int = 128
    heads: int = 8
    depth_audio: int = 3
    depth_visual: int = 3
    depth_av: int = 6
    unimodal_assign: str = "soft"  # soft | hard
    crossmodal_assign: str = "soft"
    gate_dim: int = 64  # d of the temporal gate's BiLSTMs / encoders
    gate_ffn: int = 1024
    temporal_gamma: float = 0.05
    st_features: bool = False  # R(2+1)D-18 input (needs batch["st_features"], (B, T, 512))
    gated_audio: bool = True  # False (parity): the grouping reads the ungated audio, as released
    visual_smoothing: float = 0.9  # p_v target = s·y + (1 − s)/2


@dataclass
class MGNOutputs:
    video_prob: torch.Tensor  # (B, C)
    audio_prob: torch.Tensor  # (B, C)
    visual_prob: torch.Tensor  # (B, C)
    audio_frame_prob: torch.Tensor  # (B, T, C)
    visual_frame_prob: torch.Tensor  # (B, T, C)
    audio_class_logits: torch.Tensor  # (C, C) fc_cls of the audio class tokens
    visual_class_logits: torch.Tensor


class MGNTemporalGate(nn.Module):
    def __init__(self, dim: int, d: int, ffn: int, gamma: float):
        super().__init__()
        self.gamma = gamma
        self.rnn = BiLSTMPair(dim, dim, d, d)
        self.video_encoder = TemporalEncoder(2 * d, d, ffn)
        self.audio_encoder = TemporalEncoder(2 * d, d, ffn)
        self.audio_gate = nn.Linear(d, 1)
        self.video_gate = nn.Linear(d, 1)

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        a_rnn, v_rnn = self.rnn(audio, video)
        g_a = torch.sigmoid(self.audio_gate(self.audio_encoder(a_rnn)))
        g_v = torch.sigmoid(self.video_gate(self.video_encoder(v_rnn)))
        return video + g_a * video * self.gamma, audio + g_v * audio * self.gamma


def _check_assign(value: str, name: str) -> bool:
    if value not in ("soft", "hard"):
        raise UserError(f"MGN {name}={value!r}: valid are soft, hard")
    return value == "hard"


class MGNHead(nn.Module):
    def __init__(self, cfg: MGNConfig):
        super().__init__()
        self.cfg = cfg
        d, c = cfg.dim, cfg.num_classes
        uni_hard = _check_assign(cfg.unimodal_assign, "unimodal_assign")
        cross_hard = _check_assign(cfg.crossmodal_assign, "crossmodal_assign")
        self.fc_a = nn.Linear(cfg.audio_dim, d)
        self.fc_v = nn.Linear(cfg.visual_dim, d)
        if cfg.st_features:
            self.fc_st = nn.Linear(ST_FEATURE_DIM, d)
            self.fc_fusion = nn.Linear(2 * d, d)
        self.audio_token = nn.Parameter(torch.zeros(c, d))
        self.visual_token = nn.Parameter(torch.zeros(c, d))
        self.audio_cug = ModalityTrans(d, cfg.depth_audio, cfg.heads, c, c, uni_hard, han_segments=cfg.segments)
        self.visual_cug = ModalityTrans(d, cfg.depth_visual, cfg.heads, c, c, uni_hard)
        self.av_mcg = ModalityTrans(d, cfg.depth_av, cfg.heads, c, c, cross_hard)
        self.fc_prob, self.fc_prob_a, self.fc_prob_v = nn.Linear(d, 1), nn.Linear(d, 1), nn.Linear(d, 1)
        self.fc_cls = nn.Linear(d, c)
        self.apply(_init_weights)  # released: applied before the temporal gate is built
        self.temporal_gate = MGNTemporalGate(d, cfg.gate_dim, cfg.gate_ffn, cfg.temporal_gamma)

    def forward(self, visual: torch.Tensor, audio: torch.Tensor, st: Optional[torch.Tensor] = None) -> MGNOutputs:
        cfg = self.cfg
        audio_in = self.fc_a(audio)
        video, audio_gated = self.temporal_gate(self.fc_v(visual), audio_in)
        if cfg.gated_audio:
            audio_in = audio_gated
        if cfg.st_features:
            if st is None:
                raise UserError("MGN head built with st_features=True but the batch has no 'st_features' (B, T, 512): "
                                "add the LLP R(2+1)D-18 features (feats/r2plus1d_18/<id>.npy) or set st_features=false")
            video = self.fc_fusion(torch.cat([video, self.fc_st(st)], dim=-1))
        x_v, maps_v = self.visual_cug(video, self.visual_token)
        x_a, maps_a = self.audio_cug(audio_in, self.audio_token, video)
        x, _ = self.av_mcg(x_a, x_v)
        key = cfg.unimodal_assign
        video_prob = torch.sigmoid(self.fc_prob(x)).squeeze(-1)
        audio_prob = torch.sigmoid(self.fc_prob_a(x_a))  # (B, C, 1)
        visual_prob = torch.sigmoid(self.fc_prob_v(x_v))
        return MGNOutputs(video_prob, audio_prob.squeeze(-1), visual_prob.squeeze(-1),
                          (audio_prob * maps_a[key]).transpose(1, 2), (visual_prob * maps_v[key]).transpose(1, 2),
                          self.fc_cls(self.audio_token), self.fc_cls(self.visual_token))


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def mgn_loss(out: MGNOutputs, target: torch.Tensor, visual_smoothing: float = 0.9) -> Tuple[torch.Tensor, Dict[str, float]]:
    """target (B, C) weak video labels (mixed ones under mixup)."""
    def bce(p, y):
        return F.binary_cross_entropy(p.clamp(PROB_EPS, 1 - PROB_EPS), y)

    classes = torch.arange(out.audio_class_logits.shape[0], device=target.device)
    loss_av = bce(out.video_prob, target)
    loss_a = bce(out.audio_prob, target)
    loss_v = bce(out.visual_prob, visual_smoothing * target + (1 - visual_smoothing) * 0.5)
    loss_cls = F.cross_entropy(out.audio_class_logits, classes) + F.cross_entropy(out.visual_class_logits, classes)
    loss = loss_av + loss_a + loss_v + loss_cls
    return loss, {"loss": float(loss.detach()), "av": float(loss_av.detach()), "audio": float(loss_a.detach()),
                  "visual": float(loss_v.detach()), "class_tokens": float(loss_cls.detach())}
