"""The AVS (S4, MS3) and AVQA task models on the adapted Swin-V2 + HTS-AT encoder (docs/supervised_heads.md §6).

* ``SupervisedAVS``: 5 segments per clip, audio tiled to 5 s at real size; the four Swin stage maps and the
  pooled audio feed ``AVSDecoder``; S4 loss (first frame) or MS3 loss (five frames + masked AV term).
* ``SupervisedAVQA``: 10 segments; ``STAVQAHead`` on the final map. Negative frames (other videos) go by
  default through the plain frozen Swin without units under ``no_grad``, as released (``negatives="frozen"``):
  a negative frame has no audio of its own to guide the units, and an adapted pass would double the encoder's
  cost; ``negatives="adapted"`` runs them through the adapted encoder guided by the question video's audio.

Released behaviour behind flags (defaults are the fixes): ``ungated_audio`` (AVS / AVQA audio units without an
output gate), ``train_htsat`` (S4 trains HTS-AT), ``keep_unused`` (the released never-used modules, for the
parameter totals only).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch

from ..errors import UserError
from ..supervised.augment import AugmentConfig
from ..supervised.encoder import task_encoder
from ..supervised.heads_unused import avs_unused
from ..supervised.model import FROZEN_PREFIXES, SupervisedModel
from .avs_decoder import AVSDecoder, AVSDecoderConfig
from .avs_losses import ms3_loss, s4_loss
from .st_avqa import STAVQAConfig, STAVQAHead, avqa_loss

#: decoder widths at tiny size: 8/4/2/1 grids -> 32^2 masks (cheap on a loaded 2-core CPU)
TINY_AVS = {"channels": 8, "audio_channels": 8, "sizes": (8, 4, 2, 1), "out_mid": 8, "out_low": 4}
TINY_AVQA = {"heads": 2, "match_dims": (32, 16, 8)}
NEGATIVE_PASSES = ("frozen", "adapted")
FRONT_END = ("htsat.spectrogram_extractor.", "htsat.logmel_extractor.")


@dataclass
class SupervisedAVSConfig:
    size: str = "real"  # real | tiny
    preset: str = "s4"  # s4 | ms3 (unit column, loss, temporal-gate weight)
    segments: int = 5
    visual_weights: Optional[str] = None
    audio_weights: Optional[str] = None
    ungated_audio: bool = False  # parity: the released audio units have no output gate
    train_htsat: bool = False  # parity (S4): the released freeze filter leaves HTS-AT trainable
    keep_unused: bool = False  # parity: register PVT-v2-b5, unused unit parts, decoder spares (totals only)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    head: Dict[str, Any] = field(default_factory=dict)  # AVSDecoderConfig overrides


class _TrainableTowers(SupervisedModel):
    """A model whose HTS-AT may be trainable (S4 parity): then its weights are part of the trainable state."""

    train_htsat = False

    def _own_keys(self):
        frozen = tuple(p for p in FROZEN_PREFIXES if not (self.train_htsat and p == "encoder.audio."))
        return [k for k in self.state_dict() if not k.startswith(frozen)]


class SupervisedAVS(_TrainableTowers):
    name = "avs"

    def __init__(self, cfg: SupervisedAVSConfig):
        encoder, preset, head_changes = task_encoder(cfg, TINY_AVS)
        head_cfg = dataclasses.replace(AVSDecoderConfig(
            stage_dims=tuple(encoder.visual.dims), audio_dim=encoder.audio.dims[-1], frames=cfg.segments,
            gamma=preset.temporal_gamma, released_registry=cfg.keep_unused), **head_changes)
        unused = avs_unused(encoder, preset.alignment == "interp") if cfg.keep_unused else None
        super().__init__(encoder, AVSDecoder(head_cfg), unused)
        self.cfg = cfg
        self.train_htsat = bool(cfg.train_htsat)
        if self.train_htsat:  # still in eval mode (bn0 statistics fixed, no drop-path); the STFT / mel kernels
            # stay fixed (the released rule marks them trainable, but its front end never changes them either)
            for name, p in encoder.audio.named_parameters():
                p.requires_grad_(not name.startswith(FRONT_END))

    @property
    def mask_size(self) -> int:
        return 4 * self.head.config.sizes[0]

    def forward(self, batch: Dict[str, Any]):
        """-> (logits (B·T, 1, S, S), TPAVI maps, TPAVI audio embeddings)."""
        frames, audio = self.batch_inputs(batch)
        enc = self.encoder(frames, audio)
        return self.head([m.permute(0, 3, 1, 2) for m in enc.stage_maps], enc.audio)

    def loss(self, batch: Dict[str, Any], outputs, epoch: int) -> Tuple[torch.Tensor, Dict[str, float]]:
        logits, maps, audio = outputs
        masks = batch["masks"]
        if self.cfg.preset == "s4":  # S4 training has the first frame's mask only
            loss = s4_loss(logits, masks[:, :1], frames=self.cfg.segments)
        else:
            loss = ms3_loss(logits, masks.reshape(-1, *masks.shape[-2:]), maps, audio)
        return loss, {"loss": float(loss.detach())}


@dataclass
class SupervisedAVQAConfig:
    size: str = "real"
    preset: str = "avqa"
    segments: int = 10
    visual_weights: Optional[str] = None
    audio_weights: Optional[str] = None
    vocab_size: int = 93
    answers: int = 42
    negatives: str = "frozen"  # frozen: plain frozen Swin under no_grad (released) | adapted
    grounding_epochs: int = 0  # the first epochs train the match term only (the grounding pre-stage)
    ungated_audio: bool = False
    keep_unused: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    head: Dict[str, Any] = field(default_factory=dict)  # STAVQAConfig overrides


class SupervisedAVQA(SupervisedModel):
    name = "avqa"

    def __init__(self, cfg: SupervisedAVQAConfig):
        if cfg.negatives not in NEGATIVE_PASSES:
            raise UserError(f"supervised avqa: negatives={cfg.negatives!r}; choose one of {', '.join(NEGATIVE_PASSES)}")
        encoder, _, head_changes = task_encoder(cfg, TINY_AVQA)
        head_cfg = dataclasses.replace(STAVQAConfig(
            visual_dim=encoder.visual.dims[-1], audio_dim=encoder.audio.dims[-1], vocab_size=cfg.vocab_size,
            answers=cfg.answers, released_registry=cfg.keep_unused), **head_changes)
        super().__init__(encoder, STAVQAHead(head_cfg))
        self.cfg = cfg

    def _maps(self, tokens: torch.Tensor, b: int) -> torch.Tensor:
        """(B·T, L, C) or (B·T, h, w, C) final tokens -> (B, T, C, h, w)."""
        g = self.encoder.visual.grids[-1]
        return tokens.reshape(b, -1, g, g, tokens.shape[-1]).permute(0, 1, 4, 2, 3)

    def negative_maps(self, negatives: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        b = negatives.shape[0]
        if self.cfg.negatives == "frozen":
            with torch.no_grad():
                return self._maps(self.encoder.visual(negatives.flatten(0, 1)), b)
        return self._maps(self.encoder(negatives, audio).final_map, b)

    def forward(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """batch: frames / negative_frames (B, T, 3, H, W), audio (B, T, S), tokens (B, L) -> ST-AVQA outputs.
        ``question_video`` (Q,) optionally maps Q questions onto the B videos (questions share a video's pass)."""
        frames, audio = self.batch_inputs(batch)
        enc = self.encoder(frames, audio)
        visual = self._maps(enc.final_map, frames.shape[0])
        negatives = self.negative_maps(batch["negative_frames"], audio)
        pooled = enc.audio
        index = batch.get("question_video")
        if index is not None:
            visual, negatives, pooled = visual[index], negatives[index], pooled[index]
        return self.head(visual, negatives, pooled, batch["tokens"])

    def loss(self, batch: Dict[str, Any], outputs, epoch: int) -> Tuple[torch.Tensor, Dict[str, float]]:
        weight = 0.0 if epoch < self.cfg.grounding_epochs else 1.0
        loss = avqa_loss(outputs, batch["answers"], answer_weight=weight)
        return loss, {"loss": float(loss.detach())}


def real_size_totals() -> List[Dict[str, Any]]:
    """S4, MS3 and AVQA as released (keep_unused, ungated audio), built on ``meta``: registered total and live
    trainable parameters of each (docs/supervised_heads.md §5)."""
    from ..supervised.model import parameter_totals

    rows = []
    for name in ("s4", "ms3", "avqa"):
        with torch.device("meta"):
            if name == "avqa":
                model = SupervisedAVQA(SupervisedAVQAConfig(keep_unused=True, ungated_audio=True))
            else:
                model = SupervisedAVS(SupervisedAVSConfig(preset=name, keep_unused=True, ungated_audio=True,
                                                          train_htsat=name == "s4"))
        rows.append({"task": name, **parameter_totals(model)})
    return rows
