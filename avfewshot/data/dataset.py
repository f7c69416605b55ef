"""The torch Dataset over annotated clips: decoded (and cached) media plus labels, per docs/design.md.

One item is a dict::

    index           int              position in the record list
    clip_id         str
    cache_key       str              decoded-cache digest (media identity + every MediaSpec field)
    frames          float32 (T, 3, H, W)   normalised with the spec's image_norm statistics
    audio           float32 (T, S)         mono, S = spec.audio_rate
    labels          float32 (C,)           video-level multi-hot
    segment_labels  int64 (T,)             per-second class, background = C; -1 where unknown

``collate_clips`` stacks items and drops the ``None`` of skipped clips. The dataset holds only
plain data (records, paths, the spec, the cache object), so it pickles into DataLoader workers.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from ..errors import MediaError, UserError
from .cache import DecodedCache
from .media import LAYOUTS, MediaSpec, decode_clip, find_media, normalise_frames
from .records import ClipRecord

log = logging.getLogger("avfewshot")

PathLike = Union[str, "os.PathLike[str]"]
ON_ERROR = ("raise", "skip")


class AVClipDataset:
    """Clips of one split.

    records:     the clips (``ClipRecord``), in the order items are indexed.
    num_classes: C, the dataset's classes without background.
    media_root:  folder holding the media in ``layout`` ("raw" or "dgsct").
    cache:       a :class:`DecodedCache`, ``None`` for the default location, or ``False`` for none.
    on_error:    "raise" (a clip that cannot be decoded raises ``MediaError``) or "skip" (it is
                 reported once with a warning naming the file, listed in ``skipped``, and the item
                 is ``None``, which ``collate_clips`` drops).
    background:  True when the task scores background seconds (their label is C); False turns
                 background seconds into -1 (ignored) for clip-level tasks.
    """

    def __init__(
        self,
        records: Sequence[ClipRecord],
        num_classes: int,
        media_root: PathLike,
        spec: Optional[MediaSpec] = None,
        layout: str = "raw",
        cache: Union[DecodedCache, None, bool] = None,
        on_error: str = "raise",
        background: bool = True,
    ):
        if layout not in LAYOUTS:
            raise UserError(f"unknown media layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")
        if on_error not in ON_ERROR:
            raise UserError(f"unknown on_error {on_error!r}; valid values: {', '.join(ON_ERROR)}")
        if num_classes < 1:
            raise UserError(f"num_classes must be >= 1, got {num_classes}")
        self.records: List[ClipRecord] = list(records)
        self.num_classes = int(num_classes)
        self.media_root = Path(media_root)
        self.spec = spec or MediaSpec()
        self.layout = layout
        if cache is None or cache is True:
            cache = DecodedCache()
        elif cache is False:
            cache = DecodedCache(enabled=False)
        self.cache: DecodedCache = cache
        self.on_error = on_error
        self.background = bool(background)
        self.skipped: List[str] = []  # clip ids skipped in this process (see decode_all for workers)
        # False once every frozen feature a method needs is cached: items then carry labels and the
        # cache key only, and no media is read (see avfewshot.engine.trainer.warm_feature_cache)
        self.media = True
        self.failures: Dict[int, str] = {}  # index -> error message, known failures are not retried

    def __len__(self) -> int:
        return len(self.records)

    # -- labels ---------------------------------------------------------------------------------

    def label_vector(self, record: ClipRecord) -> np.ndarray:
        vector = np.zeros(self.num_classes, dtype=np.float32)
        for label in record.labels:
            if not 0 <= label < self.num_classes:
                raise UserError(
                    f"clip {record.clip_id} ({record.source[0]}, line {record.source[1]}): label {label} "
                    f"is outside the dataset's {self.num_classes} classes"
                )
            vector[label] = 1.0
        return vector

    def segment_vector(self, record: ClipRecord) -> np.ndarray:
        T = self.spec.num_segments
        if record.segment_labels is None:
            return np.full(T, -1, dtype=np.int64)
        seconds = np.asarray(record.segment_labels, dtype=np.int64)
        if seconds.shape != (T,):
            raise UserError(f"clip {record.clip_id}: {seconds.size} per-second labels, expected {T}")
        if not self.background:
            seconds = np.where(seconds >= self.num_classes, -1, seconds)
        return seconds

    # -- items ----------------------------------------------------------------------------------

    def _decode(self, record: ClipRecord):
        files = find_media(self.media_root, record.media_id, self.layout)
        return self.cache.fetch(files, self.spec, decode_clip)

    def _skip(self, index: int, record: ClipRecord, message: str) -> None:
        if index not in self.failures:
            log.warning("skipping clip %s: %s", record.clip_id, message)
            self.skipped.append(record.clip_id)
        self.failures[index] = message

    def __getitem__(self, index: int) -> Optional[Dict[str, object]]:
        import torch

        index = int(index)
        record = self.records[index]
        if index in self.failures:
            if self.on_error == "raise":
                raise MediaError(self.failures[index])
            return None
        if not self.media:
            files = find_media(self.media_root, record.media_id, self.layout)
            return {
                "index": index,
                "clip_id": record.clip_id,
                "cache_key": self.cache.key(files, self.spec),
                "labels": torch.from_numpy(self.label_vector(record)),
                "segment_labels": torch.from_numpy(self.segment_vector(record)),
            }
        try:
            clip, key = self._decode(record)
        except MediaError as exc:
            if self.on_error == "raise":
                raise
            self._skip(index, record, str(exc))
            return None
        return {
            "index": index,
            "clip_id": record.clip_id,
            "cache_key": key,
            "frames": normalise_frames(clip.frames, self.spec.image_norm),
            "audio": torch.from_numpy(clip.audio),
            "labels": torch.from_numpy(self.label_vector(record)),
            "segment_labels": torch.from_numpy(self.segment_vector(record)),
        }

    def __repr__(self) -> str:
        return (
            f"AVClipDataset({len(self)} clips, {self.num_classes} classes, root={str(self.media_root)!r}, "
            f"layout={self.layout}, cache={self.cache!r})"
        )


def collate_clips(items: Sequence[Optional[Dict[str, object]]]) -> Optional[Dict[str, object]]:
    """Stack dataset items into the batch contract; skipped (None) items are dropped.

    Returns None when every item of the batch was skipped. Items without media (a dataset with
    ``media=False``) give a batch without ``frames`` / ``audio``.
    """
    import torch

    kept = [item for item in items if item is not None]
    if not kept:
        return None
    batch = {
        "index": torch.tensor([int(item["index"]) for item in kept], dtype=torch.int64),
        "clip_id": [item["clip_id"] for item in kept],
        "cache_key": [item["cache_key"] for item in kept],
        "labels": torch.stack([item["labels"] for item in kept]),
        "segment_labels": torch.stack([item["segment_labels"] for item in kept]),
    }
    for key in ("frames", "audio"):
        if key in kept[0]:
            batch[key] = torch.stack([item[key] for item in kept])
    return batch


class _Probe:
    """Picklable worker task for decode_all: decode one clip, report (index, error or None)."""

    def __init__(self, dataset: AVClipDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        record = self.dataset.records[index]
        try:
            self.dataset._decode(record)
        except MediaError as exc:
            return index, str(exc)
        return index, None


def _first(batch):
    return batch[0]


def decode_all(dataset: AVClipDataset, num_workers: int = 0) -> List[str]:
    """Decode every clip once (filling the cache) and record failures in the dataset.

    With ``on_error="skip"`` this makes ``dataset.skipped`` complete even when later passes use
    DataLoader workers (whose own lists never reach the main process); failed clips are not
    decoded again. With ``on_error="raise"`` the first failure raises. Returns the skipped ids.
    """
    from torch.utils.data import DataLoader

    probe = _Probe(dataset)
    if num_workers > 0:
        results = DataLoader(probe, batch_size=1, num_workers=num_workers, collate_fn=_first)
    else:
        results = (probe[i] for i in range(len(probe)))
    for index, error in results:
        if error is None:
            continue
        if dataset.on_error == "raise":
            raise MediaError(error)
        dataset._skip(index, dataset.records[index], error)
    return list(dataset.skipped)
