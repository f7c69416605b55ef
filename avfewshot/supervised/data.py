"""Datasets of the supervised runners: the media spec of a backbone size, dataset building, segment subsets.

The supervised runners read media (frames at the Swin size, ImageNet-normalised; audio at HTS-AT's
rate) through the shared ``AVClipDataset``. ``SegmentSubset`` keeps chosen seconds of every clip
(frames, audio, per-second labels, dense LLP labels), which lets the tiny configuration train on
the 10-second demo clips with T = 2 segments.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

import torch

from ..errors import UserError
from .presets import BackboneSize

PER_SECOND_KEYS = ("frames", "audio", "segment_labels", "dense_audio", "dense_visual", "st_features")


def media_spec_for(size: BackboneSize, num_segments: int = 10):
    from ..data.media import MediaSpec

    return MediaSpec(num_segments=num_segments, image_size=size.visual.img_size, image_norm=size.image_norm,
                     audio_rate=size.audio.sample_rate)


def build_datasets(dataset: str, root: Path, size: BackboneSize, cache_dir: Optional[str] = None,
                   splits: Sequence[str] = ("train", "val", "test")) -> Dict[str, object]:
    """``AVClipDataset`` per split of an AVE / LLP root in the official annotation formats (raw media layout)."""
    from ..data import annotations as ann
    from ..data.cache import DecodedCache
    from ..data.dataset import AVClipDataset

    annotations = ann.read_annotations(dataset, root)
    cache = DecodedCache(root=cache_dir) if cache_dir else DecodedCache()
    out = {}
    for split in splits:
        records = annotations.split(split)
        if not records:
            raise UserError(f"{root}: the {dataset} annotations have no {split!r} clips")
        out[split] = AVClipDataset(records, num_classes=len(annotations.class_names), media_root=root,
                                   spec=media_spec_for(size), cache=cache, background=(dataset == "ave"))
    return out


class DatasetView:
    """Another dataset's records and length; a subclass changes what its items hold."""

    def __init__(self, dataset):
        self.dataset = dataset

    @property
    def records(self):
        return self.dataset.records

    def __len__(self) -> int:
        return len(self.dataset)


class SegmentSubset(DatasetView):
    """Items of ``dataset`` restricted to the listed seconds (in order)."""

    def __init__(self, dataset, seconds: Sequence[int]):
        super().__init__(dataset)
        self.seconds = torch.as_tensor(list(seconds), dtype=torch.long)
        if len(self.seconds) == 0:
            raise UserError("SegmentSubset: no seconds selected")

    def __getitem__(self, index: int):
        item = self.dataset[index]
        if item is None:
            return None
        for key in PER_SECOND_KEYS:
            if key in item:
                item[key] = item[key].index_select(0, self.seconds)
        return item
