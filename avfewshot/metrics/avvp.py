"""AVVP (LLP) segment-level and event-level F-scores, as the official evaluation computes them.

They match the official per-clip values bit for bit (float64, same summation order). Reported numbers
are percentages.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from avfewshot.errors import UserError

from ._inputs import as_numpy, check_binary, check_ndim, check_not_empty, check_same_shape

AVVP_THRESHOLD = 0.5


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
    video = as_numpy(video_prob, "video_prob")
    frames = {"frame_prob_a": as_numpy(frame_prob_a, "frame_prob_a"), "frame_prob_v": as_numpy(frame_prob_v, "frame_prob_v")}
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
        check_ndim(array, ndim, name, shape_text)
        check_same_shape(first, array, first_name, name)
        check_binary(array, name)


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
    arrays = {"pred_a": as_numpy(pred_a, "pred_a"), "pred_v": as_numpy(pred_v, "pred_v"),
              "gt_a": as_numpy(gt_a, "gt_a"), "gt_v": as_numpy(gt_v, "gt_v")}
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
    check_not_empty(len(clip_scores), "no AVVP clip")
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
    arrays = {"pred_a": as_numpy(pred_a, "pred_a"), "pred_v": as_numpy(pred_v, "pred_v"),
              "gt_a": as_numpy(gt_a, "gt_a"), "gt_v": as_numpy(gt_v, "gt_v")}
    _check_avvp_clip(arrays, 3)
    pa, pv, ga, gv = (a.astype(np.int64) for a in arrays.values())
    return avvp_aggregate([_avvp_clip_scores(pa[i], pv[i], ga[i], gv[i]) for i in range(len(pa))])
