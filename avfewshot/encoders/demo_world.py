"""The pretraining world of the demo towers: image / sound / caption triples drawn from the synthetic concepts.

Every shared concept (``data.synth.concepts.CONCEPTS``) and a background "concept" (grey / faint noise)
is named by all of its class names (concept key, VGG-Sound, AVE, LLP; underscores kept and turned into
spaces) in a few caption templates, so every class prompt of the demo tasks is a caption the text towers
have seen. The pictures and sounds are deliberately NOT the demo datasets' media: an image shows the
concept's colour, shaded, as an object on a textured background of another hue with noise and bars; a
sound is the concept's tone, slightly detuned, with an overtone, noise and sometimes a quieter second
tone. The demo clips (a full-frame flat colour, a pure tone) are therefore a shifted domain: zero-shot
transfer works, and few-shot adaptation has headroom over it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

from ..data.synth.concepts import CONCEPTS, GREY, palette, tone_hz

IMAGE_TEMPLATES = ("a photo of a {}.", "a photo of the {}.", "a picture of a {}.", "a {}.", "{}")
SOUND_TEMPLATES = ("The sounds of {}", "the sound of {}", "the sound of a {}.", "a {} sound", "{}")
BACKGROUND = "background"


@dataclass(frozen=True)
class WorldConcept:
    names: Tuple[str, ...]  # every class name that denotes it, in both name styles
    colour: Tuple[int, int, int]  # GREY for the background
    tone: float  # Hz; 0 for the background (noise only)


def _name_variants(names: Sequence[str]) -> Tuple[str, ...]:
    out: List[str] = []
    for name in names:
        for variant in (name, name.replace("_", " ")):
            if variant not in out:
                out.append(variant)
    return tuple(out)


def world_concepts() -> List[WorldConcept]:
    """The background first, then the shared concepts in concept order."""
    colours = palette()
    world = [WorldConcept((BACKGROUND,), GREY, 0.0)]
    for index, concept in enumerate(CONCEPTS):
        names = [n for n in (concept.key, concept.vgg, concept.ave, concept.llp) if n]
        world.append(WorldConcept(_name_variants(names), colours[index], tone_hz(index)))
    return world


def captions(concept: WorldConcept, templates: Sequence[str]) -> List[str]:
    return [t.format(name) for name in concept.names for t in templates]


def render_image(concept: WorldConcept, other: WorldConcept, rng: np.random.Generator, size: int) -> np.ndarray:
    """uint8 (size, size, 3): the concept's shaded colour as a large object on a textured backdrop."""
    backdrop = np.asarray(other.colour, dtype=np.float32) * rng.uniform(0.3, 0.7) + rng.uniform(20, 90)
    image = np.empty((size, size, 3), dtype=np.float32)
    image[:] = backdrop
    image += rng.normal(0.0, 25.0, size=(size, size, 1)).astype(np.float32)  # grey texture
    # darker shades than the demo clips' flat colours: transfer to them is an extrapolation
    shade = np.asarray(concept.colour, dtype=np.float32) * rng.uniform(0.55, 0.85) + rng.normal(0.0, 10.0, 3)
    h, w = (int(v) for v in rng.integers(int(size * 0.55), size + 1, size=2))
    top, left = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
    image[top : top + h, left : left + w] = shade
    for _ in range(int(rng.integers(0, 3))):  # dark bars of random width
        x, width = int(rng.integers(0, size)), int(rng.integers(1, 9))
        image[:, x : x + width] *= rng.uniform(0.0, 0.5)
    image += rng.normal(0.0, rng.uniform(2.0, 10.0), size=image.shape).astype(np.float32)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def render_sound(concept: WorldConcept, other: WorldConcept, rng: np.random.Generator, rate: int) -> np.ndarray:
    """float32 (rate,): one second of the concept's detuned tone + overtone + noise (+ a quieter distractor)."""
    t = np.arange(rate, dtype=np.float64) / rate
    noise = rng.uniform(0.002, 0.03)
    signal = rng.standard_normal(rate) * noise
    if concept.tone > 0:
        hz = concept.tone + rng.uniform(-3.0, 3.0)
        amplitude = rng.uniform(0.1, 0.5)
        signal += amplitude * np.sin(2 * np.pi * hz * t + rng.uniform(0, 2 * np.pi))
        signal += amplitude * rng.uniform(0.1, 0.5) * np.sin(2 * np.pi * 2 * hz * t + rng.uniform(0, 2 * np.pi))
        if other.tone > 0 and rng.random() < 0.3:
            signal += amplitude * rng.uniform(0.1, 0.3) * np.sin(2 * np.pi * other.tone * t)
    return signal.astype(np.float32)


def sample_labels(rng: np.random.Generator, count: int, num_concepts: int) -> np.ndarray:
    return rng.integers(0, num_concepts, size=count)


def distractor(rng: np.random.Generator, label: int, num_concepts: int) -> int:
    """Another concept (never the background), different from ``label``."""
    choice = int(rng.integers(1, num_concepts - 1))
    return choice + 1 if choice >= label and label >= 1 else choice
