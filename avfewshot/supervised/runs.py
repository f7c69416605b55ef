"""AVE and AVVP as supervised *task runs*: the model, its seeded training batches, evaluation and trivial baselines.

A task run is what the engine's supervised runner (``engine/supervised_runner.py``) drives; every task of
``avfewshot supervised`` offers the same calls:

* ``model``: an ``nn.Module`` with ``trainable_parameters()``, ``trainable_state()``, ``load_trainable_state()``;
* ``train_batches(seed)``: one epoch of training batches, shuffled by ``seed``;
* ``step(batch, epoch) -> (loss, parts)``: forward and loss of one batch;
* ``evaluate(split) -> metrics`` and ``baselines(split) -> {name: metrics}`` (trivial predictors);
* ``main_metric``, ``counts`` (clips per split), ``first_selectable_epoch`` (0-based) and ``data_files``
  (annotation files whose content decides the numbers: fingerprinted).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..errors import UserError
from .augment import AugmentConfig
from .data import DatasetView, SegmentSubset, build_datasets
from .presets import backbone_size


def _to(batch, device):
    if batch is None or device is None or device.type == "cpu":
        return batch
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


class _STFeatures(DatasetView):
    """Adds the LLP R(2+1)D-18 features (``st_features``, (10, 512)) to a dataset's items."""

    def __init__(self, dataset, folder: Optional[str]):
        super().__init__(dataset)
        self.folder = folder

    def __getitem__(self, index: int):
        from .avvp import load_st_features

        item = self.dataset[index]
        if item is not None:
            item["st_features"] = load_st_features(self.folder, [item["clip_id"]])[0]
        return item


class ClipTaskRun:
    """Shared by AVE and AVVP: datasets of an AVE / LLP root restricted to ``seconds``, loaders, devices."""

    first_selectable_epoch = 0

    def __init__(self, dataset: str, root: Path, size: str, seconds: Sequence[int], batch_size: int,
                 eval_batch_size: int, cache_dir: Optional[str], splits=("train", "val", "test")):
        self.seconds = list(seconds) or list(range(10))
        sets = build_datasets(dataset, root, backbone_size(size), cache_dir=cache_dir, splits=splits)
        self.full = sets
        self.datasets = {split: SegmentSubset(self.wrap(split, ds), self.seconds) for split, ds in sets.items()}
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.device: Optional[torch.device] = None
        self.data_files = sorted(p for p in Path(root).iterdir() if p.is_file() and p.suffix in (".csv", ".txt", ".json"))
        self.counts = {split: len(ds) for split, ds in self.datasets.items()}
        self._eval_cache: Dict[str, List[dict]] = {}

    def wrap(self, split: str, dataset):
        return dataset

    def train_batches(self, seed: int) -> Iterable[dict]:
        g = torch.Generator().manual_seed(seed)
        for batch in DataLoader(self.datasets["train"], batch_size=self.batch_size, shuffle=True,
                                collate_fn=self.collate, generator=g):
            if batch is not None:
                yield _to(batch, self.device)

    def eval_batches(self, split: str) -> List[dict]:
        if split not in self._eval_cache:  # decoded once: evaluation repeats every epoch
            loader = DataLoader(self.datasets[split], batch_size=self.eval_batch_size, collate_fn=self.collate)
            self._eval_cache[split] = [b for b in loader if b is not None]
        return [_to(b, self.device) for b in self._eval_cache[split]]

    def step(self, batch, epoch: int):
        return self.model.loss(batch, self.model(batch), epoch)


class AVETaskRun(ClipTaskRun):
    main_metric = "accuracy"

    def __init__(self, root: Path, cfg) -> None:
        from ..data.dataset import collate_clips
        from .ave import SupervisedAVE, SupervisedAVEConfig

        self.collate = collate_clips
        m = cfg.model
        super().__init__("ave", root, m.size, cfg.data.seconds, cfg.train.batch_size, cfg.train.eval_batch_size,
                         cfg.data.cache_dir)
        self.model = SupervisedAVE(SupervisedAVEConfig(
            size=m.size, segments=len(self.seconds), visual_weights=m.visual_weights, audio_weights=m.audio_weights,
            double_sigmoid=m.double_sigmoid, augment=AugmentConfig(spec_augment=m.spec_augment)))

    def evaluate(self, split: str) -> Dict[str, float]:
        from .ave import evaluate_ave

        return evaluate_ave(self.model, self.eval_batches(split))

    def baselines(self, split: str) -> Dict[str, Dict[str, float]]:
        from .ave import majority_segment_accuracy

        train = self.datasets["train"]
        train_labels = np.stack([self._segment_labels(train, i) for i in range(len(train))])
        target = np.concatenate([b["segment_labels"].cpu().numpy() for b in self.eval_batches(split)])
        return {"majority": {"accuracy": majority_segment_accuracy(train_labels, target)}}

    def _segment_labels(self, subset: SegmentSubset, index: int) -> np.ndarray:
        """Per-second labels of a clip from its record (no media decoding)."""
        record = subset.records[index]
        labels = np.asarray(record.segment_labels, dtype=np.int64)
        return labels[np.asarray(self.seconds)]


class AVVPTaskRun(ClipTaskRun):
    main_metric = "segment_type_at_av"

    def __init__(self, root: Path, cfg) -> None:
        from .avvp import SupervisedAVVP, SupervisedAVVPConfig, collate_dense

        self.collate = collate_dense
        m = cfg.model
        self.st_folder = cfg.data.st_features if m.st_features else None
        if m.st_features and not cfg.data.st_features:
            from .avvp import load_st_features

            load_st_features(None, [])  # the one-line error naming what is missing
        super().__init__("llp", root, m.size, cfg.data.seconds, cfg.train.batch_size, cfg.train.eval_batch_size,
                         cfg.data.cache_dir)
        self.model = SupervisedAVVP(SupervisedAVVPConfig(
            size=m.size, segments=len(self.seconds), visual_weights=m.visual_weights, audio_weights=m.audio_weights,
            st_features=m.st_features, augment=AugmentConfig(spec_augment=m.spec_augment, mixup=m.mixup),
            head={"gated_audio": m.gated_audio}))

    def wrap(self, split: str, dataset):
        from .avvp import DenseLabels

        if self.st_folder:
            dataset = _STFeatures(dataset, self.st_folder)
        return dataset if split == "train" else DenseLabels(dataset)

    def evaluate(self, split: str) -> Dict[str, float]:
        from .avvp import evaluate_avvp

        return evaluate_avvp(self.model, self.eval_batches(split))

    def baselines(self, split: str) -> Dict[str, Dict[str, float]]:
        from .avvp import trivial_avvp_baselines

        train = self.full["train"]
        labels = np.zeros((len(train), train.num_classes), dtype=np.float32)
        for i, record in enumerate(train.records):
            labels[i, list(record.labels)] = 1.0
        batches = self.eval_batches(split)
        dense_a = np.concatenate([b["dense_audio"].cpu().numpy() for b in batches])
        dense_v = np.concatenate([b["dense_visual"].cpu().numpy() for b in batches])
        return trivial_avvp_baselines(labels, dense_a, dense_v)


def build_clip_task_run(task: str, root: Path, cfg):
    if task == "ave":
        return AVETaskRun(root, cfg)
    if task == "avvp":
        return AVVPTaskRun(root, cfg)
    raise UserError(f"not an AVE / AVVP task: {task!r}")
