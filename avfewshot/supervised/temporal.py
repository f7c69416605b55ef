"""CMRAN-style temporal layers of the supervised heads (batch-first (B, T, C) throughout).

* ``EncoderLayer``: post-norm self-attention + ReLU FFN (CMRAN / CMBS ``EncoderLayer``).
* ``CrossDecoderLayer``: the query attends over [memory ; query] (CMBS ``DecoderLayer``), then the
  FFN; post-norm. The released layer also builds a self-attention it never calls; it is not built
  here (``heads_unused.py`` has it for the parameter parity count).
* ``TemporalEncoder``: Linear to d_model, then ``layers`` encoder layers.
* ``BiLSTMPair``: one bidirectional LSTM per stream.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ffn: int, dropout: float = 0.1):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.linear1, self.linear2 = nn.Linear(d_model, ffn), nn.Linear(ffn, d_model)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout, self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, need_weights=False)[0]))
        return self.norm2(x + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(x))))))


class CrossDecoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ffn: int, dropout: float = 0.1):
        super().__init__()
        self.cross_attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.linear1, self.linear2 = nn.Linear(d_model, ffn), nn.Linear(ffn, d_model)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout, self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        keys = torch.cat([memory, query], dim=1)
        x = self.norm1(query + self.dropout1(self.cross_attn(query, keys, keys, need_weights=False)[0]))
        return self.norm2(x + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(x))))))


class TemporalEncoder(nn.Module):
    """Linear(input → d_model) then ``layers`` post-norm encoder layers."""

    def __init__(self, input_dim: int, d_model: int, ffn: int, heads: int = 4, layers: int = 2):
        super().__init__()
        self.affine = nn.Linear(input_dim, d_model)
        self.layers = nn.ModuleList(EncoderLayer(d_model, heads, ffn) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.affine(x)
        for layer in self.layers:
            x = layer(x)
        return x


class CrossDecoder(nn.Module):
    """Linear(input → d_model) then one cross decoder layer over the other stream's memory."""

    def __init__(self, input_dim: int, d_model: int, ffn: int, heads: int = 4):
        super().__init__()
        self.affine = nn.Linear(input_dim, d_model)
        self.layer = CrossDecoderLayer(d_model, heads, ffn)

    def forward(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        return self.layer(self.affine(query), memory)


class BiLSTMPair(nn.Module):
    """One bidirectional LSTM per stream; outputs are twice the hidden sizes wide (CMBS: audio 128,
    video 256 hidden; MGN: 64 and 64)."""

    def __init__(self, audio_dim: int, video_dim: int, audio_hidden: int, video_hidden: int):
        super().__init__()
        self.audio_rnn = nn.LSTM(audio_dim, audio_hidden, batch_first=True, bidirectional=True)
        self.visual_rnn = nn.LSTM(video_dim, video_hidden, batch_first=True, bidirectional=True)

    def forward(self, audio: torch.Tensor, video: torch.Tensor):
        return self.audio_rnn(audio)[0], self.visual_rnn(video)[0]
