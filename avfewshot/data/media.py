"""Decode one clip into T one-second segments: one RGB frame and one second of mono audio each.

Two on-disk layouts sit behind :func:`find_media`:

* ``raw``: ``<root>/video/<id>.mp4`` or ``<root>/<id>.mp4`` (H.264 + AAC), optionally
  ``<root>/audio/<id>.wav`` (the official LLP release ships 16 kHz wavs beside the videos).
* ``dgsct``: the DG-SCT prepared layout, ``frames/<id>/%08d.jpg`` (LLP: ``frame/<id>/``) and
  ``wave/<id>.npy`` holding exactly T x 32,000 float samples.

Decoding rules (every parameter lives in :class:`MediaSpec`, which is part of the cache key):

* **Frames (raw)**: decoded with decord. Segment t shows the frame on screen at time
  ``t + frame_position`` seconds (the last frame whose timestamp is <= that time), so the default
  0.5 takes the middle of each second (frame 4 + 8t of an 8 fps video).
* **Frames (dgsct)**: the official rule, files ``floor(linspace(1, N, T))`` of the N jpgs;
  ``frame_position`` does not apply.
* Frames are resized to ``image_size`` x ``image_size`` (aspect not kept, no crop, as DG-SCT),
  bicubic, rounded back to uint8 so the cache stores bytes; normalisation happens in the dataset.
* **Audio**: mp4 audio is decoded with PyAV, not ``decord.AudioReader``: decord 0.6.0 returns
  wrong samples for stereo AAC (measured on a 44.1 kHz stereo 440 Hz tone: max error 0.98 on the
  second channel, 0.21 after its own downmix), and it reports no native rate when not resampling.
  Channels are averaged to mono, then ``torchaudio.functional.resample`` brings the native rate to
  ``audio_rate``.
* **AAC priming**: encoders prepend 1024 priming samples (~64 ms at 16 kHz, ~23 ms at 44.1 kHz;
  the "~48 ms" often quoted is 2112 samples at 44.1 kHz). MP4 files written by FFmpeg (and PyAV)
  signal them in an edit list and FFmpeg drops them while decoding: on the synthetic files a tone
  starting at exactly 1.000 s decodes at 1.0000625 s (16 kHz mono) and 1.0000454 s (44.1 kHz
  stereo), i.e. one or two samples late and no priming left. The rule is therefore: place the decoded
  samples on the container timeline using the first decoded frame's timestamp (samples before 0
  are cropped, a late start is padded with zeros), then crop ``audio_offset`` more seconds
  (default 0; set e.g. 0.048 for files muxed without an edit list).
* **Length**: the result is exactly ``T * audio_rate`` samples: extra samples at the end are cut;
  a shortfall of up to ``short_tolerance`` seconds is padded with zeros; a clip shorter than that
  is an error, or (``pad_short=True``) padded with a warning (last frame repeated, silence).
"""
from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import MediaError

log = logging.getLogger("avfewshot")

PathLike = Union[str, "os.PathLike[str]"]

LAYOUTS = ("raw", "dgsct")
IMAGE_NORMS = ("clip", "imagenet")
AUDIO_SOURCES = ("auto", "video", "wav")
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
DGSCT_AUDIO_RATE = 32000  # wave/<id>.npy holds T x 32,000 samples
DGSCT_FRAME_DIRS = ("frames", "frame")  # AVE / VGG-Sound use frames/, LLP uses frame/

NORM_STATS: Dict[str, Tuple[Tuple[float, float, float], Tuple[float, float, float]]] = {
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

MEDIA_PROBLEM_KINDS = ("missing", "empty", "undecodable", "no_audio", "too_short", "frame_count")


def media_error(kind: str, message: str) -> MediaError:
    """A MediaError tagged with ``kind`` (one of MEDIA_PROBLEM_KINDS) for the dataset check."""
    error = MediaError(message)
    error.kind = kind  # type: ignore[attr-defined]
    return error


def error_kind(error: BaseException) -> str:
    return getattr(error, "kind", "undecodable")


@dataclass(frozen=True)
class MediaSpec:
    """Every preprocessing parameter; the whole spec goes into the decoded-input cache key.

    audio_rate: 48,000 for CLAP's own front end, 32,000 for the DG-SCT-compatible one.
    image_norm: "clip" or "imagenet" mean/std (applied by the dataset, after the cache).
    audio_source: "auto" uses ``<id>.wav`` when present, else the video's audio track;
        "video" / "wav" force one of them.
    """

    num_segments: int = 10
    image_size: int = 224
    image_norm: str = "clip"
    frame_position: float = 0.5
    resize_mode: str = "bicubic"
    antialias: bool = False  # DG-SCT resizes tensors without antialiasing
    audio_rate: int = 48000
    audio_source: str = "auto"
    audio_offset: float = 0.0  # extra seconds cropped from the start of mp4 audio (see module doc)
    short_tolerance: float = 0.5  # seconds of missing media padded silently
    pad_short: bool = False  # pad clips shorter than that (with a warning) instead of failing

    def __post_init__(self) -> None:
        problems = []
        if self.num_segments < 1:
            problems.append(f"num_segments must be >= 1, got {self.num_segments}")
        if self.image_size < 1:
            problems.append(f"image_size must be >= 1, got {self.image_size}")
        if self.image_norm not in IMAGE_NORMS:
            problems.append(f"image_norm {self.image_norm!r} is not one of {', '.join(IMAGE_NORMS)}")
        if not 0.0 <= self.frame_position < 1.0:
            problems.append(f"frame_position must be in [0, 1), got {self.frame_position}")
        if self.resize_mode not in ("bicubic", "bilinear", "nearest"):
            problems.append(f"resize_mode {self.resize_mode!r} is not bicubic, bilinear or nearest")
        if self.audio_rate < 1000:
            problems.append(f"audio_rate {self.audio_rate} Hz is implausibly low")
        if self.audio_source not in AUDIO_SOURCES:
            problems.append(f"audio_source {self.audio_source!r} is not one of {', '.join(AUDIO_SOURCES)}")
        if self.audio_offset < 0 or self.short_tolerance < 0:
            problems.append("audio_offset and short_tolerance must be >= 0")
        if problems:
            from ..errors import UserError

            raise UserError("invalid MediaSpec: " + "; ".join(problems))

    @property
    def duration(self) -> int:
        """Seconds of media a clip must cover (T one-second segments)."""
        return self.num_segments

    def as_dict(self) -> Dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class MediaFiles:
    """The files that hold one clip's media, as located by :func:`find_media`."""

    media_id: str
    layout: str
    video: Optional[Path] = None  # raw: the video file
    audio: Optional[Path] = None  # raw: a separate wav; dgsct: wave/<id>.npy
    frames: Tuple[Path, ...] = ()  # dgsct: every jpg of frames/<id>/ in name order

    def paths(self) -> Tuple[Path, ...]:
        """Every file whose identity defines the decoded result (for cache keys)."""
        return tuple(p for p in (self.video, self.audio) if p is not None) + self.frames

    def describe(self) -> str:
        if self.layout == "raw":
            return str(self.video)
        return f"{self.frames[0].parent if self.frames else '?'} + {self.audio}"


@dataclass
class DecodedClip:
    frames: np.ndarray  # uint8 (T, H, W, 3), resized, not normalised
    audio: np.ndarray  # float32 (T, audio_rate), mono
    frame_indices: Tuple[int, ...] = ()  # which decoded frame (0-based) each segment shows
    notes: List[str] = field(default_factory=list)  # warnings (padding a short clip...)


# ---------------------------------------------------------------------------------------------
# locating files
# ---------------------------------------------------------------------------------------------


def find_media(root: PathLike, media_id: str, layout: str = "raw") -> MediaFiles:
    """Locate the media of ``media_id`` under ``root`` in the given layout; raise if absent."""
    root = Path(root)
    if layout == "raw":
        candidates = [root / "video" / f"{media_id}{ext}" for ext in VIDEO_EXTENSIONS]
        candidates += [root / f"{media_id}{ext}" for ext in VIDEO_EXTENSIONS]
        video = next((p for p in candidates if p.is_file()), None)
        if video is None:
            raise media_error("missing",
                f"{root / 'video' / (media_id + '.mp4')}: video not found for clip {media_id!r} "
                f"(looked for <root>/video/{media_id}.mp4 and <root>/{media_id}.mp4, also .mkv/.webm/.avi/.mov); "
                f"check --root and --layout"
            )
        wavs = [root / "audio" / f"{media_id}.wav", root / f"{media_id}.wav"]
        wav = next((p for p in wavs if p.is_file()), None)
        return MediaFiles(media_id, "raw", video=video, audio=wav)
    if layout == "dgsct":
        frame_dir = next(
            (root / name / media_id for name in DGSCT_FRAME_DIRS if (root / name / media_id).is_dir()), None
        )
        if frame_dir is None:
            raise media_error("missing",
                f"{root / 'frames' / media_id}: frame folder not found for clip {media_id!r} "
                f"(the DG-SCT layout keeps frames/<id>/%08d.jpg, or frame/<id>/ for LLP)"
            )
        frames = tuple(sorted(p for p in frame_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg")))
        wave = root / "wave" / f"{media_id}.npy"
        if not wave.is_file():
            raise media_error("missing", f"{wave}: waveform not found for clip {media_id!r} (the DG-SCT layout keeps wave/<id>.npy)")
        return MediaFiles(media_id, "dgsct", audio=wave, frames=frames)
    raise media_error("missing", f"unknown media layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")


# ---------------------------------------------------------------------------------------------
# frames
# ---------------------------------------------------------------------------------------------


def _check_nonempty(path: Path, what: str) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise media_error("missing", f"{path}: {what} not found") from None
    if size == 0:
        raise media_error("empty", f"{path}: {what} is an empty (zero-byte) file; re-extract or re-download it")


def segment_times(spec: MediaSpec) -> List[float]:
    """Time (s) of the frame shown for each segment: ``t + frame_position``."""
    return [t + spec.frame_position for t in range(spec.num_segments)]


def _quiet_decord():
    import decord

    try:
        decord.logging.set_level(decord.logging.QUIET)
    except Exception:  # older decord without the logging module
        pass
    return decord


def _read_video_frames(path: Path, spec: MediaSpec, notes: List[str]) -> Tuple[np.ndarray, Tuple[int, ...]]:
    _check_nonempty(path, "video")
    decord = _quiet_decord()
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        count = len(reader)
        stamps = reader.get_frame_timestamp(list(range(count))) if count else np.zeros((0, 2))
    except Exception as exc:  # decord raises RuntimeError / DECORDError with ffmpeg's text
        raise MediaError(
            f"{path}: cannot decode the video ({_short(exc)}); the file is truncated, corrupt or not a "
            f"video. Re-download or re-encode it"
        ) from None
    if count == 0:
        raise media_error("frame_count", f"{path}: the video stream has no frames")
    starts = np.asarray(stamps, dtype=np.float64)[:, 0]
    end = float(np.asarray(stamps)[-1, 1])
    if not end > starts[-1]:
        fps = float(reader.get_avg_fps() or 0) or 1.0
        end = float(starts[-1]) + 1.0 / fps
    _check_length(path, "video", end, spec, notes)
    indices = []
    for when in segment_times(spec):
        index = int(np.searchsorted(starts, when + 1e-6, side="right")) - 1
        indices.append(min(max(index, 0), count - 1))
    try:
        frames = reader.get_batch(indices).asnumpy()
    except Exception as exc:
        raise MediaError(
            f"{path}: frames {sorted(set(indices))} cannot be decoded ({_short(exc)}); the file is "
            f"probably truncated. Re-download or re-encode it"
        ) from None
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise MediaError(f"{path}: decoded frames have shape {frames.shape}, expected (T, H, W, 3)")
    return frames, tuple(indices)


def dgsct_frame_numbers(count: int, num_segments: int = 10) -> List[int]:
    """1-based frame numbers DG-SCT reads from a folder of ``count`` jpgs: floor(linspace(1, N, T))."""
    return [int(math.floor(v)) for v in np.linspace(1, count, num_segments)]


def _read_jpg_frames(files: MediaFiles, spec: MediaSpec) -> Tuple[np.ndarray, Tuple[int, ...]]:
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
        _check_nonempty(path, "frame")
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))
        except Exception as exc:
            raise MediaError(f"{path}: cannot decode the jpg ({_short(exc)}); re-extract the frames") from None
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
    slower per clip on a busy 2-core machine, and this runs once per item.
    """
    import torch

    mean, std = NORM_STATS[norm]
    array = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    channel_first = np.ascontiguousarray(np.moveaxis(array, -1, -3))
    out = channel_first.astype(np.float32)
    out *= (1.0 / (255.0 * np.asarray(std, dtype=np.float32))).reshape(3, 1, 1)
    out -= (np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32)).reshape(3, 1, 1)
    return torch.from_numpy(out)


# ---------------------------------------------------------------------------------------------
# audio
# ---------------------------------------------------------------------------------------------


_DECORD_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+:\d+: (Check failed: .*?\) )?")


def _short(exc: BaseException) -> str:
    """The useful part of a decoder's message (decord prefixes its C++ source location)."""
    text = _DECORD_PREFIX.sub("", " ".join(str(exc).split()))
    return (text[:200] + "...") if len(text) > 200 else (text or type(exc).__name__)


def _check_length(path: Path, what: str, seconds: float, spec: MediaSpec, notes: List[str]) -> None:
    needed = float(spec.duration)
    if seconds >= needed - spec.short_tolerance - 1e-9:
        return
    message = f"{path}: {what} is {seconds:.2f} s long; {spec.duration} s are needed ({spec.num_segments} one-second segments)"
    if not spec.pad_short:
        raise media_error("too_short", message + "; drop the clip, or allow padding (MediaSpec.pad_short / data.on_error=skip)")
    notes.append(message + "; padded (last frame repeated, silence appended)")


def _to_float(samples: np.ndarray) -> np.ndarray:
    if samples.dtype.kind == "f":
        return samples.astype(np.float32, copy=False)
    if samples.dtype == np.uint8:
        return (samples.astype(np.float32) - 128.0) / 128.0
    info = np.iinfo(samples.dtype)
    return samples.astype(np.float32) / float(-info.min)


def _read_mp4_audio(path: Path, spec: MediaSpec) -> Tuple[np.ndarray, int]:
    """Mono float32 samples on the container timeline (t = 0 at sample 0) and the native rate."""
    import av

    _check_nonempty(path, "video")
    try:
        container = av.open(str(path))
    except Exception as exc:
        raise MediaError(
            f"{path}: cannot open the file ({_short(exc)}); it is truncated, corrupt or not a media file"
        ) from None
    try:
        if not container.streams.audio:
            raise media_error("no_audio",
                f"{path}: the file has no audio stream; supply <id>.wav beside it (audio/<id>.wav) "
                f"or drop the clip"
            )
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate or stream.rate or 0)
        chunks: List[np.ndarray] = []
        first_time: Optional[float] = None
        try:
            for frame in container.decode(stream):
                array = frame.to_ndarray()
                channels = len(frame.layout.channels)
                if not frame.format.is_planar:
                    array = array.reshape(-1, channels).T
                chunks.append(_to_float(array).mean(axis=0))
                if first_time is None and frame.time is not None:
                    first_time = float(frame.time)
                rate = int(frame.sample_rate or rate)
        except MediaError:
            raise
        except Exception as exc:
            if not chunks:
                raise MediaError(f"{path}: cannot decode the audio ({_short(exc)}); the file is corrupt") from None
            log.warning("%s: audio decoding stopped early (%s); using what was decoded", path, _short(exc))
    finally:
        container.close()
    if not chunks or rate <= 0:
        raise MediaError(f"{path}: the audio stream decodes to no samples")
    samples = np.concatenate(chunks)
    shift = int(round((first_time or 0.0) * rate)) - int(round(spec.audio_offset * rate))
    if shift > 0:
        samples = np.concatenate([np.zeros(shift, np.float32), samples])
    elif shift < 0:
        samples = samples[-shift:]
    return samples, rate


def read_wav(path: Path) -> Tuple[np.ndarray, int]:
    """Mono float32 samples and the rate of a wav file (PCM 8/16/24/32-bit or float)."""
    from scipy.io import wavfile

    _check_nonempty(path, "wav")
    try:
        rate, data = wavfile.read(str(path))
    except Exception as exc:
        raise MediaError(f"{path}: cannot read the wav ({_short(exc)}); it is truncated or not a wav file") from None
    data = _to_float(np.asarray(data))
    if data.ndim == 2:
        data = data.mean(axis=1)
    if data.size == 0:
        raise MediaError(f"{path}: the wav holds no samples")
    return np.ascontiguousarray(data, dtype=np.float32), int(rate)


def _read_npy_wave(path: Path, spec: MediaSpec) -> Tuple[np.ndarray, int]:
    _check_nonempty(path, "waveform")
    try:
        data = np.load(str(path), allow_pickle=False)
    except Exception as exc:
        raise MediaError(f"{path}: cannot read the .npy waveform ({_short(exc)}); it is truncated or corrupt") from None
    expected = spec.num_segments * DGSCT_AUDIO_RATE
    if data.dtype.kind not in "fiu":
        raise MediaError(f"{path}: waveform dtype {data.dtype} is not numeric")
    flat = data.reshape(-1)
    if flat.size != expected:
        raise media_error("too_short" if flat.size < expected else "frame_count",
            f"{path}: waveform has {flat.size} samples ({flat.size / DGSCT_AUDIO_RATE:.2f} s at 32 kHz); "
            f"the DG-SCT layout needs exactly {expected} ({spec.num_segments} s at 32 kHz)"
        )
    return _to_float(flat), DGSCT_AUDIO_RATE


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return samples
    import torch
    import torchaudio.functional as AF

    return AF.resample(torch.from_numpy(np.ascontiguousarray(samples)), rate, target).numpy()


def fit_audio(samples: np.ndarray, rate: int, path: Path, spec: MediaSpec, notes: List[str]) -> np.ndarray:
    """Resample mono samples to ``spec.audio_rate`` and return exactly (T, audio_rate) float32."""
    _check_length(path, "audio", samples.size / rate, spec, notes)
    keep = int(math.ceil(spec.duration * rate)) + 64  # a margin for the resampler's filter
    out = resample(samples[:keep], rate, spec.audio_rate)
    total = spec.num_segments * spec.audio_rate
    if out.size < total:
        out = np.concatenate([out, np.zeros(total - out.size, np.float32)])
    return np.ascontiguousarray(out[:total], dtype=np.float32).reshape(spec.num_segments, spec.audio_rate)


# ---------------------------------------------------------------------------------------------
# one clip
# ---------------------------------------------------------------------------------------------


def decode_clip(files: MediaFiles, spec: MediaSpec) -> DecodedClip:
    """Decode the clip's T frames and T seconds of audio (uint8 frames, float32 mono audio)."""
    notes: List[str] = []
    if files.layout == "raw":
        assert files.video is not None
        frames, indices = _read_video_frames(files.video, spec, notes)
        use_wav = files.audio is not None and spec.audio_source in ("auto", "wav")
        if spec.audio_source == "wav" and files.audio is None:
            raise media_error("missing", f"{files.video}: audio_source='wav' but no {files.media_id}.wav was found beside it")
        if use_wav:
            samples, rate = read_wav(files.audio)
            audio_path = files.audio
        else:
            samples, rate = _read_mp4_audio(files.video, spec)
            audio_path = files.video
    elif files.layout == "dgsct":
        frames, indices = _read_jpg_frames(files, spec)
        assert files.audio is not None
        samples, rate = _read_npy_wave(files.audio, spec)
        audio_path = files.audio
    else:
        raise MediaError(f"unknown media layout {files.layout!r}; valid layouts: {', '.join(LAYOUTS)}")
    audio = fit_audio(samples, rate, audio_path, spec, notes)
    for note in notes:
        log.warning("%s", note)
    return DecodedClip(resize_frames(frames, spec), audio, indices, notes)


def load_clip(root: PathLike, media_id: str, spec: MediaSpec, layout: str = "raw") -> DecodedClip:
    """:func:`find_media` then :func:`decode_clip`."""
    return decode_clip(find_media(root, media_id, layout), spec)


__all__: Sequence[str] = (
    "MediaSpec", "MediaFiles", "DecodedClip", "MediaError", "find_media", "decode_clip", "load_clip",
    "normalise_frames", "resize_frames", "read_wav", "dgsct_frame_numbers", "segment_times", "NORM_STATS",
    "media_error", "error_kind", "MEDIA_PROBLEM_KINDS",
)
