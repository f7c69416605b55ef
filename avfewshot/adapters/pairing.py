"""Which visual block pairs with which audio block, and where each adapter sits: the pairing as data.

A ``Pairing`` is a list of ``PairedStep`` s. One step couples one visual block with one audio block
and carries four adapters (DG-SCT's A¹, V¹, A², V²). The visual adapters sit at the two residual
sub-layers of the visual block (``after_attention``: V¹ is added after the attention sub-layer;
``around_mlp``: V² reads the pre-MLP stream and is added next to the MLP's residual). The audio
adapters are added after the whole audio block (A¹ after the block, A² after A¹). Patch merging
runs after the last block of each audio stage (``Pairing.audio_stages``).

Two builders:

* ``one_to_one``: the few-shot DG-SCT layout, block i of the ViT with the i-th HTS-AT block over
  all stages (12 ↔ 12 at real size, n ↔ n for the tiny test towers).
* ``every_kth``: a hierarchical visual encoder (Swin-V2-L, supervised DG-SCT, ``docs/supervised.md`` §0)
  whose stage s has k times as many blocks as the audio stage s: visual blocks k-1, 2k-1, ... (0-based)
  of that stage pair with the audio blocks in order, the others have no adapters.

The pairing only describes; ``adapters/injection.py`` runs it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

from ..errors import UserError

VISUAL_SITES = ("after_attention", "around_mlp")
AUDIO_SITE = "after_block"  # A¹ and A² are both added after the whole audio block
#: the few-shot code computes A¹/V¹ after the audio block and the visual attention ("after_sublayer");
#: the supervised code computes them from the block inputs ("block_input")
SCHEDULES = ("after_sublayer", "block_input")


@dataclass(frozen=True)
class StreamShape:
    """Tokens and width of one stream at one point of an encoder."""

    tokens: int
    dim: int


@dataclass(frozen=True)
class PairedStep:
    """One visual block coupled with one audio block (both indices 0-based)."""

    index: int  # position in the pairing (adapter index)
    visual_stage: int
    visual_block: int  # index within the visual stage
    visual_flat: int  # index over all visual blocks
    audio_stage: int
    audio_block: int  # index within the audio stage
    audio_flat: int  # index over all audio blocks
    visual: StreamShape
    audio: StreamShape


@dataclass(frozen=True)
class Pairing:
    steps: Tuple[PairedStep, ...]
    visual_depths: Tuple[int, ...]  # blocks per visual stage (a ViT has one stage)
    audio_depths: Tuple[int, ...]  # blocks per audio stage
    audio_stages: Tuple[StreamShape, ...]  # audio stream shape inside each stage
    visual_stages: Tuple[StreamShape, ...]
    visual_sites: Tuple[str, str] = VISUAL_SITES
    schedule: str = "after_sublayer"

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise UserError(f"pairing schedule {self.schedule!r}: valid are {', '.join(SCHEDULES)}")
        seen_v = [s.visual_flat for s in self.steps]
        seen_a = [s.audio_flat for s in self.steps]
        if len(set(seen_v)) != len(seen_v) or len(set(seen_a)) != len(seen_a):
            raise UserError("a pairing may use each visual and each audio block at most once")

    def __len__(self) -> int:
        return len(self.steps)

    def step_for_visual(self, flat: int):
        """The step whose visual block is ``flat`` (None for an unpaired block)."""
        for step in self.steps:
            if step.visual_flat == flat:
                return step
        return None

    def describe(self) -> List[str]:
        return [f"step {s.index}: visual stage {s.visual_stage} block {s.visual_block} ({s.visual.tokens}x{s.visual.dim})"
                f" <-> audio stage {s.audio_stage} block {s.audio_block} ({s.audio.tokens}x{s.audio.dim})"
                for s in self.steps]


def one_to_one(visual_blocks: int, visual: StreamShape, audio_depths: Sequence[int],
               audio_stages: Sequence[StreamShape]) -> Pairing:
    """ViT block i <-> the i-th audio block over all stages (DG-SCT few-shot)."""
    audio_depths = tuple(int(d) for d in audio_depths)
    if len(audio_depths) != len(audio_stages):
        raise UserError(f"audio depths {audio_depths} and stage shapes ({len(audio_stages)}) disagree")
    total = sum(audio_depths)
    if total != visual_blocks:
        raise UserError(f"DG-SCT pairs the visual and audio blocks one to one, but the image encoder has "
                        f"{visual_blocks} blocks and the audio encoder {total} ({'+'.join(map(str, audio_depths))}); "
                        f"choose encoders of equal depth (e.g. ViT-B-32 with HTSAT-tiny)")
    steps, flat = [], 0
    for s, depth in enumerate(audio_depths):
        for j in range(depth):
            steps.append(PairedStep(flat, 0, flat, flat, s, j, flat, visual, audio_stages[s]))
            flat += 1
    return Pairing(tuple(steps), (visual_blocks,), audio_depths, tuple(audio_stages), (visual,))


def every_kth(visual_depths: Sequence[int], visual_stages: Sequence[StreamShape], audio_depths: Sequence[int],
              audio_stages: Sequence[StreamShape], schedule: str = "block_input") -> Pairing:
    """Stage-wise pairing of two hierarchical encoders: in stage s, visual block (i+1)·k-1 <-> audio block i,
    k = visual depth / audio depth (Swin-V2-L 2/2/18/2 with HTS-AT 2/2/6/2: k = 1, 1, 3, 1)."""
    visual_depths, audio_depths = tuple(visual_depths), tuple(audio_depths)
    if not (len(visual_depths) == len(audio_depths) == len(visual_stages) == len(audio_stages)):
        raise UserError(f"stage-wise pairing needs as many visual as audio stages: {visual_depths} vs {audio_depths}")
    steps = []
    v_offset = a_offset = 0
    for s, (dv, da) in enumerate(zip(visual_depths, audio_depths)):
        if da < 1 or dv % da:
            raise UserError(f"stage {s}: {dv} visual blocks cannot pair evenly with {da} audio blocks")
        k = dv // da
        for i in range(da):
            vb = (i + 1) * k - 1
            steps.append(PairedStep(len(steps), s, vb, v_offset + vb, s, i, a_offset + i,
                                    visual_stages[s], audio_stages[s]))
        v_offset += dv
        a_offset += da
    return Pairing(tuple(steps), visual_depths, audio_depths, tuple(audio_stages), tuple(visual_stages),
                   schedule=schedule)


def audio_stage_shapes(audio_tower) -> Tuple[Tuple[int, ...], Tuple[StreamShape, ...]]:
    """(depths, token/width shape of each stage) read from an HTS-AT ``AudioTower``."""
    depths, shapes = [], []
    for stage in audio_tower.stages:
        h, w = stage.input_resolution
        depths.append(len(stage.blocks))
        shapes.append(StreamShape(int(h) * int(w), int(stage.dim)))
    return tuple(depths), tuple(shapes)


def pairing_for(image_tower, audio_tower) -> Pairing:
    """The DG-SCT few-shot pairing of an open_clip ViT ``ImageTower`` and an HTS-AT ``AudioTower``."""
    depths, shapes = audio_stage_shapes(audio_tower)
    visual = StreamShape(int(image_tower.num_tokens), int(image_tower.width))
    return one_to_one(len(image_tower.blocks), visual, depths, shapes)
