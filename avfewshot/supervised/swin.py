"""The frozen Swin-V2 visual backbone of the supervised runners (timm >= 0.9), with random weights or a local file.

The released code uses timm 0.6.12 (``swinv2_large_window12_192_22k``), which does not import on
Python 3.11. timm >= 0.9 computes the same network with a different layout, and this wrapper pins the
0.6 semantics where they differ (``tests/test_supervised_swin.py``):

* tokens are (B, H, W, C) inside timm >= 0.9 and (B, L, C) in 0.6; the wrapper's blocks take and return
  (B, L, C) rows, so the DG-SCT units see the 0.6 layout;
* 0.6 merges patches at the end of stages 1-3 (``layers.s.downsample``), >= 0.9 at the start of stages
  2-4 (``layers.s+1.downsample``): ``stage_output`` is the stream before merging either way, and a 0.6
  checkpoint is re-keyed on load (timm's own ``checkpoint_filter_fn``, also ``head`` -> ``head.fc``);
* a stage whose grid is not larger than the window uses the whole grid as its window, unshifted
  (stage 3 at 12x12 and stage 4 at 6x6 of Swin-V2-L/192, as in 0.6).

A block is the residual post-norm pair ``x + LN(attn x)``, ``x + LN(mlp x)``; ``attention_part`` and
``mlp_part`` return the two residual branches so the supervised schedule can add adapters between them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import torch
from torch import nn

from ..encoders import checkpoints as ckpt
from ..encoders.frozen import FrozenTower
from ..errors import UserError
from .presets import SwinSize

#: the released model's stochastic depth rate; it only acts in train mode, which a frozen tower never enters
DROP_PATH_RATE = 0.1


def timm_swinv2():
    """timm's Swin-V2 module (>= 0.9 layout: downsample at the start of a stage), or a UserError."""
    try:
        import timm
        from timm.models import swin_transformer_v2 as module
    except ImportError:
        raise UserError("the supervised runners need timm >= 0.9 (pip install 'timm>=0.9,<2')") from None
    stage = getattr(module, "SwinTransformerV2Stage", None)
    if stage is None or not hasattr(module, "checkpoint_filter_fn"):
        raise UserError(f"timm {getattr(timm, '__version__', '?')} is too old for the supervised runners: "
                        f"pip install 'timm>=0.9,<2' (0.6.x keeps the released layout and fails on Python 3.11)")
    return module


def build_swin_model(size: SwinSize) -> nn.Module:
    """timm ``SwinTransformerV2`` of the given size with random weights (no file, no download)."""
    module = timm_swinv2()
    return module.SwinTransformerV2(
        img_size=size.img_size, patch_size=size.patch_size, embed_dim=size.embed_dim, depths=tuple(size.depths),
        num_heads=tuple(size.num_heads), window_size=size.window_size, num_classes=size.num_classes,
        drop_path_rate=DROP_PATH_RATE)


def swin_state_from_file(path: Path, model: nn.Module) -> Dict[str, torch.Tensor]:
    """A Swin-V2 state dict read from ``path`` in the model's (timm >= 0.9) layout (0.6 files re-keyed)."""
    if not path.is_file():
        raise UserError(f"Swin-V2 checkpoint {path} not found: pass the local in-22k weights file "
                        f"(timm 'swinv2_large_window12_192.ms_in22k', or the released 0.6-layout .pth)")
    raw = ckpt.read_state_dict(path)
    if isinstance(raw, dict) and isinstance(raw.get("model"), dict):  # the Microsoft / released .pth layout
        raw = raw["model"]
    raw = ckpt.unwrap_state_dict(raw, path)
    raw = ckpt.strip_prefix(raw, "module.")
    return timm_swinv2().checkpoint_filter_fn(raw, model)


class SwinVisual(FrozenTower):
    """Swin-V2 pieces for the paired forward: ``embed`` -> per stage ``merge`` and blocks -> ``final_norm``."""

    def __init__(self, size: SwinSize, weights: Optional[str] = None):
        super().__init__()
        self.size = size
        self.swin = build_swin_model(size)
        if weights:
            path = Path(weights).expanduser()
            ckpt.load_strict(self.swin, swin_state_from_file(path, self.swin), path, "Swin-V2")
        self.grids = size.grids
        self.dims = size.dims
        self.depths = tuple(size.depths)
        self.freeze()

    @property
    def stages(self):
        return self.swin.layers

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised frames -> (N, L, C) patch tokens of stage 1."""
        x = self.swin.patch_embed(images)  # (N, H, W, C)
        return x.flatten(1, 2)

    def _grid(self, x: torch.Tensor, stage: int) -> torch.Tensor:
        g = self.grids[stage]
        return x.view(x.shape[0], g, g, x.shape[-1])

    def merge(self, stage: int, x: torch.Tensor) -> torch.Tensor:
        """Patch merging into ``stage`` (>= 1) from the previous stage's (N, L, C) output."""
        if stage == 0:
            return x
        return self.stages[stage].downsample(self._grid(x, stage - 1)).flatten(1, 2)

    def attention_part(self, stage: int, block: int, x: torch.Tensor) -> torch.Tensor:
        """LN(window attention(x)) of one block: the first residual branch, (N, L, C)."""
        blk = self.stages[stage].blocks[block]
        out = blk.norm1(blk._attn(self._grid(x, stage)))
        return blk.drop_path1(out).flatten(1, 2)

    def mlp_part(self, stage: int, block: int, x: torch.Tensor) -> torch.Tensor:
        """LN(mlp(x)) of one block: the second residual branch, (N, L, C)."""
        blk = self.stages[stage].blocks[block]
        return blk.drop_path2(blk.norm2(blk.mlp(x)))

    def block(self, stage: int, block: int, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention_part(stage, block, x)
        return x + self.mlp_part(stage, block, x)

    def final_norm(self, x: torch.Tensor) -> torch.Tensor:
        return self.swin.norm(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The unadapted tower: (N, 3, H, W) -> final-normed last-stage tokens (N, L, C)."""
        x = self.embed(images)
        for s, depth in enumerate(self.depths):
            x = self.merge(s, x)
            for j in range(depth):
                x = self.block(s, j, x)
        return self.final_norm(x)
