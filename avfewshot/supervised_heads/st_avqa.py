"""The ST-AVQA head on the final adapted map (docs/supervised_heads.md §4).

Inputs per question: the final visual maps (B, T, D, h, w) of the video (real size: D = 1536, 6 x 6,
T = 10), the same for the negative frames (from *other* videos, see :mod:`.negatives`), the pooled
audio (B, T, A = 768) and the question token ids (B, L). Width W = D.

* audio: A -> fc_a1 (W) -> ReLU -> fc_a2;
* spatial grounding per segment: softmax over positions of the cosine similarity between audio and
  each visual token, the attended vector concatenated with the average-pooled one, tanh, fc_gl 2W -> W;
* matching MLP 2W -> 512 -> 256 -> 128 -> 2 on [audio ; grounded visual], positives and negatives;
* question: Embedding(vocab, W), tanh, LSTM(W), [h ; c] -> tanh -> Linear 2W -> W;
* temporal grounding: the question is the one query of MHA(W, 4 heads) over the T visual vectors, then a
  residual FFN and LayerNorm; the same over audio;
* fusion: [a_att + mean a ; v_att + mean v] -> tanh -> Linear 2W -> W, x question, tanh -> answers.

The grounding pre-stage (:func:`grounding_parameters`) trains the audio, grounding and matching layers
alone; their weights then initialise this head. ``released_registry=True`` adds the released model's
unused ``fc_a1_pure`` / ``fc_a2_pure`` (3.5 M at real size) for parameter parity.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

import torch
from torch import nn
from torch.nn import functional as F

GROUNDING_PREFIXES = ("fc_a1.", "fc_a2.", "fc_gl.", "match.")


@dataclass(frozen=True)
class STAVQAConfig:
    visual_dim: int = 1536
    audio_dim: int = 768
    vocab_size: int = 93
    answers: int = 42
    heads: int = 4
    match_dims: tuple = (512, 256, 128)
    dropout: float = 0.1
    released_registry: bool = False

    @classmethod
    def tiny(cls, visual_dim: int = 32, audio_dim: int = 32, vocab_size: int = 93, answers: int = 42, **kw) -> "STAVQAConfig":
        return cls(visual_dim=visual_dim, audio_dim=audio_dim, vocab_size=vocab_size, answers=answers, heads=2,
                   match_dims=(32, 16, 8), **kw)


class QuestionEncoder(nn.Module):
    def __init__(self, vocab_size: int, width: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.lstm = nn.LSTM(width, width, batch_first=True)
        self.fc = nn.Linear(2 * width, width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        _, (hidden, cell) = self.lstm(torch.tanh(self.embed(tokens)))
        return self.fc(torch.tanh(torch.cat([hidden[-1], cell[-1]], dim=-1)))


class QueryAttention(nn.Module):
    """The question as the single query of MHA over T vectors, then a residual FFN and LayerNorm."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, width))
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(width)

    def forward(self, query: torch.Tensor, sequence: torch.Tensor) -> torch.Tensor:
        attended = self.attn(query[:, None], sequence, sequence, need_weights=False)[0][:, 0]
        return self.norm(attended + self.drop(self.ffn(attended)))


class STAVQAHead(nn.Module):
    def __init__(self, config: STAVQAConfig = STAVQAConfig()):
        super().__init__()
        w = config.visual_dim
        self.config = config
        self.fc_a1 = nn.Linear(config.audio_dim, w)
        self.fc_a2 = nn.Linear(w, w)
        self.fc_gl = nn.Linear(2 * w, w)
        dims = (2 * w,) + tuple(config.match_dims)
        layers: List[nn.Module] = []
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(d_in, d_out), nn.ReLU()]
        self.match = nn.Sequential(*layers, nn.Linear(dims[-1], 2))
        self.question = QuestionEncoder(config.vocab_size, w)
        self.visual_attention = QueryAttention(w, config.heads, config.dropout)
        self.audio_attention = QueryAttention(w, config.heads, config.dropout)
        self.fc_fusion = nn.Linear(2 * w, w)
        self.fc_answer = nn.Linear(w, config.answers)
        if config.released_registry:
            self.fc_a1_pure = nn.Linear(config.audio_dim, w)
            self.fc_a2_pure = nn.Linear(w, w)
            self.norm3 = nn.LayerNorm(w)

    def audio_features(self, audio: torch.Tensor) -> torch.Tensor:
        return self.fc_a2(torch.relu(self.fc_a1(audio)))

    def ground(self, visual: torch.Tensor, audio_feat: torch.Tensor) -> torch.Tensor:
        """visual (N, D, h, w), audio_feat (N, W) -> grounded visual (N, W)."""
        pooled = visual.mean((2, 3))
        tokens = F.normalize(visual.flatten(2).transpose(1, 2), dim=2)  # (N, hw, D)
        weights = torch.softmax(torch.matmul(tokens, F.normalize(audio_feat, dim=1)[..., None])[..., 0], dim=-1)
        attended = torch.matmul(weights[:, None], tokens)[:, 0]
        return self.fc_gl(torch.tanh(torch.cat([pooled, attended], dim=-1)))

    def matching(self, visual: torch.Tensor, negatives: torch.Tensor, audio: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The grounding stage alone: positive / negative match logits (B*T, 2) and the grounded visual."""
        b, t = visual.shape[:2]
        audio_feat = self.audio_features(audio).reshape(b * t, -1)
        positive = self.ground(visual.flatten(0, 1), audio_feat)
        negative = self.ground(negatives.flatten(0, 1), audio_feat)
        return {
            "match_pos": self.match(torch.cat([audio_feat, positive], dim=-1)),
            "match_neg": self.match(torch.cat([audio_feat, negative], dim=-1)),
            "grounded": positive.reshape(b, t, -1),
            "audio": audio_feat.reshape(b, t, -1),
        }

    def forward(self, visual: torch.Tensor, negatives: torch.Tensor, audio: torch.Tensor, question: torch.Tensor):
        """visual / negatives (B, T, D, h, w), audio (B, T, A), question (B, L) ->
        dict(answer (B, answers), match_pos, match_neg (B*T, 2))."""
        out = self.matching(visual, negatives, audio)
        q = self.question(question)
        v_seq, a_seq = out["grounded"], out["audio"]
        v_att = self.visual_attention(q, v_seq)
        a_att = self.audio_attention(q, a_seq)
        fused = self.fc_fusion(torch.tanh(torch.cat([a_att + a_seq.mean(1), v_att + v_seq.mean(1)], dim=-1)))
        out["answer"] = self.fc_answer(torch.tanh(fused * q))
        return out


def grounding_parameters(head: STAVQAHead) -> Dict[str, torch.Tensor]:
    """The weights the grounding pre-stage trains and hands on (fc_a1, fc_a2, fc_gl, match MLP)."""
    return {k: v.detach().clone() for k, v in head.state_dict().items() if k.startswith(GROUNDING_PREFIXES)}


def load_grounding(head: STAVQAHead, weights: Dict[str, torch.Tensor]) -> None:
    missing = [k for k in head.state_dict() if k.startswith(GROUNDING_PREFIXES) and k not in weights]
    if missing:
        raise ValueError(f"grounding weights lack {missing[:3]}")
    head.load_state_dict(weights, strict=False)


def avqa_loss(out: Dict[str, torch.Tensor], answers: torch.Tensor, match_weight: float = 0.5,
              answer_weight: float = 1.0) -> torch.Tensor:
    """CE(answer) + 0.5 CE(match) with positives labelled 1 and negatives 0 (the grounding stage uses
    ``answer_weight=0`` and only the match term)."""
    pos, neg = out["match_pos"], out["match_neg"]
    match_logits = torch.cat([pos, neg])
    match_labels = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).long().to(pos.device)
    loss = match_weight * F.cross_entropy(match_logits, match_labels)
    if answer_weight:
        loss = loss + answer_weight * F.cross_entropy(out["answer"], answers)
    return loss
