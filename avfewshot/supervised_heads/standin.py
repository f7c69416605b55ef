"""A tiny *frozen* stand-in for the adapted encoder, so the heads train on synthetic data on CPU.

Not DG-SCT: random fixed convolutions give four stage maps of the documented layout (channels-first,
each stage halving the grid: 64 px -> 16/8/4/2 grids, 32 px -> 8/4/2/1, channels 8/16/32/64) and the final map; the audio
"pooled vector" of a 1-s segment is its log energy in 48 log-spaced bands (150 Hz - 8 kHz) through a
fixed random projection. Seeds make it deterministic. The real heads take the real encoder's outputs.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

STANDIN_STAGE_DIMS = (8, 16, 32, 64)
STANDIN_IMAGE = 64
STANDIN_AUDIO_DIM = 32


class StandInVisual(nn.Module):
    def __init__(self, dims: Tuple[int, ...] = STANDIN_STAGE_DIMS, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        chans = (3,) + tuple(dims)
        self.convs = nn.ModuleList([
            nn.Conv2d(c_in, c_out, 4 if i == 0 else 2, stride=4 if i == 0 else 2)
            for i, (c_in, c_out) in enumerate(zip(chans[:-1], chans[1:]))
        ])
        with torch.no_grad():
            for conv in self.convs:
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) / np.sqrt(conv.weight[0].numel()))
                conv.bias.zero_()
        self.requires_grad_(False)
        self.eval()

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> List[torch.Tensor]:
        """frames (N, 3, S, S) in [0, 1], S a multiple of 32 -> four maps (N, C_i, S/4 / 2^i, ...)."""
        x = (frames - 0.5) / 0.25
        maps = []
        for conv in self.convs:
            x = F.gelu(conv(x))
            maps.append(x)
        return maps


class StandInAudio:
    def __init__(self, rate: int = 32000, dim: int = STANDIN_AUDIO_DIM, bands: int = 48, seed: int = 0):
        self.rate = rate
        edges = np.geomspace(150.0, 8000.0, bands + 1)
        freqs = np.fft.rfftfreq(rate, 1.0 / rate)
        self.band_index = [np.where((freqs >= lo) & (freqs < hi))[0] for lo, hi in zip(edges[:-1], edges[1:])]
        self.projection = np.random.default_rng(seed).standard_normal((bands, dim)) / np.sqrt(bands)

    def __call__(self, segments: np.ndarray) -> torch.Tensor:
        """segments (..., rate) -> (..., dim) float32."""
        spectrum = np.abs(np.fft.rfft(segments, axis=-1)) ** 2
        energy = np.stack([spectrum[..., idx].sum(-1) for idx in self.band_index], axis=-1)
        logs = np.log10(energy + 1e-3)
        logs = logs - logs.mean(-1, keepdims=True)
        return torch.from_numpy((logs @ self.projection).astype(np.float32))


def frames_to_tensor(frames: np.ndarray, size: int = STANDIN_IMAGE) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, size, size) float in [0, 1] (bilinear)."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
