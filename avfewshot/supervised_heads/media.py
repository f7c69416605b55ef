"""Model inputs of the AVS / AVQA runs on the adapted encoder: frames, audio and masks per clip, per video.

Frames are bicubic-resized to the Swin size (the released AVS resizes 224 -> 192 inside the model) and
ImageNet-normalised; audio (DG-SCT layout, 32 kHz) is resampled to HTS-AT's rate; masks are nearest-resized
to the decoder's output size. ``MediaStore`` memoises decoded items when asked (the small synthetic demos:
every epoch reads the same clips), otherwise decodes on demand.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Hashable, Optional

import numpy as np
import torch
from torch.nn import functional as F

from ..data.facts import AVQA_SEGMENTS, DGSCT_AUDIO_RATE

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def frames_tensor(frames: np.ndarray, size: int) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, size, size) float32, bicubic, ImageNet-normalised."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    return (x - IMAGENET_MEAN) / IMAGENET_STD


def audio_tensor(segments: np.ndarray, rate: int) -> torch.Tensor:
    """(T, 32000) DG-SCT segments -> (T, rate) float32 at HTS-AT's rate."""
    from ..data.media_audio import resample

    out = resample(np.ascontiguousarray(segments, dtype=np.float32), DGSCT_AUDIO_RATE, rate)
    return torch.from_numpy(np.ascontiguousarray(out[..., :rate], dtype=np.float32))


def masks_tensor(masks: np.ndarray, size: int) -> torch.Tensor:
    """(K, H, W) 0/1 -> (K, size, size) 0/1 (nearest)."""
    m = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.float32))[:, None]
    if m.shape[-1] != size:
        m = F.interpolate(m, size=(size, size), mode="nearest")
    return m[:, 0]


class MediaStore:
    """Decoded items by key, decoded by ``load(key)``; kept when ``memoise`` (small datasets only)."""

    def __init__(self, load: Callable[[Hashable], Dict[str, torch.Tensor]], memoise: bool):
        self.load, self.memoise = load, memoise
        self._items: Dict[Hashable, Dict[str, torch.Tensor]] = {}

    def __getitem__(self, key: Hashable) -> Dict[str, torch.Tensor]:
        if key in self._items:
            return self._items[key]
        item = self.load(key)
        if self.memoise:
            self._items[key] = item
        return item


def avs_item(root, clip, image_size: int, rate: int, mask_size: int) -> Dict[str, torch.Tensor]:
    from ..data.avsbench import load_avs_clip

    data = load_avs_clip(root, clip)
    return {"frames": frames_tensor(data["frames"], image_size), "audio": audio_tensor(data["audio"], rate),
            "masks": masks_tensor(data["masks"], mask_size)}


def avqa_frame_paths(root, video_id: str):
    """The video's 10 frame files: linspace over its JPGs (the released pick)."""
    from ..errors import MediaError

    folder = Path(root) / "frames" / video_id
    names = sorted(folder.glob("*.jpg"))
    if not names:
        raise MediaError(f"{folder}: no .jpg frames for AVQA video {video_id}")
    picks = np.linspace(1, len(names), AVQA_SEGMENTS).astype(int) - 1
    return [names[i] for i in picks]


def avqa_frame(root, video_id: str, index: int, image_size: int) -> torch.Tensor:
    """One of the video's 10 frames, (3, size, size): a negative needs a single frame, not the whole video."""
    from ..data.avsbench import read_frame

    return frames_tensor(read_frame(avqa_frame_paths(root, video_id)[index])[None], image_size)[0]


def avqa_video(root, video_id: str, image_size: int, rate: int) -> Dict[str, torch.Tensor]:
    """The 10 frames (linspace over the video's JPGs) and 10 audio segments of a MUSIC-AVQA video."""
    from ..data.avsbench import read_frame
    from ..errors import MediaError

    frames = np.stack([read_frame(p) for p in avqa_frame_paths(root, video_id)])
    wave_path = Path(root) / "audio_wave" / f"{video_id}.npy"
    if not wave_path.is_file():
        raise MediaError(f"{wave_path}: audio waveform not found (DG-SCT layout: {AVQA_SEGMENTS} x 32,000 samples)")
    wave = np.load(wave_path).astype(np.float32).reshape(AVQA_SEGMENTS, -1)
    return {"frames": frames_tensor(frames, image_size), "audio": audio_tensor(wave, rate)}


def stack(items, key: str, index: Optional[torch.Tensor] = None) -> torch.Tensor:
    out = torch.stack([item[key] for item in items])
    return out if index is None else out[index]
