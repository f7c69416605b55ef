"""Presets of the supervised runners, as data: per-task DG-SCT unit settings and backbone sizes.

``UNIT_PRESETS`` is the per-task table of docs/supervised.md §0 as released (AVE, AVVP, S4, MS3, AVQA); the
encoder builds every column. ``audio_gate=False`` is the released AVS / AVQA quirk (audio units without an
output gate): the task models keep it only behind their parity flag ``ungated_audio`` and give the audio
units a zero-initialised gate by default (docs/supervised_heads.md §6).

``BACKBONE_SIZES`` holds the real Swin-V2-L + HTS-AT (AudioSet) pair and the tiny pair of §7 that
runs on a 2-core CPU in well under a second per step.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, Tuple

from ..errors import UserError

ALIGNMENTS = ("conv", "interp")
TOKEN_INITS = ("uniform", "zeros")
LN_ORDERS = ("pre_post_gate", "post_after_gate")


@dataclass(frozen=True)
class UnitPreset:
    """One column of the §0 per-task table."""

    alignment: str = "conv"  # conv: dense L'xL token map (Conv2d 1x1 over tokens) | interp: bicubic grid resize
    reduction: int = 8  # r: bottleneck width C / r
    conv_groups: int = 2
    latent_tokens: int = 32  # K
    token_init: str = "uniform"  # uniform: U[0,1) | zeros
    use_bn: bool = True
    audio_gate: bool = True  # audio units carry a zero-initialised output gate (visual units always do)
    ln_order: str = "pre_post_gate"  # pre-LN, post-LN, then gate | no pre-LN, gate before the post-LN
    alpha: float = 0.3
    beta: float = 0.05
    temporal_gamma: float = 0.1  # weight of the post-encoder temporal gate ("T" of SCT); 0 = none

    def replace(self, **changes) -> "UnitPreset":
        return dataclasses.replace(self, **changes)


UNIT_PRESETS: Dict[str, UnitPreset] = {
    "ave": UnitPreset(temporal_gamma=0.1),
    "avvp": UnitPreset(temporal_gamma=0.05),
    "s4": UnitPreset(alignment="interp", token_init="zeros", use_bn=False, audio_gate=False,
                     ln_order="post_after_gate", temporal_gamma=0.05),
    "ms3": UnitPreset(reduction=2, token_init="zeros", use_bn=False, audio_gate=False, ln_order="post_after_gate",
                      alpha=0.2, beta=0.1, temporal_gamma=0.1),
    "avqa": UnitPreset(conv_groups=4, latent_tokens=2, token_init="zeros", use_bn=False, audio_gate=False,
                       temporal_gamma=0.0),
}


def unit_preset(name: str) -> UnitPreset:
    if name not in UNIT_PRESETS:
        raise UserError(f"unknown supervised unit preset {name!r}; valid: {', '.join(UNIT_PRESETS)}")
    return UNIT_PRESETS[name]


def check_buildable(preset: UnitPreset, name: str = "preset") -> None:
    """Raise a UserError naming a setting outside the table's vocabulary (every §0 column is buildable)."""
    if preset.alignment not in ALIGNMENTS or preset.token_init not in TOKEN_INITS or preset.ln_order not in LN_ORDERS:
        raise UserError(f"supervised unit {name}: alignment must be one of {ALIGNMENTS}, token_init one of "
                        f"{TOKEN_INITS}, ln_order one of {LN_ORDERS}")


@dataclass(frozen=True)
class SwinSize:
    """A Swin-V2 visual backbone (timm ``SwinTransformerV2`` keyword arguments)."""

    img_size: int
    patch_size: int
    embed_dim: int
    depths: Tuple[int, ...]
    num_heads: Tuple[int, ...]
    window_size: int
    num_classes: int  # the (unused) classifier head: 21,841 for the in-22k checkpoint
    timm_name: str = ""  # the timm architecture it equals, if any

    @property
    def grids(self) -> Tuple[int, ...]:
        g = self.img_size // self.patch_size
        return tuple(g // 2 ** s for s in range(len(self.depths)))

    @property
    def dims(self) -> Tuple[int, ...]:
        return tuple(self.embed_dim * 2 ** s for s in range(len(self.depths)))


@dataclass(frozen=True)
class HTSATSize:
    """An HTS-AT audio backbone and its front end (laion-clap ``clap_module.htsat``)."""

    sample_rate: int
    window_size: int  # n_fft
    hop_size: int
    mel_bins: int
    fmin: int
    fmax: int
    spec_size: int
    patch_size: int
    embed_dim: int
    depths: Tuple[int, ...]
    num_heads: Tuple[int, ...]
    swin_window: int
    num_classes: int  # the (unused) tagging head: 527 for AudioSet
    clip_seconds: int  # each 1-s segment is tiled to this many seconds (1 = no tiling)

    @property
    def grids(self) -> Tuple[int, ...]:
        g = self.spec_size // self.patch_size
        return tuple(g // 2 ** s for s in range(len(self.depths)))

    @property
    def dims(self) -> Tuple[int, ...]:
        return tuple(self.embed_dim * 2 ** s for s in range(len(self.depths)))


@dataclass(frozen=True)
class BackboneSize:
    visual: SwinSize
    audio: HTSATSize
    image_norm: str = "imagenet"


BACKBONE_SIZES: Dict[str, BackboneSize] = {
    "real": BackboneSize(
        SwinSize(192, 4, 192, (2, 2, 18, 2), (6, 12, 24, 48), 12, 21841, "swinv2_large_window12_192"),
        HTSATSize(32000, 1024, 320, 64, 50, 14000, 256, 4, 96, (2, 2, 6, 2), (4, 8, 16, 32), 8, 527, 10),
    ),
    "tiny": BackboneSize(
        SwinSize(64, 4, 16, (1, 1, 3, 1), (1, 2, 4, 8), 4, 10),
        HTSATSize(16000, 512, 160, 32, 50, 8000, 128, 4, 16, (1, 1, 1, 1), (1, 2, 4, 8), 4, 10, 1),
    ),
}

#: unit sizes of the tiny configuration (§7): r = 4, groups 2, K = 4
TINY_UNIT_CHANGES = {"reduction": 4, "conv_groups": 2, "latent_tokens": 4}


def backbone_size(name: str) -> BackboneSize:
    if name not in BACKBONE_SIZES:
        raise UserError(f"unknown supervised backbone size {name!r}; valid: {', '.join(BACKBONE_SIZES)}")
    return BACKBONE_SIZES[name]
