"""Frame decoding: the raw layout's video (decord), the DG-SCT layout's jpgs, resizing and normalisation."""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import numpy as np

from ..errors import MediaError
from .media_problems import captured_stderr, check_length, check_nonempty, media_error, short_message

if TYPE_CHECKING:
    from .media import MediaFiles, MediaSpec

IMAGE_NORMS = ("clip", "imagenet")
NORM_STATS: Dict[str, Tuple[Tuple[float, float, float], Tuple[float, float, float]]] = {
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def segment_times(spec: MediaSpec) -> List[float]:
    """Time (s) of the frame shown for each segment: ``t + frame_position``."""
    return [t + spec.frame_position for t in range(spec.num_segments)]


def quiet_decord():
    import decord

    try:
        decord.logging.set_level(decord.logging.QUIET)
    except Exception:  # older decord without the logging module
        pass
    return decord


def _video_stream_count(path: Path) -> Optional[int]:
    """Number of video streams PyAV finds in the container (None when it cannot open it either)."""
    import av

    try:
        with av.open(str(path)) as container:
            return len(container.streams.video)
    except Exception:
        return None


def _decoder_detail(exc: BaseException, captured: List[str], path: Path) -> str:
    """The exception's text, plus the line decord logged to stderr when it says more."""
    detail = short_message(exc)
    logged = " ".join(line for text in captured for line in text.splitlines() if line.strip())
    if logged:
        said = short_message(logged.replace(str(path), "the file"))
        if said not in detail:
            detail = f"{detail}; decord: {said}"
    return detail


def read_video_frames(path: Path, spec: MediaSpec, notes: List[str]) -> Tuple[np.ndarray, Tuple[int, ...]]:
    check_nonempty(path, "video")
    decord = quiet_decord()
    try:
        with captured_stderr() as captured:  # decord's own error line would leak beside ours
            reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
            count = len(reader)
            stamps = reader.get_frame_timestamp(list(range(count))) if count else np.zeros((0, 2))
    except Exception as exc:  # decord raises RuntimeError / DECORDError with ffmpeg's text
        if _video_stream_count(path) == 0:
            raise media_error("no_video",
                f"{path}: the file has no video stream (audio only); supply the video, or the DG-SCT "
                f"prepared frames (--layout dgsct), or drop the clip"
            ) from None
        raise MediaError(
            f"{path}: cannot decode the video ({_decoder_detail(exc, captured, path)}); the file is truncated, "
            f"corrupt or not a video. Re-download or re-encode it"
        ) from None
    if count == 0:
        raise media_error("frame_count", f"{path}: the video stream has no frames")
    starts = np.asarray(stamps, dtype=np.float64)[:, 0]
    end = float(np.asarray(stamps)[-1, 1])
    if not end > starts[-1]:
        fps = float(reader.get_avg_fps() or 0) or 1.0
        end = float(starts[-1]) + 1.0 / fps
    check_length(path, "video", end, spec, notes)
    indices = []
    for when in segment_times(spec):
        index = int(np.searchsorted(starts, when + 1e-6, side="right")) - 1
        indices.append(min(max(index, 0), count - 1))
    try:
        with captured_stderr() as captured:
            frames = reader.get_batch(indices).asnumpy()
    except Exception as exc:
        raise MediaError(
            f"{path}: frames {sorted(set(indices))} cannot be decoded ({_decoder_detail(exc, captured, path)}); the file is "
            f"probably truncated. Re-download or re-encode it"
        ) from None
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise MediaError(f"{path}: decoded frames have shape {frames.shape}, expected (T, H, W, 3)")
    return frames, tuple(indices)


def dgsct_frame_numbers(count: int, num_segments: int = 10) -> List[int]:
    """1-based frame numbers DG-SCT reads from a folder of ``count`` jpgs: floor(linspace(1, N, T))."""
    return [int(math.floor(v)) for v in np.linspace(1, count, num_segments)]


def read_jpg_frames(files: MediaFiles, spec: MediaSpec) -> Tuple[np.ndarray, Tuple[int, ...]]:
    from PIL import Image

    frame_dir = files.frames[0].parent if files.frames else None
    count = len(files.frames)
    if count < spec.num_segments:
        where = frame_dir if frame_dir is not None else f"frames/{files.media_id}"
        raise media_error("frame_count",
            f"{where}: {count} frame file(s), at least {spec.num_segments} are needed "
            f"(one per second); re-extract the frames"
        )
    by_name = {p.name: p for p in files.frames}
    numbers = dgsct_frame_numbers(count, spec.num_segments)
    images = []
    size = None
    for number in numbers:
        name = f"{number:08d}.jpg"
        path = by_name.get(name)
        if path is None:
            raise media_error("frame_count",
                f"{frame_dir / name}: expected frame file missing; the folder holds {count} jpgs but they "
                f"are not named 00000001.jpg..{count:08d}.jpg (unexpected frame numbering)"
            )
        check_nonempty(path, "frame")
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))
        except Exception as exc:
            raise MediaError(f"{path}: cannot decode the jpg ({short_message(exc)}); re-extract the frames") from None
        if size is None:
            size = array.shape
        elif array.shape != size:
            raise MediaError(f"{path}: frame size {array.shape[1]}x{array.shape[0]} differs from the clip's other frames")
        images.append(array)
    return np.stack(images), tuple(n - 1 for n in numbers)


def resize_frames(frames: np.ndarray, spec: MediaSpec) -> np.ndarray:
    """uint8 (T, h, w, 3) -> uint8 (T, S, S, 3), interpolated in float and rounded back."""
    import torch
    import torch.nn.functional as F

    size = spec.image_size
    if frames.shape[1] == size and frames.shape[2] == size:
        return np.ascontiguousarray(frames, dtype=np.uint8)
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    kwargs = {"align_corners": False} if spec.resize_mode in ("bicubic", "bilinear") else {}
    if spec.resize_mode != "nearest":
        kwargs["antialias"] = spec.antialias
    y = F.interpolate(x, size=(size, size), mode=spec.resize_mode, **kwargs)
    y = y.round_().clamp_(0, 255).to(torch.uint8)
    return y.permute(0, 2, 3, 1).contiguous().numpy()


def normalise_frames(frames, norm: str):
    """uint8 (..., H, W, 3) array/tensor -> float32 torch (..., 3, H, W) with the encoder's mean/std.

    Computed in numpy (single-threaded) as ``x * (1 / (255 std)) - mean / std`` on a contiguous
    channel-first copy: torch's threaded element-wise kernels and strided float views were 4-8x
    slower per clip on a busy 2-core machine, and this runs once per item. Frames read from the
    decoded cache are a (..., H, W, 3) view of channel-first bytes: the copy is then skipped.
    """
    import torch

    mean, std = NORM_STATS[norm]
    array = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    channel_first = np.ascontiguousarray(np.moveaxis(array, -1, -3))
    out = channel_first.astype(np.float32)
    out *= (1.0 / (255.0 * np.asarray(std, dtype=np.float32))).reshape(3, 1, 1)
    out -= (np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32)).reshape(3, 1, 1)
    return torch.from_numpy(out)
