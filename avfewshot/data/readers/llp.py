"""LLP (AVVP) reader: the weak-label split files and, when present, the dense evaluation files."""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Tuple, Union

from ..facts import LLP_CLASS_NAMES, LLP_EVAL_FILES, LLP_ID_LENGTH, LLP_SPLIT_FILES, LLP_WEAK_HEADER
from ..records import NUM_SEGMENTS, AnnotationSet, ClipRecord
from .common import line_error, require_file, tsv_rows
from .llp_dense import read_llp_dense

PathLike = Union[str, "os.PathLike[str]"]


def _llp_labels(text: str, path: Path, line: int, class_index: Dict[str, int]) -> Tuple[int, ...]:
    tokens = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in tokens):
        raise line_error(path, line, f"event_labels {text!r} has an empty label")
    unknown = [t for t in tokens if t not in class_index]
    if unknown:
        raise line_error(
            path, line,
            f"unknown LLP label {unknown[0]!r} (valid: the 25 classes of LLP_CLASS_NAMES, "
            f"e.g. Speech, Frying_(food), Violin_fiddle)",
        )
    return tuple(sorted({class_index[t] for t in tokens}))  # duplicates like Clapping,Clapping collapse


def read_llp(root: PathLike) -> AnnotationSet:
    """Read an LLP root: ``AVVP_train.csv``, ``AVVP_val_pd.csv``, ``AVVP_test_pd.csv`` (+ dense eval).

    * ``clip_id`` = the ``filename`` column (e.g. ``BjCEufrlXm4_20_30``); ``media_id`` = its first
      11 characters (the YouTube id, which may contain ``_`` and ``-``).
    * ``labels`` = sorted unique class indices in :data:`LLP_CLASS_NAMES` order.
    * If ``AVVP_eval_audio.csv`` / ``AVVP_eval_visual.csv`` exist, every val/test clip (and any
      other clip they name) gets ``extra["audio_events"]`` / ``extra["visual_events"]``: a
      10 x 25 list of 0/1 (second t positive when onset <= t < offset; a clip with no rows is all
      zeros). Malformed rows (recovered when the intended clip is unambiguous), rows naming no
      clip, zero-length and reversed events go to ``problems`` (see :mod:`.llp_dense`).
    """
    root = Path(root)
    class_index = {name: i for i, name in enumerate(LLP_CLASS_NAMES)}
    records: List[ClipRecord] = []
    files: List[str] = []
    where: Dict[str, Tuple[str, int]] = {}
    for split, name in LLP_SPLIT_FILES.items():
        path = require_file(root / name, "LLP")
        files.append(str(path))
        for number, (filename, labels_text) in tsv_rows(path, LLP_WEAK_HEADER):
            if len(filename) <= LLP_ID_LENGTH or any(c.isspace() for c in filename):
                raise line_error(
                    path, number,
                    f"filename {filename!r} is not '<11-character YouTube id>_<start>_<end>'",
                )
            if filename in where:
                other_file, other_line = where[filename]
                raise line_error(path, number, f"clip {filename} already listed in {other_file}, line {other_line}")
            where[filename] = (path.name, number)
            records.append(
                ClipRecord(
                    clip_id=filename,
                    media_id=filename[:LLP_ID_LENGTH],
                    split=split,
                    labels=_llp_labels(labels_text, path, number, class_index),
                    source=(str(path), number),
                )
            )

    problems: List[str] = []
    dense: Dict[str, Dict[str, List[List[int]]]] = {}
    by_id = {r.clip_id: r for r in records}
    for key, name in LLP_EVAL_FILES.items():
        path = root / name
        if not path.is_file():
            continue
        files.append(str(path))
        matrices = read_llp_dense(path, by_id, class_index, problems)
        for record in records:
            if record.split in ("val", "test") or record.clip_id in matrices:
                empty = [[0] * len(LLP_CLASS_NAMES) for _ in range(NUM_SEGMENTS)]
                dense.setdefault(record.clip_id, {})[key] = matrices.get(record.clip_id, empty)
    if dense:
        records = [
            replace(r, extra={**r.extra, **dense[r.clip_id]}) if r.clip_id in dense else r for r in records
        ]
    return AnnotationSet(
        dataset="llp",
        class_names=list(LLP_CLASS_NAMES),
        records=records,
        files=files,
        background=False,
        problems=problems,
    )
