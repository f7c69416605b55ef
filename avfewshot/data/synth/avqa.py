"""Synthetic MUSIC-AVQA roots: two-instrument scenes, questions from templates, computable answers.

A video is ten 1-s segments. It shows one or two instruments (left / right half, concept colour of
:mod:`.concepts`); each instrument sounds (its concept tone) from an onset second to an offset second,
at a loud or a soft amplitude. Every question is one of the official templates (the words are in the
official vocabulary) and its answer is computed from that content (:func:`answer_for`), so an oracle
reading the colours and tones answers 100 %. The json files carry the official quirks: ``type`` and
``templ_values`` as JSON strings, the misspelled ``anser``, a full-width ``？`` ending, and optionally a
repeated question id with a conflicting answer in the test file.
Media (DG-SCT layout): ``frames/<vid>/%08d.jpg`` (one per second) and ``audio_wave/<vid>.npy``
(320,000 float32 samples at 32 kHz).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...outputs import write_json_atomic as write_json, write_text_atomic as write_text
from ..facts import AVQA_SEGMENTS, SPLITS
from .concepts import GREY, concept_index, palette, tone_hz
from .writers import DGSCT_RATE, NOISE_AMPLITUDE

# instrument (answer-vocabulary spelling) -> its synthetic 40K concept
INSTRUMENTS: Dict[str, str] = {
    "violin": "playing violin, fiddle", "flute": "playing flute", "ukulele": "playing ukulele",
    "acoustic_guitar": "playing acoustic guitar", "banjo": "playing banjo", "accordion": "playing accordion",
    "cello": "playing cello", "piano": "playing piano",
}
NUMBERS = ("zero", "one", "two")
WIDTH, HEIGHT = 64, 48
LOUD, SOFT = 0.3, 0.1

# (modality, subtype, template); placeholders are filled by answer_for
TEMPLATES: Tuple[Tuple[str, str, str], ...] = (
    ("Audio", "Counting", "How many musical instruments were heard throughout the video?"),
    ("Audio", "Counting", "Is there a <Object> sound?"),
    ("Audio", "Comparative", "Is the <Object> playing longer than the <Object>?"),
    ("Visual", "Counting", "Is there a <Object> in the entire video?"),
    ("Visual", "Counting", "How many types of musical instruments appeared in the entire video?"),
    ("Visual", "Location", "What kind of instrument is the <LRer> instrument?"),
    ("Audio-Visual", "Existential", "Is the <Object> in the video always playing?"),
    ("Audio-Visual", "Counting", "How many instruments are sounding in the video?"),
    ("Audio-Visual", "Counting", "How many sounding <Object> in the video\uff1f"),
    ("Audio-Visual", "Location", "Is the <FL> sound coming from the <LR> instrument?"),
    ("Audio-Visual", "Comparative", "Is the instrument on the <LR> louder than the instrument on the <LR>?"),
    ("Audio-Visual", "Temporal", "Where is the <FL> sounding instrument?"),
    ("Audio-Visual", "Temporal", "What is the <TH> instrument that comes in?"),
)


@dataclass(frozen=True)
class Player:
    instrument: str
    side: str  # "left" or "right"
    onset: int  # sounds on onset <= t < offset
    offset: int
    loud: bool

    @property
    def seconds(self) -> int:
        return self.offset - self.onset


def instrument_signature(instrument: str) -> Tuple[Tuple[int, int, int], float]:
    index = concept_index("vggsound40k", INSTRUMENTS[instrument])
    return palette()[index], tone_hz(index)


def plan_video(rng: np.random.Generator, instruments: Sequence[str]) -> List[Player]:
    """One or two players with distinct onsets (so "first" is well defined) and distinct lengths."""
    count = 1 if rng.random() < 0.25 else 2
    chosen = rng.choice(len(instruments), size=count, replace=False)
    sides = ["left", "right"] if rng.random() < 0.5 else ["right", "left"]
    onsets = rng.choice(5, size=count, replace=False)
    players = []
    for i in range(count):
        onset = int(onsets[i])
        length = int(rng.integers(1, AVQA_SEGMENTS - onset + 1))
        players.append(Player(instruments[int(chosen[i])], sides[i], onset, onset + length, bool(rng.random() < 0.5)))
    if count == 2 and players[0].seconds == players[1].seconds:  # make "longer" decidable
        p = players[1]
        players[1] = Player(p.instrument, p.side, p.onset, p.offset - 1 if p.seconds > 1 else p.offset + 1, p.loud)
    if count == 2 and players[0].loud == players[1].loud:
        p = players[1]
        players[1] = Player(p.instrument, p.side, p.onset, p.offset, not p.loud)
    return players


def answer_for(template: str, players: Sequence[Player], rng: np.random.Generator,
               instruments: Sequence[str]) -> Tuple[List[str], str]:
    """(templ_values, answer) of ``template`` about ``players`` (random slot choices from ``rng``)."""
    present = [p.instrument for p in players]
    by_side = {p.side: p for p in players}
    order = sorted(players, key=lambda p: p.onset)
    yes = lambda flag: "yes" if flag else "no"  # noqa: E731
    absent = [i for i in instruments if i not in present]

    def some_instrument() -> str:
        pool = present + absent[:1]
        return pool[int(rng.integers(0, len(pool)))]

    if template.startswith("How many musical instruments were heard") or template.startswith("How many instruments are sounding"):
        return [], NUMBERS[len(players)]
    if template.startswith("Is there a <Object> sound") or template.startswith("Is there a <Object> in the entire"):
        name = some_instrument()
        return [name], yes(name in present)
    if template.startswith("Is the <Object> playing longer"):
        if len(players) < 2:
            return [present[0], absent[0]], "yes"
        a, b = (players[0], players[1]) if rng.random() < 0.5 else (players[1], players[0])
        return [a.instrument, b.instrument], yes(a.seconds > b.seconds)
    if template.startswith("How many types of musical instruments appeared"):
        return [], NUMBERS[len(players)]
    if template.startswith("What kind of instrument is the <LRer>"):
        side = players[int(rng.integers(0, len(players)))].side
        return ["leftest" if side == "left" else "rightest"], by_side[side].instrument
    if template.startswith("Is the <Object> in the video always playing"):
        player = players[int(rng.integers(0, len(players)))]
        return [player.instrument], yes(player.onset == 0 and player.offset == AVQA_SEGMENTS)
    if template.startswith("How many sounding <Object>"):
        name = some_instrument()
        return [name], NUMBERS[int(name in present)]
    if template.startswith("Is the <FL> sound coming from"):
        which = "first" if rng.random() < 0.5 else "last"
        player = order[0] if which == "first" else order[-1]
        side = "left" if rng.random() < 0.5 else "right"
        return [which, side], yes(player.side == side)
    if template.startswith("Is the instrument on the <LR> louder"):
        if len(players) < 2:
            return ["left", "right"], yes(by_side.get("left", Player("", "", 0, 0, False)).loud)
        side = "left" if rng.random() < 0.5 else "right"
        other = "right" if side == "left" else "left"
        return [side, other], yes(by_side[side].loud and not by_side[other].loud)
    if template.startswith("Where is the <FL> sounding"):
        which = "first" if rng.random() < 0.5 else "last"
        return [which], (order[0] if which == "first" else order[-1]).side
    if template.startswith("What is the <TH> instrument"):
        which = "first" if len(players) < 2 or rng.random() < 0.5 else "second"
        return [which], order[0 if which == "first" else 1].instrument
    raise ValueError(f"no answer rule for template {template!r}")


def render_video(players: Sequence[Player]) -> Tuple[List[np.ndarray], np.ndarray]:
    """Ten frames (each instrument's colour on its half, a moving bar) and 10 s of audio at 32 kHz."""
    frames = []
    for second in range(AVQA_SEGMENTS):
        image = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
        image[:] = GREY
        for p in players:
            x0 = 4 if p.side == "left" else WIDTH // 2 + 4
            image[8:40, x0 : x0 + WIDTH // 2 - 8] = instrument_signature(p.instrument)[0]
        x = (second * 5) % (WIDTH - 3)
        image[:, x : x + 3] = 0
        frames.append(image)
    n = DGSCT_RATE * AVQA_SEGMENTS
    t = np.arange(n, dtype=np.float64) / DGSCT_RATE
    audio = np.random.default_rng(len(players)).standard_normal(n) * NOISE_AMPLITUDE
    for p in players:
        gate = np.zeros(n)
        gate[p.onset * DGSCT_RATE : p.offset * DGSCT_RATE] = LOUD if p.loud else SOFT
        audio += gate * np.sin(2 * np.pi * instrument_signature(p.instrument)[1] * t)
    return frames, audio.astype(np.float32)


def make_avqa(
    root, videos: Optional[Dict[str, int]] = None, questions_per_video: int = 4, instruments: int = 4,
    seed: int = 0, duplicate_in_test: bool = True, media: bool = True,
) -> Dict[str, object]:
    """Write ``avqa-{train,val,test}.json`` (+ media) under ``root``; returns the manifest.

    videos: videos per split (default train 12, val 4, test 4); the split is by video here (the real
    one is by QA pair). ``duplicate_in_test`` repeats one test question id with a conflicting answer.
    """
    from PIL import Image

    root = Path(root)
    counts = videos or {"train": 12, "val": 4, "test": 4}
    pool = list(INSTRUMENTS)[:instruments]
    rng = np.random.default_rng(seed)
    question_id = 0
    manifest_videos: Dict[str, object] = {}
    for split in SPLITS:
        items = []
        for _ in range(counts.get(split, 0)):
            vid = f"{len(manifest_videos) + 1:08d}"
            players = plan_video(rng, pool)
            manifest_videos[vid] = {"split": split, "players": [asdict(p) for p in players]}
            picks = rng.choice(len(TEMPLATES), size=min(questions_per_video, len(TEMPLATES)), replace=False)
            for pick in picks:
                modality, subtype, template = TEMPLATES[int(pick)]
                values, answer = answer_for(template, players, rng, pool)
                question_id += 1
                items.append({
                    "video_id": vid, "question_id": question_id, "type": json.dumps([modality, subtype]),
                    "question_content": template, "templ_values": json.dumps(values), "question_deleted": 0,
                    "anser": answer,
                })
            if media:
                frames, audio = render_video(players)
                folder = root / "frames" / vid
                folder.mkdir(parents=True, exist_ok=True)
                for i, image in enumerate(frames, start=1):
                    Image.fromarray(image).save(folder / f"{i:08d}.jpg", quality=95)
                (root / "audio_wave").mkdir(parents=True, exist_ok=True)
                np.save(root / "audio_wave" / f"{vid}.npy", audio)
        if split == "test" and duplicate_in_test and items:
            copy = dict(items[0])
            copy["anser"] = "two" if copy["anser"] != "two" else "one"  # conflicting, like id 1138
            items.append(copy)
        write_text(root / f"avqa-{split}.json", json.dumps(items, indent=2, ensure_ascii=True) + "\n")
    manifest = {"dataset": "avqa", "seed": seed, "instruments": pool, "videos": manifest_videos}
    write_json(root / "manifest.json", manifest)
    return manifest
