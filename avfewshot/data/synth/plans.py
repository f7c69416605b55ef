"""Clip plans (what each synthetic clip shows and sounds, second by second) and their helpers."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..facts import CLIP_SECONDS, YOUTUBE_ID_ALPHABET

T = CLIP_SECONDS


@dataclass
class ClipPlan:
    clip_id: str
    media_id: str
    split: str
    labels: List[int]  # indices into the dataset's class_names (generation order)
    audio: List[int]  # per second: class index or -1
    visual: List[int]
    extra: Dict[str, object] = field(default_factory=dict)


ID_ALPHABET = YOUTUBE_ID_ALPHABET  # the order matters: ids draw from its first 62 characters


class YouTubeIds:
    """Unique 11-character YouTube-like ids; every 7th starts with '-', every 5th holds a '_'."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.seen: set = set()
        self.count = 0

    def __call__(self) -> str:
        while True:
            chars = [ID_ALPHABET[i] for i in self.rng.integers(0, 62, size=11)]
            if self.count % 7 == 3:
                chars[0] = "-"
            if self.count % 5 == 1:
                chars[4 + self.count % 5] = "_"
            value = "".join(chars)
            if value not in self.seen:
                self.seen.add(value)
                self.count += 1
                return value


def random_span(rng: np.random.Generator, full_probability: float = 0.4, min_length: int = 2) -> Tuple[int, int]:
    if rng.random() < full_probability:
        return 0, T
    start = int(rng.integers(0, T - min_length + 1))
    end = int(rng.integers(start + min_length, T + 1))
    return start, end


def fill_seconds(length_spans: Sequence[Tuple[int, int, int]]) -> List[int]:
    seconds = [-1] * T
    for label, start, end in length_spans:
        for t in range(start, end):
            seconds[t] = label
    return seconds


@dataclass
class Sizes:
    classes: int
    train: int
    evaluation: int


def event_runs(seconds: Sequence[int]) -> List[Tuple[int, int, int]]:
    """Maximal runs (label, onset, offset) of equal non-negative labels."""
    runs = []
    t = 0
    while t < len(seconds):
        if seconds[t] < 0:
            t += 1
            continue
        start = t
        while t < len(seconds) and seconds[t] == seconds[start]:
            t += 1
        runs.append((seconds[start], start, t))
    return runs


def csv_text(rows: Sequence[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")  # quotes labels that contain commas
    writer.writerows(rows)
    return buffer.getvalue()
