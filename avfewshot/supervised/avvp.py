"""The supervised AVVP model (adapted Swin-V2 + HTS-AT, MGN head), its recipe and its evaluation on LLP.

Batch contract: ``frames`` (B, T, 3, H, W), ``audio`` (B, T, S), ``labels`` (B, 25) weak video labels;
``st_features`` (B, T, 512) when the R(2+1)D-18 input is on (``load_st_features``); for evaluation the
dense per-second ground truth ``dense_audio`` / ``dense_visual`` (B, T, 25) (``DenseLabels`` adds them).

Fixed by default (docs/supervised.md §6), released behaviour behind a flag:
* mixup, when on, mixes the targets with the same λ (``augment.mixup="mixed_targets"``);
  ``augment.mixup="official"`` blends per segment and leaves the labels unmixed, as released;
* frozen backbones in eval mode; SpecAugment only with ``augment.spec_augment=True``;
* selection on the validation split's segment-level Type@AV; the adapters never assume 10 segments.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from .. import metrics
from ..errors import UserError
from .augment import AugmentConfig, MixPlan, draw_mixup
from .encoder import task_encoder
from .heads_unused import avvp_unused
from .mgn import ST_FEATURE_DIM, MGNConfig, MGNHead, MGNOutputs, mgn_loss
from .model import SupervisedModel

LLP_CLASSES = 25
TINY_MGN = {"dim": 32, "heads": 8, "gate_dim": 16, "gate_ffn": 32, "depth_audio": 1, "depth_visual": 1, "depth_av": 1}

#: the released optimisation recipe (§2), defaults of the runner (mixup with mixed targets replaces the
#: released unmixed-label mixup)
AVVP_RECIPE: Dict[str, Any] = {
    "optimizer": "adam", "lr": 3e-4, "weight_decay": 0.0, "scheduler": "step", "step_size": 10, "gamma": 0.1,
    "epochs": 40, "batch_size": 8, "seed": 1, "selection_split": "val", "main_metric": "segment_type_at_av",
    "mixup": "mixed_targets",
}


@dataclass
class SupervisedAVVPConfig:
    size: str = "real"
    preset: str = "avvp"
    segments: int = 10
    visual_weights: Optional[str] = None
    audio_weights: Optional[str] = None
    st_features: bool = False  # R(2+1)D-18 clip features as an extra video input (released: on)
    keep_unused: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    head: Dict[str, Any] = field(default_factory=dict)  # MGNConfig overrides


class SupervisedAVVP(SupervisedModel):
    name = "avvp"
    num_classes = LLP_CLASSES

    def __init__(self, cfg: SupervisedAVVPConfig):
        encoder, preset, head_changes = task_encoder(cfg, TINY_MGN)
        visual_dim, audio_dim = encoder.output_dims
        head_cfg = dataclasses.replace(
            MGNConfig(visual_dim=visual_dim, audio_dim=audio_dim, segments=cfg.segments,
                      temporal_gamma=preset.temporal_gamma, st_features=cfg.st_features), **head_changes)
        unused = avvp_unused(encoder, head_cfg.gate_dim, head_cfg.gate_ffn) if cfg.keep_unused else None
        super().__init__(encoder, MGNHead(head_cfg), unused)
        self.cfg = cfg
        self._mix: Optional[MixPlan] = None

    def forward(self, batch: Dict[str, Any]) -> MGNOutputs:
        frames, audio = self.batch_inputs(batch)
        self._mix = draw_mixup(self.cfg.augment, frames.shape[0], frames.shape[1]) if self.training else None
        enc = self.encoder(frames, audio, self._mix)
        return self.head(enc.visual, enc.audio, batch.get("st_features"))

    def loss(self, batch: Dict[str, Any], outputs: MGNOutputs, epoch: int) -> Tuple[torch.Tensor, Dict[str, float]]:
        target = batch["labels"].float()
        if self._mix is not None:
            target = self._mix.mix_targets(target)
        return mgn_loss(outputs, target, self.head.cfg.visual_smoothing)


def load_st_features(folder: Optional[str], clip_ids: Sequence[str], segments: int = 10) -> torch.Tensor:
    """(B, T, 512) R(2+1)D-18 features read from ``<folder>/<id>.npy`` (LLP release ``feats/r2plus1d_18``)."""
    if not folder:
        raise UserError("AVVP st_features=true needs the LLP R(2+1)D-18 feature folder (feats/r2plus1d_18 of the "
                        "LLP feature release, one <video id>.npy of 10 x 512 per clip); set its path or st_features=false")
    root = Path(folder).expanduser()
    rows = []
    for clip in clip_ids:
        path = root / f"{clip}.npy"
        if not path.is_file():
            raise UserError(f"R(2+1)D-18 features {path} missing: download feats/r2plus1d_18 of the LLP feature "
                            f"release, or set st_features=false")
        array = np.load(path)
        if array.shape != (segments, ST_FEATURE_DIM):
            raise UserError(f"{path}: shape {array.shape}, expected ({segments}, {ST_FEATURE_DIM})")
        rows.append(array.astype(np.float32))
    return torch.from_numpy(np.stack(rows))


class DenseLabels:
    """Adds ``dense_audio`` / ``dense_visual`` (T, C) of LLP val/test records to dataset items."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        item = self.dataset[index]
        if item is None:
            return None
        record = self.dataset.records[int(index)]
        for key, field_name in (("dense_audio", "audio_events"), ("dense_visual", "visual_events")):
            matrix = record.extra.get(field_name)
            if matrix is None:
                raise UserError(f"LLP clip {record.clip_id}: no dense {field_name} (AVVP_eval_audio.csv / "
                                f"AVVP_eval_visual.csv); AVVP evaluation needs the dense val/test labels")
            item[key] = torch.tensor(matrix, dtype=torch.int64)
        return item


def collate_dense(items):
    """``collate_clips`` plus the dense label matrices."""
    from ..data.dataset import collate_clips

    kept = [item for item in items if item is not None]
    batch = collate_clips(kept)
    if batch is not None and kept and "dense_audio" in kept[0]:
        batch["dense_audio"] = torch.stack([item["dense_audio"] for item in kept])
        batch["dense_visual"] = torch.stack([item["dense_visual"] for item in kept])
    return batch


@torch.no_grad()
def evaluate_avvp(model: SupervisedAVVP, batches, threshold: float = metrics.AVVP_THRESHOLD) -> Dict[str, float]:
    """Segment- and event-level F-scores (percent) from batches carrying the dense labels."""
    model.eval()
    pred_a, pred_v, gt_a, gt_v = [], [], [], []
    for batch in batches:
        if batch is None:
            continue
        if "dense_audio" not in batch:
            raise UserError("evaluate_avvp: batches need dense_audio / dense_visual (wrap the dataset in DenseLabels)")
        out = model(batch)
        pa, pv = metrics.avvp_predictions(out.video_prob.cpu().numpy(), out.audio_frame_prob.cpu().numpy(),
                                          out.visual_frame_prob.cpu().numpy(), threshold)
        pred_a.append(pa)
        pred_v.append(pv)
        gt_a.append(batch["dense_audio"].transpose(1, 2).numpy())
        gt_v.append(batch["dense_visual"].transpose(1, 2).numpy())
    result = metrics.avvp_segment_and_event_f(np.concatenate(pred_a), np.concatenate(pred_v),
                                              np.concatenate(gt_a), np.concatenate(gt_v))
    flat: Dict[str, float] = {}
    for level, values in result.as_dict().items():
        prefix = level.split("_")[0]
        flat.update({f"{prefix}_{name}": value for name, value in values.items()})
    flat["num_clips"] = int(sum(len(p) for p in pred_a))
    return flat


def trivial_avvp_baselines(train_labels: np.ndarray, dense_audio: np.ndarray,
                           dense_visual: np.ndarray) -> Dict[str, Dict[str, float]]:
    """AVVP F-scores (percent) of two trivial predictors; dense_* are (N, T, C) 0/1 ground truth.

    ``majority``: the most frequent training label in every second of both streams. ``empty``: no event
    at all, which the official per-clip F rule scores 1 on every clip without a ground-truth event of a
    kind (e.g. the audio-visual F of clips whose events never coincide), so it is not 0.
    """
    majority = int(np.asarray(train_labels).sum(axis=0).argmax())
    n, t, c = dense_audio.shape
    gt_a, gt_v = np.swapaxes(dense_audio, 1, 2), np.swapaxes(dense_visual, 1, 2)
    out = {}
    for name in ("majority", "empty"):
        pred = np.zeros((n, c, t), dtype=np.int64)
        if name == "majority":
            pred[:, majority, :] = 1
        result = metrics.avvp_segment_and_event_f(pred, pred, gt_a, gt_v)
        out[name] = {f"{level.split('_')[0]}_{k}": v for level, values in result.as_dict().items()
                     for k, v in values.items()}
    return out
