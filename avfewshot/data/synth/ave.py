"""Synthetic AVE: one audio-visual event per clip (start <= t < end), background elsewhere.

Quirks of the real files: a train row with no foreground second (``Church bell&VWi2ENBuTbw&good&0&0``)
and a Male + Female speech pair sharing one video across train / val.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..facts import AVE_ANNOTATIONS, AVE_CATEGORIES, AVE_CLASS_NAMES, AVE_HEADER_LINE, AVE_SPLIT_FILES
from .plans import ClipPlan, Sizes, YouTubeIds, fill_seconds, random_span


def plan_ave(sizes: Sizes, rng: np.random.Generator) -> Tuple[List[ClipPlan], Dict[str, str]]:
    names = list(AVE_CLASS_NAMES[: sizes.classes])
    ids = YouTubeIds(rng)
    by_class: Dict[int, List[ClipPlan]] = {c: [] for c in range(len(names))}
    for c in range(len(names)):
        for split, count in (("train", sizes.train), ("val", sizes.evaluation), ("test", sizes.evaluation)):
            for _ in range(count):
                start, end = random_span(rng)
                video = ids()
                by_class[c].append(ClipPlan(video, video, split, [c], [], [], {"start": start, "end": end}))
    # the real `Church bell&VWi2ENBuTbw&good&0&0` row: a train clip with no foreground second
    zero = next(p for p in reversed(by_class[0]) if p.split == "train")
    zero.extra.update(start=0, end=0)
    # a Male + Female speech pair sharing one video, with identical times, across train / val
    male, female = 1, 5
    if len(names) > female:
        shared = ids()
        start, end = 2, 9
        by_class[male].append(ClipPlan(f"{shared}#{male}", shared, "train", [male], [], [], {"start": start, "end": end}))
        by_class[female].append(ClipPlan(f"{shared}#{female}", shared, "val", [female], [], [], {"start": start, "end": end}))
    plans = [p for c in range(len(names)) for p in by_class[c]]
    shared_media = {}
    for plan in plans:
        start, end = plan.extra["start"], plan.extra["end"]
        seconds = fill_seconds([(plan.labels[0], start, end)])
        plan.audio, plan.visual = list(seconds), list(seconds)
        shared_media.setdefault(plan.media_id, []).append(plan)
    # the shared video shows the male class and sounds the female class: both events are in it
    for group in shared_media.values():
        if len(group) > 1:
            a, b = group
            visual = fill_seconds([(a.labels[0], a.extra["start"], a.extra["end"])])
            audio = fill_seconds([(b.labels[0], b.extra["start"], b.extra["end"])])
            for plan in group:
                plan.visual, plan.audio = list(visual), list(audio)
                plan.extra["shared_media"] = True
    files = _ave_files(names, plans)
    return plans, files


def _ave_row(names: Sequence[str], plan: ClipPlan) -> str:
    return f"{names[plan.labels[0]]}&{plan.media_id}&good&{plan.extra['start']}&{plan.extra['end']}\n"


def _ave_files(names: Sequence[str], plans: Sequence[ClipPlan]) -> Dict[str, str]:
    annotations = AVE_HEADER_LINE + "\n" + "".join(_ave_row(names, p) for p in plans)
    files = {AVE_ANNOTATIONS: annotations, AVE_CATEGORIES: "".join(n + "\n" for n in names)}
    for split, name in AVE_SPLIT_FILES.items():
        files[name] = "".join(_ave_row(names, p) for p in plans if p.split == split)
    return files
