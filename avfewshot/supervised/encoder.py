"""The adapted supervised encoder: DG-SCT units between a frozen Swin-V2 and a frozen HTS-AT (docs/supervised.md §0).

The pairing is data (``adapters/pairing.every_kth``, schedule ``block_input``): per stage, visual block
(i+1)·k-1 pairs with audio block i, k = visual depth / audio depth (Swin-V2-L 2/2/18/2 with HTS-AT
2/2/6/2: 12 steps, stage 3 pairs Swin blocks 3, 6, ..., 18 with HTS-AT blocks 1-6). One paired step:

1. Δa = A¹(a | v), Δv = V¹(v | a) from the block inputs;
2. v ← v + LN(attn v) + Δv;  a ← HTS-AT block(a) + Δa;
3. Δa' = A²(a | v), Δv' = V²(v | a) from the updated streams;
4. v ← v + LN(mlp v) + Δv';  a ← a + Δa'.

Unpaired Swin blocks run unchanged; patch merging sits between stages in both towers. Every unit's
output gate starts at 0, so at initialisation the streams are exactly the frozen towers'.

Outputs (``EncoderOutputs``): the pooled per-segment vectors m @ tokens with m = softmax_L(tanh s) of
the last V² / A² units (video over the final-normed Swin tokens, audio over the stage-4 HTS-AT tokens,
without HTS-AT's final norm), the four Swin stage maps (before merging; the last after the final
norm) and the final map.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from ..adapters.dgsct_unit import DGSCTUnit, DGSCTUnitConfig
from ..adapters.pairing import PairedStep, Pairing, StreamShape, every_kth
from ..errors import UserError
from .augment import AugmentConfig, MixPlan
from .htsat import HTSATAudio
from .presets import BackboneSize, UnitPreset, check_buildable
from .swin import SwinVisual

UNIT_LISTS = ("visual_p1", "visual_p2", "audio_p1", "audio_p2")


@dataclass
class EncoderOutputs:
    visual: torch.Tensor  # (B, T, Cv) pooled per segment
    audio: torch.Tensor  # (B, T, Ca)
    stage_maps: List[torch.Tensor]  # 4 x (B·T, H, W, C) Swin stage outputs
    final_map: torch.Tensor  # (B·T, H, W, C) final-normed last stage
    visual_pool: torch.Tensor  # (B·T, Lv) pooling map of the last V² unit
    audio_pool: torch.Tensor  # (B·T, La)
    audio_tokens: torch.Tensor  # (B·T, La, Ca) last-stage HTS-AT tokens (no final norm)


def stage_shapes(grids, dims) -> Tuple[StreamShape, ...]:
    return tuple(StreamShape(g * g, d) for g, d in zip(grids, dims))


def supervised_pairing(visual: SwinVisual, audio: HTSATAudio) -> Pairing:
    return every_kth(visual.depths, stage_shapes(visual.grids, visual.dims), audio.depths,
                     stage_shapes(audio.grids, audio.dims), schedule="block_input")


def unit_config(step: PairedStep, direction: str, preset: UnitPreset, segments: int) -> DGSCTUnitConfig:
    own, guide = (step.visual, step.audio) if direction == "visual" else (step.audio, step.visual)
    avs_order = preset.ln_order == "post_after_gate"  # released AVS: no pre-LN, LN_post(gate * h)
    return DGSCTUnitConfig(
        dim=own.dim, tokens=own.tokens, guide_dim=guide.dim, guide_tokens=guide.tokens, reduction=preset.reduction,
        conv_groups=preset.conv_groups, num_latent_tokens=preset.latent_tokens, alpha=preset.alpha, beta=preset.beta,
        temporal=False, use_bn=preset.use_bn, pre_ln=not avs_order, post_ln=True, gate_before_post_ln=avs_order,
        alignment=preset.alignment, output_gate=True if direction == "visual" else preset.audio_gate,
        segments=segments)


def make_unit(config: DGSCTUnitConfig, preset: UnitPreset) -> DGSCTUnit:
    unit = DGSCTUnit(config)
    if preset.token_init == "zeros":
        with torch.no_grad():
            unit.latent_tokens.zero_()
    return unit


class AdaptedSwinHTSAT(nn.Module):
    """Frozen ``visual`` (Swin-V2) and ``audio`` (HTS-AT) with four lists of DG-SCT units."""

    def __init__(self, size: BackboneSize, preset: UnitPreset, segments: int = 10, preset_name: str = "preset",
                 visual_weights: Optional[str] = None, audio_weights: Optional[str] = None,
                 augment: Optional[AugmentConfig] = None, clip_seconds: Optional[int] = None):
        super().__init__()
        check_buildable(preset, preset_name)
        if clip_seconds is not None and size.audio.clip_seconds > 1:  # a tiling backbone: the task's clip length
            size = dataclasses.replace(size, audio=dataclasses.replace(size.audio, clip_seconds=int(clip_seconds)))
        self.size, self.preset, self.segments = size, preset, int(segments)
        self.visual = SwinVisual(size.visual, visual_weights)
        self.audio = HTSATAudio(size.audio, audio_weights)
        self.pairing = supervised_pairing(self.visual, self.audio)
        self.augment = augment or AugmentConfig()
        self.spec_augmenter = self.augment.spec_augmenter()
        steps = self.pairing.steps
        for name in UNIT_LISTS:
            direction = "visual" if name.startswith("visual") else "audio"
            setattr(self, name, nn.ModuleList(make_unit(unit_config(s, direction, preset, segments), preset)
                                              for s in steps))
        self._by_visual_block: Dict[Tuple[int, int], PairedStep] = {
            (s.visual_stage, s.visual_block): s for s in steps}

    @property
    def output_dims(self) -> Tuple[int, int]:
        """(visual, audio) widths of the pooled vectors."""
        return self.visual.dims[-1], self.audio.dims[-1]

    def units(self) -> Dict[str, nn.ModuleList]:
        return {name: getattr(self, name) for name in UNIT_LISTS}

    # -- forward ------------------------------------------------------------------------------
    def stems(self, images: torch.Tensor, wave: torch.Tensor, mix: Optional[MixPlan]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Patch tokens of both towers; frozen and upstream of every unit, so without a graph (unless HTS-AT
        is made trainable: the S4 parity flag ``train_htsat``)."""
        with torch.no_grad():
            v = self.visual.embed(images)
        audio_graph = torch.is_grad_enabled() and any(p.requires_grad for p in self.audio.parameters())
        with torch.set_grad_enabled(audio_graph):
            mel = self.audio.mel(wave)
            if self.training and self.spec_augmenter is not None:
                mel = self.spec_augmenter(mel)
            if self.training and mix is not None:
                mel = mix.mix_rows(mel, self.segments)
            a = self.audio.embed(self.audio.to_image(mel))
        return v, a

    def forward(self, frames: torch.Tensor, audio: torch.Tensor, mix: Optional[MixPlan] = None) -> EncoderOutputs:
        """frames (B, T, 3, H, W) normalised, audio (B, T, S) one-second segments."""
        if frames.dim() != 5 or audio.dim() != 3 or frames.shape[:2] != audio.shape[:2]:
            raise UserError(f"supervised encoder: frames {tuple(frames.shape)} and audio {tuple(audio.shape)} must be "
                            f"(B, T, 3, H, W) and (B, T, S) with the same B and T")
        b, t = frames.shape[:2]
        if t != self.segments:
            raise UserError(f"supervised encoder built for {self.segments} segments per clip, got {t}")
        v, a = self.stems(frames.flatten(0, 1), audio.flatten(0, 1), mix)
        stage_maps: List[torch.Tensor] = []
        pools = None
        for s, depth in enumerate(self.visual.depths):
            v, a = self.visual.merge(s, v), self.audio.merge(s, a)
            for j in range(depth):
                step = self._by_visual_block.get((s, j))
                if step is None:
                    v = self.visual.block(s, j, v)
                else:
                    v, a, pools = self._step(step, v, a)
            stage_maps.append(v)
        final = self.visual.final_norm(v)
        stage_maps[-1] = final
        visual_pool, audio_pool = pools
        pooled_v = torch.bmm(visual_pool.unsqueeze(1), final).view(b, t, -1)
        pooled_a = torch.bmm(audio_pool.unsqueeze(1), a).view(b, t, -1)
        grids = self.visual.grids
        maps = [m.view(m.shape[0], grids[i], grids[i], m.shape[-1]) for i, m in enumerate(stage_maps)]
        return EncoderOutputs(pooled_v, pooled_a, maps, maps[-1], visual_pool, audio_pool, a)

    def _step(self, step: PairedStep, v: torch.Tensor, a: torch.Tensor):
        i, s = step.index, step.visual_stage
        delta_a = self.audio_p1[i](a, v)
        delta_v = self.visual_p1[i](v, a)
        v = v + self.visual.attention_part(s, step.visual_block, v) + delta_v
        a = self.audio.block(step.audio_stage, step.audio_block, a) + delta_a
        delta_a, maps_a = self.audio_p2[i](a, v, return_maps=True)
        delta_v, maps_v = self.visual_p2[i](v, a, return_maps=True)
        v = v + self.visual.mlp_part(s, step.visual_block, v) + delta_v
        a = a + delta_a
        return v, a, (maps_v.spatial_pool, maps_a.spatial_pool)


#: seconds each 1-s audio segment is tiled to, per task (released: AVS 5 s, the others 10 s); a backbone
#: that does not tile (the tiny one) ignores it
TASK_CLIP_SECONDS = {"ave": 10, "avvp": 10, "s4": 5, "ms3": 5, "avqa": 10}


def task_encoder(cfg, tiny_head: Dict) -> Tuple[AdaptedSwinHTSAT, UnitPreset, Dict]:
    """The adapted encoder of a task config (``size``, ``preset``, ``segments``, weights, ``augment``), its unit
    preset (shrunk for ``size="tiny"``) and the head overrides (``tiny_head`` first at tiny size, then ``cfg.head``).

    Audio units get an output gate unless ``cfg.ungated_audio`` (parity: the released AVS / AVQA columns)."""
    from .presets import TINY_UNIT_CHANGES, backbone_size, unit_preset

    preset = unit_preset(cfg.preset)
    if not getattr(cfg, "ungated_audio", False):
        preset = preset.replace(audio_gate=True)
    head_changes = dict(cfg.head)
    if cfg.size == "tiny":
        preset = preset.replace(**TINY_UNIT_CHANGES)
        head_changes = {**tiny_head, **head_changes}
    encoder = AdaptedSwinHTSAT(backbone_size(cfg.size), preset, cfg.segments, cfg.preset, cfg.visual_weights,
                               cfg.audio_weights, cfg.augment, TASK_CLIP_SECONDS.get(cfg.preset))
    return encoder, preset, head_changes
