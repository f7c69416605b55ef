"""Evaluation metrics of every task, as pure functions on arrays.

Each function reproduces the rule of the official evaluation code it names (DG-SCT @211fc57 and
the upstream benchmarks); the docstrings state that rule exactly, including its quirks. The
AVVP functions match the official per-clip values bit for bit (float64, same summation order);
the AVS functions use float32 torch arithmetic like the official code (torch is imported lazily,
only by those functions). Scores are percentages except the AVS ones, which are fractions in
[0, 1] as the official code reports them.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from avfewshot.errors import UserError

AVE_BACKGROUND_INDEX = 28
AVVP_THRESHOLD = 0.5
AVS_THRESHOLD_COUNT = 255
AVS_BETA2 = 0.3
AVQA_MODALITIES = ("Audio", "Visual", "Audio-Visual")


# --------------------------------------------------------------------------- input helpers


def _as_numpy(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, possibly on GPU or requiring grad
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _check_ndim(array: np.ndarray, ndim: int, name: str, shape_text: str) -> None:
    if array.ndim != ndim:
        raise UserError(f"metrics: `{name}` must have shape {shape_text}, got shape {tuple(array.shape)}")


def _check_integer(array: np.ndarray, name: str) -> None:
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_)):
        raise UserError(
            f"metrics: `{name}` must hold integer class indices, got dtype {array.dtype}; "
            "take the argmax of the scores first"
        )


def _check_binary(array: np.ndarray, name: str) -> None:
    if array.size and not np.isin(array, (0, 1)).all():
        raise UserError(
            f"metrics: `{name}` must hold only 0 and 1, found values such as "
            f"{np.unique(array[~np.isin(array, (0, 1))])[:3].tolist()}; binarise it first "
            "(for 0/255 mask images use mask > 0)"
        )


def _check_same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise UserError(
            f"metrics: `{name_a}` and `{name_b}` must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def _check_not_empty(count: int, what: str) -> None:
    if count == 0:
        raise UserError(f"metrics: there is nothing to score ({what}); pass at least one item")


# --------------------------------------------------------------------------- classification


def ave_segment_accuracy(
    pred: Any,
    target: Any,
    foreground_only: bool = False,
    background_index: int = AVE_BACKGROUND_INDEX,
) -> float:
    """AVE segment accuracy in percent: 100 * (number of segments with pred == target) / (number of segments).

    pred and target are (N, T) class indices where background is a class of its own
    (``background_index``, 28 for AVE), as in the official code. The count is pooled over all
    N*T segments (DG-SCT averages per-batch means instead, which differs for a short last batch).
    With ``foreground_only`` only the segments whose target is not background are scored.
    """
    pred_a, target_a = _as_numpy(pred, "pred"), _as_numpy(target, "target")
    _check_ndim(pred_a, 2, "pred", "(N, T)")
    _check_same_shape(pred_a, target_a, "pred", "target")
    _check_integer(pred_a, "pred")
    _check_integer(target_a, "target")
    scored = target_a != background_index if foreground_only else np.ones(target_a.shape, dtype=bool)
    count = int(scored.sum())
    _check_not_empty(count, "no foreground segment" if foreground_only else "no segment")
    correct = int(((pred_a == target_a) & scored).sum())
    return 100.0 * correct / count


def first_label_targets(multi_hot: Any) -> np.ndarray:
    """Single-label targets from (N, C) multi-hot labels: the lowest-index positive class.

    This is the official LLP / AVE video-classification rule (argmax of the multi-hot vector), so
    for LLP Speech (index 0) wins whenever present. A row with no positive class gets index 0, as
    argmax does; for AVE that is a clip with no foreground segment.
    """
    labels = _as_numpy(multi_hot, "multi_hot")
    _check_ndim(labels, 2, "multi_hot", "(N, C)")
    return np.argmax(labels > 0, axis=1).astype(np.int64)


def first_foreground_targets(segment_labels: Any, background_index: int = AVE_BACKGROUND_INDEX) -> np.ndarray:
    """AVE clip targets from (N, T) segment class indices: the class of the first foreground segment.

    A clip whose segments are all background gets index 0 (the official AVE rule).
    """
    labels = _as_numpy(segment_labels, "segment_labels")
    _check_ndim(labels, 2, "segment_labels", "(N, T)")
    _check_integer(labels, "segment_labels")
    foreground = labels != background_index
    first = np.argmax(foreground, axis=1)
    targets = labels[np.arange(len(labels)), first]
    return np.where(foreground.any(axis=1), targets, 0).astype(np.int64)


def _top1(scores: Any, name: str) -> np.ndarray:
    scores_a = _as_numpy(scores, name)
    _check_ndim(scores_a, 2, name, "(N, C)")
    _check_not_empty(len(scores_a), f"`{name}` has no rows")
    return np.argmax(scores_a, axis=1)  # ties: the lowest index, like torch.argmax on CPU


def clip_accuracy(scores: Any, target: Any) -> float:
    """Top-1 accuracy in percent: 100 * mean over clips of 1[argmax_c scores[i, c] == target[i]].

    scores is (N, C) (for clip-level tasks the mean over segments of the segment scores); ties
    go to the lowest index.
    """
    pred = _top1(scores, "scores")
    target_a = _as_numpy(target, "target")
    _check_integer(target_a, "target")
    if target_a.shape != pred.shape:
        raise UserError(f"metrics: `target` must have shape ({len(pred)},), got {tuple(target_a.shape)}")
    return 100.0 * float(np.mean(pred == target_a))


def multilabel_hit_rate(scores: Any, multi_hot: Any) -> float:
    """Percent of clips whose top-1 class (argmax of the (N, C) scores) is any positive class of the clip."""
    pred = _top1(scores, "scores")
    labels = _as_numpy(multi_hot, "multi_hot")
    if labels.shape != (len(pred), _as_numpy(scores, "scores").shape[1]):
        raise UserError(
            f"metrics: `multi_hot` must have the shape of `scores`, got {tuple(labels.shape)}"
        )
    return 100.0 * float(np.mean(labels[np.arange(len(pred)), pred] > 0))


def per_class_accuracy(pred: Any, target: Any, num_classes: int) -> np.ndarray:
    """(num_classes,) accuracies in percent: for class c, 100 * correct / count over clips whose target is c.

    pred and target are (N,) class indices. Classes with no target clip get NaN.
    """
    pred_a, target_a = _as_numpy(pred, "pred"), _as_numpy(target, "target")
    _check_ndim(pred_a, 1, "pred", "(N,)")
    _check_same_shape(pred_a, target_a, "pred", "target")
    _check_integer(pred_a, "pred")
    _check_integer(target_a, "target")
    if target_a.size and (target_a.min() < 0 or target_a.max() >= num_classes):
        raise UserError(f"metrics: `target` holds class indices outside 0..{num_classes - 1}")
    counts = np.bincount(target_a, minlength=num_classes).astype(np.float64)
    correct = np.bincount(target_a[pred_a == target_a], minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, 100.0 * correct / counts, np.nan)


def mean_class_accuracy(pred: Any, target: Any, num_classes: int) -> float:
    """Mean over the classes that occur in ``target`` of their per-class accuracy, in percent."""
    accuracies = per_class_accuracy(pred, target, num_classes)
    present = ~np.isnan(accuracies)
    _check_not_empty(int(present.sum()), "`target` is empty")
    return float(np.mean(accuracies[present]))


# --------------------------------------------------------------------------- AVVP


@dataclass(frozen=True)
class AVVPClipF:
    """The four per-clip F values of one level (official order differs: f_a, f_v, f, f_av)."""

    audio: float
    visual: float
    audio_visual: float
    event_pooled: float


@dataclass(frozen=True)
class AVVPClipScores:
    segment_level: AVVPClipF
    event_level: AVVPClipF


@dataclass(frozen=True)
class AVVPLevelResult:
    """The five reported numbers of one level, in percent."""

    audio: float
    visual: float
    audio_visual: float
    type_at_av: float
    event_at_av: float


@dataclass(frozen=True)
class AVVPResult:
    segment_level: AVVPLevelResult
    event_level: AVVPLevelResult
    per_clip: dict[str, dict[str, np.ndarray]]  # level -> audio/visual/audio_visual/event_pooled -> (N,)

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {"segment_level": asdict(self.segment_level), "event_level": asdict(self.event_level)}

    def summary_lines(self) -> list[str]:
        """The ten numbers with one decimal, as the official eval prints them (clean labels)."""
        lines = []
        for level_name, level in (("Segment", self.segment_level), ("Event", self.event_level)):
            lines += [
                f"{level_name}-level Audio F1: {level.audio:.1f}",
                f"{level_name}-level Visual F1: {level.visual:.1f}",
                f"{level_name}-level Audio-Visual F1: {level.audio_visual:.1f}",
                f"{level_name}-level Type@AV F1: {level.type_at_av:.1f}",
                f"{level_name}-level Event@AV F1: {level.event_at_av:.1f}",
            ]
        return lines


def avvp_dense_ground_truth(
    events: Iterable[tuple[float, float, int]], num_classes: int = 25, num_segments: int = 10
) -> np.ndarray:
    """(C, T) 0/1 ground truth from annotation rows (onset, offset, class_index), as eval builds it.

    Each row sets GT[class, int(onset):int(offset)] = 1 (half-open, Python slice semantics), and
    rows combine as a union: a row with onset >= offset adds nothing, and touching, overlapping or
    duplicate rows of one class merge into one run.
    """
    gt = np.zeros((num_classes, num_segments), dtype=np.int64)
    for onset, offset, class_index in events:
        if not 0 <= int(class_index) < num_classes:
            raise UserError(f"metrics: AVVP event class index {class_index} is outside 0..{num_classes - 1}")
        gt[int(class_index), int(onset):int(offset)] = 1
    return gt


def avvp_predictions(
    video_prob: Any,
    frame_prob_a: Any,
    frame_prob_v: Any,
    threshold: float = AVVP_THRESHOLD,
) -> tuple[np.ndarray, np.ndarray]:
    """Binary (…, C, T) audio and visual prediction matrices, as the official eval builds SO_a and SO_v.

    video_prob is the fused video-level probability (…, C); frame_prob_a / frame_prob_v are the
    per-segment probabilities (…, T, C). A frame prediction is 1[frame_prob >= threshold] *
    1[video_prob >= threshold] (ties count positive): a class whose fused video-level probability is
    below the threshold gets no frame predictions in either modality. The result is transposed to
    class x segment. The audio-visual prediction is the product of the two.
    """
    video = _as_numpy(video_prob, "video_prob")
    frames = {"frame_prob_a": _as_numpy(frame_prob_a, "frame_prob_a"), "frame_prob_v": _as_numpy(frame_prob_v, "frame_prob_v")}
    if video.ndim < 1:
        raise UserError("metrics: `video_prob` must have shape (..., C)")
    gate = (video >= threshold).astype(np.int64)[..., None, :]  # (..., 1, C)
    outputs = []
    for name, prob in frames.items():
        if prob.ndim != video.ndim + 1 or prob.shape[:-2] != video.shape[:-1] or prob.shape[-1] != video.shape[-1]:
            raise UserError(
                f"metrics: `{name}` must have shape (..., T, C) matching `video_prob` {tuple(video.shape)}, "
                f"got {tuple(prob.shape)}"
            )
        outputs.append(np.swapaxes((prob >= threshold).astype(np.int64) * gate, -1, -2))
    return outputs[0], outputs[1]


def _runs(row: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of consecutive 1s as half-open (start, end) segment ranges (official extract_event)."""
    runs, start = [], None
    for t, value in enumerate(row):
        if value and start is None:
            start = t
        elif not value and start is not None:
            runs.append((start, t))
            start = None
    if start is not None:
        runs.append((start, len(row)))
    return runs


def _runs_match(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """IoU >= 0.5 over segments, in exact integer arithmetic (IoU exactly 0.5 matches)."""
    intersection = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - intersection
    return 2 * intersection >= union


def _event_counts(pred_row: np.ndarray, gt_row: np.ndarray) -> tuple[int, int, int]:
    """(TP, FP, FN) of one class row: a predicted event is a TP if it matches any GT event, else an FP;
    a GT event no predicted event matches is an FN."""
    pred_runs, gt_runs = _runs(pred_row), _runs(gt_row)
    tp = sum(1 for p in pred_runs if any(_runs_match(p, g) for g in gt_runs))
    fn = sum(1 for g in gt_runs if not any(_runs_match(p, g) for p in pred_runs))
    return tp, len(pred_runs) - tp, fn


def _mean_class_f(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> float:
    """Mean over active classes (TP+FP > 0 or TP+FN > 0) of 2TP / (2TP + FP + FN); 1.0 if none is active.

    Summed left to right in class order, then divided, exactly like the official code.
    """
    total, active = 0.0, 0
    for t, p, n in zip(tp.tolist(), fp.tolist(), fn.tolist()):
        if t + p != 0 or t + n != 0:
            total += float(2 * t) / float(2 * t + (n + p))
            active += 1
    return 1.0 if active == 0 else total / active


def _clip_f(counts: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> AVVPClipF:
    pooled = tuple(counts["audio"][k] + counts["visual"][k] for k in range(3))
    return AVVPClipF(
        audio=_mean_class_f(*counts["audio"]),
        visual=_mean_class_f(*counts["visual"]),
        audio_visual=_mean_class_f(*counts["audio_visual"]),
        event_pooled=_mean_class_f(*pooled),
    )


def _check_avvp_clip(arrays: Mapping[str, np.ndarray], ndim: int) -> None:
    shape_text = "(C, T)" if ndim == 2 else "(N, C, T)"
    first_name, first = next(iter(arrays.items()))
    for name, array in arrays.items():
        _check_ndim(array, ndim, name, shape_text)
        _check_same_shape(first, array, first_name, name)
        _check_binary(array, name)


def avvp_clip_scores(pred_a: Any, pred_v: Any, gt_a: Any, gt_v: Any) -> AVVPClipScores:
    """Official per-clip segment-level and event-level F values of one clip; inputs are (C, T) 0/1.

    Modalities: audio, visual and audio-visual, where the audio-visual prediction and GT are the
    products of the audio and visual ones. Per class: segment level counts TP/FP/FN segments;
    event level splits each row into maximal runs and counts a predicted run as TP if some GT run
    has IoU >= 0.5 with it (else FP), and a GT run as FN if no predicted run has. The clip value is
    the mean over active classes of 2TP / (2TP + FP + FN), or 1.0 if no class is predicted or
    annotated ("all true negatives"). ``event_pooled`` (what Event@AV averages) sums the audio and
    visual counts per class before the class F; the audio-visual counts are not pooled.
    """
    arrays = {"pred_a": _as_numpy(pred_a, "pred_a"), "pred_v": _as_numpy(pred_v, "pred_v"),
              "gt_a": _as_numpy(gt_a, "gt_a"), "gt_v": _as_numpy(gt_v, "gt_v")}
    _check_avvp_clip(arrays, 2)
    return _avvp_clip_scores(*(a.astype(np.int64) for a in arrays.values()))


def _avvp_clip_scores(pred_a: np.ndarray, pred_v: np.ndarray, gt_a: np.ndarray, gt_v: np.ndarray) -> AVVPClipScores:
    pairs = {"audio": (pred_a, gt_a), "visual": (pred_v, gt_v), "audio_visual": (pred_a * pred_v, gt_a * gt_v)}
    segment_counts = {
        name: ((p * g).sum(axis=1), (p * (1 - g)).sum(axis=1), ((1 - p) * g).sum(axis=1))
        for name, (p, g) in pairs.items()
    }
    event_counts = {}
    for name, (p, g) in pairs.items():
        per_class = np.array([_event_counts(p[c], g[c]) for c in range(p.shape[0])], dtype=np.int64).reshape(-1, 3)
        event_counts[name] = (per_class[:, 0], per_class[:, 1], per_class[:, 2])
    return AVVPClipScores(segment_level=_clip_f(segment_counts), event_level=_clip_f(event_counts))


def avvp_aggregate(clip_scores: Sequence[AVVPClipScores]) -> AVVPResult:
    """The ten reported AVVP numbers from per-clip scores.

    Each number is 100 * np.mean over clips of a per-clip value (macro average: over classes
    within a clip, then over clips): Audio = f_a, Visual = f_v, Audio-Visual = f_av,
    Event@AV = pooled f, and Type@AV = (100 mean f_av + 100 mean f_a + 100 mean f_v) / 3 added
    in that order, at segment level and at event level.
    """
    _check_not_empty(len(clip_scores), "no AVVP clip")
    per_clip: dict[str, dict[str, np.ndarray]] = {}
    levels = {}
    for level in ("segment_level", "event_level"):
        values = {
            field: np.array([getattr(getattr(s, level), field) for s in clip_scores], dtype=np.float64)
            for field in ("audio", "visual", "audio_visual", "event_pooled")
        }
        per_clip[level] = values
        audio = 100 * np.mean(values["audio"])
        visual = 100 * np.mean(values["visual"])
        audio_visual = 100 * np.mean(values["audio_visual"])
        levels[level] = AVVPLevelResult(
            audio=float(audio),
            visual=float(visual),
            audio_visual=float(audio_visual),
            type_at_av=float((audio_visual + audio + visual) / 3.0),
            event_at_av=float(100 * np.mean(values["event_pooled"])),
        )
    return AVVPResult(levels["segment_level"], levels["event_level"], per_clip)


def avvp_segment_and_event_f(pred_a: Any, pred_v: Any, gt_a: Any, gt_v: Any) -> AVVPResult:
    """Official AVVP evaluation of N clips; inputs are (N, C, T) 0/1 arrays (class x segment).

    Per-clip values follow :func:`avvp_clip_scores`, aggregated by :func:`avvp_aggregate`.
    """
    arrays = {"pred_a": _as_numpy(pred_a, "pred_a"), "pred_v": _as_numpy(pred_v, "pred_v"),
              "gt_a": _as_numpy(gt_a, "gt_a"), "gt_v": _as_numpy(gt_v, "gt_v")}
    _check_avvp_clip(arrays, 3)
    pa, pv, ga, gv = (a.astype(np.int64) for a in arrays.values())
    return avvp_aggregate([_avvp_clip_scores(pa[i], pv[i], ga[i], gv[i]) for i in range(len(pa))])


# --------------------------------------------------------------------------- AVS (float32 torch)


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
    _check_binary(masks_t.numpy(), "masks")
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
    _check_not_empty(logits_t.shape[0], "no AVS frame")
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

    _check_not_empty(len(batch_miou), "no AVS batch")
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
    on the batch size (the shipped S4/MS3 test.sh uses 4 clips = 20 frames).
    """
    logits_t, masks_t = _avs_tensors(logits, masks)
    num_frames = logits_t.shape[0]
    _check_not_empty(num_frames, "no AVS frame")
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


# --------------------------------------------------------------------------- AVQA


def _question_type(value: Any, index: int) -> tuple[str, str]:
    if isinstance(value, str):
        hint = " (the JSON `type` field is a string holding a list: parse it with json.loads)" if value.startswith("[") else ""
        raise UserError(f"metrics: AVQA question type {index} must be a (modality, subtype) pair, got {value!r}{hint}")
    try:
        modality, subtype = value
    except (TypeError, ValueError):
        raise UserError(f"metrics: AVQA question type {index} must be a (modality, subtype) pair, got {value!r}") from None
    return str(modality), str(subtype)


def parse_avqa_type(type_field: str) -> tuple[str, str]:
    """The (modality, subtype) pair of a MUSIC-AVQA JSON `type` field such as '["Audio", "Counting"]'."""
    try:
        return _question_type(json.loads(type_field), 0)
    except json.JSONDecodeError:
        raise UserError(f"metrics: AVQA type field {type_field!r} is not a JSON list of two strings") from None


def avqa_accuracy(pred: Any, answers: Any, types: Sequence[Any]) -> dict[str, float]:
    """MUSIC-AVQA accuracies in percent, keyed "<modality>/<subtype>", "<modality>" and "Overall".

    pred and answers are (N,) answer indices (ans_vocab order), types the (modality, subtype) of
    each question. Every key is 100 * correct / count over its questions: the per-type keys over
    one type, the modality keys (Audio, Visual, Audio-Visual) pool all questions of their subtypes
    and Overall pools every question. Only types and modalities present appear.
    """
    pred_a, answers_a = _as_numpy(pred, "pred"), _as_numpy(answers, "answers")
    _check_ndim(pred_a, 1, "pred", "(N,)")
    _check_same_shape(pred_a, answers_a, "pred", "answers")
    if len(types) != len(pred_a):
        raise UserError(f"metrics: `types` must have one entry per question ({len(pred_a)}), got {len(types)}")
    _check_not_empty(len(pred_a), "no AVQA question")
    correct = (pred_a == answers_a).tolist()
    tallies: dict[str, list[int]] = {}
    for index, (hit, raw_type) in enumerate(zip(correct, types)):
        modality, subtype = _question_type(raw_type, index)
        for key in (f"{modality}/{subtype}", modality, "Overall"):
            tally = tallies.setdefault(key, [0, 0])
            tally[0] += int(hit)
            tally[1] += 1
    modality_rank = {m: i for i, m in enumerate(AVQA_MODALITIES)}

    def order(key: str) -> tuple:
        modality = key.split("/")[0]
        return (key == "Overall", modality_rank.get(modality, len(AVQA_MODALITIES)), modality, "/" in key, key)

    return {key: 100.0 * tallies[key][0] / tallies[key][1] for key in sorted(tallies, key=order)}
