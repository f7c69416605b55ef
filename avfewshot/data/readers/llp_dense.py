"""The LLP dense evaluation files (``AVVP_eval_audio.csv`` / ``AVVP_eval_visual.csv``): per-second labels.

Rows whose filename names no clip of the split files come in two sorts, reported apart:

* **malformed**: the filename column does not hold a clip name at all: a class name (the old
  DG-SCT copy of eval_audio has two ``Baby_cry_infant_cry`` rows where ``JfZEqeLZqWk_30_40``
  belongs) or a name with characters no clip name has (``KvIjsmANkxI_10_20``
  followed by a stray backtick). Recovered when the intended clip is unambiguous: stray characters at
  either end stripped leave a clip name; a class name follows the clip of the row before it when
  that clip carries the class (the file lists each clip's rows together). Otherwise ignored.
* **naming no clip**: well-formed names of no clip (an id with its leading ``-`` lost, a mistyped
  end time like ``19jWnmYnlD8_30_400``): ignored, as the official evaluation does.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..facts import LLP_CLASS_NAMES, LLP_DENSE_HEADER, YOUTUBE_ID_ALPHABET
from ..records import NUM_SEGMENTS, ClipRecord
from .common import line_error, parse_int, summarise, tsv_rows

CLIP_NAME_CHARACTERS = frozenset(YOUTUBE_ID_ALPHABET + ".")  # "<id>_<start>_<end>", times may be fractional


def class_key(name: str) -> str:
    """A spelling-insensitive key: "Baby cry, infant cry" and "baby_cry_infant_cry" give the same one."""
    return re.sub(r"[^0-9a-z()]+", "_", name.lower()).strip("_")


OFFICIAL_BY_KEY: Dict[str, str] = {class_key(name): name for name in LLP_CLASS_NAMES}


def official_class(text: str) -> Optional[str]:
    """The official LLP class name ``text`` spells (exactly or with other separators / case), or None."""
    return text if text in LLP_CLASS_NAMES else OFFICIAL_BY_KEY.get(class_key(text))


def _intended_clip(
    filename: str, previous: Optional[str], clips: Dict[str, ClipRecord], class_index: Dict[str, int]
) -> Tuple[Optional[str], Optional[str]]:
    """(what is wrong with a filename that names no clip, the clip it was meant to name).

    (None, None) for a well-formed name of no clip; (problem, None) when malformed and not recoverable.
    """
    named_class = official_class(filename)
    if named_class is not None:
        problem = f"the class name {filename!r} in the filename column"
        if previous is not None and class_index[named_class] in clips[previous].labels:
            return problem, previous
        return problem, None
    stray = sorted({c for c in filename if c not in CLIP_NAME_CHARACTERS})
    if not stray:
        return None, None
    problem = f"{filename!r} holds character(s) no clip name has ({''.join(stray)!r})"
    core = filename.strip("".join(stray))
    if core in clips:
        return problem, core
    return problem, None


def read_llp_dense(
    path: Path,
    clips: Dict[str, ClipRecord],
    class_index: Dict[str, int],
    problems: List[str],
) -> Dict[str, List[List[int]]]:
    """One T x C 0/1 matrix per clip named in a dense evaluation file."""
    matrices: Dict[str, List[List[int]]] = {}
    orphans: List[str] = []
    recovered: List[str] = []
    malformed: List[str] = []
    zero_length: List[str] = []
    reversed_events: List[str] = []
    previous: Optional[str] = None  # the clip of the last row that named (or was read as) one
    for number, (filename, onset_text, offset_text, label_text) in tsv_rows(path, LLP_DENSE_HEADER):
        onset = parse_int(onset_text, path, number, "onset", 0, NUM_SEGMENTS)
        offset = parse_int(offset_text, path, number, "offset", 0, NUM_SEGMENTS)
        clip: Optional[str] = filename
        if filename not in clips:
            problem, clip = _intended_clip(filename, previous, clips, class_index)
            if problem is None:
                orphans.append(f"line {number} {filename!r}")
                continue
            if clip is None:
                malformed.append(f"line {number}: {problem}")
                continue
            recovered.append(f"line {number}: {problem}; read as {clip}")
        previous = clip
        label = official_class(label_text)
        if label is None:
            raise line_error(
                path, number, f"unknown LLP label {label_text!r} (valid: the 25 classes of LLP_CLASS_NAMES)"
            )
        if label != label_text:
            recovered.append(f"line {number}: the label {label_text!r} spells the class {label}")
        matrix = matrices.setdefault(clip, [[0] * len(class_index) for _ in range(NUM_SEGMENTS)])
        if onset == offset:
            zero_length.append(f"line {number} {clip} {onset}-{offset} {label}")
            continue
        if onset > offset:
            reversed_events.append(f"line {number} {clip} {onset}-{offset} {label}")
            continue
        column = class_index[label]
        for t in range(onset, offset):
            matrix[t][column] = 1
    if recovered:
        problems.append(summarise(path, "malformed rows", recovered, "recovered: the intended clip / class is unambiguous"))
    if malformed:
        problems.append(summarise(path, "malformed rows", malformed, "ignored: the intended clip is unclear"))
    if orphans:
        problems.append(summarise(path, "rows name no clip of the split files", orphans))
    if zero_length:
        problems.append(summarise(path, "zero-length events (onset = offset, no positive second)", zero_length))
    if reversed_events:
        problems.append(summarise(path, "reversed events (onset > offset, no positive second)", reversed_events))
    return matrices
