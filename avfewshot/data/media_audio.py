"""Audio decoding: mp4 audio tracks (PyAV), wavs, the DG-SCT layout's npy waves; resampling to the spec."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Tuple

import numpy as np

from ..errors import MediaError
from .facts import DGSCT_AUDIO_RATE
from .media_problems import check_length, check_nonempty, media_error, short_message

if TYPE_CHECKING:
    from .media import MediaSpec

log = logging.getLogger("avfewshot")


def to_float(samples: np.ndarray) -> np.ndarray:
    if samples.dtype.kind == "f":
        return samples.astype(np.float32, copy=False)
    if samples.dtype == np.uint8:
        return (samples.astype(np.float32) - 128.0) / 128.0
    info = np.iinfo(samples.dtype)
    return samples.astype(np.float32) / float(-info.min)


def read_mp4_audio(path: Path, spec: MediaSpec) -> Tuple[np.ndarray, int]:
    """Mono float32 samples on the container timeline (t = 0 at sample 0) and the native rate."""
    import av

    check_nonempty(path, "video")
    try:
        container = av.open(str(path))
    except Exception as exc:
        raise MediaError(
            f"{path}: cannot open the file ({short_message(exc)}); it is truncated, corrupt or not a media file"
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
                chunks.append(to_float(array).mean(axis=0))
                if first_time is None and frame.time is not None:
                    first_time = float(frame.time)
                rate = int(frame.sample_rate or rate)
        except MediaError:
            raise
        except Exception as exc:
            if not chunks:
                raise MediaError(f"{path}: cannot decode the audio ({short_message(exc)}); the file is corrupt") from None
            log.warning("%s: audio decoding stopped early (%s); using what was decoded", path, short_message(exc))
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

    check_nonempty(path, "wav")
    try:
        rate, data = wavfile.read(str(path))
    except Exception as exc:
        raise MediaError(f"{path}: cannot read the wav ({short_message(exc)}); it is truncated or not a wav file") from None
    data = to_float(np.asarray(data))
    if data.ndim == 2:
        data = data.mean(axis=1)
    if data.size == 0:
        raise MediaError(f"{path}: the wav holds no samples")
    return np.ascontiguousarray(data, dtype=np.float32), int(rate)


def read_npy_wave(path: Path, spec: MediaSpec) -> Tuple[np.ndarray, int]:
    check_nonempty(path, "waveform")
    try:
        data = np.load(str(path), allow_pickle=False)
    except Exception as exc:
        raise MediaError(f"{path}: cannot read the .npy waveform ({short_message(exc)}); it is truncated or corrupt") from None
    expected = spec.num_segments * DGSCT_AUDIO_RATE
    if data.dtype.kind not in "fiu":
        raise MediaError(f"{path}: waveform dtype {data.dtype} is not numeric")
    flat = data.reshape(-1)
    if flat.size != expected:
        raise media_error("too_short" if flat.size < expected else "frame_count",
            f"{path}: waveform has {flat.size} samples ({flat.size / DGSCT_AUDIO_RATE:.2f} s at 32 kHz); "
            f"the DG-SCT layout needs exactly {expected} ({spec.num_segments} s at 32 kHz)"
        )
    return to_float(flat), DGSCT_AUDIO_RATE


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return samples
    import torch
    import torchaudio.functional as AF

    return AF.resample(torch.from_numpy(np.ascontiguousarray(samples)), rate, target).numpy()


def fit_audio(samples: np.ndarray, rate: int, path: Path, spec: MediaSpec, notes: List[str]) -> np.ndarray:
    """Resample mono samples to ``spec.audio_rate`` and return exactly (T, audio_rate) float32."""
    check_length(path, "audio", samples.size / rate, spec, notes)
    keep = int(math.ceil(spec.duration * rate)) + 64  # a margin for the resampler's filter
    out = resample(samples[:keep], rate, spec.audio_rate)
    total = spec.num_segments * spec.audio_rate
    if out.size < total:
        out = np.concatenate([out, np.zeros(total - out.size, np.float32)])
    return np.ascontiguousarray(out[:total], dtype=np.float32).reshape(spec.num_segments, spec.audio_rate)
