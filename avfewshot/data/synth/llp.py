"""Synthetic LLP: audio and visual events with their own spans, weak labels and dense eval files.

Audio-only and visual-only seconds and clips, split runs; two-label clips give each class its own
part of the clip, so at most one class sounds and one is seen per second. Quirks of the real files:
a fractional-time name, a duplicated label (``Clapping,Clapping``), eval rows naming no clip,
zero-length and reversed events.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..facts import LLP_CLASS_NAMES, LLP_DENSE_HEADER, LLP_EVAL_FILES, LLP_FULL_FILE, LLP_SPLIT_FILES, LLP_WEAK_HEADER
from .plans import ClipPlan, Sizes, T, YouTubeIds, event_runs, fill_seconds


def _llp_single(label: int, rng: np.random.Generator) -> Tuple[List[int], List[int]]:
    mode = rng.random()
    audio_start, audio_end = int(rng.integers(0, 4)), int(rng.integers(6, T + 1))
    visual_start, visual_end = int(rng.integers(0, 5)), int(rng.integers(5, T + 1))
    audio = fill_seconds([(label, audio_start, audio_end)])
    visual = fill_seconds([(label, visual_start, visual_end)])
    if mode < 0.15:  # audio-only clip (the class is heard, never seen)
        visual = [-1] * T
    elif mode < 0.3:  # visual-only clip
        audio = [-1] * T
    elif mode < 0.45:  # the sound stops and starts again: two eval rows for one class
        gap = int(rng.integers(audio_start + 1, audio_end - 1)) if audio_end - audio_start > 2 else None
        if gap is not None:
            audio[gap] = -1
    return audio, visual


def _llp_pair(first: int, second: int, rng: np.random.Generator) -> Tuple[List[int], List[int]]:
    audio_cut, visual_cut = int(rng.integers(3, 8)), int(rng.integers(3, 8))
    audio = fill_seconds([(first, int(rng.integers(0, 2)), audio_cut), (second, audio_cut, int(rng.integers(audio_cut + 1, T + 1)))])
    visual = fill_seconds([(first, int(rng.integers(0, 3)), visual_cut), (second, visual_cut, int(rng.integers(visual_cut + 1, T + 1)))])
    return audio, visual


def plan_llp(sizes: Sizes, rng: np.random.Generator) -> Tuple[List[ClipPlan], Dict[str, str]]:
    names = list(LLP_CLASS_NAMES)
    active = sizes.classes
    ids = YouTubeIds(rng)
    plans: List[ClipPlan] = []
    for split, count in (("train", sizes.train), ("val", sizes.evaluation), ("test", sizes.evaluation)):
        split_plans = []
        for c in range(active):
            for _ in range(count):
                audio, visual = _llp_single(c, rng)
                split_plans.append(([c], audio, visual))
        for c in range(0, active - 1, 2):
            audio, visual = _llp_pair(c, c + 1, rng)
            split_plans.append(([c, c + 1], audio, visual))
        order = rng.permutation(len(split_plans))
        for position in order:
            labels, audio, visual = split_plans[int(position)]
            video = ids()
            start = int(rng.integers(0, 30)) * 10
            plans.append(ClipPlan(f"{video}_{start}_{start + 10}", video, split, labels, audio, visual))
    # quirks: a fractional-time name (train) and a duplicated label (test)
    train = [p for p in plans if p.split == "train"]
    fractional = train[min(1, len(train) - 1)]
    fractional.clip_id = f"{fractional.media_id}_101.8_111.8"
    duplicated = next(p for p in plans if p.split == "test" and len(p.labels) == 1)
    duplicated.extra["duplicate_label"] = True
    for plan in plans:
        plan.extra["label_order"] = [int(i) for i in rng.permutation(len(plan.labels))]
    return plans, _llp_files(names, plans, rng)


def _llp_weak_row(names: Sequence[str], plan: ClipPlan) -> str:
    tokens = [names[plan.labels[i]] for i in plan.extra["label_order"]]
    if plan.extra.get("duplicate_label"):
        tokens = tokens + tokens  # like the real test row `Clapping,Clapping`
    return f"{plan.clip_id}\t{','.join(tokens)}\n"


def _llp_files(names: Sequence[str], plans: Sequence[ClipPlan], rng: np.random.Generator) -> Dict[str, str]:
    header = "\t".join(LLP_WEAK_HEADER) + "\n"
    files = {LLP_FULL_FILE: header + "".join(_llp_weak_row(names, p) for p in plans)}
    for split, name in LLP_SPLIT_FILES.items():
        files[name] = header + "".join(_llp_weak_row(names, p) for p in plans if p.split == split)
    evaluated = [p for p in plans if p.split in ("val", "test")]
    dense_header = "\t".join(LLP_DENSE_HEADER) + "\n"
    for modality in ("audio", "visual"):
        name = LLP_EVAL_FILES[f"{modality}_events"]
        rows = []
        for plan in evaluated:
            for label, onset, offset in event_runs(getattr(plan, modality)):
                rows.append(f"{plan.clip_id}\t{onset}\t{offset}\t{names[label]}\n")
        if modality == "audio" and evaluated:
            # odd rows of the real file: a name matching no clip (a leading '-' stripped, or a
            # mistyped end time), a zero-length event and a reversed one; none adds a positive second
            victim = evaluated[len(evaluated) // 2]
            label = names[victim.labels[0]]
            dashed = next((p for p in evaluated if p.media_id.startswith("-")), None)
            orphan = dashed.clip_id[1:] if dashed else f"{victim.media_id}_30_400"
            odd = [
                f"{orphan}\t0\t3\t{label}\n",
                f"{victim.clip_id}\t5\t5\t{label}\n",
                f"{victim.clip_id}\t9\t0\t{label}\n",
            ]
            for row in odd:
                rows.insert(int(rng.integers(0, len(rows) + 1)), row)
        files[name] = dense_header + "".join(rows)
    return files
