"""The AVS segmentation head on the four adapted Swin stage maps (docs/supervised_heads.md §2).

Input: the four stage maps (B*T, C_i, H_i, W_i) (real size: see :mod:`.shapes`) and the pooled audio
(B, T, 768). Steps:
1. per stage a token Linear C_i -> C (256) and a bicubic resize to 56/28/14/7 (the PVT-v2 grid the
   released decoder was written for); audio Linear 768 -> 128;
2. the temporal gate of :mod:`.avs_temporal` (gamma 0.05 S4, 0.1 MS3);
3. TPAVI (:mod:`.tpavi`) on every stage;
4. RefineNet-style fusion coarse to fine (x + RCU(skip) -> RCU -> x2 bilinear, align_corners) and the
   output convs C -> 128 -> x2 -> 32 -> ReLU -> 1, giving (B*T, 1, 4*56, 4*56) logits (224^2 at real size).

Returns the logits, the TPAVI maps and the TPAVI audio embeddings (for MS3's masked audio-visual loss).
``released_registry=True`` also registers the released model's never-used modules (the PVT-era
``x*_linear`` and dilated ``conv1-4`` "ASPP" layers, the temporal decoders) for parameter parity.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from .avs_temporal import AVSTemporalGate
from .shapes import AVS_DECODER_SIZES, HTSAT_POOLED_DIM, SWIN_V2_L_192_STAGES
from .tpavi import TPAVI

PVT_V2_B5_DIMS = (64, 128, 320, 512)  # the released spare layers are sized for PVT-v2-b5


@dataclass(frozen=True)
class AVSDecoderConfig:
    stage_dims: Tuple[int, ...] = tuple(c for c, _, _ in SWIN_V2_L_192_STAGES)
    audio_dim: int = HTSAT_POOLED_DIM
    channels: int = 256
    audio_channels: int = 128
    sizes: Tuple[int, ...] = AVS_DECODER_SIZES
    frames: int = 5
    gamma: float = 0.05  # S4 0.05, MS3 0.1
    temporal_gate: bool = True
    out_mid: int = 128
    out_low: int = 32
    dense_tpavi: bool = False
    released_registry: bool = False

    @classmethod
    def tiny(cls, stage_dims: Sequence[int] = (8, 16, 32, 64), audio_dim: int = 32, **kw) -> "AVSDecoderConfig":
        """Width 16, 16/8/4/2 grids -> 64^2 masks: trains on CPU in seconds."""
        base = dict(stage_dims=tuple(stage_dims), audio_dim=audio_dim, channels=16, audio_channels=16,
                    sizes=(16, 8, 4, 2), out_mid=16, out_low=8)
        base.update(kw)
        return cls(**base)


class ResidualConvUnit(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(torch.relu(self.conv1(torch.relu(x))))


class FusionBlock(nn.Module):
    """x (+ RCU(skip)) -> RCU -> x2 bilinear. Both units are registered on every block, as released."""

    def __init__(self, channels: int):
        super().__init__()
        self.skip_unit = ResidualConvUnit(channels)
        self.unit = ResidualConvUnit(channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + self.skip_unit(skip)
        return F.interpolate(self.unit(x), scale_factor=2, mode="bilinear", align_corners=True)


class _ReleasedSpares(nn.Module):
    """The released model's registered-but-unused layers (PVT-sized Linears and dilated conv "ASPP")."""

    def __init__(self, stage_dims: Sequence[int], channels: int):
        super().__init__()
        self.linears = nn.ModuleList([nn.Linear(c, p) for c, p in zip(stage_dims, PVT_V2_B5_DIMS)])
        self.aspp = nn.ModuleList([
            nn.ModuleList([nn.Conv2d(p, channels, 3, padding=d, dilation=d) for d in (3, 6, 12, 18)])
            for p in PVT_V2_B5_DIMS
        ])


class AVSDecoder(nn.Module):
    def __init__(self, config: AVSDecoderConfig = AVSDecoderConfig()):
        super().__init__()
        c = config.channels
        self.config = config
        self.stage_proj = nn.ModuleList([nn.Linear(d, c) for d in config.stage_dims])
        self.audio_proj = nn.Linear(config.audio_dim, config.audio_channels)
        self.temporal = (
            AVSTemporalGate(c, config.audio_channels, len(config.stage_dims), config.frames, config.gamma,
                            released_registry=config.released_registry)
            if config.temporal_gate else None
        )
        self.tpavi = nn.ModuleList([TPAVI(c, config.audio_channels, dense=config.dense_tpavi) for _ in config.stage_dims])
        self.fusion = nn.ModuleList([FusionBlock(c) for _ in config.stage_dims])
        self.output = nn.Sequential(
            nn.Conv2d(c, config.out_mid, 3, padding=1),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(config.out_mid, config.out_low, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(config.out_low, 1, 1),
        )
        if config.released_registry:
            self.released_spares = _ReleasedSpares(config.stage_dims, c)

    def _to_clips(self, x: torch.Tensor) -> torch.Tensor:  # (B*T, C, H, W) -> (B, C, T, H, W)
        bt, ch, h, w = x.shape
        return x.reshape(bt // self.config.frames, self.config.frames, ch, h, w).transpose(1, 2)

    @staticmethod
    def _to_frames(x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W) -> (B*T, C, H, W)
        b, ch, t, h, w = x.shape
        return x.transpose(1, 2).reshape(b * t, ch, h, w)

    def forward(self, stage_maps: Sequence[torch.Tensor], audio: torch.Tensor):
        """stage_maps: 4 x (B*T, C_i, H_i, W_i); audio (B, T, audio_dim).

        Returns (logits (B*T, 1, S, S), TPAVI maps [4 x (B*T, C, h, w)], TPAVI audio [4 x (B, T, C)]).
        """
        cfg = self.config
        if len(stage_maps) != len(cfg.stage_dims):
            raise ValueError(f"AVSDecoder: expected {len(cfg.stage_dims)} stage maps, got {len(stage_maps)}")
        maps: List[torch.Tensor] = []
        for proj, x, size in zip(self.stage_proj, stage_maps, cfg.sizes):
            x = proj(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            maps.append(F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False))
        audio = self.audio_proj(audio)
        if self.temporal is not None:
            maps, audio = self.temporal(maps, audio)
        fused, audio_embeddings = [], []
        for block, x in zip(self.tpavi, maps):
            z, a = block(self._to_clips(x), audio)
            fused.append(self._to_frames(z))
            audio_embeddings.append(a)
        x = self.fusion[-1](fused[-1])
        for i in range(len(fused) - 2, -1, -1):
            x = self.fusion[i](x, fused[i])
        return self.output(x), fused, audio_embeddings
