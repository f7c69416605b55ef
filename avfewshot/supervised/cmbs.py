"""The CMBS head of the supervised AVE runner (docs/supervised.md §1), its losses and its segment predictions.

Temporal module: audio Linear (no activation), video Linear + ReLU + dropout; a BiLSTM per stream;
a 2-layer encoder per stream; two cross decoders (each stream queries [other memory ; itself]);
gates g_a = σ(Linear(audio enc)), g_v = σ(Linear(video enc)): video ×(1 + γ·g_a), audio ×(1 + γ·g_v),
av_gate = g_a·g_v. CMBS part: per-segment class scores of each stream, mean of the top-k segments,
averaged over the streams (``av_score``); fused f = (v + a)/2; ``is_event`` per segment; the class
from max_t f plus 0.3·av_score. The released AV/VA interaction blocks, computed and discarded, are
not built (``heads_unused.py`` registers them for the parameter parity count only).

Loss (weights 1): BCE-logits(is_event, segment has an event); BCE(av_gate, same target); CE(class,
video class) + CE(av_score, video class). av_gate is already a probability: by default its BCE reads it
as one; ``double_sigmoid=True`` (parity) applies BCE-with-logits to it, a second sigmoid, as released.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .temporal import BiLSTMPair, CrossDecoder, TemporalEncoder

PROB_EPS = 1e-7


@dataclass
class CMBSConfig:
    visual_dim: int = 1536
    audio_dim: int = 768
    num_classes: int = 28  # foreground events; background is index num_classes
    audio_fc: int = 128
    video_fc: int = 512
    d_model: int = 256
    ffn: int = 1024
    heads: int = 4
    video_dropout: float = 0.2
    temporal_gamma: float = 0.1  # γ of the post-encoder gate (preset)
    top_k: int = 4
    score_weight: float = 0.3  # weight of av_score in the class scores


@dataclass
class CMBSOutputs:
    is_event: torch.Tensor  # (B, T) logits
    event: torch.Tensor  # (B, K) class logits (K = num_classes)
    av_score: torch.Tensor  # (B, K)
    av_gate: torch.Tensor  # (B, T) probabilities


class CMBSHead(nn.Module):
    def __init__(self, cfg: CMBSConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.a_fc = nn.Linear(cfg.audio_dim, cfg.audio_fc)
        self.v_fc = nn.Linear(cfg.visual_dim, cfg.video_fc)
        self.v_dropout = nn.Dropout(cfg.video_dropout)
        self.rnn = BiLSTMPair(cfg.audio_fc, cfg.video_fc, d // 2, d)
        self.video_encoder = TemporalEncoder(2 * d, d, cfg.ffn, cfg.heads)
        self.audio_encoder = TemporalEncoder(d, d, cfg.ffn, cfg.heads)
        self.video_decoder = CrossDecoder(2 * d, d, cfg.ffn, cfg.heads)
        self.audio_decoder = CrossDecoder(d, d, cfg.ffn, cfg.heads)
        self.audio_gate = nn.Linear(d, 1)
        self.video_gate = nn.Linear(d, 1)
        self.video_cas = nn.Linear(d, cfg.num_classes)
        self.audio_cas = nn.Linear(d, cfg.num_classes)
        self.is_event = nn.Linear(d, 1)
        self.event_classifier = nn.Linear(d, cfg.num_classes)

    def top_k_mean(self, scores: torch.Tensor) -> torch.Tensor:
        """(B, T, K) -> (B, K): mean of the k largest segment scores per class."""
        k = min(self.cfg.top_k, scores.shape[1])
        return scores.topk(k, dim=1).values.mean(dim=1)

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> CMBSOutputs:
        """visual (B, T, Cv), audio (B, T, Ca) pooled per-segment vectors."""
        cfg = self.cfg
        a = self.a_fc(audio)
        v = self.v_dropout(F.relu(self.v_fc(visual)))
        a_rnn, v_rnn = self.rnn(a, v)
        v_memory = self.video_encoder(v_rnn)
        a_memory = self.audio_encoder(a_rnn)
        a_out = self.audio_decoder(a_rnn, v_memory)
        v_out = self.video_decoder(v_rnn, a_memory)
        g_a = torch.sigmoid(self.audio_gate(a_memory))
        g_v = torch.sigmoid(self.video_gate(v_memory))
        v_out = v_out + g_a * v_out * cfg.temporal_gamma
        a_out = a_out + g_v * a_out * cfg.temporal_gamma
        av_score = (self.top_k_mean(self.video_cas(v_out)) + self.top_k_mean(self.audio_cas(a_out))) / 2
        fused = (v_out + a_out) / 2
        is_event = self.is_event(fused).squeeze(-1)
        event = self.event_classifier(fused.max(dim=1).values) + cfg.score_weight * av_score
        return CMBSOutputs(is_event, event, av_score, (g_a * g_v).squeeze(-1))


def ave_targets(segment_labels: torch.Tensor, num_classes: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(segment has an event (B, T) float, video class (B,) long) from per-second labels (background = C).

    The video class is the maximum over segments of the per-segment foreground argmax, background
    segments counting as class 0 (the released rule; AVE videos hold one event).
    """
    foreground = (segment_labels >= 0) & (segment_labels < num_classes)
    per_segment = torch.where(foreground, segment_labels, torch.zeros_like(segment_labels))
    return foreground.float(), per_segment.max(dim=1).values


def cmbs_loss(out: CMBSOutputs, segment_labels: torch.Tensor, num_classes: int,
              double_sigmoid: bool = False) -> Tuple[torch.Tensor, Dict[str, float]]:
    has_event, video_class = ave_targets(segment_labels, num_classes)
    known = (segment_labels >= 0).float()
    loss_is_event = F.binary_cross_entropy_with_logits(out.is_event, has_event, weight=known)
    if double_sigmoid:
        loss_gate = F.binary_cross_entropy_with_logits(out.av_gate, has_event, weight=known)
    else:
        loss_gate = F.binary_cross_entropy(out.av_gate.clamp(PROB_EPS, 1 - PROB_EPS), has_event, weight=known)
    loss_event = F.cross_entropy(out.event, video_class)
    loss_cas = F.cross_entropy(out.av_score, video_class)
    loss = loss_is_event + loss_gate + loss_event + loss_cas
    parts = {"loss": float(loss.detach()), "is_event": float(loss_is_event.detach()),
             "av_gate": float(loss_gate.detach()), "event": float(loss_event.detach()),
             "av_score": float(loss_cas.detach())}
    return loss, parts


def segment_predictions(out: CMBSOutputs, num_classes: int) -> torch.Tensor:
    """(B, T) predicted class per segment: argmax(event) where σ(is_event) > 0.5, else background (C)."""
    event_class = out.event.argmax(dim=-1, keepdim=True).expand_as(out.is_event)
    background = torch.full_like(event_class, num_classes)
    return torch.where(torch.sigmoid(out.is_event) > 0.5, event_class, background)
