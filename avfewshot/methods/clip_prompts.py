"""CoOp / MaPLe context for CLIP's text tower (``ClipTextTower``); the shared assembly is in text_prompts.py.

The sequence is BOS=49406 ... EOT=49407 then zeros; the feature is read at the EOT row (as
``ClipTextTower.encode_embeddings`` does). The EOT index of the assembled ids stays valid since the sequence
length never changes. With ``truncate=True`` the tower sees the longest EOT index + 1 positions, which is
exact because the attention mask is causal.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..encoders.clip_blocks import block_forward, transformer_forward
from .text_prompts import TextPromptLearner, place


class ClipPromptLearner(TextPromptLearner):
    """CoOp context in CLIP's token-embedding space (``ClipTextTower``)."""

    branch = "clip"
    name_prefix = ""

    def embedding_table(self) -> nn.Embedding:
        return self.tower.token_embedding

    def encode_text(self, text: str) -> List[int]:
        return list(self.tower.tokenizer.encode(text))

    def special_ids(self) -> Tuple[int, int, int]:
        tok = self.tower.tokenizer
        return tok.sot_token_id, tok.eot_token_id, 0

    def context_length(self) -> int:
        return self.tower.context_length

    def encode_rows(self, embeds: torch.Tensor, rows: torch.Tensor, deep: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
        """Causal transformer over the assembled embeddings; MaPLe ``deep[i-1]`` (n, W) overwrites the
        first n context slots before layer i (no positional embedding is added to them)."""
        tower = self.tower
        eot = self.lengths[rows] - 1
        length = self.max_length()
        x = embeds[:, :length] + tower.positional_embedding[:length].to(embeds.dtype)
        mask = tower.attn_mask[:length, :length] if tower.attn_mask is not None else None
        if not deep:
            x = transformer_forward(tower.transformer, x, mask)
        else:
            slots = None
            for i, block in enumerate(tower.transformer.resblocks):
                if 1 <= i <= len(deep):
                    if slots is None:
                        slots = self.deep_slots(rows, deep[0].shape[0])
                    x = place(x, slots, deep[i - 1])
                x = block_forward(block, x, mask)
        x = tower.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot]
        if isinstance(tower.text_projection, nn.Linear):
            return tower.text_projection(x)
        return x @ tower.text_projection
