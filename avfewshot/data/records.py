"""Typed records shared by every annotation reader, the dataset and the split generator."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .facts import CLIP_SECONDS

NUM_SEGMENTS = CLIP_SECONDS  # every clip is 10 one-second segments


@dataclass(frozen=True)
class ClipRecord:
    """One annotated clip.

    clip_id:   unique within one annotation set (what split files list).
    media_id:  stem of the media files on disk (``<media_id>.mp4``, ``frames/<media_id>/``...).
    split:     "train", "val" or "test" (or "" when the source has no split).
    labels:    video-level class indices, sorted and unique (indices into the dataset's class list).
    segment_labels: per-second class index (length NUM_SEGMENTS) where the source has it;
               the background index equals the number of classes (AVE 28, VGG-Sound 40K 141).
    source:    (file, line number) the record was read from, for error messages.
    extra:     dataset-specific fields (e.g. LLP dense audio / visual events as (T, C) 0/1 lists).
    """

    clip_id: str
    media_id: str
    split: str
    labels: Tuple[int, ...]
    segment_labels: Optional[Tuple[int, ...]] = None
    source: Tuple[str, int] = ("", 0)
    extra: Dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def first_label(self) -> int:
        """The lowest class index present (the official LLP / AVE-cls target rule)."""
        return min(self.labels) if self.labels else -1


@dataclass
class AnnotationSet:
    """All records of one dataset root plus its class list and the files they came from."""

    dataset: str
    class_names: List[str]
    records: List[ClipRecord]
    files: List[str]  # annotation files read (their sha256 goes into split files)
    background: bool = False  # True when segment labels use index len(class_names) for background
    problems: List[str] = field(default_factory=list)  # reported, not silently dropped

    def split(self, name: str) -> List[ClipRecord]:
        return [r for r in self.records if r.split == name]
