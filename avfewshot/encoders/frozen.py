"""Base class for frozen towers: always in eval mode, never trainable."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

RANDOM_INIT_SEED = 0  # random-init towers are reproducible, so their features can be cached


class FrozenTower(nn.Module):
    """``train()`` is a no-op: BatchNorm statistics, SpecAugment, drop-path and dropout never run.

    Unless ``follows_train_mode`` is set (``model.frozen_towers=released``, the released DG-SCT code's
    behaviour): then ``train(True)`` puts the tower's modules in training mode; parameters stay frozen.
    """

    follows_train_mode: bool = False

    def freeze(self) -> "FrozenTower":
        for p in self.parameters():
            p.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> "FrozenTower":
        return super().train(bool(mode) and self.follows_train_mode)


@contextlib.contextmanager
def seeded_init(seed: int = RANDOM_INIT_SEED) -> Iterator[None]:
    """Build modules with a fixed seed without disturbing the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def skip_weight_init() -> Iterator[None]:
    """Skip random initialisation while building modules whose every tensor is loaded right after.

    Only used before a strict load (every parameter and persistent buffer is overwritten); saves
    several seconds for the full-size towers. Constructor-computed buffers (masks, STFT kernels)
    are untouched.
    """
    import sys

    with contextlib.ExitStack() as stack:
        try:
            from transformers.initialization import no_init_weights  # transformers >= 5
        except ImportError:  # pragma: no cover - older transformers
            try:
                from transformers.modeling_utils import no_init_weights
            except ImportError:
                no_init_weights = None
        if no_init_weights is not None:
            stack.enter_context(no_init_weights())
        htsat = sys.modules.get("clap_module.htsat")
        if htsat is not None and hasattr(htsat, "trunc_normal_"):
            original = htsat.trunc_normal_
            htsat.trunc_normal_ = lambda tensor, *args, **kwargs: tensor
            stack.callback(setattr, htsat, "trunc_normal_", original)
        yield
