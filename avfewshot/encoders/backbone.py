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
from .config import FROZEN_TOWER_MODES, ModelConfig
from .frozen import RANDOM_INIT_SEED, store_weights_in
from .tokenizers import build_clap_tokenizer

log = logging.getLogger("avfewshot")
TOWERS = ("image", "clip_text", "audio", "clap_text")


class Backbone(nn.Module):
    """CLIP image/text + CLAP audio/text, frozen; ``train()`` never leaves eval mode, except for the CLAP
    towers under ``frozen_towers="released"`` (see ``ModelConfig``)."""

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
        self.frozen_towers = cfg.frozen_towers
        if self.frozen_towers not in FROZEN_TOWER_MODES:
            raise UserError(f"unknown model.frozen_towers {self.frozen_towers!r}; valid: {', '.join(FROZEN_TOWER_MODES)}")
        for tower in self.released_towers():
            tower.follows_train_mode = True
        # the statistics a training-mode tower updates (HTS-AT's bn0), as built: runs restart from them
        self._initial_statistics = {id(m): (m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
                                    for m in self.tower_batch_norms()}
        super().train(False)

    def train(self, mode: bool = True) -> "Backbone":
        super().train(False)
        for tower in self.released_towers():
            tower.train(mode)
        return self

    # -- the released code's training-mode towers (model.frozen_towers=released) ----------------
    def released_towers(self):
        """The towers the released DG-SCT code leaves in training mode (HTS-AT, RoBERTa), if that mode is on."""
        return [self.audio, self.clap_text] if self.frozen_towers == "released" else []

    def tower_batch_norms(self):
        """BatchNorms with running statistics in the released-mode towers (HTS-AT's ``bn0``)."""
        from torch.nn.modules.batchnorm import _BatchNorm

        return [m for tower in self.released_towers() for m in tower.modules()
                if isinstance(m, _BatchNorm) and m.track_running_stats]

    def reset_tower_statistics(self) -> None:
        """Put the released-mode towers' running statistics back to the built values (a new run starts here)."""
        with torch.no_grad():
            for m in self.tower_batch_norms():
                mean, var, count = self._initial_statistics[id(m)]
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)

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


FROZEN_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def build_backbone(cfg: Optional[Union[ModelConfig, Any]] = None, placeholder_tokenizer: bool = False,
                   device: Optional[Union[str, torch.device]] = None, **overrides: Any) -> Backbone:
    """Build the frozen towers. Missing weights raise ``MissingCheckpointError`` before anything heavy runs.

    ``placeholder_tokenizer``: for parameter counting only (``avfewshot params``): the CLAP text
    tower gets stand-in ids instead of needing the RoBERTa vocabulary files.
    ``device``: where the towers live; ``"meta"`` builds shapes only (no memory, no weights read:
    parameter counts), any other device builds on the CPU and moves there.
    ``cfg.frozen_dtype`` bf16 / fp16 stores the towers' matmul weights in that dtype
    (``frozen.store_weights_in``: norms, the audio front end and the logit scales stay fp32).
    """
    cfg = _as_config(cfg, overrides)
    if cfg.frozen_dtype not in FROZEN_DTYPES:
        raise UserError(f"model.frozen_dtype={cfg.frozen_dtype!r}; valid: {', '.join(FROZEN_DTYPES)}")
    if device is not None and torch.device(device).type == "meta":
        from .clap_import import import_clap_module
        from .frozen import parameters_on_meta

        import_clap_module()
        with parameters_on_meta():
            return _build_backbone(cfg, placeholder_tokenizer).to("meta")
    backbone = _build_backbone(cfg, placeholder_tokenizer)
    return backbone if device is None else backbone.to(device)


def _build_backbone(cfg: ModelConfig, placeholder_tokenizer: bool) -> Backbone:
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

    clip_model, clip_weights, quick_gelu = build_clip_model(cfg.clip_arch, cfg.clip_weights, cfg.clip_activation,
                                                            cfg.trust_torchscript)
    clap = build_clap_model(cfg.clap_arch, cfg.clap_weights, cfg.audio_frontend, cfg.trust_torchscript)
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
    dtype = FROZEN_DTYPES[cfg.frozen_dtype]
    if dtype != torch.float32:
        # weights stored in bf16 / fp16 give other features: the cache keys say so (fp32 keys are unchanged)
        identities = {t: f"{v}|frozen_dtype={cfg.frozen_dtype}" for t, v in identities.items()}
        for tower in (image, clip_text, audio, clap_text):
            store_weights_in(tower, dtype)
    backbone = Backbone(cfg, image, clip_text, audio, clap_text, clip_model.logit_scale,
                        clap.model.logit_scale_a, identities)
    log.info("encoders: %s", backbone.describe())
    return backbone
