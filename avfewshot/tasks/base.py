"""The task interface and registry: which dataset a task reads, its label space, how scores become predictions, its metrics.

Every method produces per-segment scores (B, T, K). A clip-level task averages them over the T
segments (the official DG-SCT rule); the segment-level AVE task scores every second, background included.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

import numpy as np

from ..registry import Registry


@dataclass(frozen=True)
class TaskSpec:
    name: str
    dataset: str  # annotation reader name
    level: str  # "segment" | "clip"
    background: bool  # a background class is appended to the label space (index = num classes)
    main_metric: str
    description: str

    def num_outputs(self, num_classes: int) -> int:
        return num_classes + (1 if self.background else 0)

    def class_list(self, class_names: List[str], background_name: str = "background") -> List[str]:
        return list(class_names) + ([background_name] if self.background else [])

    # -- targets ---------------------------------------------------------------------------
    def training_targets(self, batch: Dict, num_classes: int):
        """Soft targets for the loss: (B, T, K) for segment tasks, (B, K) for clip tasks.

        Clip tasks spread a clip's probability mass evenly over its labels, which equals the
        official one-hot target for the single-label clips the official protocol trains on.
        """
        import torch

        if self.level == "segment":
            seg = batch["segment_labels"]
            k = self.num_outputs(num_classes)
            return torch.nn.functional.one_hot(seg.clamp(min=0), k).float()
        labels = batch["labels"].float()
        return labels / labels.sum(dim=1, keepdim=True).clamp(min=1.0)

    def reduce(self, scores):
        """Per-segment scores (B, T, K) -> task-level scores."""
        return scores if self.level == "segment" else scores.mean(dim=1)

    # -- evaluation ------------------------------------------------------------------------
    def evaluate(self, scores: np.ndarray, labels: np.ndarray, segment_labels: np.ndarray) -> Dict[str, float]:
        """scores (N, T, K) fused per-segment scores; labels (N, C) multi-hot; segment_labels (N, T)."""
        from .. import metrics

        if self.level == "segment":
            pred = scores.argmax(axis=2)
            return {
                "accuracy": metrics.ave_segment_accuracy(pred, segment_labels),
                "foreground_accuracy": metrics.ave_segment_accuracy(pred, segment_labels, foreground_only=True),
                "num_clips": int(scores.shape[0]),
            }
        clip_scores = scores.mean(axis=1)
        target = metrics.first_label_targets(labels)
        out = {"accuracy": metrics.clip_accuracy(clip_scores, target), "num_clips": int(scores.shape[0])}
        if self.dataset == "llp":
            out["hit_rate"] = metrics.multilabel_hit_rate(clip_scores, labels)
        return out


TASKS: Registry[TaskSpec] = Registry("task")
_DISCOVERED = False


def discover_tasks() -> Registry[TaskSpec]:
    """Import every module of ``avfewshot.tasks`` (each registers its tasks): a new task family is one new file."""
    global _DISCOVERED
    if not _DISCOVERED:
        import importlib
        import pkgutil

        package = importlib.import_module(__package__)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{__package__}.{module.name}")
        _DISCOVERED = True
    return TASKS


def get_task(name: str) -> TaskSpec:
    """The registered task; an unknown name is a one-line error listing the valid names."""
    return discover_tasks().get(name)
