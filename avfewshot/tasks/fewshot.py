"""The few-shot / zero-shot tasks of the DG-SCT paper and the pretraining task."""
from .base import TASKS, TaskSpec

for _spec in (
    TaskSpec("ave", "ave", "segment", True, "accuracy", "AVE event localisation: 28 events + background, per second"),
    TaskSpec("ave_cls", "ave", "clip", False, "accuracy", "AVE video classification: 28 events"),
    TaskSpec("llp_cls", "llp", "clip", False, "accuracy", "LLP video classification: 25 events, first-label accuracy + hit rate"),
    TaskSpec("vggsound40k", "vggsound40k", "segment", True, "accuracy", "VGG-Sound 40K: 141 events + background (pretraining)"),
):
    TASKS.add(_spec.name, _spec)
