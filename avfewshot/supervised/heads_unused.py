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
