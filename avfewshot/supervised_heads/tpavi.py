"""TPAVI: the audio-visual non-local block of AVSBench (docs/supervised_heads.md §2).

x (B, C, T, H, W) visual, a (B, T, A) audio. The audio is mapped A -> C and broadcast over H x W;
theta, phi, g are 1x1x1 convolutions C -> C/2; with N = T*H*W positions,
y = (theta(x)^T phi(a) / N) g(x) and the output is LayerNorm_C(x + W_z y), W_z = conv C/2 -> C followed
by a BatchNorm3d whose weight and bias start at zero (so the block starts as LayerNorm(x)).

The released code forms the N x N matrix (15,680^2 at stage 1: ~1 GB). Because phi(a) is constant
over the H x W positions of a frame, the product factorises exactly:
y_i = theta(x_i) . M with M = (1/N) sum_t phi(a_t)^T (sum over frame t of g(x)), a C/2 x C/2 matrix.
``dense=True`` keeps the released N x N form (tests check both agree).
"""
from __future__ import annotations

import torch
from torch import nn


class TPAVI(nn.Module):
    def __init__(self, channels: int, audio_dim: int = 128, inter_channels: int | None = None, dense: bool = False):
        super().__init__()
        inter = inter_channels or max(1, channels // 2)
        self.dense = dense
        self.align_channel = nn.Linear(audio_dim, channels)
        self.theta = nn.Conv3d(channels, inter, 1)
        self.phi = nn.Conv3d(channels, inter, 1)
        self.g = nn.Conv3d(channels, inter, 1)
        self.W_z = nn.Sequential(nn.Conv3d(inter, channels, 1), nn.BatchNorm3d(channels))
        nn.init.zeros_(self.W_z[1].weight)
        nn.init.zeros_(self.W_z[1].bias)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor, audio: torch.Tensor):
        """x (B, C, T, H, W), audio (B, T, A) -> (B, C, T, H, W) and the aligned audio (B, T, C)."""
        batch, _, frames, height, width = x.shape
        aligned = self.align_channel(audio)  # (B, T, C)
        n = frames * height * width
        theta = self.theta(x).flatten(2).transpose(1, 2)  # (B, N, I)
        g = self.g(x).flatten(2).transpose(1, 2)  # (B, N, I)
        phi_t = self.phi(aligned.transpose(1, 2)[..., None, None]).flatten(2)  # (B, I, T): one column per frame
        if self.dense:
            phi = phi_t.repeat_interleave(height * width, dim=2)  # (B, I, N), frame-major like x.flatten
            y = torch.matmul(torch.matmul(theta, phi) / n, g)
        else:
            g_per_frame = g.reshape(batch, frames, height * width, -1).sum(2)  # (B, T, I)
            y = torch.matmul(theta, torch.matmul(phi_t, g_per_frame) / n)  # (B, N, I)
        y = y.transpose(1, 2).reshape(batch, -1, frames, height, width)
        z = x + self.W_z(y)
        z = self.norm(z.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
        return z, aligned
