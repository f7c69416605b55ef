"""Official DG-SCT ``VisualAdapter`` state_dict names <-> ``DGSCTUnit`` names and layouts.

The official few-shot unit (haoyi-duan/DG-SCT @211fc57, ``few-shot/nets/net_trans.py``) stores 42
entries. Two are never used by its forward and have no counterpart here: ``fc_caption.*`` (only
read when a caption is passed, which MMIL_Net never does) and ``gate_tk``. Layout differences:

* ``conv_adapter.weight`` (L, L_P, 1, 1)        <-> ``guide_token_proj.weight`` (L, L_P)
* ``down_sampler.weight`` (C/r, C/G, 1, 1)      <-> ``down.weight`` (G, C/r/G, C/G)
* ``up_sampler.weight``   (C, C/r/G, 1, 1)      <-> ``up.weight``   (G, C/G, C/r/G)

(the grouped conv's output rows come in group order, so a plain reshape is exact). Everything
else keeps its shape; BatchNorm2d and BatchNorm1d share names, shapes and buffers.
"""
from __future__ import annotations

from typing import Dict, Mapping

import torch

from ..errors import UserError
from .dgsct_unit import DGSCTUnit

# official prefix -> local prefix (a prefix is a module name, or a whole parameter name)
OFFICIAL_TO_LOCAL: Dict[str, str] = {
    "conv_adapter": "guide_token_proj",
    "fc": "guide_channel_proj",
    "my_tokens": "latent_tokens",
    "gate_av": "exchange_gate",
    "fc_affine_audio_1": "channel_guide",
    "fc_affine_video_1": "channel_self",
    "fc_affine_bottleneck": "channel_squeeze",
    "fc_affine_v_c_att": "channel_excite",
    "fc_affine_video_2": "spatial_self",
    "fc_affine_audio_2": "spatial_guide",
    "fc_affine_v_s_att": "spatial_score",
    "temporal_gated.0": "temporal_score",
    "ln_before": "ln_before",
    "down_sampler": "down",
    "bn1": "bn_down",
    "up_sampler": "up",
    "bn2": "bn_up",
    "ln_post": "ln_post",
    "gate": "gate",
}
LOCAL_TO_OFFICIAL: Dict[str, str] = {v: k for k, v in OFFICIAL_TO_LOCAL.items()}

# trainable in the official unit but never read by its forward; not built here
OFFICIAL_UNUSED = ("fc_caption.weight", "fc_caption.bias", "gate_tk")
FC_CAPTION_SHAPE = (192, 512)

_FOUR_D = ("guide_token_proj.weight", "down.weight", "up.weight")  # stored (out, in, 1, 1) officially


def _rename(name: str, table: Mapping[str, str]) -> str | None:
    module, _, leaf = name.rpartition(".")
    candidates = [(name, "")] + ([(module, "." + leaf)] if module else [])
    for prefix, rest in candidates:
        if prefix in table:
            return table[prefix] + rest
    return None


def official_to_local_name(name: str) -> str | None:
    """The DGSCTUnit name of an official entry (None for the unused or unknown ones)."""
    if name in OFFICIAL_UNUSED:
        return None
    return _rename(name, OFFICIAL_TO_LOCAL)


def local_to_official_name(name: str) -> str | None:
    return _rename(name, LOCAL_TO_OFFICIAL)


def _check_mappable(unit: DGSCTUnit) -> None:
    if unit.config.temporal and unit.config.temporal_mode != "gate":
        raise UserError("the official DG-SCT unit has only the per-segment temporal gate; a unit "
                        "with temporal_mode='rnn' has no official state_dict counterpart")


def load_official_state_dict(unit: DGSCTUnit, official_sd: Mapping[str, torch.Tensor],
                             strict: bool = True) -> None:
    """Copy an official ``VisualAdapter`` state_dict into ``unit`` (in place).

    ``fc_caption.*`` and ``gate_tk`` are dropped. With ``strict`` every tensor of ``unit`` must be
    provided and every official entry must have a place in ``unit`` (a switched-off part's
    official tensors are an error; pass ``strict=False`` to ignore them).
    """
    _check_mappable(unit)
    local_shapes = {k: v.shape for k, v in unit.state_dict().items()}
    converted: Dict[str, torch.Tensor] = {}
    unknown, unplaced = [], []
    for name, tensor in official_sd.items():
        if name in OFFICIAL_UNUSED:
            continue
        local = official_to_local_name(name)
        if local is None:
            unknown.append(name)
            continue
        if local not in local_shapes:
            unplaced.append(name)
            continue
        expected = local_shapes[local]
        if tensor.numel() != expected.numel() or (local not in _FOUR_D and tensor.shape != expected):
            raise UserError(f"official tensor {name!r} has shape {tuple(tensor.shape)}, but "
                            f"{local!r} of this unit is {tuple(expected)}: the unit's config "
                            f"(dim, tokens, guide_dim, guide_tokens, reduction, conv_groups, "
                            f"num_latent_tokens) does not match the checkpoint")
        converted[local] = tensor.reshape(expected)
    missing = sorted(set(local_shapes) - set(converted))
    if unknown or (strict and (unplaced or missing)):
        problems = []
        if unknown:
            problems.append(f"unknown official names {unknown}")
        if unplaced:
            problems.append(f"official tensors of switched-off parts {unplaced}")
        if missing:
            problems.append(f"tensors of this unit missing from the state_dict "
                            f"{[local_to_official_name(m) for m in missing]}")
        raise UserError("cannot load the official DG-SCT adapter state_dict: " + "; ".join(problems)
                        + " (check that the switches of DGSCTUnitConfig match the checkpoint)")
    unit.load_state_dict(converted, strict=strict)


def to_official_state_dict(unit: DGSCTUnit, include_unused: bool = False) -> Dict[str, torch.Tensor]:
    """The unit's tensors under the official names and layouts (detached copies).

    With ``include_unused`` the two tensors the official forward never reads are added as
    placeholders (``fc_caption`` zeros, ``gate_tk`` = 1, its initial value), so that the result
    loads strictly into an official ``VisualAdapter``.
    """
    _check_mappable(unit)
    official: Dict[str, torch.Tensor] = {}
    for name, tensor in unit.state_dict().items():
        off = local_to_official_name(name)
        if off is None:
            raise UserError(f"DGSCTUnit tensor {name!r} has no official name")
        tensor = tensor.detach().clone()
        if name in _FOUR_D:
            groups = tensor.shape[0] if name != "guide_token_proj.weight" else 1
            out = tensor.shape[1] * groups if name != "guide_token_proj.weight" else tensor.shape[0]
            tensor = tensor.reshape(out, tensor.shape[-1], 1, 1)
        official[off] = tensor
    if include_unused:
        like = unit.down.weight
        official["fc_caption.weight"] = torch.zeros(FC_CAPTION_SHAPE, dtype=like.dtype)
        official["fc_caption.bias"] = torch.zeros(FC_CAPTION_SHAPE[0], dtype=like.dtype)
        official["gate_tk"] = torch.ones(1, dtype=like.dtype)
    return official
