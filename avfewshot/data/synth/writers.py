"""Rendering and writing the synthetic media: frames, tones, mp4 / wav files and the DG-SCT layout.

A second with a visual event is filled with the concept's colour, otherwise mid grey; a 4-pixel
black bar moves across every frame so consecutive frames differ (it darkens the mean colour by a
constant factor). A second with an audio event holds the tone, otherwise faint noise.
"""
from __future__ import annotations

import os
import wave
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from ..facts import DGSCT_AUDIO_RATE
from .concepts import GREY

PathLike = Union[str, "os.PathLike[str]"]
Overtones = Sequence[Tuple[float, float]]

# media format of the synthetic files
WIDTH, HEIGHT, FPS = 64, 48, 8
AUDIO_RATE = 16000
STEREO_RATE = 44100
DGSCT_RATE = DGSCT_AUDIO_RATE
DGSCT_FRAMES_PER_SECOND = 2  # 20 jpgs per clip: exercises the floor(linspace(1, N, 10)) rule
BAR_WIDTH = 4
TONE_AMPLITUDE = 0.3
NOISE_AMPLITUDE = 0.003
FADE_SECONDS = 0.005


def render_frame(colour: Optional[Sequence[int]], frame_number: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """One RGB frame: the colour (grey when None) with a black bar whose position moves."""
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = GREY if colour is None else tuple(colour)
    x = (frame_number * 3) % (width - BAR_WIDTH + 1)
    image[:, x : x + BAR_WIDTH] = 0
    return image


def expected_mean_colour(colour: Optional[Sequence[int]], width: int = WIDTH) -> np.ndarray:
    """Mean RGB of a rendered frame (the bar darkens it by BAR_WIDTH / width)."""
    base = np.asarray(GREY if colour is None else colour, dtype=np.float64)
    return base * (1.0 - BAR_WIDTH / width)


def render_audio(tones: Sequence[Optional[float]], rate: int, seed: int, overtones: Overtones = ()) -> np.ndarray:
    """Mono float32 signal: per second a sine at ``tones[t]`` Hz (5 ms fades) or faint noise.

    ``overtones``: (multiple, relative amplitude) pairs added to every tone (the demo's other timbre)."""
    n = rate * len(tones)
    t = np.arange(n, dtype=np.float64) / rate
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal(n) * NOISE_AMPLITUDE
    fade = max(1, int(FADE_SECONDS * rate))
    envelope = np.ones(rate)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, fade))
    envelope[:fade], envelope[-fade:] = ramp, ramp[::-1]
    for second, hz in enumerate(tones):
        if hz is None:
            continue
        span = slice(second * rate, (second + 1) * rate)
        signal[span] += TONE_AMPLITUDE * envelope * np.sin(2 * np.pi * hz * t[span])
        for multiple, amplitude in overtones:
            signal[span] += amplitude * TONE_AMPLITUDE * envelope * np.sin(2 * np.pi * multiple * hz * t[span])
    return signal.astype(np.float32)


def write_mp4(
    path: PathLike,
    colours: Sequence[Optional[Sequence[int]]],
    tones: Sequence[Optional[float]],
    seed: int = 0,
    audio: bool = True,
    stereo: bool = False,
    seconds: Optional[int] = None,
    overtones: Overtones = (),
) -> Path:
    """H.264 (64x48, 8 fps) + AAC (mono 16 kHz, or stereo 44.1 kHz) mp4 of per-second content.

    ``seconds`` shorter than ``len(colours)`` writes a truncated clip (bad-input tests);
    ``audio=False`` writes a video with no audio stream.
    """
    import av

    path = Path(path)
    seconds = len(colours) if seconds is None else seconds
    rate, layout = (STEREO_RATE, "stereo") if stereo else (AUDIO_RATE, "mono")
    container = av.open(str(path), "w", format="mp4")
    try:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "18", "threads": "1"}
        if audio:
            sound = container.add_stream("aac", rate=rate, layout=layout)
            sound.options = {"aac_coder": "fast"}
            sound.bit_rate = 48000 if not stereo else 96000
        for number in range(seconds * FPS):
            image = render_frame(colours[number // FPS], number)
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio:
            mono = render_audio(list(tones)[:seconds], rate, seed, overtones)
            planes = np.stack([mono, mono * 0.8]) if stereo else mono[None, :]
            block = 1024
            for start in range(0, planes.shape[1], block):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(planes[:, start : start + block]), format="fltp", layout=layout
                )
                frame.sample_rate = rate
                frame.pts = start
                for packet in sound.encode(frame):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    finally:
        container.close()
    return path


def write_wav(path: PathLike, samples: np.ndarray, rate: int) -> Path:
    """16-bit PCM mono wav with the standard library."""
    path = Path(path)
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


def write_dgsct_media(
    root: Path, frame_folder: str, media_id: str, colours, tones, seed: int, overtones: Overtones = ()
) -> None:
    """``<frame_folder>/<id>/%08d.jpg`` (two per second) and ``wave/<id>.npy`` (T x 32 kHz float32)."""
    from PIL import Image

    folder = root / frame_folder / media_id
    folder.mkdir(parents=True, exist_ok=True)
    number = 0
    for second, colour in enumerate(colours):
        for _ in range(DGSCT_FRAMES_PER_SECOND):
            image = render_frame(colour, second * FPS + number % FPS)
            number += 1
            Image.fromarray(image).save(folder / f"{number:08d}.jpg", quality=95)
    (root / "wave").mkdir(parents=True, exist_ok=True)
    np.save(root / "wave" / f"{media_id}.npy", render_audio(tones, DGSCT_RATE, seed, overtones))
