"""The paired forward through the frozen CLIP ViT and CLAP HTS-AT with DG-SCT units in every block.

Built by composition over the towers' public pieces (``ImageTower.embed / attention_part /
mlp_part / head``, ``AudioTower.frontend / embed / stages[s].blocks / downsample / head /
project``); nothing of the towers is copied or patched. One paired step i (``pairing.PairedStep``)
runs, as the released few-shot code (docs/dgsct.md §3.1):

1. a ← audio block(a)                       (the whole Swin block)
2. v ← v + attention_part(v)
3. Δa = A¹(a | v), Δv = V¹(v | a); a ← a + Δa; v ← v + Δv      (both read the same pair)
4. v_mlp ← v + mlp_part(v)
5. Δa′ = A²(a | v), Δv′ = V²(v | a)                              (v is the pre-MLP stream)
6. v ← v_mlp + Δv′; a ← a + Δa′
7. patch merging after the last block of an audio stage.

Every unit's zero-initialised output gate makes Δ exactly 0 at initialisation, so the adapted
encoders then return exactly the frozen towers' outputs. A2V (visual units guided by audio) and
V2A (audio units guided by the image) can each be switched off; a switched-off direction has no
units and its stream runs unchanged.

Memory: the frozen parts before the first adapter (front end, patch embeddings, the first audio
block and the first visual attention) carry no autograd graph because nothing upstream of them
is trainable. ``checkpoint`` trades compute for memory: "units" recomputes each DG-SCT unit in the
backward pass (the units hold most of the activations a real-size step keeps for backward; their
forward is a small part of the step), "steps" each whole paired step. The recomputation
normalises with the batch statistics of the first forward and leaves the BatchNorm running
statistics alone, so the result and the buffers are exactly those of the plain run.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from torch import nn

from ..errors import UserError
from ..precision import to_autocast_dtype
from .dgsct_unit import DGSCTUnit, DGSCTUnitConfig
from .pairing import Pairing, PairedStep, pairing_for

#: activation checkpointing: none | units (each DG-SCT unit recomputed in backward) | steps (each paired step)
CHECKPOINT_MODES = ("none", "units", "steps")
#: DGSCTUnitConfig fields that the injection sets itself (sizes of each unit)
SIZE_FIELDS = ("dim", "tokens", "guide_dim", "guide_tokens")


@dataclass
class AdaptedOutputs:
    """Per-sample outputs of the adapted encoders (N = videos x segments)."""

    image: torch.Tensor  # (N, D) CLIP image embedding (unnormalised, after ln_post and proj)
    audio: torch.Tensor  # (N, D) CLAP audio embedding (after audio_projection)


def unit_config(step: PairedStep, direction: str, options: Dict[str, Any]) -> DGSCTUnitConfig:
    """The unit of one step: ``direction`` "visual" (adapts the image stream) or "audio"."""
    bad = sorted(set(options) & set(SIZE_FIELDS))
    if bad:
        raise UserError(f"unit options may not set {bad}: the pairing decides the sizes")
    own, guide = (step.visual, step.audio) if direction == "visual" else (step.audio, step.visual)
    return DGSCTUnitConfig(dim=own.dim, tokens=own.tokens, guide_dim=guide.dim, guide_tokens=guide.tokens, **options)


class AdaptedEncoders(nn.Module):
    """DG-SCT units around the frozen towers. The towers are referenced, not registered, so the
    module's state holds only the units (the method registers the backbone itself)."""

    def __init__(self, image_tower, audio_tower, unit_options: Optional[Dict[str, Any]] = None,
                 a2v: bool = True, v2a: bool = True, pairing: Optional[Pairing] = None, checkpoint: Any = "none"):
        super().__init__()
        self._towers = (image_tower, audio_tower)  # a tuple: not registered as submodules
        self.pairing = pairing or pairing_for(image_tower, audio_tower)
        if self.pairing.schedule != "after_sublayer" or len(self.pairing.visual_depths) != 1:
            raise UserError("AdaptedEncoders runs the few-shot DG-SCT schedule on a ViT; the block-input schedule of "
                            "hierarchical visual encoders (supervised DG-SCT) is not implemented yet")
        options = dict(unit_options or {})
        self.a2v, self.v2a, self.checkpoint = a2v, v2a, checkpoint_mode(checkpoint)
        steps = self.pairing.steps
        if a2v:
            self.visual_p1 = nn.ModuleList(DGSCTUnit(unit_config(s, "visual", options)) for s in steps)
            self.visual_p2 = nn.ModuleList(DGSCTUnit(unit_config(s, "visual", options)) for s in steps)
        if v2a:
            self.audio_p1 = nn.ModuleList(DGSCTUnit(unit_config(s, "audio", options)) for s in steps)
            self.audio_p2 = nn.ModuleList(DGSCTUnit(unit_config(s, "audio", options)) for s in steps)
        self._by_audio_block = {(s.audio_stage, s.audio_block): s for s in steps}
        if len(self._by_audio_block) != sum(self.pairing.audio_depths):
            raise UserError("the few-shot schedule needs every audio block paired (one_to_one pairing)")

    @property
    def image_tower(self):
        return self._towers[0]

    @property
    def audio_tower(self):
        return self._towers[1]

    def units(self) -> Dict[str, nn.ModuleList]:
        """Adapter lists by name: visual_p1/p2 (A2V), audio_p1/p2 (V2A)."""
        names = (["visual_p1", "visual_p2"] if self.a2v else []) + (["audio_p1", "audio_p2"] if self.v2a else [])
        return {n: getattr(self, n) for n in names}

    # -- forward --------------------------------------------------------------------------------
    def stems(self, images: torch.Tensor, wave: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Token streams entering the first paired step; frozen and upstream of every adapter."""
        with torch.no_grad():
            return self.image_tower.embed(images), self.audio_tower.embed(self.audio_tower.frontend(wave))

    def forward(self, images: torch.Tensor, wave: torch.Tensor) -> AdaptedOutputs:
        """images (N, 3, H, W) normalised, wave (N, S) one-second segments -> per-sample embeddings."""
        if images.shape[0] != wave.shape[0]:
            raise UserError(f"AdaptedEncoders: {images.shape[0]} images but {wave.shape[0]} audio segments")
        v, a = self.stems(images, wave)
        audio = self.audio_tower
        for s, stage in enumerate(audio.stages):
            for j in range(len(stage.blocks)):
                step = self._by_audio_block[(s, j)]
                if self.checkpoint == "steps" and self._recomputing():
                    units = [lst[step.index] for lst in self.units().values()]
                    v, a = checkpoint_once(self._step, units, step, v, a)
                else:
                    v, a = self._step(step, v, a)
            a = audio.downsample(s, a)
        return AdaptedOutputs(self.image_tower.head(v), audio.project(audio.head(a)))

    def _recomputing(self) -> bool:
        return self.training and torch.is_grad_enabled()

    def _unit(self, unit: DGSCTUnit, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        if self.checkpoint == "units" and self._recomputing():
            return checkpoint_once(unit, [unit], x, guide)
        return unit(x, guide)

    def _step(self, step: PairedStep, v: torch.Tensor, a: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """One paired step. The streams keep the towers' ``stream_dtype`` (fp32, or bf16 with bf16 frozen
        weights). Under autocast with fp32 streams the units (and the MLP's LayerNorm) read one
        low-precision copy of each (``to_autocast_dtype``) instead of each GEMM casting its own: the same
        values, one copy kept for backward instead of three to five."""
        image, i = self.image_tower, step.index
        a = self.audio_tower.block(step.audio_stage, step.audio_block, a)
        v = residual_add(v, image.attention_part(step.visual_flat, v))
        if self.v2a or self.a2v:
            a_in, v_in = to_autocast_dtype(a), to_autocast_dtype(v)
            delta_a = self._unit(self.audio_p1[i], a_in, v_in) if self.v2a else None
            delta_v = self._unit(self.visual_p1[i], v_in, a_in) if self.a2v else None
            if delta_a is not None:
                a = residual_add(a, delta_a)
            if delta_v is not None:
                v = residual_add(v, delta_v)
        a_in, v_in = to_autocast_dtype(a), to_autocast_dtype(v)
        v_mlp = residual_add(v, image.mlp_part(step.visual_flat, v_in))
        if self.v2a:
            a_next = residual_add(a, self._unit(self.audio_p2[i], a_in, v_in))
        else:
            a_next = a
        if self.a2v:
            v_mlp = residual_add(v_mlp, self._unit(self.visual_p2[i], v_in, a_in))
        return v_mlp, a_next


def residual_add(stream: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """stream + delta in the stream's dtype (a fp32 delta added to a bf16 stream is summed in fp32 and
    rounded once)."""
    out = stream + delta
    return out if out.dtype == stream.dtype else out.to(stream.dtype)


def checkpoint_mode(value: Any) -> str:
    """none | units | steps; booleans are accepted (true = steps, as in earlier configs)."""
    if isinstance(value, bool):
        return "steps" if value else "none"
    if value is None:
        return "none"
    if value not in CHECKPOINT_MODES:
        raise UserError(f"checkpoint={value!r} (method.checkpoint in a run config): valid are "
                        f"{', '.join(CHECKPOINT_MODES)} (or true = steps, false = none)")
    return value


@contextlib.contextmanager
def _holding_running_stats(units: List[DGSCTUnit]) -> Iterator[None]:
    for unit in units:
        unit.hold_running_stats = True
    try:
        yield
    finally:
        for unit in units:
            unit.hold_running_stats = False


def checkpoint_once(fn, units: List[DGSCTUnit], *inputs):
    """``fn(*inputs)`` under activation checkpointing, leaving BatchNorm buffers as a plain run would.

    The recomputation in the backward pass normalises with the batch statistics as the first forward
    did, but does not update the running statistics a second time (``DGSCTUnit.hold_running_stats``).
    """
    from torch.utils.checkpoint import checkpoint

    calls: List[int] = []

    def run(*args):
        if calls:
            with _holding_running_stats(units):
                return fn(*args)
        calls.append(1)
        return fn(*args)

    return checkpoint(run, *inputs, use_reentrant=False, preserve_rng_state=False)
