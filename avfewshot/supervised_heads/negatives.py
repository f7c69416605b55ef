"""Negative frames for the AVQA matching loss: a random frame of a *different* video per positive.

The released sampler draws a global frame index and checks "same video" by dividing by 60 instead of
the 10 frames per video, so a negative can come from the same video; here the video is drawn first
from the others, then the frame.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np


def sample_negatives(video_ids: Sequence[str], frames_per_video: int, rng: np.random.Generator) -> List[List[Tuple[int, int]]]:
    """For each video position i (in ``video_ids``) and frame, a (video position, frame) from another video.

    Raises ValueError when fewer than two distinct videos exist (no negative is possible).
    """
    distinct = sorted(set(video_ids))
    if len(distinct) < 2:
        raise ValueError("AVQA negatives need at least two distinct videos")
    positions = {}
    for i, vid in enumerate(video_ids):
        positions.setdefault(vid, []).append(i)
    result = []
    for vid in video_ids:
        others = [v for v in distinct if v != vid]
        picks = []
        for _ in range(frames_per_video):
            other = others[int(rng.integers(0, len(others)))]
            candidates = positions[other]
            picks.append((candidates[int(rng.integers(0, len(candidates)))], int(rng.integers(0, frames_per_video))))
        result.append(picks)
    return result
