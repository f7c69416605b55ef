"""Learnable text prompts for the frozen CLIP and CLAP text towers, the CoCoOp meta-net and the CLIP-Adapter.

Shared by the baselines (CoOp, CoCoOp, CLIP-Adapter, MaPLe) and DG-SCT. Everything is fp32.

Prompt assembly (CoOp, Zhou et al. 2022). For every class the token sequence is

    end:    [BOS] [ctx_1 .. ctx_M] [fixed words] [name tokens] [tail] [EOS] [pad ...]
    middle: [BOS] [ctx_1 .. ctx_M/2] [name tokens] [ctx_M/2+1 .. ctx_M] [tail] [EOS] [pad ...]
    front:  [BOS] [name tokens] [ctx_1 .. ctx_M] [tail] [EOS] [pad ...]

where ``tail`` is what follows ``{}`` in the branch's template ("." for "a photo of a {}.", nothing for
"The sounds of {}"), and ``fixed words`` are the words of ``ctx_init`` beyond the first ``n_ctx`` tokens
(MaPLe keeps "of a" fixed after two learned tokens initialised from "a photo"). The frozen token
embeddings of this sequence are computed once (non-persistent buffers, so checkpoints hold only the
learned tensors and survive a change of class names); every forward scatters the context vectors into
their slots and runs the text tower on the embeddings.

- CLIP: the sequence is BOS=49406 ... EOT=49407 then zeros; the feature is read at the EOT row
  (``ClipTextTower.encode_embeddings``). The EOT index of the assembled ids stays valid since the
  sequence length never changes.
- CLAP (RoBERTa): ``<s>`` ... ``</s>`` then ``<pad>``, with an attention mask; the tower pools at
  ``<s>`` (position 0) and uses explicit position ids = cumsum(mask) + pad, so there is no EOT
  bookkeeping. Name tokens are the BPE of " " + name (what follows a word in the literal prompt).

``ctx_init`` = a phrase initialises the context from the phrase's token embeddings and (with
``n_ctx=None``) sets M to its token count, so a learner initialised from the template's own words
reproduces the literal prompt exactly. ``ctx_init`` = None / "" draws N(0, 0.02^2) (CoOp's default).

``truncate=True`` runs the text tower only on the first ``max real length`` positions (CLIP: the
longest EOT index + 1, exact because the mask is causal; RoBERTa: the longest attention mask,
exact up to float rounding because padded positions are masked out).
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import prompts
from ..encoders.clip_blocks import block_forward, transformer_forward
from ..engine.precision import autocast_disabled
from ..errors import UserError

log = logging.getLogger("avfewshot")

CLASS_TOKEN_POSITIONS = ("end", "middle", "front")


# -- templates --------------------------------------------------------------------------------
def branch_template(branch: str, template: Optional[str] = None, name_style: Optional[str] = None) -> Tuple[str, str]:
    """(template, name style) for "clip" or "clap": explicit values, else prompts/templates.yaml."""
    spec = prompts.templates()[branch]
    template = template or spec["template"]
    if "{}" not in template:
        raise UserError(f"prompt template {template!r} must contain '{{}}' where the class name goes")
    return template, name_style or spec.get("name_style", "spaces")


def template_prefix(template: str) -> str:
    """The words before the class name: "a photo of a {}." -> "a photo of a"."""
    return template[: template.index("{}")].strip()


def cosine_logits(features: torch.Tensor, text: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """scale * cos. features (..., D) with text (C, D) -> (..., C); with per-sample text (N, C, D) and
    features (N, D) -> (N, C). Always fp32, under autocast too: the scale (~100) multiplies the
    rounding of low-precision cosines, and the product is small."""
    scale = scale.float() if isinstance(scale, torch.Tensor) else scale
    with autocast_disabled(features.device.type):
        features = F.normalize(features.float(), dim=-1)
        text = F.normalize(text.float(), dim=-1)
        if text.dim() == 2:
            return scale * features @ text.t()
        return scale * torch.einsum("nd,ncd->nc", features, text)


# -- small learnable modules ------------------------------------------------------------------
class MetaNet(nn.Module):
    """CoCoOp's meta-net: Linear(in -> in/16) + ReLU + Linear(-> out), both with bias."""

    def __init__(self, in_dim: int, out_dim: int, hidden: Optional[int] = None):
        super().__init__()
        hidden = hidden or max(1, in_dim // 16)
        self.linear1 = nn.Linear(in_dim, hidden)
        self.relu = nn.ReLU()
        self.linear2 = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.relu(self.linear1(x)))


class ClipAdapter(nn.Module):
    """CLIP-Adapter: A(f) = ReLU(W2 ReLU(W1 f)), bias-free, d -> d/reduction -> d.

    ``forward(f)`` = ratio * A(f) + (1 - ratio) * f (the residual mix, not normalised);
    ``residual(f)`` = A(f) alone (for callers that mix differently, as DG-SCT's released code does).
    """

    def __init__(self, dim: int, reduction: int = 4, ratio: float = 0.2):
        super().__init__()
        if reduction < 1 or dim % reduction:
            raise UserError(f"CLIP-Adapter reduction {reduction} must divide the feature width {dim}")
        if not 0.0 <= ratio <= 1.0:
            raise UserError(f"CLIP-Adapter ratio {ratio} must lie in [0, 1]")
        self.ratio = float(ratio)
        self.fc = nn.Sequential(
            nn.Linear(dim, dim // reduction, bias=False),
            nn.ReLU(),
            nn.Linear(dim // reduction, dim, bias=False),
            nn.ReLU(),
        )

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.ratio == 0.0:
            return x
        return self.ratio * self.fc(x) + (1.0 - self.ratio) * x


# -- prompt layout ----------------------------------------------------------------------------
def _layout(
    names: Sequence[str],
    tail: str,
    encode,
    n_ctx: int,
    fixed: List[int],
    position: str,
    bos: int,
    eos: int,
    pad: int,
    context_length: int,
    name_prefix: str,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids (C, L) with ``pad`` in the context slots, ctx slot positions (C, M), real lengths (C,))."""
    ids = torch.full((len(names), context_length), pad, dtype=torch.long)
    slots = torch.zeros((len(names), n_ctx), dtype=torch.long)
    lengths = torch.zeros(len(names), dtype=torch.long)
    for c, name in enumerate(names):
        # name and tail are tokenised together, as in the literal prompt ("food)." is one BPE piece
        # more than "food)" + "."); 'middle' / 'front' split them after the name's own token count
        class_ids = encode(name_prefix + name + tail)
        split = len(encode(name_prefix + name))
        name_ids, tail_ids = class_ids[:split], class_ids[split:]
        if position == "end":
            body = [None] * n_ctx + fixed + name_ids
        elif position == "middle":
            half = n_ctx // 2
            body = [None] * half + name_ids + [None] * (n_ctx - half)
        else:  # front
            body = name_ids + [None] * n_ctx
        seq = [bos] + body + tail_ids + [eos]
        if len(seq) > context_length:
            raise UserError(f"the prompt for class {name!r} needs {len(seq)} tokens, more than the text tower's "
                            f"{context_length}: use fewer context tokens or a shorter class name")
        ctx_slots = [i for i, tok in enumerate(seq) if tok is None]
        ids[c, : len(seq)] = torch.tensor([pad if tok is None else tok for tok in seq])
        slots[c] = torch.tensor(ctx_slots, dtype=torch.long)
        lengths[c] = len(seq)
    return ids, slots, lengths


def place(x: torch.Tensor, slots: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Write ``values`` into the token slots of ``x`` (a new tensor; ``x`` is untouched).

    x (..., R, L, W); slots (R, M); values broadcastable to (..., R, M, W).
    """
    shape = (*x.shape[:-2], slots.shape[1], x.shape[-1])
    index = slots.unsqueeze(-1).expand(shape)
    return x.scatter(-2, index, values.to(x.dtype).expand(shape))


class TextPromptLearner(nn.Module):
    """Learnable context for a frozen text tower (see the module docstring). Subclasses add the tower.

    Attributes: ``ctx`` (M, W) or (C, M, W) with ``csc``; ``n_ctx``; buffers ``ids`` (C, L),
    ``token_embeds`` (C, L, W), ``ctx_slots`` (C, M), ``lengths`` (C,).
    ``forward(ctx_shift=None, deep=None) -> (C, D)`` text features; with ``ctx_shift`` (N, W) (CoCoOp)
    every sample gets its own prompts and the result is (N, C, D).
    """

    branch = ""
    name_prefix = ""

    def __init__(
        self,
        tower,
        class_names: Sequence[str],
        *,
        template: Optional[str] = None,
        name_style: Optional[str] = None,
        n_ctx: Optional[int] = 16,
        ctx_init: Optional[str] = None,
        class_token_position: str = "end",
        csc: bool = False,
        truncate: bool = False,
        chunk_size: int = 0,
    ):
        super().__init__()
        if class_token_position not in CLASS_TOKEN_POSITIONS:
            raise UserError(f"unknown class_token_position {class_token_position!r}; valid: {', '.join(CLASS_TOKEN_POSITIONS)}")
        object.__setattr__(self, "tower", tower)  # not a submodule: the frozen tower belongs to the backbone
        template, name_style = branch_template(self.branch, template, name_style)
        self.template = template
        self.class_names = list(class_names)
        names = [prompts.style_name(n, name_style) for n in class_names]
        tail = template[template.index("{}") + 2:]
        self.truncate = bool(truncate)
        self.chunk_size = int(chunk_size)
        self.class_token_position = class_token_position

        width = self.embedding_table().weight.shape[1]
        init_ids = self.encode_text(ctx_init.strip()) if ctx_init and ctx_init.strip() else []
        if init_ids:
            if n_ctx is None or n_ctx <= 0:
                n_ctx = len(init_ids)
            if n_ctx > len(init_ids):
                raise UserError(f"n_ctx={n_ctx} is longer than ctx_init {ctx_init!r} ({len(init_ids)} tokens)")
            if csc:
                log.warning("ctx_init %r given: class-specific context is ignored (as in the official CoOp)", ctx_init)
                csc = False
        elif n_ctx is None or n_ctx <= 0:
            raise UserError("n_ctx must be a positive number of context tokens when ctx_init is empty")
        fixed = init_ids[n_ctx:]
        if fixed and class_token_position != "end":
            raise UserError(f"a ctx_init longer than n_ctx keeps the extra words fixed before the class name; "
                            f"that needs class_token_position=end, not {class_token_position!r}")
        self.n_ctx = int(n_ctx)
        self.csc = bool(csc)
        self.ctx_init = ctx_init or ""

        ids, slots, lengths = _layout(names, tail, self.encode_text, self.n_ctx, fixed, class_token_position,
                                      *self.special_ids(), self.context_length(), self.name_prefix)
        with torch.no_grad():
            embeds = self.embedding_table()(ids).float()
            if init_ids:
                init = self.embedding_table()(torch.tensor(init_ids[: self.n_ctx])).float().clone()
            elif self.csc:
                init = torch.empty(len(names), self.n_ctx, width).normal_(std=0.02)
            else:
                init = torch.empty(self.n_ctx, width).normal_(std=0.02)
        self.ctx = nn.Parameter(init)
        self.register_buffer("ids", ids, persistent=False)
        self.register_buffer("token_embeds", embeds, persistent=False)
        self.register_buffer("ctx_slots", slots, persistent=False)
        self.register_buffer("lengths", lengths, persistent=False)

    # -- what subclasses provide --------------------------------------------------------------
    def embedding_table(self) -> nn.Embedding:
        raise NotImplementedError

    def encode_text(self, text: str) -> List[int]:
        raise NotImplementedError

    def special_ids(self) -> Tuple[int, int, int]:
        """(bos, eos, pad)."""
        raise NotImplementedError

    def context_length(self) -> int:
        raise NotImplementedError

    # -- assembly -----------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self.ids.shape[0]

    @property
    def width(self) -> int:
        return self.token_embeds.shape[-1]

    def max_length(self) -> int:
        """Positions the text tower must see (the longest real prompt) when truncating."""
        return int(self.lengths.max()) if self.truncate else self.ids.shape[1]

    def context(self, ctx_shift: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(C, M, W), or (N, C, M, W) with a per-sample shift (N, W) added to every context token."""
        ctx = self.ctx if self.ctx.dim() == 3 else self.ctx.unsqueeze(0).expand(self.num_classes, -1, -1)
        if ctx_shift is None:
            return ctx
        return ctx.unsqueeze(0) + ctx_shift[:, None, None, :]

    def prompt_embeddings(self, ctx_shift: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(C, L, W) or (N, C, L, W) token embeddings with the context in place (no positions yet);
        L = ``max_length()`` (the context slots always lie inside the real prompt)."""
        base = self.token_embeds[:, : self.max_length()]
        ctx = self.context(ctx_shift)
        if ctx.dim() == 4:
            base = base.unsqueeze(0).expand(ctx.shape[0], -1, -1, -1)
        return place(base, self.ctx_slots, ctx)

    def forward(self, ctx_shift: Optional[torch.Tensor] = None, deep: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
        embeds = self.prompt_embeddings(ctx_shift)
        if embeds.dim() == 3:
            return self.encode(embeds, deep)
        # per-sample prompts: N * C sequences, in chunks of chunk_size when no gradient is needed
        n, c = embeds.shape[:2]
        flat = embeds.reshape(n * c, *embeds.shape[2:])
        rows = torch.arange(c, device=flat.device).repeat(n)
        step = self.chunk_size if (self.chunk_size > 0 and not torch.is_grad_enabled()) else flat.shape[0]
        outs = [self.encode_rows(flat[i: i + step], rows[i: i + step], deep) for i in range(0, flat.shape[0], step)]
        return torch.cat(outs).view(n, c, -1)

    def encode(self, embeds: torch.Tensor, deep: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
        """(C, L, W) assembled embeddings, one row per class -> (C, D) text features."""
        rows = torch.arange(embeds.shape[0], device=embeds.device)
        return self.encode_rows(embeds, rows, deep)

    def encode_rows(self, embeds: torch.Tensor, rows: torch.Tensor, deep: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
        """Encode (R, L, W) embeddings whose token ids are ``self.ids[rows]`` -> (R, D)."""
        raise NotImplementedError

    def deep_slots(self, rows: torch.Tensor, n: int) -> torch.Tensor:
        """Positions overwritten by deep prompts of ``n`` tokens: the first ``n`` context slots."""
        if n > self.n_ctx:
            raise UserError(f"deep prompts of {n} tokens do not fit {self.n_ctx} context slots")
        return self.ctx_slots[rows, :n]


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


def count_parameters(module: Optional[nn.Module]) -> int:
    """Trainable parameters of a module (0 for None)."""
    if module is None:
        return 0
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
