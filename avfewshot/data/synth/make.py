"""``make_dataset``: write a synthetic dataset root (annotation files, media, manifest.json)."""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

from ...errors import UserError
from ..facts import DATASET_TABLE, DATASETS, LLP_CLASS_NAMES, SYNTH_LAYOUTS
from .ave import plan_ave
from .concepts import class_signature, synthetic_class_names
from .domain import DomainShift
from .llp import plan_llp
from .plans import Sizes
from .vggsound import plan_vggsound, plan_vggsound40k
from .writers import (
    AUDIO_RATE, DGSCT_FRAMES_PER_SECOND, DGSCT_RATE, FPS, HEIGHT, STEREO_RATE, WIDTH, render_audio,
    write_dgsct_media, write_mp4, write_wav,
)

log = logging.getLogger("avfewshot")

PathLike = Union[str, "os.PathLike[str]"]

GENERATOR_VERSION = "1"
LAYOUTS = SYNTH_LAYOUTS

PLANNERS = {"ave": plan_ave, "llp": plan_llp, "vggsound": plan_vggsound, "vggsound40k": plan_vggsound40k}


def _reader_order(dataset: str, generation_names: List[str]) -> List[str]:
    """Class order as the annotation reader will see it (VGG-Sound sorts the csv's labels)."""
    if dataset == "vggsound":
        return sorted(generation_names)
    return list(generation_names)


def make_dataset(
    name: str,
    root: PathLike,
    classes: Optional[int] = None,
    clips_per_class: int = 2,
    seed: int = 0,
    layout: str = "raw",
    eval_clips_per_class: Optional[int] = None,
    stereo_every: int = 8,
    wav: bool = False,
    shift: Optional[DomainShift] = None,
) -> Dict[str, object]:
    """Write a synthetic ``name`` root under ``root`` and return its manifest.

    classes:              the first N class names of the dataset (default: AVE 4, LLP 4, VGG 4).
    clips_per_class:      training clips per class (LLP: single-label ones; plus one two-label clip
                          per pair of classes in every split).
    eval_clips_per_class: val / test clips per class (default ``max(1, ceil(clips_per_class / 4))``).
    layout:               "raw" (mp4 [+ wav]), "dgsct" (jpg frames + npy waves) or "both".
    stereo_every:         every n-th video gets 44.1 kHz stereo AAC (0: none).
    wav:                  also write ``audio/<id>.wav`` (16 kHz PCM) beside each raw video, as the
                          official LLP release does (320 KB per clip, so off by default).
    shift:                render every clip through a per-clip draw of this domain shift (the embedded
                          demo's colour cast, exposure and timbre; ``domain.py``); labels are unchanged.
    """
    started = time.perf_counter()
    if name not in PLANNERS:
        raise UserError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")
    if layout not in LAYOUTS:
        raise UserError(f"unknown layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")
    available = len(synthetic_class_names(name))
    classes = 4 if classes is None else int(classes)
    if not 1 <= classes <= available:
        raise UserError(f"--classes must be between 1 and {available} for {name}, got {classes}")
    if clips_per_class < 1:
        raise UserError(f"--clips-per-class must be >= 1, got {clips_per_class}")
    evaluation = max(1, -(-clips_per_class // 4)) if eval_clips_per_class is None else int(eval_clips_per_class)
    if evaluation < 1:
        raise UserError(f"eval_clips_per_class must be >= 1, got {evaluation}")
    if name == "ave" and classes == 1 and clips_per_class < 1:
        raise UserError("AVE needs at least one train clip")

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([int(seed), DATASETS.index(name)])
    plans, files = PLANNERS[name](Sizes(classes, clips_per_class, evaluation), rng)
    for file_name, text in files.items():
        (root / file_name).write_bytes(text.encode("ascii"))

    generation_names = synthetic_class_names(name)[:classes] if name != "llp" else list(LLP_CLASS_NAMES)
    reader_names = _reader_order(name, generation_names)
    to_reader = {i: reader_names.index(n) for i, n in enumerate(generation_names)}
    signatures = {n: class_signature(name, n) for n in generation_names[:classes]}

    media_written: Dict[str, Dict[str, object]] = {}
    for number, plan in enumerate(plans):
        if plan.media_id in media_written:
            continue
        colours = [signatures[generation_names[c]].colour if c >= 0 else None for c in plan.visual]
        tones = [signatures[generation_names[c]].tone_hz if c >= 0 else None for c in plan.audio]
        clip_seed = int(seed) * 1_000_003 + len(media_written)
        overtones = ()
        if shift is not None:
            drawn = shift.draw(np.random.default_rng([int(seed), DATASETS.index(name), 7, len(media_written)]))
            colours, tones, overtones = drawn.colours(colours), drawn.tones(tones), drawn.overtones()
        stereo = bool(stereo_every) and len(media_written) % stereo_every == stereo_every - 1
        if layout in ("raw", "both"):
            (root / "video").mkdir(exist_ok=True)
            write_mp4(root / "video" / f"{plan.media_id}.mp4", colours, tones, seed=clip_seed, stereo=stereo,
                      overtones=overtones)
            if wav:  # the official LLP release ships 16 kHz wavs beside the videos
                (root / "audio").mkdir(exist_ok=True)
                samples = render_audio(tones, AUDIO_RATE, clip_seed, overtones)
                write_wav(root / "audio" / f"{plan.media_id}.wav", samples, AUDIO_RATE)
        if layout in ("dgsct", "both"):
            write_dgsct_media(root, DATASET_TABLE[name].frame_folder, plan.media_id, colours, tones, clip_seed,
                              overtones)
        media_written[plan.media_id] = {"stereo": stereo and layout != "dgsct"}

    clips = []
    for plan in plans:
        clips.append({
            "clip_id": plan.clip_id,
            "media_id": plan.media_id,
            "split": plan.split,
            "labels": sorted(to_reader[c] for c in plan.labels),
            "audio": [to_reader[c] if c >= 0 else -1 for c in plan.audio],
            "visual": [to_reader[c] if c >= 0 else -1 for c in plan.visual],
            "stereo": media_written[plan.media_id]["stereo"],
            "shared_media": bool(plan.extra.get("shared_media", False)),
        })
    used = [n for n in reader_names if n in signatures]
    manifest: Dict[str, object] = {
        "generator": "avfewshot.data.synth",
        "generator_version": GENERATOR_VERSION,
        "dataset": name,
        "seed": int(seed),
        "layout": layout,
        "wav": bool(wav) and layout != "dgsct",
        "class_names": reader_names,
        "background": DATASET_TABLE[name].background,
        "signatures": {
            n: {"concept": signatures[n].concept, "colour": list(signatures[n].colour), "tone_hz": signatures[n].tone_hz}
            for n in used
        },
        "media_format": {
            "width": WIDTH, "height": HEIGHT, "fps": FPS, "audio_rate": AUDIO_RATE, "stereo_rate": STEREO_RATE,
            "dgsct_frames_per_second": DGSCT_FRAMES_PER_SECOND, "dgsct_audio_rate": DGSCT_RATE,
        },
        "annotation_files": sorted(files),
        "clips": clips,
    }
    if shift is not None:
        manifest["domain_shift"] = shift.as_dict()
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    (root / "manifest.json").write_text(text, encoding="ascii")
    log.info("synthesised %s: %d clips, %d media in %.1f s under %s", name, len(clips), len(media_written),
             time.perf_counter() - started, root)
    return dict(manifest, root=str(root))


def load_manifest(root: PathLike) -> Dict[str, object]:
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise UserError(f"{path}: no manifest; this is not a synthetic dataset root")
    return json.loads(path.read_text(encoding="ascii"))
