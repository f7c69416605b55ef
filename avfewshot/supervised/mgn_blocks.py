"""Building blocks of the MGN head (multimodal grouping network, upstream MGN / GroupViT style).

* ``AttnBlock``: pre-norm self-attention block with a fused qkv and drop-path.
* ``CrossAttnBlock``: query attends over the keys, post-norm variant (used before assignment).
* ``AssignAttention``: single-head assignment of inputs to groups. The assignment is a softmax over
  the *groups* (hard: straight-through one-hot, Gumbel noise when asked and training), normalised by
  its sum over the inputs + 1. It also returns the "soft" map 1 + softmax_inputs(softmax_groups(qkᵀ)),
  from which MGN derives its frame-level probabilities.
* ``GroupingBlock``: token-MLP projection of the group tokens (S₁ → S₂), cross-attention to the inputs,
  assignment, channel MLP.
* ``ModalityTrans``: ``depth`` attention blocks over [inputs ; group tokens], an optional HAN-style
  grouping of the inputs against another stream's segments, then the grouping block.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, out: Optional[int] = None):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, out or dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


class AttnBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, drop_path_rate: float = 0.1):
        super().__init__()
        self.heads, self.drop_path_rate = heads, drop_path_rate
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (split_heads(t, self.heads) for t in self.qkv(self.norm1(x)).chunk(3, dim=-1))
        attn = merge_heads(F.scaled_dot_product_attention(q, k, v))
        x = x + drop_path(self.proj(attn), self.drop_path_rate, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path_rate, self.training)


class CrossAttnBlock(nn.Module):
    """x = q + attn(q, k); x = x + mlp(LN x); LN_post(x)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2, self.norm_post = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        q, k, v = (split_heads(p(t), self.heads) for p, t in ((self.q_proj, query), (self.k_proj, key), (self.v_proj, key)))
        x = query + self.proj(merge_heads(F.scaled_dot_product_attention(q, k, v)))
        return self.norm_post(x + self.mlp(self.norm2(x)))


def straight_through_one_hot(soft: torch.Tensor, dim: int) -> torch.Tensor:
    index = soft.argmax(dim, keepdim=True)
    hard = torch.zeros_like(soft).scatter_(dim, index, 1.0)
    return hard - soft.detach() + soft


class AssignAttention(nn.Module):
    def __init__(self, dim: int, hard: bool, gumbel: bool, assign_eps: float = 1.0):
        super().__init__()
        self.hard, self.gumbel, self.assign_eps = hard, gumbel, assign_eps
        self.scale = dim ** -0.5
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def assignment(self, raw: torch.Tensor) -> torch.Tensor:
        """(B, S, L) scores -> assignment over the S groups (dim -2)."""
        if self.gumbel and self.training:
            noise = -torch.empty_like(raw).exponential_().log()  # Gumbel(0, 1)
            soft = torch.softmax(raw + noise, dim=-2)
        else:
            soft = torch.softmax(raw, dim=-2)
        return straight_through_one_hot(soft, -2) if self.hard else soft

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        raw = torch.bmm(self.q_proj(query), self.k_proj(key).transpose(1, 2)) * self.scale  # (B, S, L)
        attn = self.assignment(raw)
        maps = {"hard": attn.detach(), "soft": 1.0 + torch.softmax(torch.softmax(raw, dim=-2), dim=-1)}
        attn = attn / (attn.sum(dim=-1, keepdim=True) + self.assign_eps)
        return self.proj(torch.bmm(attn, self.v_proj(key))), maps


class GroupingBlock(nn.Module):
    def __init__(self, dim: int, heads: int, num_group_tokens: int, num_output_groups: int, hard: bool, gumbel: bool):
        super().__init__()
        self.norm_tokens, self.norm_x = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mlp_inter = Mlp(num_group_tokens, dim // 2, num_output_groups)
        self.norm_post_tokens = nn.LayerNorm(dim)
        self.pre_assign_attn = CrossAttnBlock(dim, heads)
        self.assign = AssignAttention(dim, hard, gumbel)
        self.norm_new_x = nn.LayerNorm(dim)
        self.mlp_channels = Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor, group_tokens: torch.Tensor):
        group_tokens, x = self.norm_tokens(group_tokens), self.norm_x(x)
        projected = self.norm_post_tokens(self.mlp_inter(group_tokens.transpose(1, 2)).transpose(1, 2))
        projected = self.pre_assign_attn(projected, x)
        new_x, maps = self.assign(projected, x)
        new_x = new_x + projected
        return new_x + self.mlp_channels(self.norm_new_x(new_x)), maps


class ModalityTrans(nn.Module):
    """Blocks over [x ; group tokens], optional HAN grouping of x against ``x_other``, then grouping."""

    def __init__(self, dim: int, depth: int, heads: int, num_group_tokens: int, num_output_groups: int,
                 hard: bool, han_segments: int = 0, drop_path_rate: float = 0.1):
        super().__init__()
        self.num_group_tokens = num_group_tokens
        self.blocks = nn.ModuleList(AttnBlock(dim, heads, drop_path_rate=drop_path_rate) for _ in range(depth))
        # released: the HAN grouping uses the opposite assignment of the stream's (hard Gumbel in soft mode)
        self.han_encoder = (GroupingBlock(dim, heads, han_segments, han_segments, hard=not hard, gumbel=not hard)
                            if han_segments else None)
        self.grouping = GroupingBlock(dim, heads, num_group_tokens, num_output_groups, hard=hard, gumbel=hard)

    def forward(self, x: torch.Tensor, group_tokens: torch.Tensor, x_other: Optional[torch.Tensor] = None):
        group_tokens = group_tokens.expand(x.shape[0], -1, -1)
        joint = torch.cat([x, group_tokens], dim=1)
        for block in self.blocks:
            joint = block(joint)
        x, group_tokens = joint[:, : -self.num_group_tokens], joint[:, -self.num_group_tokens:]
        if self.han_encoder is not None and x_other is not None:
            x, _ = self.han_encoder(x, x_other)
        return self.grouping(x, group_tokens)
