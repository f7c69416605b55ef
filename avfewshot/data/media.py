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
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import MediaError
from .facts import DGSCT_AUDIO_RATE, DGSCT_FRAME_DIRS, MEDIA_LAYOUTS
from .media_audio import fit_audio, read_mp4_audio, read_npy_wave, read_wav, resample
from .media_frames import (
    IMAGE_NORMS, NORM_STATS, dgsct_frame_numbers, normalise_frames, read_jpg_frames, read_video_frames,
    resize_frames, segment_times,
)
from .media_problems import MEDIA_PROBLEM_KINDS, error_kind, media_error, unreachable_reason

log = logging.getLogger("avfewshot")

PathLike = Union[str, "os.PathLike[str]"]

LAYOUTS = MEDIA_LAYOUTS
AUDIO_SOURCES = ("auto", "video", "wav")
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")


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


def _raise_if_unreachable(candidates: Sequence[Path], what: str, media_id: str, folder: bool = False) -> None:
    """A candidate name that exists but cannot be used (link loop, broken link...) is named, not "not found"."""
    for path in candidates:
        reason = unreachable_reason(path, folder)
        if reason:
            raise media_error("missing", f"{path}: the {what} of clip {media_id!r} {reason}")


def find_media(root: PathLike, media_id: str, layout: str = "raw") -> MediaFiles:
    """Locate the media of ``media_id`` under ``root`` in the given layout; raise if absent."""
    root = Path(root)
    if layout == "raw":
        candidates = [root / "video" / f"{media_id}{ext}" for ext in VIDEO_EXTENSIONS]
        candidates += [root / f"{media_id}{ext}" for ext in VIDEO_EXTENSIONS]
        video = next((p for p in candidates if p.is_file()), None)
        if video is None:
            _raise_if_unreachable(candidates, "video", media_id)
            raise media_error("missing",
                f"{root / 'video' / (media_id + '.mp4')}: video not found for clip {media_id!r} "
                f"(looked for <root>/video/{media_id}.mp4 and <root>/{media_id}.mp4, also .mkv/.webm/.avi/.mov); "
                f"check --root and --layout"
            )
        wavs = [root / "audio" / f"{media_id}.wav", root / f"{media_id}.wav"]
        wav = next((p for p in wavs if p.is_file()), None)
        if wav is None:
            _raise_if_unreachable(wavs, "wav", media_id)
        return MediaFiles(media_id, "raw", video=video, audio=wav)
    if layout == "dgsct":
        frame_dir = next(
            (root / name / media_id for name in DGSCT_FRAME_DIRS if (root / name / media_id).is_dir()), None
        )
        if frame_dir is None:
            _raise_if_unreachable([root / name / media_id for name in DGSCT_FRAME_DIRS], "frame folder", media_id, True)
            raise media_error("missing",
                f"{root / 'frames' / media_id}: frame folder not found for clip {media_id!r} "
                f"(the DG-SCT layout keeps frames/<id>/%08d.jpg, or frame/<id>/ for LLP)"
            )
        frames = tuple(sorted(p for p in frame_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg")))
        wave = root / "wave" / f"{media_id}.npy"
        if not wave.is_file():
            _raise_if_unreachable([wave], "waveform", media_id)
            raise media_error("missing", f"{wave}: waveform not found for clip {media_id!r} (the DG-SCT layout keeps wave/<id>.npy)")
        return MediaFiles(media_id, "dgsct", audio=wave, frames=frames)
    raise media_error("missing", f"unknown media layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")


# ---------------------------------------------------------------------------------------------
# one clip
# ---------------------------------------------------------------------------------------------


def decode_clip(files: MediaFiles, spec: MediaSpec) -> DecodedClip:
    """Decode the clip's T frames and T seconds of audio (uint8 frames, float32 mono audio)."""
    notes: List[str] = []
    if files.layout == "raw":
        assert files.video is not None
        frames, indices = read_video_frames(files.video, spec, notes)
        use_wav = files.audio is not None and spec.audio_source in ("auto", "wav")
        if spec.audio_source == "wav" and files.audio is None:
            raise media_error("missing", f"{files.video}: audio_source='wav' but no {files.media_id}.wav was found beside it")
        if use_wav:
            samples, rate = read_wav(files.audio)
            audio_path = files.audio
        else:
            samples, rate = read_mp4_audio(files.video, spec)
            audio_path = files.video
    elif files.layout == "dgsct":
        frames, indices = read_jpg_frames(files, spec)
        assert files.audio is not None
        samples, rate = read_npy_wave(files.audio, spec)
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
    "media_error", "error_kind", "MEDIA_PROBLEM_KINDS", "resample", "DGSCT_AUDIO_RATE", "DGSCT_FRAME_DIRS", "LAYOUTS",
)
