"""The AVS post-encoder temporal gate (the "T" of DG-SCT on the four scales; docs/supervised_heads.md §2).

Per scale i: GAP of the (B*T, C, H, W) map -> Linear C->C + ReLU + dropout -> a BiLSTM pair (audio
A -> A, video C -> 2C) -> 2-layer post-norm Transformer encoders (4 heads, FFN 4C, affine in) per stream;
map_i *= 1 + gamma * sigmoid(Linear(audio enc_i)); audio *= 1 + gamma * mean_i sigmoid(Linear(video enc_i)).

The released module also builds cross-modal decoders whose outputs are discarded (17.6 M at real size)
and registers each encoder's template layer beside its two clones; ``released_registry=True`` adds
those dead parameters so counts match the released model, they never run.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import nn


class TemporalEncoder(nn.Module):
    """Linear in -> d, then ``layers`` post-norm Transformer encoder layers over time."""

    def __init__(self, in_dim: int, d_model: int, heads: int, ffn: int, layers: int = 2, released_registry: bool = False):
        super().__init__()
        self.affine = nn.Linear(in_dim, d_model)
        make = lambda: nn.TransformerEncoderLayer(d_model, heads, ffn, dropout=0.1, batch_first=True)  # noqa: E731
        self.layers = nn.ModuleList([make() for _ in range(layers)])
        if released_registry:
            self.template_layer = make()  # registered, never called (released layout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.affine(x)
        for layer in self.layers:
            x = layer(x)
        return x


class _DeadDecoder(nn.Module):
    """Parameter twin of a released cross-modal decoder (affine + 2 x decoder layer), never called."""

    def __init__(self, in_dim: int, d_model: int, heads: int, ffn: int):
        super().__init__()
        self.affine = nn.Linear(in_dim, d_model)
        self.layers = nn.ModuleList([nn.TransformerDecoderLayer(d_model, heads, ffn, batch_first=True) for _ in range(2)])
        for layer in self.layers:  # the released decoder layer has two norms, not three
            del layer.norm3


class AVSTemporalGate(nn.Module):
    def __init__(self, channels: int = 256, audio_dim: int = 128, scales: int = 4, frames: int = 5,
                 gamma: float = 0.05, heads: int = 4, ffn: int | None = None, released_registry: bool = False):
        super().__init__()
        ffn = ffn or 4 * channels
        self.frames, self.gamma = frames, gamma
        self.v_fc = nn.ModuleList([nn.Linear(channels, channels) for _ in range(scales)])
        self.dropout = nn.Dropout(0.2)
        self.audio_rnn = nn.ModuleList([nn.LSTM(audio_dim, audio_dim, batch_first=True, bidirectional=True) for _ in range(scales)])
        self.video_rnn = nn.ModuleList([nn.LSTM(channels, channels, batch_first=True, bidirectional=True) for _ in range(scales)])
        self.video_encoder = nn.ModuleList([TemporalEncoder(2 * channels, channels, heads, ffn, 2, released_registry) for _ in range(scales)])
        self.audio_encoder = nn.ModuleList([TemporalEncoder(2 * audio_dim, channels, heads, ffn, 2, released_registry) for _ in range(scales)])
        self.audio_gate = nn.ModuleList([nn.Linear(channels, 1) for _ in range(scales)])
        self.video_gate = nn.ModuleList([nn.Linear(channels, 1) for _ in range(scales)])
        if released_registry:
            self.dead_decoders = nn.ModuleList(
                [_DeadDecoder(2 * channels, channels, heads, ffn) for _ in range(scales)]
                + [_DeadDecoder(channels, channels, heads, ffn) for _ in range(scales)]
            )

    def forward(self, maps: Sequence[torch.Tensor], audio: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """maps: per scale (B*T, C, H, W); audio (B, T, A) -> gated maps and gated audio (B, T, A)."""
        batch = audio.shape[0]
        out, video_gates = [], []
        for i, feature in enumerate(maps):
            pooled = feature.mean((2, 3)).reshape(batch, self.frames, -1)
            pooled = self.dropout(torch.relu(self.v_fc[i](pooled)))
            audio_seq, _ = self.audio_rnn[i](audio)
            video_seq, _ = self.video_rnn[i](pooled)
            video_enc = self.video_encoder[i](video_seq)
            audio_enc = self.audio_encoder[i](audio_seq)
            a_gate = torch.sigmoid(self.audio_gate[i](audio_enc)).reshape(-1, 1, 1, 1)  # (B*T, 1, 1, 1)
            video_gates.append(torch.sigmoid(self.video_gate[i](video_enc)))  # (B, T, 1)
            out.append(feature + self.gamma * a_gate * feature)
        v_gate = torch.stack(video_gates).mean(0)
        return out, audio + self.gamma * v_gate * audio
