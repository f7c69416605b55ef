"""Explicit audio augmentation of the supervised runners: SpecAugment and mixup.

The released runners augment because their "frozen" HTS-AT runs in train mode (docs/supervised.md §6, row 6.3):
SpecAugment always, and for AVVP / AVS / AVQA a per-segment mixup whose labels stay unmixed (§6.2).
Here both are options that act only while the adapted model trains:

* ``spec_augment``: torchlibrosa's SpecAugmentation on the log-mel after ``bn0`` (2 time masks up to
  64 frames, 2 frequency masks up to 8 bins at real size).
* ``mixup="mixed_targets"``: one λ ~ Beta(α, α) per video; every segment of video b is blended with the
  same segment of the batch-reversed video B-1-b, and the task mixes its targets with the same λ.
* ``mixup="official"`` (parity only): one λ per segment row, row n blended with row N-1-n of the whole
  (B·T)-row batch, targets left unmixed, as released.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

from ..errors import UserError

MIXUP_MODES = ("none", "mixed_targets", "official")


@dataclass
class AugmentConfig:
    spec_augment: bool = False
    time_drop_width: int = 64
    time_stripes: int = 2
    freq_drop_width: int = 8
    freq_stripes: int = 2
    mixup: str = "none"  # none | mixed_targets | official (labels unmixed, released AVVP)
    mixup_alpha: float = 0.5

    def __post_init__(self) -> None:
        if self.mixup not in MIXUP_MODES:
            raise UserError(f"augment.mixup={self.mixup!r}: valid are {', '.join(MIXUP_MODES)}")
        if self.mixup != "none" and self.mixup_alpha <= 0:
            raise UserError(f"augment.mixup_alpha={self.mixup_alpha}: must be > 0")

    def spec_augmenter(self) -> Optional[nn.Module]:
        if not self.spec_augment:
            return None
        from torchlibrosa.augmentation import SpecAugmentation

        return SpecAugmentation(self.time_drop_width, self.time_stripes, self.freq_drop_width, self.freq_stripes)


@dataclass
class MixPlan:
    """One batch's mixup: λ per video (``mixed_targets``) or per segment row (``official``)."""

    lam: torch.Tensor
    mode: str

    def mix_rows(self, x: torch.Tensor, segments: int) -> torch.Tensor:
        """Blend (B·T, ...) video-major rows as the plan says."""
        if self.mode == "official":
            lam = self.lam.to(x).view(-1, *([1] * (x.dim() - 1)))
            return lam * x + (1 - lam) * x.flip(0)
        per_video = x.view(-1, segments, *x.shape[1:])
        lam = self.lam.to(x).view(-1, *([1] * (per_video.dim() - 1)))
        return (lam * per_video + (1 - lam) * per_video.flip(0)).view_as(x)

    def mix_targets(self, y: torch.Tensor) -> torch.Tensor:
        """(B, ...) targets mixed with the batch-reversed ones (unchanged under ``official``)."""
        if self.mode == "official":
            return y
        lam = self.lam.to(y.dtype).to(y.device).view(-1, *([1] * (y.dim() - 1)))
        return lam * y + (1 - lam) * y.flip(0)


def draw_mixup(cfg: AugmentConfig, videos: int, segments: int, rng: Optional[np.random.Generator] = None) -> Optional[MixPlan]:
    """A MixPlan for one training batch, or None when mixup is off."""
    if cfg.mixup == "none":
        return None
    rng = rng if rng is not None else np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item()))
    count = videos if cfg.mixup == "mixed_targets" else videos * segments
    lam = torch.from_numpy(rng.beta(cfg.mixup_alpha, cfg.mixup_alpha, size=count).astype(np.float32))
    return MixPlan(lam, cfg.mixup)
