"""The four frozen towers behind every method, built from a ``ModelConfig``."""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Dict, Optional, Union

import torch
from torch import nn

from ..errors import UserError
from .clap_towers import AudioTower, ClapTextTower, build_clap_model
from .clip_towers import ClipTextTower, ImageTower, build_clip_model
from .config import ModelConfig
from .frozen import RANDOM_INIT_SEED
from .tokenizers import build_clap_tokenizer

log = logging.getLogger("avfewshot")
TOWERS = ("image", "clip_text", "audio", "clap_text")


class Backbone(nn.Module):
    """CLIP image/text + CLAP audio/text, frozen; ``train()`` never leaves eval mode."""

    def __init__(self, cfg: ModelConfig, image: ImageTower, clip_text: ClipTextTower, audio: AudioTower,
                 clap_text: ClapTextTower, clip_logit_scale: torch.Tensor, clap_logit_scale: torch.Tensor,
                 identities: Dict[str, str]):
        super().__init__()
        self.cfg = cfg
        self.image = image
        self.clip_text = clip_text
        self.audio = audio
        self.clap_text = clap_text
        self.clip_logit_scale = nn.Parameter(clip_logit_scale.detach().clone(), requires_grad=False)
        self.clap_logit_scale = nn.Parameter(clap_logit_scale.detach().clone(), requires_grad=False)
        self._identities = identities
        super().train(False)

    def train(self, mode: bool = True) -> "Backbone":  # noqa: ARG002
        return super().train(False)

    # -- what the data layer needs ----------------------------------------------------------
    @property
    def image_size(self) -> int:
        return self.image.image_size

    @property
    def audio_rate(self) -> int:
        return self.audio.sample_rate

    @property
    def image_mean(self):
        return self.image.image_mean

    @property
    def image_std(self):
        return self.image.image_std

    def fingerprint(self, tower: str) -> str:
        """Covers architecture, weights and preprocessing: a cache key for the tower's outputs."""
        if tower not in TOWERS:
            raise KeyError(f"unknown tower {tower!r}; valid towers: {', '.join(TOWERS)}")
        return self._identities[tower]

    def describe(self) -> str:
        return "; ".join(f"{t}: {self._identities[t]}" for t in TOWERS)


def _as_config(cfg: Union[ModelConfig, Any, None], overrides: Dict[str, Any]) -> ModelConfig:
    """Accept this package's ModelConfig, any dataclass/object with the same fields, or keywords."""
    names = [f.name for f in dataclasses.fields(ModelConfig)]
    values: Dict[str, Any] = {}
    if cfg is not None:
        for name in names:
            if hasattr(cfg, name):
                values[name] = getattr(cfg, name)
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise UserError(f"unknown model setting(s) {', '.join(unknown)}; valid: {', '.join(names)}")
    values.update(overrides)
    return ModelConfig(**values)


def build_backbone(cfg: Optional[Union[ModelConfig, Any]] = None, placeholder_tokenizer: bool = False,
                   **overrides: Any) -> Backbone:
    """Build the frozen towers. Missing weights raise ``MissingCheckpointError`` before anything heavy runs.

    ``placeholder_tokenizer``: for parameter counting only (``avfewshot params``): the CLAP text
    tower gets stand-in ids instead of needing the RoBERTa vocabulary files.
    """
    cfg = _as_config(cfg, overrides)
    from . import checkpoints as ckpt
    from . import specs

    from .demo_towers import ensure_demo_towers, needs_demo_towers

    if needs_demo_towers(cfg.clip_weights, cfg.clap_weights, cfg.clip_arch):
        ensure_demo_towers()  # the demo's pretrained towers: built into the cache on first use
    # resolve every file first, so a missing checkpoint fails within seconds
    ckpt.resolve_clip_weights(cfg.clip_arch, cfg.clip_weights)
    ckpt.resolve_clap_weights(cfg.clap_weights)
    clap_arch = specs.clap_arch(cfg.clap_arch)
    specs.resolve_frontend(cfg.audio_frontend, clap_arch)
    tokenizer = build_clap_tokenizer(clap_arch.text, cfg.clap_tokenizer, placeholder=placeholder_tokenizer)

    clip_model, clip_weights, quick_gelu = build_clip_model(cfg.clip_arch, cfg.clip_weights)
    clap = build_clap_model(cfg.clap_arch, cfg.clap_weights, cfg.audio_frontend)
    image = ImageTower(clip_model, cfg.image_norm)
    clip_text = ClipTextTower(clip_model)
    audio = AudioTower(clap)
    clap_text = ClapTextTower(clap, tokenizer)

    def weights_id(resolved) -> str:
        if resolved.random:
            return f"random-init(seed={RANDOM_INIT_SEED},torch={torch.__version__})"
        return resolved.identity()

    clip_id = f"clip={cfg.clip_arch}|quick_gelu={quick_gelu}|weights={weights_id(clip_weights)}"
    clap_id = f"clap={cfg.clap_arch}|weights={weights_id(clap.weights)}"
    fe = clap.frontend
    identities = {
        "image": f"{clip_id}|image_size={image.image_size}|norm={cfg.image_norm}",
        "clip_text": f"{clip_id}|tokenizer=open_clip-bpe|ctx={clip_text.context_length}",
        "audio": f"{clap_id}|frontend={fe.name}:{fe.describe()}|mel_scale={clap.mel_scale}",
        "clap_text": f"{clap_id}|tokenizer={tokenizer.digest()}|ctx={clap_text.context_length}",
    }
    backbone = Backbone(cfg, image, clip_text, audio, clap_text, clip_model.logit_scale,
                        clap.model.logit_scale_a, identities)
    log.info("encoders: %s", backbone.describe())
    return backbone
