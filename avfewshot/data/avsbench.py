"""AVSBench-object S4 / MS3: meta CSV, file layout, and clip loading that validates as it reads.

Layouts (docs/datasets.md §4), ``<sp>`` = split, ``<cat>`` = category, ``<n>`` = clip name:

* S4  ``s4_data/visual_frames/<sp>/<cat>/<n>/<n>_{1..5}.png``; masks ``s4_data/gt_masks/<sp>/<cat>/<n>/<n>_{k}.png``
  where **train has only k = 1** (S4 trains on the first frame's mask), val / test k = 1..5;
  ``audio_wav/<sp>/<cat>/<n>.wav``; DG-SCT ``wave/<sp>/<cat>/AVS.npy`` (pickled dict '<n>.wav' -> 160,000 samples).
* MS3 ``ms3_data/visual_frames/<n>/<n>.mp4_{1..5}.png`` (no split folder, ``.mp4_`` infix); masks
  ``ms3_data/gt_masks/<sp>/<n>/<n>_{1..5}.png`` in every split; ``audio_wav/<sp>/<n>.wav``; ``wave/<sp>/AVS.npy``.

A clip is 5 frames and 5 s of audio. Masks must be 0/255 grayscale (or palette indices 0/255): the
official loaders turn anything else (e.g. RGB) into non-binary targets, so such a file is refused.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from ..errors import AnnotationError, MediaError, UserError
from .facts import AVS_DATA_FOLDERS, AVS_FRAMES, AVS_META_FILES, AVS_SUBSETS, AVS_WAVE_FILE, DGSCT_AUDIO_RATE, SPLITS

PathLike = Union[str, Path]


@dataclass(frozen=True)
class AVSClip:
    subset: str  # "s4" or "ms3"
    name: str
    category: str  # S4 category; "" for MS3
    split: str
    row: int  # 1-based line in the meta CSV

    @property
    def mask_frames(self) -> Tuple[int, ...]:
        """1-based frames that have a ground-truth mask (S4 train: the first only)."""
        return (1,) if self.subset == "s4" and self.split == "train" else tuple(range(1, AVS_FRAMES + 1))


def _subset(subset: str) -> str:
    key = str(subset).lower()
    if key not in AVS_SUBSETS:
        raise UserError(f"AVSBench: unknown subset {subset!r}; valid: {', '.join(AVS_SUBSETS)}")
    return key


def read_avs_meta(root: PathLike, subset: str, split: Optional[str] = None) -> List[AVSClip]:
    """Clips of the meta CSV (header row required), optionally of one split.

    S4 columns are read by position like the official loader (0 name, 1 start, 2 category, 3 split);
    MS3 by position 0 (name) and the ``split`` header column.
    """
    subset = _subset(subset)
    path = Path(root) / AVS_META_FILES[subset]
    if not path.is_file():
        raise AnnotationError(f"{path}: AVSBench meta CSV not found; an {subset.upper()} root holds {AVS_META_FILES[subset]}")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise AnnotationError(f"{path}: empty meta CSV (expected a header row)")
    header = [h.strip() for h in rows[0]]
    if subset == "ms3":
        if "split" not in header:
            raise AnnotationError(f"{path}, line 1: no `split` column in the header {header}")
        split_col, cat_col, width = header.index("split"), None, max(1, header.index("split") + 1)
    else:
        split_col, cat_col, width = 3, 2, 4
    clips: List[AVSClip] = []
    seen: Dict[str, int] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < width:
            raise AnnotationError(f"{path}, line {number}: {len(row)} column(s), expected at least {width}")
        name, sp = row[0].strip(), row[split_col].strip()
        if not name:
            raise AnnotationError(f"{path}, line {number}: empty clip name")
        if sp not in SPLITS:
            raise AnnotationError(f"{path}, line {number}: split {sp!r} is not one of {', '.join(SPLITS)}")
        if subset == "s4":
            try:
                int(row[1].strip())
            except ValueError:
                raise AnnotationError(f"{path}, line {number}: start time {row[1]!r} is not whole seconds") from None
            if not row[cat_col].strip():
                raise AnnotationError(f"{path}, line {number}: empty category")
        if name in seen:
            raise AnnotationError(f"{path}, line {number}: clip {name!r} repeats line {seen[name]}")
        seen[name] = number
        if split is None or sp == split:
            clips.append(AVSClip(subset, name, row[cat_col].strip() if cat_col is not None else "", sp, number))
    return clips


def clip_paths(root: PathLike, clip: AVSClip) -> Dict[str, object]:
    """Where the clip's files live: frames (5), masks (those of ``mask_frames``), wav, wave dict."""
    base = Path(root) / AVS_DATA_FOLDERS[clip.subset]
    n, sp = clip.name, clip.split
    if clip.subset == "s4":
        rel = Path(sp) / clip.category
        frames = [base / "visual_frames" / rel / n / f"{n}_{i}.png" for i in range(1, AVS_FRAMES + 1)]
        masks = [base / "gt_masks" / rel / n / f"{n}_{k}.png" for k in clip.mask_frames]
        wav, wave = base / "audio_wav" / rel / f"{n}.wav", base / "wave" / rel / AVS_WAVE_FILE
    else:
        frames = [base / "visual_frames" / n / f"{n}.mp4_{i}.png" for i in range(1, AVS_FRAMES + 1)]
        masks = [base / "gt_masks" / sp / n / f"{n}_{k}.png" for k in clip.mask_frames]
        wav, wave = base / "audio_wav" / sp / f"{n}.wav", base / "wave" / sp / AVS_WAVE_FILE
    return {"frames": frames, "masks": masks, "wav": wav, "wave": wave}


def _open_image(path: Path):
    from PIL import Image

    if not path.is_file():
        raise MediaError(f"{path}: file not found")
    try:
        image = Image.open(path)
        image.load()
    except Exception as exc:  # PIL raises many types for corrupt files
        raise MediaError(f"{path}: cannot read the image ({exc})") from None
    return image


def read_mask(path: Path) -> np.ndarray:
    """A 0/255 mask PNG as float32 0/1 (mode L, 1 or palette indices 0/255); anything else is refused."""
    image = _open_image(path)
    if image.mode not in ("L", "1", "P"):
        raise MediaError(f"{path}: mask mode {image.mode}; AVSBench masks are 8-bit grayscale 0/255 (RGB masks "
                         "become non-binary targets in the official loaders)")
    values = np.asarray(image.convert("L") if image.mode == "1" else image, dtype=np.uint8)
    bad = np.setdiff1d(np.unique(values), (0, 255))
    if bad.size:
        raise MediaError(f"{path}: mask values {bad[:5].tolist()} are not 0 or 255")
    return (values == 255).astype(np.float32)


def read_frame(path: Path, size: Optional[int] = None) -> np.ndarray:
    """An RGB frame as uint8 (H, W, 3), optionally bicubic-resized to size x size."""
    from PIL import Image

    image = _open_image(path).convert("RGB")
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


@lru_cache(maxsize=16)
def _wave_dict(path: str) -> Dict[str, np.ndarray]:
    try:
        data = np.load(path, allow_pickle=True)
    except (OSError, ValueError) as exc:
        raise MediaError(f"{path}: cannot read the DG-SCT wave dict ({exc})") from None
    item = data.item() if getattr(data, "shape", None) == () else data
    if not isinstance(item, dict):
        raise MediaError(f"{path}: expected a pickled dict '<name>.wav' -> samples, got {type(item).__name__}")
    return item


def read_wave(root: PathLike, clip: AVSClip) -> np.ndarray:
    """DG-SCT audio: the clip's 160,000 samples at 32 kHz from its folder's AVS.npy, as (5, 32000) float32."""
    path = clip_paths(root, clip)["wave"]
    if not Path(path).is_file():
        raise MediaError(f"{path}: DG-SCT wave dict not found")
    waves = _wave_dict(str(path))
    key = f"{clip.name}.wav"
    if key not in waves:
        raise MediaError(f"{path}: no entry {key!r} (meta CSV line {clip.row})")
    samples = np.asarray(waves[key], dtype=np.float32).reshape(-1)
    if samples.size != AVS_FRAMES * DGSCT_AUDIO_RATE:
        raise MediaError(f"{path}: entry {key!r} has {samples.size} samples, expected {AVS_FRAMES * DGSCT_AUDIO_RATE}")
    return samples.reshape(AVS_FRAMES, DGSCT_AUDIO_RATE)


def load_avs_clip(root: PathLike, clip: AVSClip, image_size: Optional[int] = None) -> Dict[str, object]:
    """frames (5, H, W, 3) uint8, masks (K, 224, 224) 0/1 with their 1-based frame numbers, audio (5, 32000)."""
    paths = clip_paths(root, clip)
    frames = np.stack([read_frame(p, image_size) for p in paths["frames"]])
    masks = [read_mask(p) for p in paths["masks"]]
    if len({m.shape for m in masks}) != 1:
        raise MediaError(f"{paths['masks'][0].parent}: masks of different sizes")
    return {"frames": frames, "masks": np.stack(masks), "mask_frames": clip.mask_frames, "audio": read_wave(root, clip)}
