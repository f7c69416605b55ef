"""Evaluation metrics of every task, as pure functions on arrays, one module per task family.

Each function reproduces the rule of the official evaluation code it names (DG-SCT @211fc57 and the upstream
benchmarks); the docstrings state that rule exactly, including its quirks. Scores are percentages except the
AVS ones, which are fractions in [0, 1] as the official code reports them.

- ``classification``: AVE segment accuracy, clip accuracy and its single-label targets, LLP hit rate.
- ``avvp``: AVVP segment- and event-level F-scores (float64, bit for bit with the official per-clip values).
- ``avs``: AVS mIoU and F-score (float32 torch, imported lazily).
- ``avqa``: MUSIC-AVQA per-type accuracy.

Every public name is re-exported here, so ``from avfewshot import metrics; metrics.clip_accuracy`` works.
"""
from __future__ import annotations

from .avqa import AVQA_MODALITIES, avqa_accuracy, parse_avqa_type
from .avs import (
    AVS_BETA2,
    AVS_THRESHOLD_COUNT,
    AVSBatchScore,
    AVSResult,
    avs_batch_means,
    avs_evaluate,
    avs_fscore,
    avs_fscore_dataset,
    avs_miou,
)
from .avvp import (
    AVVP_THRESHOLD,
    AVVPClipF,
    AVVPClipScores,
    AVVPLevelResult,
    AVVPResult,
    avvp_aggregate,
    avvp_clip_scores,
    avvp_dense_ground_truth,
    avvp_predictions,
    avvp_segment_and_event_f,
)
from .classification import (
    AVE_BACKGROUND_INDEX,
    ave_segment_accuracy,
    clip_accuracy,
    first_foreground_targets,
    first_label_targets,
    mean_class_accuracy,
    multilabel_hit_rate,
    per_class_accuracy,
)

__all__ = [
    "AVE_BACKGROUND_INDEX",
    "ave_segment_accuracy",
    "first_label_targets",
    "first_foreground_targets",
    "clip_accuracy",
    "multilabel_hit_rate",
    "per_class_accuracy",
    "mean_class_accuracy",
    "AVVP_THRESHOLD",
    "AVVPClipF",
    "AVVPClipScores",
    "AVVPLevelResult",
    "AVVPResult",
    "avvp_dense_ground_truth",
    "avvp_predictions",
    "avvp_clip_scores",
    "avvp_aggregate",
    "avvp_segment_and_event_f",
    "AVS_THRESHOLD_COUNT",
    "AVS_BETA2",
    "AVSBatchScore",
    "AVSResult",
    "avs_miou",
    "avs_fscore",
    "avs_fscore_dataset",
    "avs_batch_means",
    "avs_evaluate",
    "AVQA_MODALITIES",
    "parse_avqa_type",
    "avqa_accuracy",
]
