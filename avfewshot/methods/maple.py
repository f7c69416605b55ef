"""MaPLe (Khattak et al., CVPR 2023) on both branches, fused. Nothing is cacheable: the prompts enter
the image and audio towers.

Visual branch (official MaPLe, config vit_b16_c2_ep5_batch4_2ctx, in fp32):
- text: 2 context tokens initialised from the first two tokens of "a photo of a"; the rest of the
  phrase stays fixed, so the sequence is [SOS][c1][c2] "of a {name}." [EOT]. Deep text prompts
  P_1..P_{J-1} (2 x 512, N(0, 0.02^2)) overwrite hidden positions 1-2 before text layers 1..J-1
  (no positional embedding); layers >= J leave them alone. Depth J = 9.
- coupling: one Linear(512 -> 768) + bias per depth, F_0..F_{J-1}; the visual prompt at depth i is
  F_i(P_i) with P_0 = the context. ``projection_init=official`` starts F_1..F_{J-1} as copies of one
  initialised Linear, as the official code (``_get_clones``); the default draws each independently.
- image: F_0(ctx) is appended after the class/patch embeddings + positional embedding, before
  ``ln_pre`` (equivalently, ``ln_pre`` applied to it and appended after the tower's ``embed``, since
  LayerNorm is per token); before vision layers 1..J-1 the last two tokens are replaced by F_i(P_i);
  the output is ``ln_post`` of the class token times ``proj`` (the tower's ``head``).
  3,555,072 parameters at ViT-B size.

Audio branch (MaPLe-A, the toolkit's extension; no reference code exists):
- text: 2 context tokens in RoBERTa's word-embedding space from "The sounds of" ("of" stays fixed),
  deep prompts P_1..P_{J-1} (2 x 768) overwriting the context slots before RoBERTa layers 1..J-1.
- coupling: text depth i feeds HTS-AT block ``start + i`` through Linear(768 -> C_b), C_b the block's
  width (96, 96, 192, 192, 384 x 6, 768, 768 for HTSAT-tiny). HTS-AT has 12 blocks like ViT-B's 12
  layers, so by default ``start = 0`` pairs them by index (as DG-SCT does); ``audio_last_stage_only``
  sets ``start`` to the first block of the last stage (blocks 10-11), whose single window without
  shift makes MaPLe's rule exact there; text depths beyond the blocks left after ``start`` have
  no audio coupling.
- in a prompted block the prompt tokens (after the block's norm1) are appended to every attention
  window (replicated), the relative-position bias and the shifted-window mask are padded with zeros
  for them, and they pass through the residual + MLP like any token; their per-window copies are
  averaged to carry them to the next block of the same stage when that block has no prompt of its
  own (MaPLe's "deeper layers keep the prompts"); they are dropped before patch merging and before
  the final norm, average pool and projection. With an empty prompt the blocks reproduce HTS-AT.
  Depth 9 = 1,933,248 parameters at HTSAT-tiny size.

Depths larger than the towers (the tiny demo encoders have 2-4 layers) are capped at the tower's
size with a warning.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..encoders.clip_blocks import block_forward
from ..config import choice
from ..errors import UserError
from .base import METHODS, MethodConfig
from .prompt_learners import ClapPromptLearner, ClipPromptLearner, cosine_logits
from .two_branch import BRANCHES, BranchOutput, TwoBranchMethod

log = logging.getLogger("avfewshot")


def capped_depth(depth: int, limit: int, what: str) -> int:
    if depth < 1:
        raise UserError(f"MaPLe {what} depth must be at least 1, got {depth}")
    if depth > limit:
        log.warning("MaPLe %s depth %d exceeds the towers' %d layers: using %d", what, depth, limit, limit)
        return limit
    return depth


def deep_prompts(count: int, n_ctx: int, width: int) -> nn.ParameterList:
    return nn.ParameterList([nn.Parameter(torch.empty(n_ctx, width).normal_(std=0.02)) for _ in range(count)])


# -- the CLIP ViT with prompt tokens ----------------------------------------------------------
def vit_with_prompts(image_tower, images: torch.Tensor, prompts: Sequence[torch.Tensor]) -> torch.Tensor:
    """(N, 3, H, W) -> (N, D) with MaPLe's visual prompts: ``prompts[0]`` (n, W) appended before
    ``ln_pre``, ``prompts[i]`` replacing the last n tokens before block i (1 <= i < len(prompts))."""
    visual = image_tower.visual
    if getattr(visual, "pool_type", "tok") != "tok" or getattr(visual, "attn_pool", None) is not None:
        raise UserError("MaPLe needs a ViT pooled at its class token (open_clip pool_type='tok')")
    x = image_tower.embed(images)  # (N, L, W) after ln_pre
    n = prompts[0].shape[0] if prompts else 0
    if n:
        first = visual.ln_pre(prompts[0]).to(x.dtype)
        x = torch.cat([x, first.unsqueeze(0).expand(x.shape[0], -1, -1)], dim=1)
    for i, block in enumerate(image_tower.blocks):
        if n and 1 <= i < len(prompts):
            x = torch.cat([x[:, :-n], prompts[i].to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)], dim=1)
        x = block_forward(block, x)
    return image_tower.head(x)


PROJECTION_INITS = ("independent", "official")


def coupling_layers(width: int, vision_width: int, depth: int, init: str) -> nn.ModuleList:
    """F_0..F_{depth-1}. ``independent``: each its own random Linear. ``official`` (MaPLe's code): F_0
    (``proj``) is its own Linear; F_1..F_{depth-1} (``compound_prompt_projections``) are copies of one
    initialised Linear, so they start identical (and are trained separately)."""
    if init not in PROJECTION_INITS:
        raise UserError(f"method.projection_init={init!r}: valid are {', '.join(PROJECTION_INITS)}")
    if init == "independent":
        return nn.ModuleList([nn.Linear(width, vision_width) for _ in range(depth)])
    first = nn.Linear(width, vision_width)
    template = nn.Linear(width, vision_width)
    return nn.ModuleList([first, *(copy.deepcopy(template) for _ in range(depth - 1))])


class MaPLeVisual(nn.Module):
    reads = "media"  # prompt tokens go inside the ViT

    def __init__(self, learner: ClipPromptLearner, depth: int, vision_width: int, projection_init: str = "independent"):
        super().__init__()
        self.prompt_learner = learner
        self.depth = depth
        self.deep_text = deep_prompts(depth - 1, learner.n_ctx, learner.width)
        self.couplings = coupling_layers(learner.width, vision_width, depth, projection_init)

    def text_prompts(self) -> List[torch.Tensor]:
        return [self.prompt_learner.ctx, *self.deep_text]

    def vision_prompts(self) -> List[torch.Tensor]:
        return [f(p) for f, p in zip(self.couplings, self.text_prompts())]

    def text_features(self) -> torch.Tensor:
        return self.prompt_learner(deep=list(self.deep_text))

    def encode(self, frames: torch.Tensor, image_tower) -> torch.Tensor:
        """frames (B, T, 3, H, W) -> prompted image features (B, T, D)."""
        b, t = frames.shape[:2]
        return vit_with_prompts(image_tower, frames.flatten(0, 1), self.vision_prompts()).view(b, t, -1)

    def forward(self, features: torch.Tensor, scale: torch.Tensor) -> BranchOutput:
        text = self.text_features()
        return BranchOutput(cosine_logits(features, text, scale), text)


# -- HTS-AT with prompt tokens in every window ------------------------------------------------
def _partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def _reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    b = windows.shape[0] // ((h // ws) * (w // ws))
    x = windows.view(b, h // ws, w // ws, ws, ws, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, -1)


def window_attention_with_prompts(attn, x: torch.Tensor, mask: Optional[torch.Tensor], n: int) -> torch.Tensor:
    """HTS-AT WindowAttention on windows (B_, N + n, C) whose last n tokens are prompts: the relative
    position bias and the shift mask get zero rows/columns for them."""
    b_, total, c = x.shape
    heads = attn.num_heads
    win = total - n
    qkv = attn.qkv(x).reshape(b_, total, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    scores = (q * attn.scale) @ k.transpose(-2, -1)
    bias = attn.relative_position_bias_table[attn.relative_position_index.view(-1)].view(win, win, -1)
    bias = bias.permute(2, 0, 1).contiguous()
    if n:
        bias = F.pad(bias, (0, n, 0, n))
    scores = scores + bias.unsqueeze(0)
    if mask is not None:
        n_win = mask.shape[0]
        if n:
            mask = F.pad(mask, (0, n, 0, n))
        scores = scores.view(b_ // n_win, n_win, heads, total, total) + mask.unsqueeze(1).unsqueeze(0)
        scores = scores.view(-1, heads, total, total)
    probs = scores.softmax(dim=-1)
    out = (probs @ v).transpose(1, 2).reshape(b_, total, c)
    return attn.proj(out)


def swin_block_with_prompts(block, x: torch.Tensor, prompts: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """One HTS-AT SwinTransformerBlock with prompt tokens (B, n, C) in every window.

    Returns (tokens (B, L, C), prompts after the block (B, n, C), averaged over the window copies).
    """
    h, w = block.input_resolution
    b, length, c = x.shape
    ws, shift = block.window_size, block.shift_size
    n = prompts.shape[1]
    shortcut = x
    y = block.norm1(x).view(b, h, w, c)
    if shift > 0:
        y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
    windows = _partition(y, ws)
    n_win = windows.shape[0] // b
    prompt_copies = prompts.repeat_interleave(n_win, dim=0)  # window order is batch-major
    tokens = torch.cat([windows, block.norm1(prompt_copies)], dim=1) if n else windows
    out = window_attention_with_prompts(block.attn, tokens, block.attn_mask, n)
    win_out, prompt_out = out[:, : ws * ws], out[:, ws * ws:]
    y = _reverse(win_out.reshape(-1, ws, ws, c), ws, h, w)
    if shift > 0:
        y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
    x = shortcut + block.drop_path(y.reshape(b, h * w, c))
    x = x + block.drop_path(block.mlp(block.norm2(x)))
    if not n:
        return x, prompts
    p = prompt_copies + prompt_out
    p = p + block.mlp(block.norm2(p))
    return x, p.view(b, n_win, n, c).mean(dim=1)


def audio_blocks(audio_tower) -> List[Tuple[int, nn.Module]]:
    """(stage index, block) for every HTS-AT block in order."""
    return [(s, blk) for s, stage in enumerate(audio_tower.stages) for blk in stage.blocks]


def htsat_with_prompts(audio_tower, wave: torch.Tensor, prompts: Dict[int, torch.Tensor]) -> torch.Tensor:
    """(N, S) waveform -> (N, D) projected audio embedding; ``prompts[b]`` (n, C_b) enters block b."""
    x = audio_tower.embed(audio_tower.frontend(wave))
    index = 0
    for s, stage in enumerate(audio_tower.stages):
        carried: Optional[torch.Tensor] = None
        for j, block in enumerate(stage.blocks):
            own = prompts.get(index)
            if own is not None:
                carried = own.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
            if carried is None:
                x = audio_tower.block(s, j, x)
            else:
                x, carried = swin_block_with_prompts(block, x, carried)
            index += 1
        x = audio_tower.downsample(s, x)  # prompts are dropped before patch merging
    return audio_tower.project(audio_tower.head(x))


class MaPLeAudio(nn.Module):
    reads = "media"  # prompt tokens go inside HTS-AT's windows

    def __init__(self, learner: ClapPromptLearner, depth: int, audio_tower, last_stage_only: bool):
        super().__init__()
        blocks = audio_blocks(audio_tower)
        last_stage = len(audio_tower.stages) - 1
        start = next(i for i, (s, _) in enumerate(blocks) if s == last_stage) if last_stage_only else 0
        self.prompt_learner = learner
        self.start = start
        self.depth = depth
        self.deep_text = deep_prompts(depth - 1, learner.n_ctx, learner.width)
        coupled = range(min(depth, len(blocks) - start))
        self.couplings = nn.ModuleList([nn.Linear(learner.width, blocks[start + i][1].dim) for i in coupled])

    def text_prompts(self) -> List[torch.Tensor]:
        return [self.prompt_learner.ctx, *self.deep_text]

    def audio_prompts(self) -> Dict[int, torch.Tensor]:
        return {self.start + i: f(p) for i, (f, p) in enumerate(zip(self.couplings, self.text_prompts()))}

    def text_features(self) -> torch.Tensor:
        return self.prompt_learner(deep=list(self.deep_text))

    def encode(self, audio: torch.Tensor, audio_tower) -> torch.Tensor:
        """audio (B, T, S) -> prompted audio features (B, T, D)."""
        b, t = audio.shape[:2]
        return htsat_with_prompts(audio_tower, audio.flatten(0, 1), self.audio_prompts()).view(b, t, -1)

    def forward(self, features: torch.Tensor, scale: torch.Tensor) -> BranchOutput:
        text = self.text_features()
        return BranchOutput(cosine_logits(features, text, scale), text)


@dataclass
class MaPLeConfig(MethodConfig):
    n_ctx: int = 2
    ctx_init: str = "a photo of a"  # the first n_ctx tokens are learned, the rest stays fixed
    depth: int = 9  # prompt depth J (capped at the towers' layer count)
    audio_n_ctx: int = 2
    audio_ctx_init: str = "The sounds of"
    audio_depth: int = 9
    audio_last_stage_only: bool = False  # prompts only in HTS-AT's last (single-window) stage
    # visual couplings F_1..F_{J-1}: independent (each its own random init) | official (copies of one
    # initialised Linear, as MaPLe's code; runners/maple.yaml). The audio couplings differ in width, so
    # they are always independent.
    projection_init: str = choice("independent", "independent", "official")
    branches: List[str] = choice(lambda: list(BRANCHES), *BRANCHES)


@METHODS.register("maple")
class MaPLe(TwoBranchMethod):
    name = "maple"
    Config = MaPLeConfig

    def build_visual(self) -> nn.Module:
        c, bb = self.cfg, self.backbone
        layers = min(len(bb.clip_text.transformer.resblocks), len(bb.image.blocks))
        depth = capped_depth(c.depth, layers, "visual")
        learner = self.clip_learner(n_ctx=c.n_ctx, ctx_init=c.ctx_init)
        return MaPLeVisual(learner, depth, bb.image.width, c.projection_init)

    def build_audio(self) -> nn.Module:
        c, bb = self.cfg, self.backbone
        layers = len(bb.clap_text.text_branch.encoder.layer)
        depth = capped_depth(c.audio_depth, layers, "audio")
        learner = self.clap_learner(n_ctx=c.audio_n_ctx, ctx_init=c.audio_ctx_init)
        return MaPLeAudio(learner, depth, bb.audio, c.audio_last_stage_only)
