"""Classification metrics: AVE segment accuracy, clip top-1 accuracy with the official single-label targets,
the LLP multi-label hit rate and per-class accuracies. Scores are percentages."""
from __future__ import annotations

from typing import Any

import numpy as np

from avfewshot.errors import UserError

from ._inputs import as_numpy, check_integer, check_ndim, check_not_empty, check_same_shape

AVE_BACKGROUND_INDEX = 28


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
    pred_a, target_a = as_numpy(pred, "pred"), as_numpy(target, "target")
    check_ndim(pred_a, 2, "pred", "(N, T)")
    check_same_shape(pred_a, target_a, "pred", "target")
    check_integer(pred_a, "pred")
    check_integer(target_a, "target")
    scored = target_a != background_index if foreground_only else np.ones(target_a.shape, dtype=bool)
    count = int(scored.sum())
    check_not_empty(count, "no foreground segment" if foreground_only else "no segment")
    correct = int(((pred_a == target_a) & scored).sum())
    return 100.0 * correct / count


def first_label_targets(multi_hot: Any) -> np.ndarray:
    """Single-label targets from (N, C) multi-hot labels: the lowest-index positive class.

    This is the official LLP / AVE video-classification rule (argmax of the multi-hot vector), so
    for LLP Speech (index 0) wins whenever present. A row with no positive class gets index 0, as
    argmax does; for AVE that is a clip with no foreground segment.
    """
    labels = as_numpy(multi_hot, "multi_hot")
    check_ndim(labels, 2, "multi_hot", "(N, C)")
    return np.argmax(labels > 0, axis=1).astype(np.int64)


def first_foreground_targets(segment_labels: Any, background_index: int = AVE_BACKGROUND_INDEX) -> np.ndarray:
    """AVE clip targets from (N, T) segment class indices: the class of the first foreground segment.

    A clip whose segments are all background gets index 0 (the official AVE rule).
    """
    labels = as_numpy(segment_labels, "segment_labels")
    check_ndim(labels, 2, "segment_labels", "(N, T)")
    check_integer(labels, "segment_labels")
    foreground = labels != background_index
    first = np.argmax(foreground, axis=1)
    targets = labels[np.arange(len(labels)), first]
    return np.where(foreground.any(axis=1), targets, 0).astype(np.int64)


def _top1(scores: Any, name: str) -> np.ndarray:
    scores_a = as_numpy(scores, name)
    check_ndim(scores_a, 2, name, "(N, C)")
    check_not_empty(len(scores_a), f"`{name}` has no rows")
    return np.argmax(scores_a, axis=1)  # ties: the lowest index, like torch.argmax on CPU


def clip_accuracy(scores: Any, target: Any) -> float:
    """Top-1 accuracy in percent: 100 * mean over clips of 1[argmax_c scores[i, c] == target[i]].

    scores is (N, C) (for clip-level tasks the mean over segments of the segment scores); ties
    go to the lowest index.
    """
    pred = _top1(scores, "scores")
    target_a = as_numpy(target, "target")
    check_integer(target_a, "target")
    if target_a.shape != pred.shape:
        raise UserError(f"metrics: `target` must have shape ({len(pred)},), got {tuple(target_a.shape)}")
    return 100.0 * float(np.mean(pred == target_a))


def multilabel_hit_rate(scores: Any, multi_hot: Any) -> float:
    """Percent of clips whose top-1 class (argmax of the (N, C) scores) is any positive class of the clip."""
    pred = _top1(scores, "scores")
    labels = as_numpy(multi_hot, "multi_hot")
    if labels.shape != (len(pred), as_numpy(scores, "scores").shape[1]):
        raise UserError(
            f"metrics: `multi_hot` must have the shape of `scores`, got {tuple(labels.shape)}"
        )
    return 100.0 * float(np.mean(labels[np.arange(len(pred)), pred] > 0))


def per_class_accuracy(pred: Any, target: Any, num_classes: int) -> np.ndarray:
    """(num_classes,) accuracies in percent: for class c, 100 * correct / count over clips whose target is c.

    pred and target are (N,) class indices. Classes with no target clip get NaN.
    """
    pred_a, target_a = as_numpy(pred, "pred"), as_numpy(target, "target")
    check_ndim(pred_a, 1, "pred", "(N,)")
    check_same_shape(pred_a, target_a, "pred", "target")
    check_integer(pred_a, "pred")
    check_integer(target_a, "target")
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
    check_not_empty(int(present.sum()), "`target` is empty")
    return float(np.mean(accuracies[present]))
