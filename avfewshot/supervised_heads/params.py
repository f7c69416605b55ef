"""Parameter counts of the heads at real size, built on the ``meta`` device (no memory, no weights).

``head_counts`` returns live (what the fixed head registers and runs) and released (plus the released
model's registered-but-unused modules) counts. The totals of docs/supervised_heads.md §5 include the encoder
(Swin-V2-L 228.8 M, HTS-AT 31.3 M, DG-SCT units) and, for AVS, PVT-v2-b5 (81.4 M, never run):
``implied_encoder`` subtracts the released head and those modules from a paper total. The whole models are
built and counted in ``adapted.py`` (``real_size_totals``: S4 594,766,109, MS3 602,853,149, AVQA 516,849,680).
"""
from __future__ import annotations

from typing import Dict

from torch import nn

# the reference numbers of docs/supervised_heads.md §5 (measured on the released code, in parameters)
PAPER_TOTALS = {"s4": 594.77e6, "ms3": 602.85e6, "avqa": 516.85e6}
PAPER_AVQA_TOTAL = 520.2e6
PVT_V2_B5 = 81.4e6  # AVS: built, loaded, trainable, never run
SWIN_V2_L = 228.8e6  # incl. the unused 21,841-way head
HTSAT = 31.3e6  # incl. the unused 527-way head
UNITS_R8 = 188.5e6  # 48 DG-SCT units at r = 8, groups 2, K = 32


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_on_meta(kind: str, released: bool) -> nn.Module:
    import torch

    from .avs_decoder import AVSDecoder, AVSDecoderConfig
    from .st_avqa import STAVQAConfig, STAVQAHead

    with torch.device("meta"):
        if kind in ("s4", "ms3"):
            return AVSDecoder(AVSDecoderConfig(gamma=0.05 if kind == "s4" else 0.1, released_registry=released))
        if kind == "avqa":
            return STAVQAHead(STAVQAConfig(released_registry=released))
    raise ValueError(f"unknown head {kind!r}")


def head_counts(kind: str) -> Dict[str, int]:
    return {"live": count(build_on_meta(kind, False)), "released": count(build_on_meta(kind, True))}
