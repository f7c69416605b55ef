"""Faster forward of open_clip's ``ResidualAttentionBlock`` self-attention on CPU.

``nn.MultiheadAttention(batch_first=True)`` transposes its (N, L, E) input to (L, N, E) before
the input projection. When autograd is recording (the DG-SCT visual adapters need the gradient of
every frozen block's input), the module takes its general path, and the projection of that
transposed view runs as a batched product over L (ViT-B/32: 50 products of 20 x 768 @ 768 x 2304),
measured at 150-230 GFLOP/s against 270-300 for the same work as one (N·L, E) GEMM. Here the
projection reads the contiguous input; scaled dot-product attention and the output projection are
the ones the module calls. Outputs equal the module's to rounding (checked in the tests).
Blocks of other kinds (cross-attention, extra biases, dropout while training), and every block when
no gradient is recorded (the module then runs its own fused kernel), use the module.
On CPU in bf16 / fp16 (autocast) the attention itself is two batched products and a softmax instead of
the fused SDPA kernel, whose low-precision backward is slow on CPU (``_explicit_attention``), and the
LayerNorms read the fp32 residual stream cast to that dtype (``precision.to_autocast_dtype``: half the
bytes kept for backward; normalised in fp32 all the same).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..precision import to_autocast_dtype


def _fast_path_applies(attn: nn.Module) -> bool:
    return (isinstance(attn, nn.MultiheadAttention) and attn.batch_first and attn._qkv_same_embed_dim
            and attn.in_proj_weight is not None and attn.bias_k is None and not attn.add_zero_attn
            and (attn.dropout == 0.0 or not attn.training))


def self_attention(block: nn.Module, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``block.attention(q_x=x, attn_mask=attn_mask)`` for (N, L, E) ``x`` (already layer-normed)."""
    attn = block.attn
    # without a gradient to record the module takes its own fused fast path: leave it that
    if not (torch.is_grad_enabled() and x.requires_grad) or not _fast_path_applies(attn) or x.dim() != 3:
        return block.attention(q_x=x, attn_mask=attn_mask)
    n, length, width = x.shape
    heads = attn.num_heads
    qkv = F.linear(x.contiguous(), attn.in_proj_weight, attn.in_proj_bias)  # one (N·L, E) @ (E, 3E) GEMM
    q, k, v = qkv.view(n, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4).unbind(0)  # (N, H, L, d)
    mask = attn_mask.to(q.dtype) if attn_mask is not None else None  # q is bf16 / fp16 under autocast
    if q.dtype in (torch.bfloat16, torch.float16) and q.device.type == "cpu":
        out = _explicit_attention(q, k, v, mask)
    else:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out = out.transpose(1, 2).reshape(n, length, width)
    return F.linear(out, attn.out_proj.weight, attn.out_proj.bias)


def _explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """softmax(q kᵀ / √d + mask) v as two batched products: on CPU in bf16 the fused SDPA kernel's backward
    measured 4x its fp32 time at ViT-B/32's 50 tokens (466 ms against 112 ms for 20 images x 2 steps),
    while these products run on the bf16 matrix units."""
    scores = torch.matmul(q * (q.shape[-1] ** -0.5), k.transpose(-2, -1))
    if mask is not None:
        scores = scores + mask
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def block_forward(block: nn.Module, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``block(x, attn_mask=attn_mask)`` for a self-attention ``ResidualAttentionBlock``."""
    if hasattr(block, "ln_1_kv") or not hasattr(block, "ls_1"):
        return block(x, attn_mask=attn_mask)
    x = x + block.ls_1(self_attention(block, block.ln_1(to_autocast_dtype(x)), attn_mask))
    return x + block.ls_2(block.mlp(block.ln_2(to_autocast_dtype(x))))


def transformer_forward(transformer: nn.Module, x: torch.Tensor,
                        attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """open_clip ``Transformer(x, attn_mask)`` (batch first) through ``block_forward``."""
    if not getattr(transformer, "batch_first", True) or getattr(transformer, "grad_checkpointing", False):
        return transformer(x, attn_mask=attn_mask)
    for block in transformer.resblocks:
        x = block_forward(block, x, attn_mask)
    return x
