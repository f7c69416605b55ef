"""Synthetic VGG-Sound (official csv; the event fills the clip) and the DG-SCT 40K list (0/1 per second)."""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..facts import VGG40K_CATEGORIES, VGG40K_LABELS, VGGSOUND_CSV
from .concepts import vggsound40k_class_names
from .plans import ClipPlan, Sizes, T, YouTubeIds, csv_text, fill_seconds, random_span


def plan_vggsound(sizes: Sizes, rng: np.random.Generator) -> Tuple[List[ClipPlan], Dict[str, str]]:
    names = vggsound40k_class_names()[: sizes.classes]
    ids = YouTubeIds(rng)
    plans = []
    for c in range(len(names)):
        for split, count in (("train", sizes.train), ("test", sizes.evaluation)):
            for _ in range(count):
                video, start = ids(), int(rng.integers(0, 300))
                stem = f"{video}_{start:06d}"
                seconds = [c] * T
                plans.append(ClipPlan(stem, stem, split, [c], list(seconds), list(seconds), {"youtube_id": video, "start_seconds": start}))
    plans.sort(key=lambda p: p.clip_id)  # the official file is sorted by id
    rows = [(p.extra["youtube_id"], p.extra["start_seconds"], names[p.labels[0]], p.split) for p in plans]
    return plans, {VGGSOUND_CSV: csv_text(rows)}


def plan_vggsound40k(sizes: Sizes, rng: np.random.Generator) -> Tuple[List[ClipPlan], Dict[str, str]]:
    names = vggsound40k_class_names()[: sizes.classes]
    ids = YouTubeIds(rng)
    drafts = []
    for c in range(len(names)):
        for split, count in (("train", sizes.train), ("val", sizes.evaluation), ("test", sizes.evaluation)):
            for _ in range(count):
                start, end = random_span(rng, full_probability=0.3)
                drafts.append((c, split, start, end))
    plans = []
    for row, position in enumerate(rng.permutation(len(drafts))):
        c, split, start, end = drafts[int(position)]
        seconds = fill_seconds([(c, start, end)])
        video_id = f"{row:06d}"
        original = f"{ids()}_{int(rng.integers(0, 300)):06d}"
        plans.append(ClipPlan(video_id, video_id, split, [c], list(seconds), list(seconds), {"clip_name": original}))
    rows: List[Sequence[object]] = [("", "clip_name", "category", "video_id", "label", "split")]
    for row, plan in enumerate(plans):
        flags = "[" + ", ".join("1" if s >= 0 else "0" for s in plan.audio) + "]"
        rows.append((row, plan.extra["clip_name"], names[plan.labels[0]], plan.media_id, flags, plan.split))
    files = {
        VGG40K_LABELS: csv_text(rows),
        VGG40K_CATEGORIES: "".join(n + "\n" for n in names),
    }
    return plans, files
