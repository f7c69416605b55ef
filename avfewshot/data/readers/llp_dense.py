"""The LLP dense evaluation files (``AVVP_eval_audio.csv`` / ``AVVP_eval_visual.csv``): per-second labels."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from ...errors import AnnotationError
from ..facts import LLP_DENSE_HEADER
from ..records import NUM_SEGMENTS, ClipRecord
from .common import line_error, parse_int, summarise, tsv_rows


def read_llp_dense(
    path: Path,
    clips: Dict[str, ClipRecord],
    class_index: Dict[str, int],
    problems: List[str],
) -> Dict[str, List[List[int]]]:
    """One T x C 0/1 matrix per clip named in a dense evaluation file."""
    matrices: Dict[str, List[List[int]]] = {}
    orphans: List[str] = []
    zero_length: List[str] = []
    reversed_events: List[str] = []
    for number, (filename, onset_text, offset_text, label) in tsv_rows(path, LLP_DENSE_HEADER):
        onset = parse_int(onset_text, path, number, "onset", 0, NUM_SEGMENTS)
        offset = parse_int(offset_text, path, number, "offset", 0, NUM_SEGMENTS)
        if filename not in clips:
            orphans.append(f"line {number} {filename!r}")
            continue
        if label not in class_index:
            raise line_error(path, number, f"unknown LLP label {label!r} (valid: the 25 classes of LLP_CLASS_NAMES)")
        matrix = matrices.setdefault(
            filename, [[0] * len(class_index) for _ in range(NUM_SEGMENTS)]
        )
        if onset == offset:
            zero_length.append(f"line {number} {filename} {onset}-{offset} {label}")
            continue
        if onset > offset:
            reversed_events.append(f"line {number} {filename} {onset}-{offset} {label}")
            continue
        column = class_index[label]
        for t in range(onset, offset):
            matrix[t][column] = 1
    if orphans:
        problems.append(summarise(path, "rows name no clip of the split files", orphans))
    if zero_length:
        problems.append(summarise(path, "zero-length events (onset = offset, no positive second)", zero_length))
    if reversed_events:
        problems.append(summarise(path, "reversed events (onset > offset, no positive second)", reversed_events))
    return matrices
