"""The supervised AVE model (adapted Swin-V2 + HTS-AT, CMBS head), its official recipe and its evaluation.

Batch contract (``AVClipDataset`` items stacked by ``collate_clips``): ``frames`` (B, T, 3, H, W)
ImageNet-normalised at the backbone's size, ``audio`` (B, T, S) at its rate, ``segment_labels``
(B, T) with background = 28.

Fixed by default (docs/supervised.md §6), released behaviour behind a flag:
* BCE on av_gate reads it as a probability (``double_sigmoid=True``: BCE-with-logits, as released);
* frozen backbones in eval mode; SpecAugment only with ``spec_augment=True`` (AVE had no mixup);
* model selection on AVE's validation split (the recipe's ``selection_split``; "test" only as an
  explicitly unsafe choice of the runner, as for the few-shot side);
* no gradient-accumulation quirk (the released ``accum_itr 2`` zeroed gradients every batch).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from .. import metrics
from .augment import AugmentConfig
from .cmbs import CMBSConfig, CMBSHead, CMBSOutputs, cmbs_loss, segment_predictions
from .encoder import task_encoder
from .heads_unused import ave_unused
from .model import SupervisedModel

AVE_CLASSES = 28
#: head widths of the tiny configuration (§7)
TINY_CMBS = {"audio_fc": 16, "video_fc": 32, "d_model": 32, "ffn": 64, "heads": 4}

#: the released optimisation recipe (§1), defaults of the runner
AVE_RECIPE: Dict[str, Any] = {
    "optimizer": "adam", "lr": 5e-4, "scheduler": "step", "step_size": 3, "gamma": 0.35, "epochs": 50,
    "batch_size": 8, "early_stop": 20, "seed": 43, "selection_split": "val", "main_metric": "accuracy",
}


@dataclass
class SupervisedAVEConfig:
    size: str = "real"  # real | tiny (backbone sizes of presets.py)
    preset: str = "ave"  # unit preset (presets.UNIT_PRESETS)
    segments: int = 10
    visual_weights: Optional[str] = None  # local Swin-V2 file (None: random weights)
    audio_weights: Optional[str] = None  # local HTSAT_AudioSet_Saved_1.ckpt (None: random weights)
    double_sigmoid: bool = False  # parity: BCE-with-logits on the av gate (a probability already)
    keep_unused: bool = False  # parity: register the released never-used modules (parameter counts)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    head: Dict[str, Any] = field(default_factory=dict)  # CMBSConfig overrides


class SupervisedAVE(SupervisedModel):
    name = "ave"
    num_classes = AVE_CLASSES

    def __init__(self, cfg: SupervisedAVEConfig):
        encoder, preset, head_changes = task_encoder(cfg, TINY_CMBS)
        visual_dim, audio_dim = encoder.output_dims
        head_cfg = dataclasses.replace(CMBSConfig(visual_dim=visual_dim, audio_dim=audio_dim,
                                                  temporal_gamma=preset.temporal_gamma), **head_changes)
        unused = ave_unused(encoder, head_cfg.d_model, head_cfg.heads, head_cfg.ffn) if cfg.keep_unused else None
        super().__init__(encoder, CMBSHead(head_cfg), unused)
        self.cfg = cfg

    def forward(self, batch: Dict[str, Any]) -> CMBSOutputs:
        frames, audio = self.batch_inputs(batch)
        enc = self.encoder(frames, audio)
        return self.head(enc.visual, enc.audio)

    def loss(self, batch: Dict[str, Any], outputs: CMBSOutputs, epoch: int) -> Tuple[torch.Tensor, Dict[str, float]]:
        return cmbs_loss(outputs, batch["segment_labels"], self.num_classes, self.cfg.double_sigmoid)

    def predict(self, outputs: CMBSOutputs) -> torch.Tensor:
        return segment_predictions(outputs, self.num_classes)


@torch.no_grad()
def evaluate_ave(model: SupervisedAVE, batches) -> Dict[str, float]:
    """Segment accuracy (percent, pooled over all segments) of ``model`` over an iterable of batches."""
    model.eval()
    preds, targets = [], []
    for batch in batches:
        if batch is None:
            continue
        preds.append(model.predict(model(batch)).cpu().numpy())
        targets.append(batch["segment_labels"].cpu().numpy())
    pred, target = np.concatenate(preds), np.concatenate(targets)
    return {
        "accuracy": metrics.ave_segment_accuracy(pred, target),
        "foreground_accuracy": metrics.ave_segment_accuracy(pred, target, foreground_only=True)
        if (target != AVE_CLASSES).any() else float("nan"),
        "num_clips": int(pred.shape[0]),
    }


def majority_segment_accuracy(train_labels: np.ndarray, eval_labels: np.ndarray) -> float:
    """Accuracy (percent) of predicting the training split's most frequent segment class everywhere."""
    values, counts = np.unique(train_labels[train_labels >= 0], return_counts=True)
    majority = values[counts.argmax()]
    return metrics.ave_segment_accuracy(np.full_like(eval_labels, majority), eval_labels)
