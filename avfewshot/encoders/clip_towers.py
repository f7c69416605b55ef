"""CLIP image and text towers (open_clip 3.x model code), built from an architecture config."""
from __future__ import annotations

import logging
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from ..errors import UserError
from ..precision import to_autocast_dtype
from . import checkpoints as ckpt
from . import specs
from .clip_activation import OPENAI_METADATA_KEYS, choose_quick_gelu
from .clip_blocks import block_forward, self_attention, transformer_forward
from .frozen import FrozenTower, low_precision_compute, seeded_init, skip_weight_init
from .tokenizers import ClipTokenizer

log = logging.getLogger("avfewshot")

IMAGE_NORMS: Dict[str, Tuple[Tuple[float, ...], Tuple[float, ...]]] = {
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def build_clip_model(arch_name: str, weights: Optional[str], activation: str = "auto", trust_torchscript: bool = False):
    """(open_clip CLIP model in eval mode, ResolvedWeights, quick_gelu used).

    ``activation``: ``auto`` decides QuickGELU from the weights (``clip_activation.choose_quick_gelu``:
    OpenAI weights get it; a file of unknown provenance for an architecture with OpenAI weights is refused),
    ``quickgelu`` / ``gelu`` force one. ``trust_torchscript``: load a TorchScript archive whose digest is not
    a published one (``checkpoints.read_state_dict``).
    """
    from open_clip.model import CLIP

    arch = specs.clip_arch(arch_name)
    resolved = ckpt.resolve_clip_weights(arch_name, weights)
    cfg = arch.model_cfg()
    if cfg.pop("custom_text", False) or "hf_model_name" in cfg.get("text_cfg", {}) or "timm_model_name" in cfg.get("vision_cfg", {}):
        raise UserError(f"CLIP architecture {arch_name!r}: only open_clip's built-in ViT + text transformer is supported")
    state, keys, is_openai_jit = None, (), False
    if resolved.path is not None:
        state, keys, is_openai_jit = _read_clip_state(resolved.path, trust_torchscript)
    cfg["quick_gelu"] = choose_quick_gelu(arch_name, activation, resolved, keys, is_openai_jit)
    with seeded_init() if state is None else skip_weight_init():
        model = CLIP(**cfg)
    if state is not None:
        ckpt.load_strict(model, state, resolved.path, f"CLIP {arch_name}")
    model.float()
    return model.eval(), resolved, bool(cfg["quick_gelu"])


def _read_clip_state(path, trust_torchscript: bool = False) -> Tuple[Dict[str, torch.Tensor], Tuple[str, ...], bool]:
    """(state dict without OpenAI's metadata entries, the file's own keys, is a TorchScript archive)."""
    is_jit = ckpt.is_torchscript_archive(path)
    obj = ckpt.read_state_dict(path, trust_torchscript)
    state = ckpt.strip_prefix(ckpt.unwrap_state_dict(obj, path), "module.")
    keys = tuple(state)
    for key in OPENAI_METADATA_KEYS:
        state.pop(key, None)
    return state, keys, is_jit


class ImageTower(FrozenTower):
    """open_clip ViT. ``embed`` -> ``blocks[i]`` -> ``head`` equals ``forward`` exactly."""

    def __init__(self, model, image_norm: str = "clip"):
        super().__init__()
        visual = model.visual
        if not hasattr(visual, "transformer") or not hasattr(visual, "_embeds"):
            raise UserError("the CLIP image tower must be an open_clip VisionTransformer")
        self.visual = visual
        self.blocks = visual.transformer.resblocks
        self.batch_first = getattr(visual.transformer, "batch_first", True)
        if not self.batch_first:
            raise UserError("open_clip transformer with batch_first=False is not supported (needs open_clip >= 3)")
        size = visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.width = int(visual.transformer.width)
        self.output_dim = int(visual.output_dim)
        if image_norm not in IMAGE_NORMS:
            raise UserError(f"unknown image_norm {image_norm!r}; valid: {', '.join(IMAGE_NORMS)}")
        self.image_norm = image_norm
        self.image_mean, self.image_std = IMAGE_NORMS[image_norm]
        self.freeze()

    @property
    def num_tokens(self) -> int:
        return int(self.visual.positional_embedding.shape[0])

    def extra_matmul_weights(self):
        return [self.visual.proj] if isinstance(self.visual.proj, nn.Parameter) else []

    @low_precision_compute
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised images -> (N, L, W) tokens after ln_pre (class token first), in
        ``stream_dtype`` (fp32, or bf16 with bf16 weights)."""
        return self.visual._embeds(images).to(self.stream_dtype)

    @low_precision_compute
    def attention_part(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Residual branch of block i's attention sub-layer: x + attention_part(i, x) is its output."""
        block = self.blocks[i]
        return block.ls_1(self_attention(block, block.ln_1(to_autocast_dtype(x))))

    @low_precision_compute
    def mlp_part(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Residual branch of block i's MLP sub-layer: x + mlp_part(i, x) is its output."""
        block = self.blocks[i]
        return block.ls_2(block.mlp(block.ln_2(to_autocast_dtype(x))))

    @low_precision_compute
    def head(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, L, W) final tokens -> (N, D) fp32: ln_post on the class token, then the projection."""
        pooled, _ = self.visual._pool(tokens)
        return (pooled @ self.visual.proj if self.visual.proj is not None else pooled).float()

    @low_precision_compute
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.embed(images)
        for block in self.blocks:
            x = block_forward(block, x)
        return self.head(x)


class ClipTextTower(FrozenTower):
    """open_clip causal text transformer; features at the EOT token (the largest id)."""

    def __init__(self, model):
        super().__init__()
        if getattr(model, "text_pool_type", "argmax") != "argmax":
            raise UserError("only CLIP text towers pooled at the EOT token (argmax) are supported")
        self.token_embedding = model.token_embedding
        self.positional_embedding = model.positional_embedding
        self.transformer = model.transformer
        self.ln_final = model.ln_final
        self.text_projection = model.text_projection
        self.register_buffer("attn_mask", model.attn_mask, persistent=False)
        self.context_length = int(model.context_length)
        self.width = int(model.transformer.width)
        self._tokenizer: Optional[ClipTokenizer] = None
        self.freeze()

    @property
    def tokenizer(self) -> ClipTokenizer:
        if self._tokenizer is None:
            self._tokenizer = ClipTokenizer(self.context_length)
        return self._tokenizer

    def tokenize(self, texts) -> torch.Tensor:
        """list[str] -> (C, context_length) int64, <start> ... <end> then zeros."""
        return self.tokenizer(list(texts))

    def extra_matmul_weights(self):
        return [self.text_projection] if isinstance(self.text_projection, nn.Parameter) else []

    @low_precision_compute
    def encode_embeddings(self, x: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:
        """(C, ctx, W) token embeddings (no positions yet) + (C,) EOT positions -> (C, D) fp32."""
        x = x.float() + self.positional_embedding.float()
        x = transformer_forward(self.transformer, x, self.attn_mask)
        x = self.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot_index]
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(x).float()
        return (x @ self.text_projection).float()

    @low_precision_compute
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.encode_embeddings(self.token_embedding(ids), ids.argmax(dim=-1))
