"""The DG-SCT unit's configuration, its attention-map record, and the grouped 1×1 map it uses.

Split from ``dgsct_unit.py`` (the unit itself) so that each module has one job; ``dgsct_unit`` re-exports
these names.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError

TEMPORAL_MODES = ("gate", "rnn")
RNN_CELLS = ("gru", "lstm")
PROJECTION_ORDERS = ("auto", "tokens_first", "channels_first")
ALIGNMENTS = ("conv", "interp")


@dataclass
class DGSCTUnitConfig:
    """Sizes, switches and weights of one DG-SCT unit (defaults: official few-shot, cls tasks)."""

    dim: int  # C: width of the adapted stream
    tokens: int  # L: tokens of the adapted stream
    guide_dim: int  # C_P: width of the guiding stream
    guide_tokens: int  # L_P: tokens of the guiding stream
    reduction: int = 8  # bottleneck width C / reduction
    conv_groups: int = 2  # groups of the bottleneck's 1x1 maps
    num_latent_tokens: int = 2  # K latent tokens of the exchange
    alpha: float = 0.2  # weight of the channel map (with the 1 - alpha offset)
    beta: float = 0.05  # weight of the spatial map
    gamma: float = 0.05  # weight of the temporal map
    channel: bool = True  # C: channel attention
    spatial: bool = True  # S: spatial (time-frequency for audio) attention
    temporal: bool = True  # T: temporal attention
    latent_exchange: bool = True  # LAVisH-style latent-token exchange through gate_av
    temporal_mode: str = "gate"  # gate (official per-segment sigmoid) | rnn (paper: RNN over segments)
    rnn_cell: str = "gru"  # gru | lstm (temporal_mode="rnn")
    rnn_hidden: Optional[int] = None  # RNN width; None = dim // reduction
    rnn_bidirectional: bool = False  # False: causal over segments
    use_bn: bool = True
    pre_ln: bool = True
    post_ln: bool = True
    output_gate: bool = True  # zero-initialised output gate (exact zero output at init)
    segments: int = 10  # T: rows are video-major, n = T*b + t
    projection_order: str = "auto"  # auto | tokens_first | channels_first (compute only)
    # guide token alignment: conv (dense L_P x L map, official) | interp (bicubic resize of the sqrt(L_P) grid
    # to sqrt(L), the released AVS-S4 unit; no token map is built)
    alignment: str = "conv"
    gate_before_post_ln: bool = False  # released AVS order: LN_post(gate * h) instead of gate * LN_post(h)

    def __post_init__(self) -> None:
        def fail(field: str, why: str) -> None:
            value = getattr(self, field)
            raise UserError(f"DGSCTUnitConfig.{field}={value!r}: {why}")

        for field in ("dim", "tokens", "guide_dim", "guide_tokens", "reduction", "conv_groups",
                      "num_latent_tokens", "segments"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                fail(field, "must be a positive integer")
        if self.dim % 2:
            fail("dim", "must be even (the attention layers use dim // 2 hidden units)")
        if self.dim % self.reduction:
            fail("reduction", f"must divide dim={self.dim}")
        if self.dim % self.conv_groups or (self.dim // self.reduction) % self.conv_groups:
            fail("conv_groups", f"must divide dim={self.dim} and the bottleneck width "
                                f"{self.dim // self.reduction}")
        if self.temporal_mode not in TEMPORAL_MODES:
            fail("temporal_mode", f"choose one of {', '.join(TEMPORAL_MODES)}")
        if self.rnn_cell not in RNN_CELLS:
            fail("rnn_cell", f"choose one of {', '.join(RNN_CELLS)}")
        if self.rnn_hidden is not None and (isinstance(self.rnn_hidden, bool) or self.rnn_hidden < 1):
            fail("rnn_hidden", "must be a positive integer or None (= dim // reduction)")
        if self.projection_order not in PROJECTION_ORDERS:
            fail("projection_order", f"choose one of {', '.join(PROJECTION_ORDERS)}")
        if self.alignment not in ALIGNMENTS:
            fail("alignment", f"choose one of {', '.join(ALIGNMENTS)}")
        if self.alignment == "interp":
            for field in ("tokens", "guide_tokens"):
                if math.isqrt(getattr(self, field)) ** 2 != getattr(self, field):
                    fail(field, "must be a square number of tokens (a square grid) with alignment='interp'")

    @property
    def guide_grid(self) -> int:
        """Side of the guide's square token grid (alignment='interp')."""
        return math.isqrt(self.guide_tokens)

    @property
    def grid(self) -> int:
        return math.isqrt(self.tokens)

    @property
    def attention_hidden(self) -> int:
        """d = C/2: width of the channel squeeze and of the spatial scorer."""
        return self.dim // 2

    @property
    def bottleneck_dim(self) -> int:
        return self.dim // self.reduction

    @property
    def temporal_rnn_hidden(self) -> int:
        return self.rnn_hidden if self.rnn_hidden is not None else self.dim // self.reduction

    @property
    def uses_guide(self) -> bool:
        return self.latent_exchange or self.channel or self.spatial or self.temporal

    def replace(self, **changes) -> "DGSCTUnitConfig":
        return dataclasses.replace(self, **changes)


class AttentionMaps(NamedTuple):
    """Maps of one forward; a switched-off part's entries are None.

    ``spatial`` is σ(s), the map that modulates x; ``spatial_pool`` is softmax_L(tanh s), which the
    official unit returns as its second value (it only feeds a pooling, never the modulation).
    """

    channel: Optional[torch.Tensor]  # (N, C)
    spatial: Optional[torch.Tensor]  # (N, L)
    spatial_pool: Optional[torch.Tensor]  # (N, L)
    temporal: Optional[torch.Tensor]  # (N, 1)


class GroupedPointwise(nn.Module):
    """A grouped 1x1 map without bias (official: ``Conv2d(in, out, 1, groups=G, bias=False)``).

    ``weight`` is (G, out/G, in/G): block g maps input channels [g·in/G, (g+1)·in/G) to output
    channels [g·out/G, (g+1)·out/G). Applied to (..., in) as one GEMM with the block-diagonal
    weight, which measured faster on CPU than per-group GEMMs or conv1d at these widths.
    """

    def __init__(self, in_features: int, out_features: int, groups: int) -> None:
        super().__init__()
        self.in_features, self.out_features, self.groups = in_features, out_features, groups
        self.weight = nn.Parameter(torch.empty(groups, out_features // groups, in_features // groups))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Conv2d's default: kaiming_uniform(a=sqrt(5)) with fan_in = in/G, i.e. U(±1/sqrt(in/G)).
        bound = 1.0 / math.sqrt(self.in_features // self.groups)
        nn.init.uniform_(self.weight, -bound, bound)

    def dense_weight(self) -> torch.Tensor:
        if self.groups == 1:
            return self.weight[0]
        return torch.block_diag(*self.weight.unbind(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.dense_weight())

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, groups={self.groups}, bias=False"
