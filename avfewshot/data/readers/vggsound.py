"""VGG-Sound readers: the official ``vggsound.csv`` and the DG-SCT 40K list (``vggsound-avel40k_labels.csv``)."""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Dict, List, Tuple, Union

from ...errors import AnnotationError
from ..facts import (
    SPLITS, VGG40K_CATEGORIES, VGG40K_ID_DIGITS, VGG40K_LABELS, VGG40K_REQUIRED_COLUMNS, VGGSOUND_CSV, VGGSOUND_SPLITS,
)
from ..records import NUM_SEGMENTS, AnnotationSet, ClipRecord
from .common import class_space, line_error, require_file

PathLike = Union[str, "os.PathLike[str]"]


def vggsound_clip_id(youtube_id: str, start_seconds: int) -> str:
    """``<youtube id>_<start, 6 digits>``: the file stem of the official VGG-Sound release."""
    return f"{youtube_id}_{start_seconds:06d}"


def read_vggsound_rows(path: Path) -> List[Tuple[int, str, int, str, str]]:
    rows = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            for fields in reader:
                number = reader.line_num
                if not fields or not any(f.strip() for f in fields):
                    continue
                if len(fields) != 4:
                    raise line_error(
                        path, number,
                        f"expected 4 comma-separated fields (youtube_id,start_seconds,label,split; "
                        f"quote labels that contain commas), found {len(fields)}",
                    )
                youtube_id, start_text, label, split = (f.strip() for f in fields)
                if not youtube_id or any(c.isspace() for c in youtube_id):
                    raise line_error(path, number, f"bad youtube_id {fields[0]!r}")
                try:
                    start = int(start_text)
                except ValueError:
                    raise line_error(path, number, f"start_seconds {start_text!r} is not an integer") from None
                if start < 0:
                    raise line_error(path, number, f"start_seconds {start} is negative")
                if not label:
                    raise line_error(path, number, "empty label")
                if split not in VGGSOUND_SPLITS:
                    raise line_error(path, number, f"split {split!r} is not one of {', '.join(VGGSOUND_SPLITS)}")
                rows.append((number, youtube_id, start, label, split))
    except csv.Error as exc:
        raise AnnotationError(f"{path}: unreadable CSV ({exc})") from None
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{path}: not UTF-8 text ({exc})") from None
    return rows


def read_vggsound(csv_path: PathLike) -> AnnotationSet:
    """Read the official ``vggsound.csv`` (no header; ``youtube_id,start_seconds,label,split``).

    Class list = the sorted distinct labels (309 for the full file). ``clip_id`` = ``media_id`` =
    ``<youtube_id>_<start_seconds:06d>`` (the file stem of the official release). One label per
    clip, no per-second labels, splits ``train`` / ``test`` only.
    """
    path = require_file(Path(csv_path), "VGG-Sound")
    rows = read_vggsound_rows(path)
    if not rows:
        raise AnnotationError(f"{path}: no rows")
    class_names = sorted({row[3] for row in rows})
    class_index = {name: i for i, name in enumerate(class_names)}
    records: List[ClipRecord] = []
    seen: Dict[str, int] = {}
    for number, youtube_id, start, label, split in rows:
        clip_id = vggsound_clip_id(youtube_id, start)
        if clip_id in seen:
            raise line_error(path, number, f"clip {youtube_id},{start} repeats line {seen[clip_id]}")
        seen[clip_id] = number
        records.append(
            ClipRecord(
                clip_id=clip_id,
                media_id=clip_id,
                split=split,
                labels=(class_index[label],),
                source=(str(path), number),
                extra={"youtube_id": youtube_id, "start_seconds": start},
            )
        )
    return AnnotationSet(
        dataset="vggsound", class_names=class_names, records=records, files=[str(path)], background=False
    )


def _parse_second_labels(text: str, path: Path, line: int) -> Tuple[int, ...]:
    """The text of a Python list of ten 0/1 values, e.g. ``[0, 0, 1, 1, 1, 1, 1, 1, 0, 0]``.

    Parsed by hand (no eval): brackets, then comma-separated 0 or 1 (``1.0`` / ``0.0`` accepted).
    """
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise line_error(path, line, f"label {text!r} is not a list like [0, 1, ...] of {NUM_SEGMENTS} values")
    values = []
    for token in body[1:-1].split(","):
        token = token.strip()
        if token in ("0", "0.0", "0."):
            values.append(0)
        elif token in ("1", "1.0", "1."):
            values.append(1)
        else:
            raise line_error(path, line, f"label {text!r}: value {token!r} is not 0 or 1")
    if len(values) != NUM_SEGMENTS:
        raise line_error(path, line, f"label {text!r} has {len(values)} values, expected {NUM_SEGMENTS}")
    return tuple(values)


def _pad_video_id(text: str, path: Path, line: int) -> str:
    value = text.strip()
    if value.endswith(".0"):  # written back by pandas as a float
        value = value[:-2]
    if not value.isdigit() or len(value) > VGG40K_ID_DIGITS:
        raise line_error(path, line, f"video_id {text!r} is not a number of at most {VGG40K_ID_DIGITS} digits")
    return value.zfill(VGG40K_ID_DIGITS)


def read_vggsound40k(root: PathLike) -> AnnotationSet:
    """Read the reconstructed DG-SCT VGG-Sound 40K list (``vggsound-avel40k_labels.csv``).

    Header with at least ``category, video_id, label, split`` (split in train/val/test). ``video_id``
    is zero-padded back to 6 digits (pandas writes it as an integer) and is both ``clip_id`` and
    ``media_id``. ``label`` holds ten 0/1 values; ``segment_labels`` = the category on positive
    seconds and background (= number of classes, 141 for the real list) elsewhere. Class order =
    ``VggsoundAVEL40kCategories.txt`` line order. Other columns are kept in ``extra``.
    """
    root = Path(root)
    categories_path = require_file(root / VGG40K_CATEGORIES, "VGG-Sound 40K")
    class_names, class_index, background = class_space(categories_path)
    path = require_file(root / VGG40K_LABELS, "VGG-Sound 40K")
    records: List[ClipRecord] = []
    seen: Dict[str, int] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise AnnotationError(f"{path}: the file is empty (expected a header row)")
            header = [h.strip() for h in header]
            missing = [c for c in VGG40K_REQUIRED_COLUMNS if c not in header]
            if missing:
                raise line_error(path, 1, f"header lacks the column(s) {', '.join(missing)} (found {', '.join(header)})")
            position = {name: header.index(name) for name in VGG40K_REQUIRED_COLUMNS}
            other = [(i, h) for i, h in enumerate(header) if h and h not in VGG40K_REQUIRED_COLUMNS]
            for fields in reader:
                number = reader.line_num
                if not fields or not any(f.strip() for f in fields):
                    continue
                if len(fields) != len(header):
                    raise line_error(
                        path, number,
                        f"expected {len(header)} comma-separated fields like the header, found {len(fields)} "
                        f"(the label list must be quoted)",
                    )
                category = fields[position["category"]].strip()
                if category not in class_index:
                    raise line_error(path, number, f"unknown category {category!r} (not in {VGG40K_CATEGORIES})")
                video_id = _pad_video_id(fields[position["video_id"]], path, number)
                seconds = _parse_second_labels(fields[position["label"]], path, number)
                split = fields[position["split"]].strip()
                if split not in SPLITS:
                    raise line_error(path, number, f"split {split!r} is not one of {', '.join(SPLITS)}")
                if video_id in seen:
                    raise line_error(path, number, f"video_id {video_id} repeats line {seen[video_id]}")
                seen[video_id] = number
                label = class_index[category]
                records.append(
                    ClipRecord(
                        clip_id=video_id,
                        media_id=video_id,
                        split=split,
                        labels=(label,),
                        segment_labels=tuple(label if v else background for v in seconds),
                        source=(str(path), number),
                        extra={name: fields[i] for i, name in other},
                    )
                )
    except csv.Error as exc:
        raise AnnotationError(f"{path}: unreadable CSV ({exc})") from None
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{path}: not UTF-8 text ({exc})") from None
    return AnnotationSet(
        dataset="vggsound40k",
        class_names=class_names,
        records=records,
        files=[str(categories_path), str(path)],
        background=True,
    )


def vggsound_csv_path(root: PathLike) -> Path:
    """``root`` may be the csv itself or a folder holding ``vggsound.csv``."""
    path = Path(root)
    return path / VGGSOUND_CSV if path.is_dir() else path
