"""Modules the released supervised code builds but never uses, for the parameter parity count only (§5).

Registered under ``released_unused`` when a task model is built with ``keep_unused=True``; frozen and
never called. Per released model:

* both tasks: ``adapter_token_downsampler`` (bias-free Linear(d/16 → d/8) for each Swin patch
  merging's output width d) and one ``gate_tk`` scalar per DG-SCT unit;
* AVE (CMBS): the AV / VA interaction blocks (MHA + LayerNorm each, computed and discarded), the
  unused ``video_norm`` / ``audio_norm``, the self-attention built into each cross decoder layer, and
  the template layer each temporal encoder / decoder keeps beside its clones (the released modules
  register ``encoder_layer`` / ``decoder_layer`` and then deep-copy them: 3.68 M never called);
* AVVP (MGN): per unit a caption projection ``fc_caption`` Linear(512 → 192) and a
  ``temporal_gated`` Linear(C → 1); the template layer of each temporal-gate encoder.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .temporal import CrossDecoderLayer, EncoderLayer

#: the released unit's constructor argument (it built its own copy of the reduction for these Linears)
RELEASED_REDUCTION = 8


def _token_downsamplers(merge_dims: Sequence[int]) -> nn.ModuleList:
    return nn.ModuleList(nn.Linear(d // (RELEASED_REDUCTION * 2), d // RELEASED_REDUCTION, bias=False)
                         for d in merge_dims)


def _unit_scalars(count: int) -> nn.ParameterList:
    return nn.ParameterList(nn.Parameter(torch.ones(1)) for _ in range(count))


def ave_unused(encoder, d_model: int, heads: int, ffn: int) -> nn.ModuleDict:
    units = 4 * len(encoder.pairing)
    return nn.ModuleDict({
        "encoder_layer_templates": nn.ModuleList(EncoderLayer(d_model, heads, ffn) for _ in range(2)),
        "decoder_layer_templates": nn.ModuleList(CrossDecoderLayer(d_model, heads, ffn) for _ in range(2)),
        "decoder_template_self_attn": nn.ModuleList(nn.MultiheadAttention(d_model, heads) for _ in range(2)),
        "adapter_token_downsampler": _token_downsamplers(encoder.visual.dims[1:]),
        "gate_tk": _unit_scalars(units),
        "av_inter": nn.ModuleList([nn.MultiheadAttention(d_model, heads), nn.LayerNorm(d_model)]),
        "va_inter": nn.ModuleList([nn.MultiheadAttention(d_model, heads), nn.LayerNorm(d_model)]),
        "stream_norms": nn.ModuleList([nn.LayerNorm(d_model), nn.LayerNorm(d_model)]),
        "decoder_self_attn": nn.ModuleList([nn.MultiheadAttention(d_model, heads) for _ in range(2)]),
    })


def avvp_unused(encoder, gate_dim: int, gate_ffn: int) -> nn.ModuleDict:
    steps = encoder.pairing.steps
    units = 4 * len(steps)
    own_dims = [s.visual.dim for s in steps] * 2 + [s.audio.dim for s in steps] * 2
    return nn.ModuleDict({
        "adapter_token_downsampler": _token_downsamplers(encoder.visual.dims[1:]),
        "gate_tk": _unit_scalars(units),
        "encoder_layer_templates": nn.ModuleList(EncoderLayer(gate_dim, 4, gate_ffn) for _ in range(2)),
        "fc_caption": nn.ModuleList(nn.Linear(512, 192) for _ in range(units)),
        "temporal_gated": nn.ModuleList(nn.Linear(d, 1) for d in own_dims),
    })


def pvt_v2_b5() -> nn.Module:
    """The PVT-v2-b5 the released AVS model builds, loads and leaves trainable but never runs (81.44 M,
    no classifier head: the released ``pvt.py`` comments it out); timm's architecture, random weights."""
    try:
        import timm
    except ImportError:  # pragma: no cover - timm is a dependency of the supervised runners
        from ..errors import UserError

        raise UserError("the AVS parameter parity count needs timm >= 0.9 (pip install 'timm>=0.9,<2')") from None
    return timm.create_model("pvt_v2_b5", pretrained=False, num_classes=0)


def avs_unused(encoder, interp_alignment: bool) -> nn.ModuleDict:
    """Released AVS (S4 / MS3): PVT-v2-b5, and in each of the 48 units a ``temporal_gated`` Linear(C -> 1) and a
    ``ln_before`` LayerNorm (built; the released multimodal branch never calls it); S4 (``interp_alignment``) also
    keeps every unit's token-alignment conv (a Linear(L' -> L) over tokens, 81.16 M at real size), unused."""
    steps = encoder.pairing.steps
    pairs = [(s.visual, s.audio) for s in steps] * 2 + [(s.audio, s.visual) for s in steps] * 2
    modules = {
        "pvt_v2_b5": pvt_v2_b5(),
        "temporal_gated": nn.ModuleList(nn.Linear(own.dim, 1) for own, _ in pairs),
        "ln_before": nn.ModuleList(nn.LayerNorm(own.dim) for own, _ in pairs),
    }
    if interp_alignment:
        modules["conv_adapter"] = nn.ModuleList(nn.Linear(guide.tokens, own.tokens) for own, guide in pairs)
    return nn.ModuleDict(modules)
