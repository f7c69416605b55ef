"""The concepts shared by the synthetic datasets: class -> concept -> colour and tone.

Every class maps to a concept (dog, violin, male speech...) shared across datasets: AVE "Bark",
LLP "Dog" and the 40K class "dog barking" are the same concept, so a model pretrained on
synthetic VGG-Sound 40K transfers to synthetic AVE / LLP. A concept has a colour (from a 6-level
RGB grid, greys excluded, chosen greedily far apart) and a sine tone (``300 + 30 k`` Hz for
concept k in 40K-list order).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

import numpy as np

from ...errors import UserError
from ..facts import dataset_info

GREY = (128, 128, 128)  # the colour of a second with no visual event


def tone_hz(concept_index: int) -> float:
    return 300.0 + 30.0 * concept_index


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


def synthetic_class_names(dataset: str) -> List[str]:
    """Every class name the synthetic ``dataset`` can use, in generation order (``--classes N`` takes the first N).

    AVE and LLP use their official lists; both VGG-Sound flavours use the 141 synthetic 40K names.
    """
    if dataset in ("vggsound", "vggsound40k"):
        return vggsound40k_class_names()
    return list(dataset_info(dataset).fixed_classes)


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
