"""The feature shapes the supervised heads consume (documented once, checked by tests).

Swin-V2-L (``swinv2_large_window12_192``, embed 192, depths 2/2/18/2) at 192 px, per frame
(B*T frames), channels-first as the heads take them:

    stage 1 (B*T, 192, 48, 48)   stage 2 (B*T, 384, 24, 24)
    stage 3 (B*T, 768, 12, 12)   stage 4 (B*T, 1536, 6, 6)   (stage 4 after the final norm)

These are the stage outputs *before* patch merging (timm >= 0.9 puts the merging at the start of the
next stage, so its ``forward_intermediates`` returns exactly these; timm 0.6 applied it at the end).
The AVQA head takes the final map = stage 4 (B*T, 1536, 6, 6). The pooled audio vector of HTS-AT is 768-d.
"""
from __future__ import annotations

from typing import Tuple

SWIN_V2_L_192_STAGES: Tuple[Tuple[int, int, int], ...] = ((192, 48, 48), (384, 24, 24), (768, 12, 12), (1536, 6, 6))
HTSAT_POOLED_DIM = 768
SWIN_V2_L_FINAL_DIM = 1536
AVS_DECODER_SIZES = (56, 28, 14, 7)  # the PVT-v2 grid on a 224 input that the released decoder imitates


def timm_swinv2_large_stage_shapes(image_size: int = 192) -> Tuple[Tuple[int, int, int], ...]:
    """Build timm's Swin-V2-L on the ``meta`` device (no weights, no memory) and return its four
    (C, H, W) stage outputs for one ``image_size`` frame. Used by the tests to pin the table above."""
    import timm
    import torch

    with torch.device("meta"):
        model = timm.create_model("swinv2_large_window12_192", pretrained=False, num_classes=0)
        frames = torch.empty(1, 3, image_size, image_size)
        maps = model.forward_intermediates(frames, intermediates_only=True)
    return tuple((int(m.shape[1]), int(m.shape[2]), int(m.shape[3])) for m in maps)
