"""The tiny configuration's inputs: AVS / AVQA splits read and passed once through the frozen stand-in encoder.

``avs_split`` gives the four stage maps, audio vectors and masks of an AVSBench split; ``avqa_split`` the
final maps, audio vectors, question tokens, answers and types of a MUSIC-AVQA split; ``negatives`` the frames
of other videos for the match term. The runs themselves are ``runs.py`` (``avfewshot supervised``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
from torch.nn import functional as F

from ..data.avqa import encode_answer, encode_question, read_avqa_questions
from ..data.avsbench import load_avs_clip, read_avs_meta
from ..data.facts import AVQA_SEGMENTS
from .negatives import sample_negatives
from .standin import STANDIN_STAGE_DIMS, StandInAudio, StandInVisual, frames_to_tensor

MASK_SIZE = 32  # the tiny decoder works on 8/4/2/1 grids -> 32^2 masks (cheap on a loaded 2-core CPU)
AVS_IMAGE = 32
AVQA_IMAGE = 64  # a 2 x 2 final map keeps left / right apart


def avs_split(root, subset: str, split: str, visual: StandInVisual, audio: StandInAudio) -> Dict[str, object]:
    maps: List[List[torch.Tensor]] = [[] for _ in STANDIN_STAGE_DIMS]
    sounds, masks = [], []
    for clip in read_avs_meta(root, subset, split):
        data = load_avs_clip(root, clip)
        for i, m in enumerate(visual(frames_to_tensor(data["frames"], AVS_IMAGE))):
            maps[i].append(m)
        sounds.append(audio(data["audio"]))
        mask = torch.from_numpy(data["masks"])[:, None]
        masks.append(F.interpolate(mask, size=(MASK_SIZE, MASK_SIZE), mode="nearest")[:, 0])
    return {"maps": [torch.cat(m) for m in maps], "audio": torch.stack(sounds), "masks": torch.stack(masks)}


def avqa_split(root, split: str, visual: StandInVisual, audio: StandInAudio, qvocab, avocab) -> Dict[str, object]:
    from PIL import Image

    questions = read_avqa_questions(Path(root) / f"avqa-{split}.json").questions
    videos = sorted({q.video_id for q in questions})
    finals, sounds = [], []
    for vid in videos:
        folder = Path(root) / "frames" / vid
        names = sorted(folder.glob("*.jpg"))
        picks = np.linspace(1, len(names), AVQA_SEGMENTS).astype(int) - 1
        frames = np.stack([np.asarray(Image.open(names[i]).convert("RGB")) for i in picks])
        finals.append(visual(frames_to_tensor(frames, AVQA_IMAGE))[-1])
        wave = np.load(Path(root) / "audio_wave" / f"{vid}.npy").reshape(AVQA_SEGMENTS, -1)
        sounds.append(audio(wave))
    position = {vid: i for i, vid in enumerate(videos)}
    return {
        "visual": torch.stack(finals), "audio": torch.stack(sounds), "videos": videos,
        "video": torch.as_tensor([position[q.video_id] for q in questions]),
        "tokens": torch.as_tensor([encode_question(q, qvocab) for q in questions]),
        "answers": torch.as_tensor([encode_answer(q, avocab) for q in questions]),
        "types": [(q.modality, q.subtype) for q in questions],
    }


def negatives(data, video_idx: torch.Tensor, rng) -> torch.Tensor:
    picks = sample_negatives(data["videos"], AVQA_SEGMENTS, rng)
    out = [torch.stack([data["visual"][v, f] for v, f in picks[int(i)]]) for i in video_idx]
    return torch.stack(out)
