"""Builds a run's data: annotations, the k-shot split (generated once, then read back), datasets."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from ..config import RunConfig
from ..errors import MediaError, UserError

log = logging.getLogger("avfewshot")


@dataclass
class RunData:
    dataset: str
    root: Path
    class_names: List[str]  # the dataset's classes (without background)
    train: object  # AVClipDataset or None (zero-shot)
    val: object
    test: object
    split_file: Optional[Path]


def data_root(cfg: RunConfig, dataset: str) -> Path:
    if cfg.data.root:
        root = Path(cfg.data.root).expanduser()
        if not root.is_dir():
            raise UserError(f"--data-root {root} is not a folder")
        return root
    from ..data.synth import ensure_demo

    return Path(ensure_demo(dataset))


def splits_dir(cfg: RunConfig, root: Path) -> Path:
    """Demo splits live beside the demo data; real-data splits in the project's splits/ folder."""
    return root / "splits" if cfg.demo else Path(cfg.data.splits_dir)


def media_spec(cfg: RunConfig, backbone):
    from ..data.media import MediaSpec

    return MediaSpec(
        image_size=backbone.image_size,
        image_norm=cfg.model.image_norm,
        frame_position=cfg.data.frame_position,
        audio_rate=backbone.audio_rate,
    )


def build_run_data(cfg: RunConfig, task, backbone, need_train: bool) -> RunData:
    from ..data import annotations as ann
    from ..data import splits as splits_lib
    from ..data.cache import DecodedCache
    from ..data.dataset import AVClipDataset, decode_all

    root = data_root(cfg, task.dataset)
    annotations = ann.read_annotations(task.dataset, root)
    for problem in annotations.problems:
        log.warning("%s", problem)
    spec = media_spec(cfg, backbone)
    media_root = Path(cfg.data.media_root).expanduser() if cfg.data.media_root else root
    cache = DecodedCache(root=cfg.data.cache_dir, enabled=cfg.data.cache)
    num_classes = len(annotations.class_names)

    def dataset(records):
        return AVClipDataset(
            records,
            num_classes=num_classes,
            media_root=media_root,
            spec=spec,
            layout=cfg.data.layout,
            cache=cache,
            on_error=cfg.data.on_error,
            background=task.background,
        )

    train = val = None
    split_file = None
    if need_train and cfg.data.split_protocol == "full":  # pretraining: every train / val clip
        train = dataset(annotations.split("train"))
        val_records = annotations.split("val")
        val = dataset(val_records) if val_records else None
    elif need_train:
        out = splits_dir(cfg, root)
        split_file = splits_lib.split_path(out, task.dataset, cfg.data.split_protocol, cfg.shots, cfg.seed)
        if not split_file.exists():
            split = splits_lib.make_split(
                annotations, cfg.shots, cfg.seed, protocol=cfg.data.split_protocol, allow_fewer=cfg.data.allow_fewer
            )
            splits_lib.write_split(split, out)
            log.info("wrote split %s", split_file)
        split = splits_lib.load_split(split_file, root=root, strict=True)
        train = dataset(splits_lib.split_records(split, annotations, "train"))
        val_records = splits_lib.split_records(split, annotations, "val")
        val = dataset(val_records) if val_records else None
    test = dataset(annotations.split("test"))
    if len(test) == 0:
        raise UserError(f"{root}: the {task.dataset} annotations have no test split to evaluate on")
    for name, ds in (("train", train), ("val", val), ("test", test)):
        if ds is not None:  # decode once up front: fills the cache, reports bad clips before training
            try:
                skipped = decode_all(ds, cfg.data.num_workers)
            except MediaError as exc:
                raise MediaError(f"{exc}\n(to report and skip such clips instead, add data.on_error=skip; "
                                 f"to list every problem first, run 'avfewshot data check')") from None
            if skipped:
                log.warning("%s: %d clip(s) skipped (undecodable media): %s", name, len(skipped), ", ".join(skipped[:5]))
    return RunData(task.dataset, root, list(annotations.class_names), train, val, test, split_file)
