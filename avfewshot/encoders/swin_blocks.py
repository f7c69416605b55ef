"""A faster forward for HTS-AT's frozen Swin blocks, computing the same function.

``clap_module.htsat.SwinTransformerBlock.forward`` is written for readability: a roll and a
window partition (two copies) before attention and two after, q/k/v taken as ``qkv[0..2]`` of a
permuted view (whose backward zero-fills three full-size buffers), a separate ``q * scale``, and a
broadcast add of the relative-position bias and of the shift mask over a 5-D view (the slow
subnormal attention weights of shifted windows are handled by ``avfewshot.runtime``, not here).
``swin_block_forward`` reads the block's own modules and computes, for the same input, the same
output up to float rounding. Measured with denormals flushed, 20 inputs, forward + backward: stage 1
(64x64 tokens, width 96) 0.78-0.81 s -> 0.55-0.59 s; the later stages, with fewer tokens, within 10 %.

* roll + window partition (and its inverse) are one precomputed token permutation, applied as a
  gather whose backward is the gather with the inverse permutation (no scatter, no roll);
* q, k and v come from three row slices of the frozen ``qkv`` weight, each laid out as
  (B, nW, heads, N, d) once; the qk scale is folded into the q slice;
* the relative-position bias and the shift mask are summed once per call into one
  (nW, heads, N, N) tensor that is added in place to the scores;
* the attention output is projected in window order and permuted back after the projection.

The tower's parameters and buffers are read, never copied or changed; the released block stays
the reference (``tests/test_swin_blocks.py`` compares outputs and input gradients).

Precision. Under autocast (bf16 / fp16, the tower's weights stored in that dtype or not) the GEMMs
and the attention products run in the autocast dtype: the two LayerNorms read the residual stream
cast to that dtype (``precision.to_autocast_dtype``: normalised in fp32 all the same, kept for backward
at half the size, their output ready for the q/k/v and fc1 products), the relative-position bias and the shift mask (fp32) are added to the
low-precision scores, the softmax reads them in the scores' dtype. The residual stream (x and the
two sums) keeps x's dtype (fp32 in the towers). Measured error against fp32 on the same weights:
``tests/test_swin_blocks.py``.
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..precision import to_autocast_dtype

_ORDERS: Dict[Tuple[int, int, int, int], Tuple[torch.Tensor, torch.Tensor]] = {}


def window_order(height: int, width: int, window: int, shift: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(order, inverse): token ``order[p]`` of the (H·W) grid sits at position p of the windowed layout.

    The windowed layout is the released block's ``window_partition(roll(x, -shift))``: windows in
    row-major order, tokens row-major inside each window.
    """
    key = (height, width, window, shift)
    if key not in _ORDERS:
        rows = (torch.arange(height) + shift) % height
        cols = (torch.arange(width) + shift) % width
        grid = rows[:, None] * width + cols[None, :]  # grid[i, j] = source token of shifted position (i, j)
        order = grid.view(height // window, window, width // window, window).permute(0, 2, 1, 3).reshape(-1)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel())
        _ORDERS[key] = (order, inverse)
    return _ORDERS[key]


class _PermuteTokens(torch.autograd.Function):
    """x[:, order] with the backward grad[:, inverse] (a gather both ways)."""

    @staticmethod
    def forward(ctx, x, order, inverse):
        ctx.save_for_backward(inverse)
        return x.index_select(1, order)

    @staticmethod
    def backward(ctx, grad):
        (inverse,) = ctx.saved_tensors
        return grad.index_select(1, inverse), None, None


def permute_tokens(x: torch.Tensor, order: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() and x.requires_grad:
        return _PermuteTokens.apply(x, order, inverse)
    return x.index_select(1, order)


def relative_bias(attn: nn.Module) -> torch.Tensor:
    """(heads, N, N) relative-position bias of a ``WindowAttention``."""
    n = attn.window_size[0] * attn.window_size[1]
    table = attn.relative_position_bias_table[attn.relative_position_index.view(-1)]
    return table.view(n, n, -1).permute(2, 0, 1)


def swin_block_forward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, H·W, C) -> (B, H·W, C): ``block(x)[0]`` of a ``clap_module.htsat.SwinTransformerBlock``
    (LayerNorm before the MLP, eval mode: no dropout, no drop-path)."""
    if block.norm_before_mlp != "ln" or block.training:
        return block(x)[0]
    height, width = block.input_resolution
    window, shift = block.window_size, block.shift_size
    attn = block.attn
    b, length, c = x.shape
    heads = attn.num_heads
    d = c // heads
    n = window * window
    windows = length // n

    order, inverse = (t.to(x.device) for t in window_order(height, width, window, shift))
    h = block.norm1(to_autocast_dtype(x))  # under autocast: cast once (not per q / k / v product), kept at half size
    w, bias = attn.qkv.weight, attn.qkv.bias
    h = permute_tokens(h, order, inverse)  # (B, L, C) in windowed order

    scale = attn.scale

    def heads_first(t: torch.Tensor) -> torch.Tensor:  # (B, L, C) -> (B, nW, heads, N, d)
        return t.view(b, windows, n, heads, d).transpose(2, 3).contiguous()

    q = heads_first(F.linear(h, w[:c] * scale, None if bias is None else bias[:c] * scale))
    k = heads_first(F.linear(h, w[c:2 * c], None if bias is None else bias[c:2 * c]))
    v = heads_first(F.linear(h, w[2 * c:], None if bias is None else bias[2 * c:]))

    additive = relative_bias(attn)  # (heads, N, N)
    if block.attn_mask is not None:
        additive = additive.unsqueeze(0) + block.attn_mask.unsqueeze(1)  # (nW, heads, N, N)
    scores = torch.matmul(q, k.transpose(-2, -1))
    # One contiguous operand in the scores' dtype: bf16 += fp32 takes a slow mixed-dtype kernel, and the
    # bias's permuted strides (heads innermost) a slow broadcast: at stage 1 56 ms against 6.5 ms in bf16,
    # 18 against 9 ms in fp32.
    scores.add_(additive.to(scores.dtype).contiguous())
    out = torch.matmul(torch.softmax(scores, dim=-1), v)  # (B, nW, heads, N, d)
    out = out.transpose(2, 3).reshape(b, length, c)
    out = F.linear(out, attn.proj.weight, attn.proj.bias)
    x = x + permute_tokens(out, inverse, order)

    mlp = block.mlp
    hidden = F.linear(block.norm2(to_autocast_dtype(x)), mlp.fc1.weight, mlp.fc1.bias)
    return x + F.linear(mlp.act(hidden), mlp.fc2.weight, mlp.fc2.bias)
