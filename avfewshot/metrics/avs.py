"""AVS mIoU and F-score, in float32 torch arithmetic like the official code (torch is imported lazily, only
by these functions). Scores are fractions in [0, 1], as the official code reports them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from avfewshot.errors import UserError

from ._inputs import check_binary, check_not_empty

AVS_THRESHOLD_COUNT = 255
AVS_BETA2 = 0.3


def _avs_tensors(logits: Any, masks: Any):
    import torch

    def to_tensor(value: Any, name: str) -> "torch.Tensor":
        if isinstance(value, torch.Tensor):
            return value.detach().to(device="cpu", dtype=torch.float32)
        return torch.as_tensor(np.asarray(value), dtype=torch.float32)

    logits_t, masks_t = to_tensor(logits, "logits"), to_tensor(masks, "masks")
    if logits_t.dim() != 3:
        raise UserError(
            f"metrics: AVS `logits` must have shape (N, H, W), got {tuple(logits_t.shape)}; "
            "squeeze the channel axis of (N, 1, H, W) model outputs"
        )
    if masks_t.shape != logits_t.shape:
        raise UserError(
            f"metrics: AVS `masks` must have the shape of `logits` {tuple(logits_t.shape)}, got {tuple(masks_t.shape)}"
        )
    check_binary(masks_t.numpy(), "masks")
    return logits_t, masks_t


def _avs_miou_tensor(logits, masks):
    import torch

    num_frames = logits.shape[0]
    num_pixels = logits.shape[-1] * logits.shape[-2]
    empty_gt = masks.sum(2).sum(1) == 0
    pred = (torch.sigmoid(logits) > 0.5).int()
    intersection = (pred * masks).sum(2).sum(1)
    union = torch.max(pred, masks).sum(2).sum(1)
    true_negatives = ((1 - masks) * (1 - pred)).sum(2).sum(1)
    intersection[empty_gt] = true_negatives[empty_gt]
    union[empty_gt] = num_pixels
    return torch.sum(intersection / (union + 1e-7)) / num_frames


def _avs_fscore_tensor(logits, masks, num_thresholds: int, beta2: float):
    import torch

    prob = torch.sigmoid(logits).flatten(1)
    gt = masks.flatten(1)
    num_pixels = prob.shape[1]
    thresholds = torch.linspace(0, 1 - 1e-10, num_thresholds)  # float32: exactly i / (num_thresholds - 1)
    valid = [i for i in range(prob.shape[0]) if torch.mean(gt[i]) != 0.0]
    score = torch.zeros(num_thresholds)
    if not valid:
        return score.max()
    prob, gt = prob[valid], gt[valid]
    # Pixel counts at every threshold (inclusive >=) via sorted probabilities; counts are exact integers.
    sorted_all = torch.sort(prob, dim=1).values.contiguous()
    sorted_hits = torch.sort(torch.where(gt > 0, prob, torch.full_like(prob, -1.0)), dim=1).values.contiguous()
    queries = thresholds.expand(len(valid), -1).contiguous()
    predicted = (num_pixels - torch.searchsorted(sorted_all, queries)).to(torch.float32)
    true_positive = (num_pixels - torch.searchsorted(sorted_hits, queries)).to(torch.float32)
    precision = true_positive / (predicted + 1e-20)
    recall = true_positive / (gt.sum(1, keepdim=True) + 1e-20)
    f_curves = (1 + beta2) * precision * recall / (beta2 * precision + recall)
    f_curves[f_curves != f_curves] = 0
    total = torch.zeros(num_thresholds)
    for curve in f_curves:  # frame by frame in float32, the official accumulation order
        total += curve
    return (total / len(valid)).max()


def avs_miou(logits: Any, masks: Any) -> float:
    """Official AVS mask_iou of one batch: mean over the N frames of the per-frame IoU (float32).

    logits (N, H, W) are pre-sigmoid; masks (N, H, W) are 0/1. The prediction is
    sigmoid(logit) > 0.5 (strict; in float32 a tiny positive logit counts negative). A frame
    scores |pred & gt| / (|pred | gt| + 1e-7); a frame with empty GT scores |~pred & ~gt| / (H*W + 1e-7),
    the fraction of correctly empty pixels.
    """
    logits_t, masks_t = _avs_tensors(logits, masks)
    check_not_empty(logits_t.shape[0], "no AVS frame")
    return float(_avs_miou_tensor(logits_t, masks_t))


def avs_fscore(
    logits: Any, masks: Any, num_thresholds: int = AVS_THRESHOLD_COUNT, beta2: float = AVS_BETA2
) -> float:
    """Official AVS Eval_Fmeasure of one batch (float32).

    Frames whose GT is empty are skipped. For each remaining frame, at the thresholds
    torch.linspace(0, 1 - 1e-10, 255) (= i/254 in float32), a pixel is positive when
    sigmoid(logit) >= threshold; P = TP / (predicted + 1e-20), R = TP / (|GT| + 1e-20) and
    F = (1 + beta2) P R / (beta2 P + R) with beta2 = 0.3 and NaN set to 0. The F curves are averaged
    over the frames threshold by threshold and the batch scores the maximum of that mean curve;
    a batch whose frames all have empty GT scores 0.
    """
    logits_t, masks_t = _avs_tensors(logits, masks)
    return float(_avs_fscore_tensor(logits_t, masks_t, num_thresholds, beta2))


@dataclass(frozen=True)
class AVSBatchScore:
    frames: tuple[int, int]  # half-open frame range
    miou: float
    f_score: float


@dataclass(frozen=True)
class AVSResult:
    miou: float
    f_score: float
    batches: list[AVSBatchScore]


def avs_batch_means(batch_miou: Sequence[float], batch_f_score: Sequence[float]) -> tuple[float, float]:
    """Final AVS numbers from per-batch scores, like the official AverageMeter.

    Unweighted means over batches (a short last batch weighs as much as a full one); the mIoU
    values are accumulated as float32, the F-scores as float64.
    """
    import torch

    check_not_empty(len(batch_miou), "no AVS batch")
    if len(batch_miou) != len(batch_f_score):
        raise UserError("metrics: `batch_miou` and `batch_f_score` must have one value per batch each")
    miou_total = torch.zeros((), dtype=torch.float32)
    for value in batch_miou:
        miou_total += torch.tensor(value, dtype=torch.float32)
    f_total = 0.0
    for value in batch_f_score:
        f_total += float(value)
    return float(miou_total / len(batch_miou)), f_total / len(batch_f_score)


def avs_evaluate(logits: Any, masks: Any, clips_per_batch: int, frames_per_clip: int = 5) -> AVSResult:
    """The official AVS test loop: per-batch mIoU and F-score over batches of clips_per_batch clips.

    Frames are in clip order (frame k is frame k % frames_per_clip of clip k // frames_per_clip);
    each batch holds clips_per_batch * frames_per_clip consecutive frames, the last one possibly
    fewer. Final values are :func:`avs_batch_means` of the per-batch scores, so the F-score depends
    on the batch size (the shipped S4/MS3 test.sh uses 4 clips = 20 frames): the threshold is chosen
    per batch (the max of each batch's mean curve), and a batch whose frames all have empty GT adds a 0.
    mIoU depends on it only through the unequal weight of a short last batch.
    :func:`avs_fscore_dataset` is the batch-independent variant.
    """
    logits_t, masks_t = _avs_tensors(logits, masks)
    num_frames = logits_t.shape[0]
    check_not_empty(num_frames, "no AVS frame")
    if clips_per_batch < 1 or frames_per_clip < 1:
        raise UserError("metrics: `clips_per_batch` and `frames_per_clip` must be positive")
    if num_frames % frames_per_clip:
        raise UserError(
            f"metrics: {num_frames} AVS frames is not a whole number of clips of {frames_per_clip} frames"
        )
    batch_frames = clips_per_batch * frames_per_clip
    batches = []
    for start in range(0, num_frames, batch_frames):
        end = min(start + batch_frames, num_frames)
        batch_logits, batch_masks = logits_t[start:end], masks_t[start:end]
        batches.append(AVSBatchScore(
            frames=(start, end),
            miou=float(_avs_miou_tensor(batch_logits, batch_masks)),
            f_score=float(_avs_fscore_tensor(batch_logits, batch_masks, AVS_THRESHOLD_COUNT, AVS_BETA2)),
        ))
    miou, f_score = avs_batch_means([b.miou for b in batches], [b.f_score for b in batches])
    return AVSResult(miou=miou, f_score=f_score, batches=batches)


def avs_fscore_dataset(logits: Any, masks: Any, chunk_frames: int = 64,
                       num_thresholds: int = AVS_THRESHOLD_COUNT, beta2: float = AVS_BETA2) -> float:
    """Batch-size-independent AVS F-score: the per-frame F curves (as in :func:`avs_fscore`) are
    averaged over **all** frames with a non-empty GT of the evaluated set, then the maximum over the
    255 thresholds is taken once (one dataset-level threshold). Computed in chunks of ``chunk_frames``
    frames, which changes only the float32 summation grouping, never the definition. Equals
    :func:`avs_fscore` on the whole set at once; 0 when no frame has a non-empty GT.
    """
    import torch

    logits_t, masks_t = _avs_tensors(logits, masks)
    check_not_empty(logits_t.shape[0], "no AVS frame")
    total = torch.zeros(num_thresholds, dtype=torch.float64)
    valid = 0
    for start in range(0, logits_t.shape[0], max(1, chunk_frames)):
        part_logits, part_masks = logits_t[start : start + chunk_frames], masks_t[start : start + chunk_frames]
        count = int((part_masks.flatten(1).sum(1) > 0).sum())
        if count:
            total += _avs_fcurve_mean(part_logits, part_masks, num_thresholds, beta2).double() * count
            valid += count
    return float((total / valid).max()) if valid else 0.0


def _avs_fcurve_mean(logits, masks, num_thresholds: int, beta2: float):
    """Mean F curve over the frames of ``logits`` with a non-empty GT (the curve before the max)."""
    import torch

    prob = torch.sigmoid(logits).flatten(1)
    gt = masks.flatten(1)
    keep = gt.sum(1) > 0
    prob, gt = prob[keep], gt[keep]
    num_pixels = prob.shape[1]
    thresholds = torch.linspace(0, 1 - 1e-10, num_thresholds)
    sorted_all = torch.sort(prob, dim=1).values.contiguous()
    sorted_hits = torch.sort(torch.where(gt > 0, prob, torch.full_like(prob, -1.0)), dim=1).values.contiguous()
    queries = thresholds.expand(prob.shape[0], -1).contiguous()
    predicted = (num_pixels - torch.searchsorted(sorted_all, queries)).to(torch.float32)
    true_positive = (num_pixels - torch.searchsorted(sorted_hits, queries)).to(torch.float32)
    precision = true_positive / (predicted + 1e-20)
    recall = true_positive / (gt.sum(1, keepdim=True) + 1e-20)
    curves = (1 + beta2) * precision * recall / (beta2 * precision + recall)
    curves[curves != curves] = 0
    return curves.mean(0)
