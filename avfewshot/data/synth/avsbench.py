"""Synthetic AVSBench S4 / MS3 roots: the official layout, masks painted where the sounding object is.

A clip shows, on a grey 224 x 224 canvas with the moving black bar of :mod:`.writers`, a rectangle
per object in its concept colour (:mod:`.concepts`); an object *sounds* in a second when its tone is
in the audio. The ground-truth mask of frame t is exactly the union of the rectangles of the objects
sounding in second t, so a model must listen to know which rectangle to segment:

* S4: one sounding object (its category) plus, from ``distractor=True``, one silent object of another
  category; train writes only the first frame's mask, as the official release.
* MS3: two objects whose sounding seconds differ; frames of second t are masked by the objects heard
  in t (possibly none: an empty mask). ``.mp4_`` frame names, masks for all five frames in every split.

Audio: ``audio_wav/...wav`` (16 kHz PCM) and the DG-SCT ``wave/.../AVS.npy`` dicts (160,000 samples at
32 kHz). ``manifest.json`` records every clip's boxes and sounding pattern.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ...outputs import write_json_atomic as write_json, write_text_atomic as write_text
from ...errors import UserError
from ..facts import AVS_DATA_FOLDERS, AVS_FRAMES, AVS_MASK_SIZE, AVS_META_FILES, AVS_S4_CATEGORIES, AVS_WAVE_FILE, SPLITS
from .concepts import GREY, concept_index, palette, tone_hz
from .writers import AUDIO_RATE, BAR_WIDTH, DGSCT_RATE, NOISE_AMPLITUDE, TONE_AMPLITUDE, write_wav

SIZE = AVS_MASK_SIZE


def synthetic_avs_categories() -> List[str]:
    """S4 categories whose spaced name is a synthetic 40K concept (they get its colour and tone)."""
    usable = []
    for name in AVS_S4_CATEGORIES:
        try:
            concept_index("vggsound40k", name.replace("_", " "))
        except Exception:
            continue
        usable.append(name)
    return usable


def category_signature(category: str) -> Tuple[Tuple[int, int, int], float]:
    index = concept_index("vggsound40k", category.replace("_", " "))
    return palette()[index], tone_hz(index)


def render_scene(boxes: Sequence[Tuple[Tuple[int, int, int, int], Tuple[int, int, int]]], frame_number: int) -> np.ndarray:
    image = np.empty((SIZE, SIZE, 3), dtype=np.uint8)
    image[:] = GREY
    for (y0, x0, y1, x1), colour in boxes:
        image[y0:y1, x0:x1] = colour
    x = (frame_number * 7) % (SIZE - BAR_WIDTH + 1)
    image[:, x : x + BAR_WIDTH] = 0
    return image


def box_mask(boxes: Sequence[Tuple[int, int, int, int]]) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    for y0, x0, y1, x1 in boxes:
        mask[y0:y1, x0:x1] = 255
    return mask


def _mixed_audio(tracks: Sequence[Tuple[float, Sequence[bool]]], rate: int, seed: int) -> np.ndarray:
    n = rate * AVS_FRAMES
    t = np.arange(n, dtype=np.float64) / rate
    signal = np.random.default_rng(seed).standard_normal(n) * NOISE_AMPLITUDE
    for hz, on in tracks:
        gate = np.repeat(np.asarray(on, dtype=np.float64), rate)
        signal += TONE_AMPLITUDE * gate * np.sin(2 * np.pi * hz * t)
    return signal.astype(np.float32)


def _place(rng: np.random.Generator, half: int) -> Tuple[int, int, int, int]:
    h, w = (int(v) for v in rng.integers(48, 97, size=2))
    y0 = int(rng.integers(0, SIZE - h + 1))
    x0 = int(rng.integers(half * SIZE // 2, (half + 1) * SIZE // 2 - w + 1))
    return (y0, x0, y0 + h, x0 + w)


def make_avsbench(
    root, subset: str = "s4", categories: int = 3, clips_per_category: int = 2, eval_clips_per_category: int = 1,
    seed: int = 0, distractor: bool = True,
) -> Dict[str, object]:
    """Write a synthetic ``subset`` root under ``root``; returns the manifest (also ``manifest.json``)."""
    from PIL import Image

    subset = subset.lower()
    names = synthetic_avs_categories()[:categories]
    if subset not in AVS_DATA_FOLDERS:
        raise UserError(f"synthetic AVSBench: unknown subset {subset!r}; valid: {', '.join(AVS_DATA_FOLDERS)}")
    if len(names) < 2 and (subset == "ms3" or distractor):
        raise UserError("synthetic AVSBench: a second object needs at least 2 categories (or distractor=False for S4)")
    rng = np.random.default_rng(seed)
    root = Path(root)
    base = root / AVS_DATA_FOLDERS[subset]
    meta_rows: List[List[str]] = []
    clips: List[Dict[str, object]] = []
    waves: Dict[Path, Dict[str, np.ndarray]] = {}
    counter = 0
    for split in SPLITS:
        per = clips_per_category if split == "train" else eval_clips_per_category
        for ci, category in enumerate(names):
            for _ in range(per):
                counter += 1
                name = f"syn{counter:04d}_{subset}"
                halves = [int(rng.integers(0, 2))]
                halves.append(1 - halves[0])
                objects = [category]
                if subset == "ms3" or distractor:
                    objects.append(names[(ci + 1 + int(rng.integers(0, max(1, len(names) - 1)))) % len(names)])
                boxes = [_place(rng, halves[i]) for i in range(len(objects))]
                if subset == "s4":
                    sounding = [[True] * AVS_FRAMES] + [[False] * AVS_FRAMES] * (len(objects) - 1)
                else:  # two sources, each heard in its own seconds (at least one second each)
                    first = rng.random(AVS_FRAMES) < 0.6
                    first[int(rng.integers(0, AVS_FRAMES))] = True
                    second = rng.random(AVS_FRAMES) < 0.5
                    second[int(rng.integers(0, AVS_FRAMES))] = True
                    sounding = [first.tolist(), second.tolist()]
                signatures = [category_signature(o) for o in objects]
                scene = [(boxes[i], signatures[i][0]) for i in range(len(objects))]
                if subset == "s4":
                    frame_dir = base / "visual_frames" / split / category / name
                    mask_dir = base / "gt_masks" / split / category / name
                    audio_rel = Path(split) / category
                    frame_names = [f"{name}_{i}.png" for i in range(1, AVS_FRAMES + 1)]
                    mask_frames = [1] if split == "train" else list(range(1, AVS_FRAMES + 1))
                    meta_rows.append([name, str(int(rng.integers(0, 5))), category, split])
                else:
                    frame_dir = base / "visual_frames" / name
                    mask_dir = base / "gt_masks" / split / name
                    audio_rel = Path(split)
                    frame_names = [f"{name}.mp4_{i}.png" for i in range(1, AVS_FRAMES + 1)]
                    mask_frames = list(range(1, AVS_FRAMES + 1))
                    meta_rows.append([name, split])
                frame_dir.mkdir(parents=True, exist_ok=True)
                mask_dir.mkdir(parents=True, exist_ok=True)
                for i, file_name in enumerate(frame_names):
                    Image.fromarray(render_scene(scene, counter * 5 + i)).save(frame_dir / file_name)
                for k in mask_frames:
                    heard = [boxes[o] for o in range(len(objects)) if sounding[o][k - 1]]
                    Image.fromarray(box_mask(heard), mode="L").save(mask_dir / f"{name}_{k}.png")
                tracks = [(signatures[o][1], sounding[o]) for o in range(len(objects))]
                (base / "audio_wav" / audio_rel).mkdir(parents=True, exist_ok=True)
                write_wav(base / "audio_wav" / audio_rel / f"{name}.wav", _mixed_audio(tracks, AUDIO_RATE, counter), AUDIO_RATE)
                waves.setdefault(base / "wave" / audio_rel / AVS_WAVE_FILE, {})[f"{name}.wav"] = _mixed_audio(
                    tracks, DGSCT_RATE, counter)
                clips.append({"name": name, "split": split, "category": category if subset == "s4" else "",
                              "objects": objects, "boxes": boxes, "sounding": sounding})
    for path, table in waves.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.array(table, dtype=object), allow_pickle=True)
    header = ["name", "start", "category", "split"] if subset == "s4" else ["name", "split"]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header] + meta_rows)
    write_text(root / AVS_META_FILES[subset], out.getvalue())
    manifest = {"dataset": f"avsbench-{subset}", "seed": seed, "categories": names, "clips": clips}
    write_json(root / "manifest.json", manifest)
    return manifest
