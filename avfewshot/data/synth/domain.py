"""The demo recordings' domain shift: what the embedded demo clips show and sound beyond their concept.

The demo towers are pretrained on the concept world (``encoders/demo_world.py``); the demo datasets are
"recorded" in another domain, so zero-shot transfer is well below ceiling and a few labelled shots fix it:

* a colour cast of varying strength: each clip's colours are mixed with their cyclic channel rotation
  (R <- B, G <- R, B <- G) by a per-clip weight, which moves a concept's colour towards another concept's
  hue (red towards olive, blue towards purple); grey (the background) is unchanged;
* a per-clip exposure (brightness) factor;
* another tone timbre: a per-clip third harmonic (the pretraining sounds had only a second), and a
  per-clip detune of the fundamental.

The shift is systematic (the same rotation, the same harmonic), so a classifier fitted on a few demo clips
learns it, while the towers' text prompts, fitted on the unshifted world, do not know it. Nothing here
touches the labels: every class keeps its own colour and tone, only their rendering changes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

Colour = Optional[Sequence[int]]


@dataclass(frozen=True)
class DomainShift:
    cast: Tuple[float, float] = (0.3, 0.75)  # per-clip weight of the channel-rotated colour
    exposure: Tuple[float, float] = (0.6, 1.0)  # per-clip brightness factor
    harmonic: Tuple[float, float] = (0.0, 0.6)  # per-clip amplitude of the 3rd harmonic, relative to the tone
    detune_hz: float = 6.0  # per-clip detune of every tone, uniform in +-detune_hz

    def as_dict(self) -> Dict[str, object]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def draw(self, rng: np.random.Generator) -> "ClipShift":
        return ClipShift(
            cast=float(rng.uniform(*self.cast)),
            exposure=float(rng.uniform(*self.exposure)),
            harmonic=float(rng.uniform(*self.harmonic)),
            detune=float(rng.uniform(-self.detune_hz, self.detune_hz)),
        )


@dataclass(frozen=True)
class ClipShift:
    """One clip's draw of the domain shift."""

    cast: float
    exposure: float
    harmonic: float
    detune: float

    def colour(self, colour: Colour) -> Colour:
        if colour is None:  # background grey: a channel rotation leaves grey alone
            return None
        rgb = np.asarray(colour, dtype=np.float64)
        rotated = rgb[[2, 0, 1]]  # R <- B, G <- R, B <- G
        mixed = ((1.0 - self.cast) * rgb + self.cast * rotated) * self.exposure
        return tuple(int(v) for v in np.clip(np.round(mixed), 0, 255))

    def colours(self, colours: Sequence[Colour]) -> List[Colour]:
        return [self.colour(c) for c in colours]

    def tones(self, tones: Sequence[Optional[float]]) -> List[Optional[float]]:
        return [None if hz is None else float(hz) + self.detune for hz in tones]

    def overtones(self) -> Tuple[Tuple[float, float], ...]:
        """(multiple of the tone, relative amplitude) pairs added to every tone of the clip."""
        return ((3.0, self.harmonic),) if self.harmonic > 0 else ()


DEMO_SHIFT = DomainShift()
