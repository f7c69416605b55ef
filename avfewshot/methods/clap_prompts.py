"""CoOp / MaPLe context for CLAP's RoBERTa text tower (``ClapTextTower``); the shared assembly is in
text_prompts.py.

The sequence is ``<s>`` ... ``</s>`` then ``<pad>``, with an attention mask; the tower pools at ``<s>``
(position 0) and uses explicit position ids = cumsum(mask) + pad, so there is no EOT bookkeeping. Name tokens
are the BPE of " " + name (what follows a word in the literal prompt). With ``truncate=True`` the tower sees
the longest attention mask, exact up to float rounding because padded positions are masked out. MaPLe's deep
prompts enter through forward pre-hooks on the RoBERTa layers (``overwrite_layer_inputs``).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..errors import UserError
from .text_prompts import TextPromptLearner, place


class ClapPromptLearner(TextPromptLearner):
    """CoOp context in RoBERTa's word-embedding space (``ClapTextTower``), pooled at ``<s>``."""

    branch = "clap"
    name_prefix = " "  # byte-level BPE: a word after another word carries its leading space

    def embedding_table(self) -> nn.Embedding:
        return self.tower.word_embeddings

    def encode_text(self, text: str) -> List[int]:
        return list(self.tower.tokenizer.encode(text))

    def special_ids(self) -> Tuple[int, int, int]:
        tok = self.tower.tokenizer
        return tok.bos_token_id, tok.eos_token_id, tok.pad_token_id

    def context_length(self) -> int:
        return self.tower.context_length

    def attention_mask(self, rows: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(self.ids.shape[1], device=rows.device)
        return (positions[None, :] < self.lengths[rows, None]).long()

    def encode_rows(self, embeds: torch.Tensor, rows: torch.Tensor, deep: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
        """RoBERTa over the embeddings; MaPLe ``deep[i-1]`` (n, W) overwrites the first n context
        slots of the hidden states entering layer i."""
        length = self.max_length()
        mask = self.attention_mask(rows)[:, :length]
        embeds = embeds[:, :length]
        if not deep:
            return self.tower.encode_embeddings(embeds, mask)
        slots = self.deep_slots(rows, deep[0].shape[0])
        with overwrite_layer_inputs(self.tower.text_branch.encoder.layer, slots, deep):
            return self.tower.encode_embeddings(embeds, mask)


@contextmanager
def overwrite_layer_inputs(layers: nn.ModuleList, slots: torch.Tensor, deep: Sequence[torch.Tensor]) -> Iterator[None]:
    """While active, layer i (1 <= i <= len(deep)) receives hidden states whose ``slots`` hold ``deep[i-1]``.

    Forward pre-hooks on the layers, so the tower's own forward (masks, position ids) runs unchanged.
    """
    handles = []

    def hook_for(values: torch.Tensor):
        def hook(module, args, kwargs):
            hidden = place(args[0], slots, values)
            return (hidden, *args[1:]), kwargs

        return hook

    try:
        for i, values in enumerate(deep, start=1):
            if i >= len(layers):
                raise UserError(f"{len(deep) + 1} prompt depths do not fit a text tower of {len(layers)} layers")
            handles.append(layers[i].register_forward_pre_hook(hook_for(values), with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()
