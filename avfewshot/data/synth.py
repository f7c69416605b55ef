"""Synthetic AVE / LLP / VGG-Sound / VGG-Sound-40K roots: official annotation formats, real media.

``make_dataset`` writes a dataset root whose annotation files follow the official formats with
their quirks (``docs/datasets.md`` §1-§3 and §7) and whose media carry the
labels, so loaders, the Dataset, metrics and whole runs can be tested end to end:

* Every class maps to a **concept** (dog, violin, male speech...) shared across datasets: AVE
  "Bark", LLP "Dog" and the 40K class "dog barking" are the same concept, so a model pretrained
  on synthetic VGG-Sound 40K transfers to synthetic AVE / LLP. A concept has a colour (from a
  6-level RGB grid, greys excluded, chosen greedily far apart) and a sine tone
  (``300 + 30 k`` Hz for concept k in 40K-list order).
* A second with a visual event is filled with the colour, otherwise mid grey; a 4-pixel black
  bar moves across every frame so consecutive frames differ (it darkens the mean colour by a
  constant factor). A second with an audio event holds the tone, otherwise faint noise.
* AVE: an event is audio-visual on start <= t < end, background elsewhere. LLP: audio and visual
  events have their own spans (audio-only and visual-only seconds, audio-only and visual-only
  clips, split runs); two-label clips give each class its own part of the clip, so at most one
  class sounds and one is seen per second. VGG-Sound: the labelled event fills the clip.
  VGG-Sound 40K: the event covers the seconds of its 0/1 list.
* Media: ``raw`` layout = ``video/<id>.mp4`` (H.264 64x48 at 8 fps + AAC mono 16 kHz; every
  ``stereo_every``-th video has 44.1 kHz stereo audio instead) and, for LLP as in the official
  release, optionally ``audio/<id>.wav`` (16 kHz PCM). ``dgsct`` layout = ``frames/<id>/%08d.jpg`` (LLP:
  ``frame/``; 20 jpgs, two per second) and ``wave/<id>.npy`` (320,000 float32 at 32 kHz).
* Deterministic for a seed: the annotation files and manifest are byte-identical; mp4s decode
  to identical tensors (x264 runs single-threaded).

The returned manifest (also ``<root>/manifest.json``) lists each clip's split, labels and the
true per-second audio and visual class (index in the reader's class order, -1 = nothing).
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import tempfile
import time
import wave
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import UserError

log = logging.getLogger("avfewshot")

PathLike = Union[str, "os.PathLike[str]"]

GENERATOR_VERSION = "1"
DATASETS = ("ave", "llp", "vggsound", "vggsound40k")
LAYOUTS = ("raw", "dgsct", "both")
T = 10  # seconds per clip

# media format of the synthetic files
WIDTH, HEIGHT, FPS = 64, 48, 8
AUDIO_RATE = 16000
STEREO_RATE = 44100
DGSCT_RATE = 32000
DGSCT_FRAMES_PER_SECOND = 2  # 20 jpgs per clip: exercises the floor(linspace(1, N, 10)) rule
BAR_WIDTH = 4
GREY = (128, 128, 128)
TONE_AMPLITUDE = 0.3
NOISE_AMPLITUDE = 0.003
FADE_SECONDS = 0.005


def tone_hz(concept_index: int) -> float:
    return 300.0 + 30.0 * concept_index


# ---------------------------------------------------------------------------------------------
# class names and the shared concepts
# ---------------------------------------------------------------------------------------------

AVE_CLASS_NAMES: Tuple[str, ...] = (
    "Church bell", "Male speech, man speaking", "Bark", "Fixed-wing aircraft, airplane",
    "Race car, auto racing", "Female speech, woman speaking", "Helicopter", "Violin, fiddle", "Flute",
    "Ukulele", "Frying (food)", "Truck", "Shofar", "Motorcycle", "Acoustic guitar", "Train horn", "Clock",
    "Banjo", "Goat", "Baby cry, infant cry", "Bus", "Chainsaw", "Cat", "Horse", "Toilet flush",
    "Rodents, rats, mice", "Accordion", "Mandolin",
)

LLP_CLASS_NAMES: Tuple[str, ...] = (
    "Speech", "Car", "Cheering", "Dog", "Cat", "Frying_(food)", "Basketball_bounce", "Fire_alarm",
    "Chainsaw", "Cello", "Banjo", "Singing", "Chicken_rooster", "Violin_fiddle", "Vacuum_cleaner",
    "Baby_laughter", "Accordion", "Lawn_mower", "Motorcycle", "Helicopter", "Acoustic_guitar",
    "Telephone_bell_ringing", "Baby_cry_infant_cry", "Blender", "Clapping",
)


@dataclass(frozen=True)
class Concept:
    key: str
    vgg: str  # its VGG-Sound(40K) class name
    ave: Optional[str] = None
    llp: Optional[str] = None


# Order = the 40K class-list order = colour / tone order. The first ten cover the first six
# classes of both AVE and LLP, so a small 40K demo pretrains every concept of the AVE / LLP demos.
CONCEPTS: Tuple[Concept, ...] = (
    Concept("church bell", "church bell ringing", ave="Church bell"),
    Concept("male speech", "male speech, man speaking", ave="Male speech, man speaking", llp="Speech"),
    Concept("dog", "dog barking", ave="Bark", llp="Dog"),
    Concept("airplane", "airplane flyby", ave="Fixed-wing aircraft, airplane"),
    Concept("race car", "race car, auto racing", ave="Race car, auto racing"),
    Concept("female speech", "female speech, woman speaking", ave="Female speech, woman speaking"),
    Concept("car", "car passing by", llp="Car"),
    Concept("cheering", "people cheering", llp="Cheering"),
    Concept("cat", "cat meowing", ave="Cat", llp="Cat"),
    Concept("frying", "frying food", ave="Frying (food)", llp="Frying_(food)"),
    Concept("helicopter", "helicopter", ave="Helicopter", llp="Helicopter"),
    Concept("violin", "playing violin, fiddle", ave="Violin, fiddle", llp="Violin_fiddle"),
    Concept("flute", "playing flute", ave="Flute"),
    Concept("ukulele", "playing ukulele", ave="Ukulele"),
    Concept("truck", "driving truck", ave="Truck"),
    Concept("shofar", "blowing shofar", ave="Shofar"),
    Concept("motorcycle", "driving motorcycle", ave="Motorcycle", llp="Motorcycle"),
    Concept("acoustic guitar", "playing acoustic guitar", ave="Acoustic guitar", llp="Acoustic_guitar"),
    Concept("train horn", "train horning", ave="Train horn"),
    Concept("clock", "clock tick", ave="Clock"),
    Concept("banjo", "playing banjo", ave="Banjo", llp="Banjo"),
    Concept("goat", "goat bleating", ave="Goat"),
    Concept("baby cry", "baby crying", ave="Baby cry, infant cry", llp="Baby_cry_infant_cry"),
    Concept("bus", "driving buses", ave="Bus"),
    Concept("chainsaw", "chainsawing trees", ave="Chainsaw", llp="Chainsaw"),
    Concept("horse", "horse clip-clop", ave="Horse"),
    Concept("toilet flush", "toilet flushing", ave="Toilet flush"),
    Concept("rodents", "mouse squeaking", ave="Rodents, rats, mice"),
    Concept("accordion", "playing accordion", ave="Accordion", llp="Accordion"),
    Concept("mandolin", "playing mandolin", ave="Mandolin"),
    Concept("basketball", "basketball bounce", llp="Basketball_bounce"),
    Concept("fire alarm", "smoke detector beeping", llp="Fire_alarm"),
    Concept("cello", "playing cello", llp="Cello"),
    Concept("singing", "singing choir", llp="Singing"),
    Concept("chicken", "chicken crowing", llp="Chicken_rooster"),
    Concept("vacuum cleaner", "vacuum cleaner cleaning floors", llp="Vacuum_cleaner"),
    Concept("baby laughter", "baby laughter", llp="Baby_laughter"),
    Concept("lawn mower", "lawn mowing", llp="Lawn_mower"),
    Concept("telephone", "telephone bell ringing", llp="Telephone_bell_ringing"),
    Concept("blender", "using blender", llp="Blender"),
    Concept("clapping", "people clapping", llp="Clapping"),
)

# The other 100 synthetic 40K classes: VGG-Sound-style names with no AVE / LLP counterpart.
OTHER_VGG_NAMES: Tuple[str, ...] = (
    "ambulance siren", "bird chirping, tweeting", "cattle mooing", "cricket chirping", "duck quacking",
    "elephant trumpeting", "fireworks banging", "frog croaking", "hammering nails", "lions roaring",
    "owl hooting", "pig oinking", "playing piano", "playing drum kit", "playing trumpet",
    "playing saxophone", "playing harp", "playing cymbal", "playing electric guitar", "playing bass guitar",
    "playing tabla", "playing harmonica", "playing bagpipes", "playing trombone", "playing xylophone",
    "playing glockenspiel", "playing sitar", "playing timpani", "playing tambourine", "playing bongo",
    "playing harpsichord", "playing didgeridoo", "playing theremin", "playing steel guitar, slide guitar",
    "playing hammond organ", "playing french horn", "playing clarinet", "playing double bass",
    "raining", "thunder", "waterfall burbling", "sea waves", "wind noise", "stream burbling",
    "typing on computer keyboard", "typing on typewriter", "people whistling", "people sneezing",
    "people coughing", "people laughing", "people crowd", "people eating", "people running",
    "people babbling", "child speech, kid speaking", "female singing", "male singing", "child singing",
    "skateboarding", "striking bowling", "ice cracking", "machine gun shooting", "cap gun shooting",
    "car engine knocking", "engine accelerating, revving, vroom", "police car (siren)", "fire truck siren",
    "railroad car, train wagon", "subway, metro, underground", "motorboat, speedboat acceleration",
    "rowboat, canoe, kayak rowing", "horse neighing", "chicken clucking", "dog howling", "dog growling",
    "cat purring", "cat hissing", "sheep bleating", "goose honking", "pigeon, dove cooing", "crow cawing",
    "parrot talking", "snake hissing", "bee, wasp, etc. buzzing", "mosquito buzzing", "whale calling",
    "woodpecker pecking tree", "donkey, ass braying", "mynah bird singing", "electric shaver, electric razor shaving",
    "hair dryer drying", "chopping wood", "chopping food", "door slamming", "air horn", "alarm clock ringing",
    "cell phone buzzing", "printer printing", "writing on blackboard with chalk", "using sewing machines",
)


def vggsound40k_class_names() -> List[str]:
    """The 141 synthetic 40K class names: the shared concepts first, then the others."""
    return [c.vgg for c in CONCEPTS] + list(OTHER_VGG_NAMES)


def dataset_class_names(dataset: str) -> List[str]:
    """Every class name the synthetic ``dataset`` can use, in order (``--classes N`` takes the first N)."""
    if dataset == "ave":
        return list(AVE_CLASS_NAMES)
    if dataset == "llp":
        return list(LLP_CLASS_NAMES)
    if dataset in ("vggsound", "vggsound40k"):
        return vggsound40k_class_names()
    raise UserError(f"unknown dataset {dataset!r}; valid datasets: {', '.join(DATASETS)}")


@lru_cache(maxsize=None)
def _concept_lookup() -> Dict[Tuple[str, str], int]:
    lookup: Dict[Tuple[str, str], int] = {}
    for index, concept in enumerate(CONCEPTS):
        lookup[("vgg", concept.vgg)] = index
        if concept.ave:
            lookup[("ave", concept.ave)] = index
        if concept.llp:
            lookup[("llp", concept.llp)] = index
    for offset, name in enumerate(OTHER_VGG_NAMES):
        lookup[("vgg", name)] = len(CONCEPTS) + offset
    return lookup


def concept_index(dataset: str, class_name: str) -> int:
    """Position of the class's concept in the 40K list (its colour and tone index)."""
    family = "vgg" if dataset in ("vggsound", "vggsound40k") else dataset
    try:
        return _concept_lookup()[(family, class_name)]
    except KeyError:
        raise UserError(f"{dataset}: no synthetic concept for class {class_name!r}") from None


def concept_name(index: int) -> str:
    return CONCEPTS[index].key if index < len(CONCEPTS) else OTHER_VGG_NAMES[index - len(CONCEPTS)]


@lru_cache(maxsize=None)
def palette() -> Tuple[Tuple[int, int, int], ...]:
    """141 colours from the 6-level RGB grid (greys excluded), each as far as possible from grey
    and from the colours before it (greedy max-min), so the first concepts differ most."""
    levels = (0, 51, 102, 153, 204, 255)
    candidates = np.array(
        [(r, g, b) for r in levels for g in levels for b in levels if not (r == g == b)], dtype=np.float64
    )
    chosen = [np.array(GREY, dtype=np.float64)]
    distance = np.linalg.norm(candidates - chosen[0], axis=1)
    picks: List[Tuple[int, int, int]] = []
    for _ in range(len(CONCEPTS) + len(OTHER_VGG_NAMES)):
        best = int(np.argmax(distance))  # ties: lowest index (deterministic)
        picks.append(tuple(int(v) for v in candidates[best]))
        distance = np.minimum(distance, np.linalg.norm(candidates - candidates[best], axis=1))
        distance[best] = -1.0
    return tuple(picks)


@dataclass(frozen=True)
class Signature:
    concept: str
    colour: Tuple[int, int, int]
    tone_hz: float


def class_signature(dataset: str, class_name: str) -> Signature:
    index = concept_index(dataset, class_name)
    return Signature(concept_name(index), palette()[index], tone_hz(index))


# ---------------------------------------------------------------------------------------------
# media rendering and writing
# ---------------------------------------------------------------------------------------------


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


def render_audio(tones: Sequence[Optional[float]], rate: int, seed: int) -> np.ndarray:
    """Mono float32 signal: per second a sine at ``tones[t]`` Hz (5 ms fades) or faint noise."""
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
    return signal.astype(np.float32)


def write_mp4(
    path: PathLike,
    colours: Sequence[Optional[Sequence[int]]],
    tones: Sequence[Optional[float]],
    seed: int = 0,
    audio: bool = True,
    stereo: bool = False,
    seconds: Optional[int] = None,
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
            mono = render_audio(list(tones)[:seconds], rate, seed)
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
    root: Path, frame_folder: str, media_id: str, colours, tones, seed: int
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
    np.save(root / "wave" / f"{media_id}.npy", render_audio(tones, DGSCT_RATE, seed))


# ---------------------------------------------------------------------------------------------
# clip plans
# ---------------------------------------------------------------------------------------------


@dataclass
class ClipPlan:
    clip_id: str
    media_id: str
    split: str
    labels: List[int]  # indices into the dataset's class_names (generation order)
    audio: List[int]  # per second: class index or -1
    visual: List[int]
    extra: Dict[str, object] = field(default_factory=dict)


ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


class _Ids:
    """Unique 11-character YouTube-like ids; every 7th starts with '-', every 5th holds a '_'."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.seen: set = set()
        self.count = 0

    def __call__(self) -> str:
        while True:
            chars = [ID_ALPHABET[i] for i in self.rng.integers(0, 62, size=11)]
            if self.count % 7 == 3:
                chars[0] = "-"
            if self.count % 5 == 1:
                chars[4 + self.count % 5] = "_"
            value = "".join(chars)
            if value not in self.seen:
                self.seen.add(value)
                self.count += 1
                return value


def _span(rng: np.random.Generator, full_probability: float = 0.4, min_length: int = 2) -> Tuple[int, int]:
    if rng.random() < full_probability:
        return 0, T
    start = int(rng.integers(0, T - min_length + 1))
    end = int(rng.integers(start + min_length, T + 1))
    return start, end


def _fill(length_spans: Sequence[Tuple[int, int, int]]) -> List[int]:
    seconds = [-1] * T
    for label, start, end in length_spans:
        for t in range(start, end):
            seconds[t] = label
    return seconds


@dataclass
class _Sizes:
    classes: int
    train: int
    evaluation: int


# ---------------------------------------------------------------------------------------------
# AVE
# ---------------------------------------------------------------------------------------------


def _plan_ave(sizes: _Sizes, rng: np.random.Generator) -> Tuple[List[ClipPlan], Dict[str, str]]:
    names = list(AVE_CLASS_NAMES[: sizes.classes])
    ids = _Ids(rng)
    by_class: Dict[int, List[ClipPlan]] = {c: [] for c in range(len(names))}
    for c in range(len(names)):
        for split, count in (("train", sizes.train), ("val", sizes.evaluation), ("test", sizes.evaluation)):
            for _ in range(count):
                start, end = _span(rng)
                video = ids()
                by_class[c].append(ClipPlan(video, video, split, [c], [], [], {"start": start, "end": end}))
    # the real `Church bell&VWi2ENBuTbw&good&0&0` row: a train clip with no foreground second
    zero = next(p for p in reversed(by_class[0]) if p.split == "train")
    zero.extra.update(start=0, end=0)
    # a Male + Female speech pair sharing one video, with identical times, across train / val
    male, female = 1, 5
    if len(names) > female:
        shared = ids()
        start, end = 2, 9
        by_class[male].append(ClipPlan(f"{shared}#{male}", shared, "train", [male], [], [], {"start": start, "end": end}))
        by_class[female].append(ClipPlan(f"{shared}#{female}", shared, "val", [female], [], [], {"start": start, "end": end}))
    plans = [p for c in range(len(names)) for p in by_class[c]]
    shared_media = {}
    for plan in plans:
        start, end = plan.extra["start"], plan.extra["end"]
        seconds = _fill([(plan.labels[0], start, end)])
        plan.audio, plan.visual = list(seconds), list(seconds)
        shared_media.setdefault(plan.media_id, []).append(plan)
    # the shared video shows the male class and sounds the female class: both events are in it
    for group in shared_media.values():
        if len(group) > 1:
            a, b = group
            visual = _fill([(a.labels[0], a.extra["start"], a.extra["end"])])
            audio = _fill([(b.labels[0], b.extra["start"], b.extra["end"])])
            for plan in group:
                plan.visual, plan.audio = list(visual), list(audio)
                plan.extra["shared_media"] = True
    files = _ave_files(names, plans)
    return plans, files


def _ave_row(names: Sequence[str], plan: ClipPlan) -> str:
    return f"{names[plan.labels[0]]}&{plan.media_id}&good&{plan.extra['start']}&{plan.extra['end']}\n"


def _ave_files(names: Sequence[str], plans: Sequence[ClipPlan]) -> Dict[str, str]:
    annotations = "Category&VideoID&Quality&StartTime&EndTime\n" + "".join(_ave_row(names, p) for p in plans)
    files = {"Annotations.txt": annotations, "categories.txt": "".join(n + "\n" for n in names)}
    for split, name in (("train", "trainSet.txt"), ("val", "valSet.txt"), ("test", "testSet.txt")):
        files[name] = "".join(_ave_row(names, p) for p in plans if p.split == split)
    return files


# ---------------------------------------------------------------------------------------------
# LLP
# ---------------------------------------------------------------------------------------------


def _llp_single(label: int, rng: np.random.Generator) -> Tuple[List[int], List[int]]:
    mode = rng.random()
    audio_start, audio_end = int(rng.integers(0, 4)), int(rng.integers(6, T + 1))
    visual_start, visual_end = int(rng.integers(0, 5)), int(rng.integers(5, T + 1))
    audio = _fill([(label, audio_start, audio_end)])
    visual = _fill([(label, visual_start, visual_end)])
    if mode < 0.15:  # audio-only clip (the class is heard, never seen)
        visual = [-1] * T
    elif mode < 0.3:  # visual-only clip
        audio = [-1] * T
    elif mode < 0.45:  # the sound stops and starts again: two eval rows for one class
        gap = int(rng.integers(audio_start + 1, audio_end - 1)) if audio_end - audio_start > 2 else None
        if gap is not None:
            audio[gap] = -1
    return audio, visual


def _llp_pair(first: int, second: int, rng: np.random.Generator) -> Tuple[List[int], List[int]]:
    audio_cut, visual_cut = int(rng.integers(3, 8)), int(rng.integers(3, 8))
    audio = _fill([(first, int(rng.integers(0, 2)), audio_cut), (second, audio_cut, int(rng.integers(audio_cut + 1, T + 1)))])
    visual = _fill([(first, int(rng.integers(0, 3)), visual_cut), (second, visual_cut, int(rng.integers(visual_cut + 1, T + 1)))])
    return audio, visual


def _runs(seconds: Sequence[int]) -> List[Tuple[int, int, int]]:
    """Maximal runs (label, onset, offset) of equal non-negative labels."""
    runs = []
    t = 0
    while t < len(seconds):
        if seconds[t] < 0:
            t += 1
            continue
        start = t
        while t < len(seconds) and seconds[t] == seconds[start]:
            t += 1
        runs.append((seconds[start], start, t))
    return runs


def _plan_llp(sizes: _Sizes, rng: np.random.Generator) -> Tuple[List[ClipPlan], Dict[str, str]]:
    names = list(LLP_CLASS_NAMES)
    active = sizes.classes
    ids = _Ids(rng)
    plans: List[ClipPlan] = []
    for split, count in (("train", sizes.train), ("val", sizes.evaluation), ("test", sizes.evaluation)):
        split_plans = []
        for c in range(active):
            for _ in range(count):
                audio, visual = _llp_single(c, rng)
                split_plans.append(([c], audio, visual))
        for c in range(0, active - 1, 2):
            audio, visual = _llp_pair(c, c + 1, rng)
            split_plans.append(([c, c + 1], audio, visual))
        order = rng.permutation(len(split_plans))
        for position in order:
            labels, audio, visual = split_plans[int(position)]
            video = ids()
            start = int(rng.integers(0, 30)) * 10
            plans.append(ClipPlan(f"{video}_{start}_{start + 10}", video, split, labels, audio, visual))
    # quirks: a fractional-time name (train) and a duplicated label (test)
    train = [p for p in plans if p.split == "train"]
    fractional = train[min(1, len(train) - 1)]
    fractional.clip_id = f"{fractional.media_id}_101.8_111.8"
    duplicated = next(p for p in plans if p.split == "test" and len(p.labels) == 1)
    duplicated.extra["duplicate_label"] = True
    for plan in plans:
        plan.extra["label_order"] = [int(i) for i in rng.permutation(len(plan.labels))]
    return plans, _llp_files(names, plans, rng)


def _llp_weak_row(names: Sequence[str], plan: ClipPlan) -> str:
    tokens = [names[plan.labels[i]] for i in plan.extra["label_order"]]
    if plan.extra.get("duplicate_label"):
        tokens = tokens + tokens  # like the real test row `Clapping,Clapping`
    return f"{plan.clip_id}\t{','.join(tokens)}\n"


def _llp_files(names: Sequence[str], plans: Sequence[ClipPlan], rng: np.random.Generator) -> Dict[str, str]:
    header = "filename\tevent_labels\n"
    files = {"AVVP_dataset_full.csv": header + "".join(_llp_weak_row(names, p) for p in plans)}
    for split, name in (("train", "AVVP_train.csv"), ("val", "AVVP_val_pd.csv"), ("test", "AVVP_test_pd.csv")):
        files[name] = header + "".join(_llp_weak_row(names, p) for p in plans if p.split == split)
    evaluated = [p for p in plans if p.split in ("val", "test")]
    dense_header = "filename\tonset\toffset\tevent_labels\n"
    for modality, name in (("audio", "AVVP_eval_audio.csv"), ("visual", "AVVP_eval_visual.csv")):
        rows = []
        for plan in evaluated:
            for label, onset, offset in _runs(getattr(plan, modality)):
                rows.append(f"{plan.clip_id}\t{onset}\t{offset}\t{names[label]}\n")
        if modality == "audio" and evaluated:
            # odd rows of the real file: a name matching no clip (a leading '-' stripped, or a
            # mistyped end time), a zero-length event and a reversed one; none adds a positive second
            victim = evaluated[len(evaluated) // 2]
            label = names[victim.labels[0]]
            dashed = next((p for p in evaluated if p.media_id.startswith("-")), None)
            orphan = dashed.clip_id[1:] if dashed else f"{victim.media_id}_30_400"
            odd = [
                f"{orphan}\t0\t3\t{label}\n",
                f"{victim.clip_id}\t5\t5\t{label}\n",
                f"{victim.clip_id}\t9\t0\t{label}\n",
            ]
            for row in odd:
                rows.insert(int(rng.integers(0, len(rows) + 1)), row)
        files[name] = dense_header + "".join(rows)
    return files


# ---------------------------------------------------------------------------------------------
# VGG-Sound (official csv) and the 40K list
# ---------------------------------------------------------------------------------------------


def _csv_text(rows: Sequence[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")  # quotes labels that contain commas
    writer.writerows(rows)
    return buffer.getvalue()


def _plan_vggsound(sizes: _Sizes, rng: np.random.Generator) -> Tuple[List[ClipPlan], Dict[str, str]]:
    names = vggsound40k_class_names()[: sizes.classes]
    ids = _Ids(rng)
    plans = []
    for c in range(len(names)):
        for split, count in (("train", sizes.train), ("test", sizes.evaluation)):
            for _ in range(count):
                video, start = ids(), int(rng.integers(0, 300))
                stem = f"{video}_{start:06d}"
                seconds = [c] * T
                plans.append(ClipPlan(stem, stem, split, [c], list(seconds), list(seconds), {"youtube_id": video, "start_seconds": start}))
    plans.sort(key=lambda p: p.clip_id)  # the official file is sorted by id
    rows = [(p.extra["youtube_id"], p.extra["start_seconds"], names[p.labels[0]], p.split) for p in plans]
    return plans, {"vggsound.csv": _csv_text(rows)}


def _plan_vggsound40k(sizes: _Sizes, rng: np.random.Generator) -> Tuple[List[ClipPlan], Dict[str, str]]:
    names = vggsound40k_class_names()[: sizes.classes]
    ids = _Ids(rng)
    drafts = []
    for c in range(len(names)):
        for split, count in (("train", sizes.train), ("val", sizes.evaluation), ("test", sizes.evaluation)):
            for _ in range(count):
                start, end = _span(rng, full_probability=0.3)
                drafts.append((c, split, start, end))
    plans = []
    for row, position in enumerate(rng.permutation(len(drafts))):
        c, split, start, end = drafts[int(position)]
        seconds = _fill([(c, start, end)])
        video_id = f"{row:06d}"
        original = f"{ids()}_{int(rng.integers(0, 300)):06d}"
        plans.append(ClipPlan(video_id, video_id, split, [c], list(seconds), list(seconds), {"clip_name": original}))
    rows: List[Sequence[object]] = [("", "clip_name", "category", "video_id", "label", "split")]
    for row, plan in enumerate(plans):
        flags = "[" + ", ".join("1" if s >= 0 else "0" for s in plan.audio) + "]"
        rows.append((row, plan.extra["clip_name"], names[plan.labels[0]], plan.media_id, flags, plan.split))
    files = {
        "vggsound-avel40k_labels.csv": _csv_text(rows),
        "VggsoundAVEL40kCategories.txt": "".join(n + "\n" for n in names),
    }
    return plans, files


PLANNERS = {"ave": _plan_ave, "llp": _plan_llp, "vggsound": _plan_vggsound, "vggsound40k": _plan_vggsound40k}
FRAME_FOLDER = {"ave": "frames", "llp": "frame", "vggsound": "frames", "vggsound40k": "frames"}


# ---------------------------------------------------------------------------------------------
# the dataset
# ---------------------------------------------------------------------------------------------


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
    """
    started = time.perf_counter()
    if name not in PLANNERS:
        raise UserError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")
    if layout not in LAYOUTS:
        raise UserError(f"unknown layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")
    available = len(dataset_class_names(name))
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
    plans, files = PLANNERS[name](_Sizes(classes, clips_per_class, evaluation), rng)
    for file_name, text in files.items():
        (root / file_name).write_bytes(text.encode("ascii"))

    generation_names = dataset_class_names(name)[:classes] if name != "llp" else list(LLP_CLASS_NAMES)
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
        stereo = bool(stereo_every) and len(media_written) % stereo_every == stereo_every - 1
        if layout in ("raw", "both"):
            (root / "video").mkdir(exist_ok=True)
            write_mp4(root / "video" / f"{plan.media_id}.mp4", colours, tones, seed=clip_seed, stereo=stereo)
            if wav:  # the official LLP release ships 16 kHz wavs beside the videos
                (root / "audio").mkdir(exist_ok=True)
                write_wav(root / "audio" / f"{plan.media_id}.wav", render_audio(tones, AUDIO_RATE, clip_seed), AUDIO_RATE)
        if layout in ("dgsct", "both"):
            write_dgsct_media(root, FRAME_FOLDER[name], plan.media_id, colours, tones, clip_seed)
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
        "background": name in ("ave", "vggsound40k"),
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


# ---------------------------------------------------------------------------------------------
# the embedded demo
# ---------------------------------------------------------------------------------------------

# Sizes allow 16-shot runs (>= 16 single-label train clips per class) and stay small and fast.
DEMO_SIZES: Dict[str, Dict[str, int]] = {
    "ave": {"classes": 6, "clips_per_class": 16, "eval_clips_per_class": 4},
    "llp": {"classes": 6, "clips_per_class": 16, "eval_clips_per_class": 4},
    "vggsound40k": {"classes": 12, "clips_per_class": 6, "eval_clips_per_class": 2},
    "vggsound": {"classes": 6, "clips_per_class": 8, "eval_clips_per_class": 2},
}
DEMO_SEED = 0


def ensure_demo(dataset: str) -> Path:
    """The demo root of ``dataset`` under ``paths.demo_dir()``, synthesised on first use.

    Built in a temporary sibling folder and renamed into place, so a half-built demo is never
    used; a demo from another generator version is rebuilt.
    """
    from ..paths import demo_dir

    if dataset not in DEMO_SIZES:
        raise UserError(f"no demo for dataset {dataset!r}; demos exist for {', '.join(sorted(DEMO_SIZES))}")
    base = demo_dir()
    root = base / dataset
    if _demo_is_current(root):
        return root
    base.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{dataset}-building-", dir=str(base)))
    try:
        log.info("synthesising the %s demo under %s (first use)", dataset, root)
        make_dataset(dataset, temp, seed=DEMO_SEED, layout="raw", **DEMO_SIZES[dataset])
        if root.exists():
            if _demo_is_current(root):  # another process finished first
                return root
            stale = Path(tempfile.mkdtemp(prefix=f".{dataset}-stale-", dir=str(base)))
            os.replace(root, stale / dataset)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(temp, root)
        except OSError:
            if not _demo_is_current(root):
                raise
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
    return root


def _demo_is_current(root: Path) -> bool:
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="ascii"))
    except (OSError, ValueError):
        return False
    return manifest.get("generator_version") == GENERATOR_VERSION and manifest.get("layout") == "raw"


# ---------------------------------------------------------------------------------------------
# the oracle: per-second labels read back from decoded tensors
# ---------------------------------------------------------------------------------------------


def oracle_labels(
    manifest: Dict[str, object], frames: np.ndarray, audio: np.ndarray, audio_rate: int
) -> Tuple[List[int], List[int]]:
    """(visual, audio) per-second class indices (-1 = nothing) recovered from a decoded clip.

    frames: uint8 or float RGB in 0..255, (T, H, W, 3); audio: (T, audio_rate) mono.
    Visual: nearest expected mean colour (class colours and grey). Audio: the dominant FFT
    frequency of each second, matched to the nearest class tone within 10 Hz, and only when the
    peak stands well above the faint background noise.
    """
    names = list(manifest["class_names"])
    signatures = manifest["signatures"]
    used = [n for n in names if n in signatures]
    index = {n: i for i, n in enumerate(names)}
    means = np.stack([expected_mean_colour(None)] + [expected_mean_colour(signatures[n]["colour"]) for n in used])
    colour_labels = [-1] + [index[n] for n in used]
    observed = np.asarray(frames, dtype=np.float64).reshape(frames.shape[0], -1, 3).mean(axis=1)
    nearest = np.argmin(np.linalg.norm(observed[:, None, :] - means[None, :, :], axis=2), axis=1)
    visual = [colour_labels[int(i)] for i in nearest]

    tones = np.array([signatures[n]["tone_hz"] for n in used])
    heard = []
    for second in np.asarray(audio, dtype=np.float64):
        spectrum = np.abs(np.fft.rfft(second))
        peak = int(np.argmax(spectrum))
        hz = peak * audio_rate / second.size
        # a tone of amplitude 0.3 peaks at ~0.15 * S; the noise floor is far below 0.01 * S
        if spectrum[peak] < 0.01 * second.size or tones.size == 0:
            heard.append(-1)
            continue
        closest = int(np.argmin(np.abs(tones - hz)))
        heard.append(index[used[closest]] if abs(tones[closest] - hz) <= 10.0 else -2)
    return visual, heard
