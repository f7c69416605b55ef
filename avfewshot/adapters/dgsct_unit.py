"""The DG-SCT adapter unit: one cross-modal adapter, used for both directions.

``DGSCTUnit`` adapts a stream x (N, L, C) under the guidance of the other modality's tokens
(N, L_P, C_P) and returns the residual delta (N, L, C) that the caller adds to x. With every switch
on it computes the official few-shot ``VisualAdapter`` (haoyi-duan/DG-SCT, ``few-shot/nets/
net_trans.py``; see docs/dgsct.md §3.2), in the batch-first token layout instead of the
official (N, C, L, 1):

1. guide projection   g' = Linear_{C_P→C}(W_tok · guide + b_tok)           (N, L, C)
2. latent exchange    P' = P + softmax_L(P g'ᵀ) g';  x ← x + gate_av · softmax_K(x P'ᵀ) P'
3. prompt             p  = mean_L g'                                        (N, C)
4. channel (C)        M_c = σ(W₄ ReLU(W₃ (ReLU(W₁p) ⊙ mean_L ReLU(W₂x))))     (N, C)
5. spatial (S)        s = W₇(ReLU(W₅(x ⊙ (1 + M_c))) ⊙ ReLU(W₆p));  M_s = σ(s)  (N, L)
6. temporal (T)       M_t = σ(W₈ p)  ("gate")  or  σ(W₈ RNN_t(p_1..p_T))  ("rnn")  (N, 1)
7. modulation         x' = x ⊙ (1 − α + α·M_c + β·M_s + γ·M_t)
8. bottleneck         gate · LN(BN(G↑ ReLU(BN(G↓ LN(x')))))  with grouped 1×1 maps G↓, G↑

Switches. A switched-off part has no parameters and its term is dropped:

* ``channel=False``: no W₁–W₄; the spatial branch reads x instead of x ⊙ (1 + M_c), and the
  modulation loses the whole channel term α·(M_c − 1), i.e. the 1 − α offset goes with it
  (x' = x ⊙ (1 + β·M_s + γ·M_t)). Keeping the offset would shrink x by 1 − α for no reason; the
  chosen rule makes "C off" equal to α = 0.
* ``spatial=False``: no W₅–W₇, no β term. ``temporal=False``: no W₈ (nor RNN), no γ term.
* ``latent_exchange=False``: no latent tokens and no ``gate_av``; x enters step 3 unchanged.
* With latent exchange, C, S and T all off, the guide is unused and the projection is not built.
* ``use_bn`` / ``pre_ln`` / ``post_ln`` / ``output_gate`` drop the BatchNorms, LayerNorms, gate.
* Released supervised AVS columns (docs/supervised.md §0): ``alignment="interp"`` replaces the token map
  W_tok by a bicubic resize of the guide's square token grid (no W_tok, no b_tok); ``gate_before_post_ln``
  computes LN_post(gate · h) (with ``pre_ln=False``: the released AVS order; at gate 0 the output is the
  post-LN bias, 0 at initialisation).

Temporal ``"rnn"`` mode (the paper's recurrent temporal attention; the official few-shot code has
none): rows are video-major (n = T·b + t), the T per-segment prompts of a video form a sequence
that a one-layer GRU/LSTM (hidden ``rnn_hidden``, default C / reduction) reads in segment order;
M_t of segment t = σ(W₈ h_t). Unidirectional by default, hence causal: M_t depends on segments
≤ t only; ``rnn_bidirectional=True`` makes every M_t depend on the whole clip.

Speed (exact up to float rounding): the guide projection runs in whichever order costs fewer
multiply-adds (tokens first or channels first; the biases are re-associated exactly); the prompt
p comes from the mean projection row (W̄_tok · guide) without reading the (N, L, C) tensor, which
the latent exchange builds only when the guide is projected tokens first (otherwise P g'ᵀ and
softmax(·) g' are re-associated through the K latent rows); mean_L(q_a ⊙ q_v) is computed as
q_a ⊙ mean_L(q_v); the spatial scores fold W₇ into a per-row vector; when L > C/2 the (1 + M_c)
scaling is folded into W₅ per row instead of scaling all tokens; grouped 1×1 maps are one dense GEMM with a block-diagonal
weight (measured fastest on CPU at these widths; the parameters stay grouped); BatchNorms run on
the (N·L, C) view without permutes and, outside training, are folded into those GEMMs; the gates
are folded into a GEMM operand (gate_av) and the post-LN affine (gate). In training, steps 7–8 run
as one autograd function with a hand-written backward (``fused_bottleneck.py``) that keeps five
(N, L, C) tensors fewer for backward than autograd would (``fused = False`` gives the plain path);
with the ReLU-mean's bool mask and the re-associated exchange, a first-stage audio unit keeps 57 MB
instead of 252 MB.

Note on pre-LN: S and T scale whole tokens (β·M_s per token, γ·M_t per row), and a per-token
scalar is cancelled by the LayerNorm before the bottleneck; they act only through the channel
variation of α·M_c. With C off (and pre_ln on) S and T are numerically almost inert. This is the
official design, kept as is.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError
from ..precision import autocast_disabled
from .fused_bottleneck import ReluMeanOverTokens, _wide, fused_path_applies, modulated_bottleneck
from .unit_config import (  # noqa: F401  (re-exported: the unit's public types)
    PROJECTION_ORDERS, RNN_CELLS, TEMPORAL_MODES, AttentionMaps, DGSCTUnitConfig, GroupedPointwise,
)


class DGSCTUnit(nn.Module):
    """Dual-guided spatial-channel-temporal adapter: ``forward(x, guide) -> delta``."""

    def __init__(self, config: DGSCTUnitConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        c, d = cfg.dim, cfg.attention_hidden
        self.record_maps = False  # set True to keep the detached maps of each forward in last_maps
        # True while a checkpoint recomputes this unit: BatchNorm normalises with the batch statistics
        # as in the first forward but leaves the running statistics alone (they were updated once)
        self.hold_running_stats = False
        # training uses ModulatedBottleneck (fused_bottleneck.py) where it applies: same results, less memory
        self.fused = True
        self.last_maps: Optional[AttentionMaps] = None

        if cfg.uses_guide:
            # official conv_adapter (1x1 Conv2d over the guide's token axis) and fc; alignment="interp"
            # resizes the guide's token grid instead and builds no token map
            if cfg.alignment == "conv":
                self.guide_token_proj = nn.Linear(cfg.guide_tokens, cfg.tokens)
            self.guide_channel_proj = nn.Linear(cfg.guide_dim, c)
        if cfg.latent_exchange:
            self.latent_tokens = nn.Parameter(torch.rand(cfg.num_latent_tokens, c))
            self.exchange_gate = nn.Parameter(torch.zeros(1))
        if cfg.channel:
            self.channel_guide = nn.Linear(c, c)  # W1 on the prompt
            self.channel_self = nn.Linear(c, c)  # W2 on the tokens of x
            self.channel_squeeze = nn.Linear(c, d)  # W3
            self.channel_excite = nn.Linear(d, c)  # W4
        if cfg.spatial:
            self.spatial_self = nn.Linear(c, d)  # W5 on the channel-attended tokens
            self.spatial_guide = nn.Linear(c, d)  # W6 on the prompt
            self.spatial_score = nn.Linear(d, 1)  # W7
        if cfg.temporal:
            if cfg.temporal_mode == "rnn":
                rnn_class = nn.GRU if cfg.rnn_cell == "gru" else nn.LSTM
                self.temporal_rnn = rnn_class(c, cfg.temporal_rnn_hidden, batch_first=True,
                                              bidirectional=cfg.rnn_bidirectional)
                score_in = cfg.temporal_rnn_hidden * (2 if cfg.rnn_bidirectional else 1)
            else:
                score_in = c
            self.temporal_score = nn.Linear(score_in, 1)  # W8
        if cfg.pre_ln:
            self.ln_before = nn.LayerNorm(c)
        self.down = GroupedPointwise(c, cfg.bottleneck_dim, cfg.conv_groups)
        self.up = GroupedPointwise(cfg.bottleneck_dim, c, cfg.conv_groups)
        if cfg.use_bn:
            self.bn_down = nn.BatchNorm1d(cfg.bottleneck_dim)
            self.bn_up = nn.BatchNorm1d(c)
        if cfg.post_ln:
            self.ln_post = nn.LayerNorm(c)
        if cfg.output_gate:
            self.gate = nn.Parameter(torch.zeros(1))

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, guide: Optional[torch.Tensor] = None, *,
                return_maps: bool = False) -> Union[torch.Tensor, Tuple[torch.Tensor, AttentionMaps]]:
        """x (N, L, C), guide (N, L_P, C_P) -> delta (N, L, C) [, AttentionMaps]."""
        cfg = self.config
        self._check_inputs(x, guide)

        projected = self._interp_guide(guide) if cfg.uses_guide and cfg.alignment == "interp" else None
        if projected is not None:
            prompt = projected.mean(dim=1)
        else:
            prompt = self._project_guide_mean(guide) if cfg.uses_guide else None
        if cfg.latent_exchange:
            x = self._latent_exchange(x, guide, projected)

        channel_map = self._channel_attention(x, prompt) if cfg.channel else None
        spatial_logits = self._spatial_logits(x, prompt, channel_map) if cfg.spatial else None
        spatial_map = torch.sigmoid(spatial_logits) if cfg.spatial else None
        temporal_map = self._temporal_attention(prompt) if cfg.temporal else None

        row_scale, token_scale = self._modulation(channel_map, spatial_map, temporal_map)
        fused = self.fused and not cfg.gate_before_post_ln  # the fused path folds the gate after the post-LN
        if fused and fused_path_applies(cfg, row_scale, token_scale, getattr(self, "bn_down", None),
                                        getattr(self, "bn_up", None)):
            delta = self._fused_bottleneck(x, row_scale, token_scale)
        else:
            delta = self._bottleneck(self._modulate(x, row_scale, token_scale))

        maps = None
        if return_maps or self.record_maps:
            spatial_pool = torch.softmax(torch.tanh(spatial_logits), dim=-1) if cfg.spatial else None
            maps = AttentionMaps(channel_map, spatial_map, spatial_pool, temporal_map)
            if self.record_maps:
                self.last_maps = AttentionMaps(*(m.detach() if m is not None else None for m in maps))
        return (delta, maps) if return_maps else delta

    def _check_inputs(self, x: torch.Tensor, guide: Optional[torch.Tensor]) -> None:
        cfg = self.config
        if x.dim() != 3 or x.shape[1:] != (cfg.tokens, cfg.dim):
            raise UserError(f"DGSCTUnit: x has shape {tuple(x.shape)}, expected (N, {cfg.tokens}, "
                            f"{cfg.dim}) = (rows, tokens, dim); convert the official (N, C, L, 1) "
                            f"layout with x.squeeze(-1).transpose(1, 2)")
        if cfg.uses_guide:
            if guide is None:
                raise UserError("DGSCTUnit: guide is None but this unit uses its guide "
                                "(latent exchange, channel, spatial or temporal attention is on)")
            expected = (x.shape[0], cfg.guide_tokens, cfg.guide_dim)
            if tuple(guide.shape) != expected:
                raise UserError(f"DGSCTUnit: guide has shape {tuple(guide.shape)}, expected {expected}"
                                f" = (rows of x, guide_tokens, guide_dim)")
        if cfg.temporal and cfg.temporal_mode == "rnn" and x.shape[0] % cfg.segments:
            raise UserError(f"DGSCTUnit: temporal_mode='rnn' needs rows grouped by video "
                            f"(n = {cfg.segments}·b + t), but x has {x.shape[0]} rows, not a "
                            f"multiple of segments={cfg.segments}")

    def projection_tokens_first(self) -> bool:
        """Whether the guide projection maps tokens before channels (the official order)."""
        cfg = self.config
        if cfg.projection_order != "auto":
            return cfg.projection_order == "tokens_first"
        tokens_first = cfg.tokens * cfg.guide_tokens * cfg.guide_dim + cfg.tokens * cfg.guide_dim * cfg.dim
        channels_first = cfg.guide_tokens * cfg.guide_dim * cfg.dim + cfg.tokens * cfg.guide_tokens * cfg.dim
        return tokens_first <= channels_first

    def _project_guide(self, guide: torch.Tensor) -> torch.Tensor:
        """(N, L_P, C_P) -> (N, L, C): Linear_C(W_tok · guide + b_tok) in the cheaper order."""
        w_tok, b_tok = self.guide_token_proj.weight, self.guide_token_proj.bias
        w_ch, b_ch = self.guide_channel_proj.weight, self.guide_channel_proj.bias
        n = guide.shape[0]
        if self.projection_tokens_first():
            tokens = torch.baddbmm(b_tok.unsqueeze(-1), w_tok.expand(n, -1, -1), guide)
            return F.linear(tokens, w_ch, b_ch)
        widened, bias = self._channels_first_factors(guide)
        return torch.baddbmm(bias, w_tok.expand(n, -1, -1), widened)

    def _channels_first_factors(self, guide: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(guide W_chᵀ (N, L_P, C), B (L, C)) with projected guide = W_tok (guide W_chᵀ) + B,
        B = b_tok ⊗ rowsum(W_ch) + b_ch: the biases re-associated exactly."""
        w_ch, b_ch = self.guide_channel_proj.weight, self.guide_channel_proj.bias
        b_tok = self.guide_token_proj.bias
        return F.linear(guide, w_ch), torch.addr(b_ch.expand(b_tok.shape[0], -1), b_tok, w_ch.sum(dim=1))

    def _interp_guide(self, guide: torch.Tensor) -> torch.Tensor:
        """alignment="interp" (released AVS-S4): (N, L_P, C_P) -> (N, L, C) = bicubic resize of the guide's
        √L_P x √L_P token grid (row-major) to √L x √L, and the Linear C_P -> C.

        The released unit applies the Linear first; bicubic weights sum to one per output token, so both
        orders give the same result (bias included) and the one moving fewer channels through the
        resize runs."""
        cfg = self.config
        n, side, out = guide.shape[0], cfg.guide_grid, cfg.grid

        def resize(t: torch.Tensor) -> torch.Tensor:
            grid = t.transpose(1, 2).reshape(n, t.shape[-1], side, side)
            grid = F.interpolate(grid, size=(out, out), mode="bicubic", align_corners=False)
            return grid.flatten(2).transpose(1, 2)

        if cfg.guide_dim <= cfg.dim:
            return self.guide_channel_proj(resize(guide))
        return resize(self.guide_channel_proj(guide))

    def _project_guide_mean(self, guide: torch.Tensor) -> torch.Tensor:
        """Token mean of the projected guide, (N, C), without building the (N, L, C) tensor."""
        w_tok, b_tok = self.guide_token_proj.weight, self.guide_token_proj.bias
        # as a batched (1, L_P) @ (L_P, C_P) product: matmul(vector, batch) copied the transposed guide
        # when it needed a gradient (14.7 ms against 1.3 ms at (20, 4096, 96))
        mean_row = w_tok.mean(dim=0).view(1, 1, -1).expand(guide.shape[0], 1, -1)
        pooled = torch.bmm(mean_row, guide).squeeze(1) + b_tok.mean()
        return per_row(self.guide_channel_proj, pooled)

    def _latent_exchange(self, x: torch.Tensor, guide: torch.Tensor,
                         projected: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x + gate_av · (the tokens of x read K latent tokens that first read the projected guide).

        Both softmaxes are unscaled, as in the official unit. ``projected``: the guide already on x's
        grid (alignment="interp").
        """
        tokens = self._latent_tokens_after_reading(guide, projected)  # (N, K, C)
        weights = torch.softmax(torch.bmm(x, tokens.transpose(1, 2)), dim=-1)  # (N, L, K)
        return torch.baddbmm(x, weights, self.exchange_gate * tokens)

    def _latent_tokens_after_reading(self, guide: torch.Tensor,
                                     projected: Optional[torch.Tensor] = None) -> torch.Tensor:
        """T + softmax(T Gᵀ) G for the K latent tokens T and the guide projected onto x's grid,
        G = W_tok (guide W_chᵀ) + B (N, L, C).

        Where the guide is projected channels first (x has many tokens: HTS-AT's early stages), G
        is never built: T Gᵀ = (T (guide W_chᵀ)ᵀ) W_tokᵀ + T Bᵀ and softmax(·) G = ((softmax(·) W_tok)
        (guide W_chᵀ)) + softmax(·) B only involve K-row products. The same sums in another order;
        at the first stage this saves a (20, 4096, 96) tensor kept for backward and its GEMMs.
        """
        tokens = self.latent_tokens
        if projected is not None or self.projection_tokens_first():
            projected = self._project_guide(guide) if projected is None else projected
            reads = torch.softmax(torch.matmul(tokens, projected.transpose(1, 2)), dim=-1)  # (N, K, L)
            return tokens + torch.bmm(reads, projected)
        w_tok = self.guide_token_proj.weight  # (L, L_P)
        widened, bias = self._channels_first_factors(guide)  # (N, L_P, C), (L, C)
        scores = torch.matmul(torch.matmul(tokens, widened.transpose(1, 2)), w_tok.t()) + tokens @ bias.t()
        reads = torch.softmax(scores, dim=-1)  # (N, K, L)
        return tokens + torch.bmm(torch.matmul(reads, w_tok), widened) + torch.matmul(reads, bias)

    def _channel_attention(self, x: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        query_guide = F.relu(per_row(self.channel_guide, prompt))  # (N, C)
        # mean_L(q⊙v) = q⊙mean_L(v); the ReLU is not in place: the linear output is a view, whose
        # in-place change cost three full copies in backward
        hidden = self.channel_self(x)
        if torch.is_grad_enabled():
            query_self = ReluMeanOverTokens.apply(hidden)
        else:
            query_self = F.relu(hidden).mean(dim=1)
        squeezed = F.relu(per_row(self.channel_squeeze, query_guide * _wide(query_self)))
        return torch.sigmoid(per_row(self.channel_excite, squeezed))

    def _spatial_logits(self, x: torch.Tensor, prompt: torch.Tensor,
                        channel_map: Optional[torch.Tensor]) -> torch.Tensor:
        """s (N, L) = W₇(ReLU(W₅(x ⊙ (1 + M_c))) ⊙ ReLU(W₆p)) + b₇."""
        w5, b5 = self.spatial_self.weight, self.spatial_self.bias
        if channel_map is None:
            hidden = F.linear(x, w5, b5)
        elif x.shape[1] > w5.shape[0]:
            # fewer multiplies to scale W₅'s columns per row than to scale all L tokens
            scaled = w5 * (1.0 + channel_map).unsqueeze(1)  # (N, d, C)
            hidden = torch.baddbmm(b5, x, scaled.transpose(1, 2))
        else:
            hidden = F.linear(x * (1.0 + channel_map).unsqueeze(1).to(x.dtype), w5, b5)
        scorer = self.spatial_score.weight[0] * F.relu(per_row(self.spatial_guide, prompt))  # (N, d)
        scores = torch.baddbmm(self.spatial_score.bias, F.relu(hidden, inplace=True), scorer.unsqueeze(-1))
        return scores.squeeze(-1)

    def _temporal_attention(self, prompt: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if cfg.temporal_mode == "gate":
            return torch.sigmoid(per_row(self.temporal_score, prompt))
        per_video = prompt.reshape(-1, cfg.segments, prompt.shape[-1])  # (B, T, C)
        states, _ = self.temporal_rnn(per_video)
        return torch.sigmoid(self.temporal_score(states)).reshape(-1, 1)

    def _modulation(self, channel_map: Optional[torch.Tensor], spatial_map: Optional[torch.Tensor],
                    temporal_map: Optional[torch.Tensor]) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """The factor 1 − α + α·M_c + β·M_s + γ·M_t split into its per-row part (N, C) or (N, 1)
        and its per-token part β·M_s (N, L); a switched-off part's term is dropped (None)."""
        cfg = self.config
        row_scale = None
        if channel_map is not None:
            row_scale = cfg.alpha * channel_map + (1.0 - cfg.alpha)
        if temporal_map is not None:
            row_scale = (cfg.gamma * temporal_map + 1.0 if row_scale is None
                         else row_scale + cfg.gamma * temporal_map)
        token_scale = cfg.beta * spatial_map if spatial_map is not None else None
        return row_scale, token_scale

    @staticmethod
    def _modulate(x: torch.Tensor, row_scale: Optional[torch.Tensor],
                  token_scale: Optional[torch.Tensor]) -> torch.Tensor:
        """x ⊙ (row_scale + token_scale), with 1 standing in for the per-row part when it is absent."""
        if token_scale is None:
            return x if row_scale is None else x * row_scale.unsqueeze(1)
        if row_scale is None:
            return x * (token_scale.unsqueeze(-1) + 1.0)
        return x * (row_scale.unsqueeze(1) + token_scale.unsqueeze(-1))

    def _post_affine(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """LN_post's weight and bias with the output gate folded in."""
        weight, bias = self.ln_post.weight, self.ln_post.bias
        if self.config.output_gate:
            weight, bias = self.gate * weight, self.gate * bias
        return weight, bias

    def _fused_bottleneck(self, x: torch.Tensor, row_scale: torch.Tensor,
                          token_scale: torch.Tensor) -> torch.Tensor:
        weight, bias = self._post_affine()
        return modulated_bottleneck(x, row_scale, token_scale, self.ln_before, self.down.dense_weight(),
                                    self.bn_down, self.up.dense_weight(), self.bn_up, self.ln_post, weight, bias,
                                    self.hold_running_stats)

    def _bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        """gate · LN(BN(G↑ ReLU(BN(G↓ LN(x))))) on the (N·L, C) view.

        Outside training the BatchNorms are affine maps and are folded into the grouped maps'
        dense weights; the gate is folded into the post-LN affine. Both are exact rewrites.
        """
        cfg = self.config
        n, length, c = x.shape
        h = x.reshape(n * length, c)
        if cfg.pre_ln:
            h = self.ln_before(h)
        h = F.relu(self._pointwise(h, self.down, self.bn_down if cfg.use_bn else None), inplace=True)
        h = self._pointwise(h, self.up, self.bn_up if cfg.use_bn else None)
        if cfg.post_ln and cfg.gate_before_post_ln:
            if cfg.output_gate:  # released AVS order: the gate scales the LayerNorm's input
                h = self.gate * h
            h = self.ln_post(h)
        elif cfg.post_ln:
            h = F.layer_norm(h, (c,), *self._post_affine(), self.ln_post.eps)
        elif cfg.output_gate:
            h = self.gate * h
        return h.view(n, length, c)

    def _pointwise(self, h: torch.Tensor, layer: GroupedPointwise,
                   bn: Optional[nn.BatchNorm1d]) -> torch.Tensor:
        if bn is None:
            return layer(h)
        if bn.training and self.hold_running_stats and bn.track_running_stats:
            # throw-away copies of the statistics keep the op (and what it saves) the same as the first forward
            return F.batch_norm(layer(h), bn.running_mean.clone(), bn.running_var.clone(), bn.weight, bn.bias,
                                True, 0.0, bn.eps)
        if bn.training or not bn.track_running_stats:
            return bn(layer(h))
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        shift = bn.bias - bn.running_mean * scale
        return F.linear(h, layer.dense_weight() * scale.unsqueeze(1), shift)


def per_row(layer: nn.Linear, rows: torch.Tensor) -> torch.Tensor:
    """``layer(rows)`` for the per-segment (N, ·) prompt-side maps, in fp32 whatever the autocast state:
    at N rows casting the weight to bf16 / fp16 costs more than the product, and autocast would keep
    the cast copy until backward (about half the unit's parameters are such maps)."""
    with autocast_disabled(rows.device.type):
        return layer(_wide(rows))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
