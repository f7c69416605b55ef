"""Readers for the official annotation files of AVE, LLP (AVVP), VGG-Sound and the VGG-Sound 40K subset.

Every reader validates while it reads: a malformed row raises :class:`AnnotationError` naming the
file, the 1-based line number and what is wrong. Oddities that are part of the real datasets
(LLP evaluation rows naming no clip, zero-length or reversed events, AVE videos shared between
splits) are collected in ``AnnotationSet.problems`` instead of being dropped silently.

Formats and quirks: ``docs/datasets.md`` §1-§3.
"""
from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from ..errors import AnnotationError, UserError
from .records import NUM_SEGMENTS, AnnotationSet, ClipRecord

PathLike = Union[str, "os.PathLike[str]"]

SPLITS = ("train", "val", "test")

# ---------------------------------------------------------------------------------------------
# AVE
# ---------------------------------------------------------------------------------------------

AVE_ANNOTATIONS = "Annotations.txt"
AVE_CATEGORIES = "categories.txt"
AVE_SPLIT_FILES = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
AVE_HEADER = ("category", "videoid", "quality", "starttime", "endtime")

# ---------------------------------------------------------------------------------------------
# LLP
# ---------------------------------------------------------------------------------------------

CLASS_NAMES_LLP: Tuple[str, ...] = (
    "Speech", "Car", "Cheering", "Dog", "Cat", "Frying_(food)", "Basketball_bounce", "Fire_alarm",
    "Chainsaw", "Cello", "Banjo", "Singing", "Chicken_rooster", "Violin_fiddle", "Vacuum_cleaner",
    "Baby_laughter", "Accordion", "Lawn_mower", "Motorcycle", "Helicopter", "Acoustic_guitar",
    "Telephone_bell_ringing", "Baby_cry_infant_cry", "Blender", "Clapping",
)
LLP_SPLIT_FILES = {"train": "AVVP_train.csv", "val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}
LLP_EVAL_FILES = {"audio_events": "AVVP_eval_audio.csv", "visual_events": "AVVP_eval_visual.csv"}
LLP_ID_LENGTH = 11  # the YouTube id is filename[:11]; ids contain "_" and "-", never split on "_"

# ---------------------------------------------------------------------------------------------
# VGG-Sound
# ---------------------------------------------------------------------------------------------

VGGSOUND_CSV = "vggsound.csv"
VGGSOUND_SPLITS = ("train", "test")
VGG40K_LABELS = "vggsound-avel40k_labels.csv"
VGG40K_CATEGORIES = "VggsoundAVEL40kCategories.txt"
VGG40K_REQUIRED_COLUMNS = ("category", "video_id", "label", "split")
VGG40K_ID_DIGITS = 6

MAX_EXAMPLES = 5  # examples quoted per reported problem


# ---------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------


def _require_file(path: Path, dataset: str) -> Path:
    if not path.is_file():
        raise AnnotationError(
            f"{path}: annotation file not found; a {dataset} root must hold it "
            f"(docs/datasets.md §1-§3 lists the files of each dataset)"
        )
    return path


def _lines(path: Path) -> Iterator[Tuple[int, str]]:
    """(1-based line number, text without line ending) for every non-blank line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{path}: not UTF-8 text ({exc}); is this the right file?") from None
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.rstrip("\r")
        if line.strip():
            yield number, line


def _error(path: Path, line: int, what: str) -> AnnotationError:
    return AnnotationError(f"{path}, line {line}: {what}")


def _parse_int(text: str, path: Path, line: int, field: str, low: int, high: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise _error(path, line, f"{field} {text!r} is not an integer") from None
    if not low <= value <= high:
        raise _error(path, line, f"{field} {value} is outside {low}..{high}")
    return value


def _segments(class_index: int, start: int, end: int, background: int) -> Tuple[int, ...]:
    """Second t is foreground when start <= t < end (checked against AVE labels_closs.h5)."""
    return tuple(class_index if start <= t < end else background for t in range(NUM_SEGMENTS))


def _read_class_list(path: Path) -> List[str]:
    names: List[str] = []
    seen: Dict[str, int] = {}
    for number, line in _lines(path):
        name = line.strip()
        if name in seen:
            raise _error(path, number, f"class {name!r} repeats line {seen[name]}")
        seen[name] = number
        names.append(name)
    if not names:
        raise AnnotationError(f"{path}: the class list is empty")
    return names


def _class_space(path: Path) -> Tuple[List[str], Dict[str, int], int]:
    """(class names, name -> index, background index) from a one-class-per-line file."""
    names = _read_class_list(path)
    return names, {name: i for i, name in enumerate(names)}, len(names)


def _summarise(path: Path, what: str, examples: Sequence[str], action: str = "ignored") -> str:
    """One problem line: file, count, what happened to them, and a few examples."""
    shown = "; ".join(examples[:MAX_EXAMPLES])
    more = f"; ... ({len(examples) - MAX_EXAMPLES} more)" if len(examples) > MAX_EXAMPLES else ""
    return f"{path.name}: {len(examples)} {what} ({action}), e.g. {shown}{more}"


# ---------------------------------------------------------------------------------------------
# AVE
# ---------------------------------------------------------------------------------------------


def _is_ave_header(line: str) -> bool:
    fields = tuple(f.strip().lower().replace(" ", "") for f in line.split("&"))
    return fields == AVE_HEADER


def _read_ave_rows(
    path: Path, class_index: Dict[str, int]
) -> List[Tuple[int, str, str, str, int, int]]:
    """Validated rows (line, category, video id, quality, start, end); a header line is skipped."""
    rows = []
    for position, (number, line) in enumerate(_lines(path)):
        if position == 0 and _is_ave_header(line):
            continue
        fields = line.split("&")
        if len(fields) != 5:
            raise _error(
                path, number,
                f"expected 5 '&'-separated fields (Category&VideoID&Quality&StartTime&EndTime), "
                f"found {len(fields)}",
            )
        category, video_id, quality = fields[0].strip(), fields[1].strip(), fields[2].strip()
        if category not in class_index:
            raise _error(path, number, f"unknown category {category!r} (not in {AVE_CATEGORIES})")
        if not video_id or any(c.isspace() for c in video_id):
            raise _error(path, number, f"bad video id {fields[1]!r}")
        start = _parse_int(fields[3], path, number, "start time", 0, NUM_SEGMENTS)
        end = _parse_int(fields[4], path, number, "end time", 0, NUM_SEGMENTS)
        if start > end:
            raise _error(path, number, f"start time {start} is after end time {end}")
        rows.append((number, category, video_id, quality, start, end))
    return rows


def read_ave(root: PathLike) -> AnnotationSet:
    """Read an AVE root: ``Annotations.txt``, ``{train,val,test}Set.txt`` and ``categories.txt``.

    * Records are the rows of the three split files, in file order (train, then val, then test);
      so ``split("train")`` walks the official ``train_order``. Each record carries
      ``extra["annotation_row"]``, its 0-based row in Annotations.txt (header excluded), which is
      the row index of the official ``*.h5`` label files, and ``extra["quality"]``.
    * Class index = line order of ``categories.txt`` (0-27); background = ``len(class_names)`` (28).
      ``labels`` = the row's category; ``segment_labels[t]`` = category when start <= t < end,
      else background.
    * **Duplicated ids (kept one record per row).** 45 videos carry more than one row (4,143 rows,
      4,097 ids): 44 twice and ``0f_iTO5t3hU`` three times, always with identical times and a
      different category (Banjo + Mandolin 16, Male + Female speech 8, Mandolin + Ukulele 4, ...;
      not only the speech pairs), sometimes in two different splits. They are not merged: the
      per-second target holds one class per second, and the official evaluation counts every row
      (402 test rows). A video annotated once has
      ``clip_id == video_id``; a video annotated more than once has
      ``clip_id == f"{video_id}#{class_index}"`` for each of its rows (``media_id`` stays the video
      id), so clip ids are unique over the whole set. Videos shared between splits are listed in
      ``problems`` (the dataset's own overlap, reported rather than hidden).
    * The ``Church bell&VWi2ENBuTbw&good&0&0`` row is kept: its video-level label is Church bell and
      all ten seconds are background (``extra["no_foreground"] = True``).
    * Annotations.txt may have a header line (the dataset zip) or not (the GitHub copy).
    """
    root = Path(root)
    categories_path = _require_file(root / AVE_CATEGORIES, "AVE")
    class_names, class_index, background = _class_space(categories_path)

    annotations_path = _require_file(root / AVE_ANNOTATIONS, "AVE")
    all_rows = _read_ave_rows(annotations_path, class_index)
    row_of: Dict[Tuple[str, str, int, int], int] = {}
    for row_number, (number, category, video_id, _quality, start, end) in enumerate(all_rows):
        key = (category, video_id, start, end)
        if key in row_of:
            raise _error(annotations_path, number, f"row repeats row {row_of[key] + 1} exactly")
        row_of[key] = row_number
    rows_per_video = Counter(row[2] for row in all_rows)

    records: List[ClipRecord] = []
    files = [str(categories_path), str(annotations_path)]
    used_rows: Dict[int, Tuple[str, int]] = {}
    splits_of_video: Dict[str, List[str]] = {}
    for split, name in AVE_SPLIT_FILES.items():
        split_path = _require_file(root / name, "AVE")
        files.append(str(split_path))
        for number, category, video_id, quality, start, end in _read_ave_rows(split_path, class_index):
            key = (category, video_id, start, end)
            if key not in row_of:
                raise _error(
                    split_path, number,
                    f"row {category}&{video_id}&{start}&{end} does not appear in {AVE_ANNOTATIONS}",
                )
            annotation_row = row_of[key]
            if annotation_row in used_rows:
                other_file, other_line = used_rows[annotation_row]
                raise _error(split_path, number, f"row already listed in {other_file}, line {other_line}")
            used_rows[annotation_row] = (split_path.name, number)
            label = class_index[category]
            clip_id = video_id if rows_per_video[video_id] == 1 else f"{video_id}#{label}"
            splits_of_video.setdefault(video_id, []).append(split)
            records.append(
                ClipRecord(
                    clip_id=clip_id,
                    media_id=video_id,
                    split=split,
                    labels=(label,),
                    segment_labels=_segments(label, start, end, background),
                    source=(str(split_path), number),
                    extra={
                        "annotation_row": annotation_row,
                        "quality": quality,
                        "start": start,
                        "end": end,
                        "no_foreground": start == end,
                    },
                )
            )

    problems: List[str] = []
    unused = [
        f"line {all_rows[i][0]} {all_rows[i][2]}" for i in range(len(all_rows)) if i not in used_rows
    ]
    if unused:
        problems.append(_summarise(annotations_path, "rows listed in no split file", unused))
    shared = sorted(v for v, splits in splits_of_video.items() if len(set(splits)) > 1)
    if shared:
        examples = [f"{v} ({'/'.join(splits_of_video[v])})" for v in shared]
        problems.append(
            _summarise(annotations_path, "videos annotated in two splits", examples, "kept: one record per row")
        )
    return AnnotationSet(
        dataset="ave",
        class_names=class_names,
        records=records,
        files=files,
        background=True,
        problems=problems,
    )


# ---------------------------------------------------------------------------------------------
# LLP
# ---------------------------------------------------------------------------------------------


def _tsv_rows(path: Path, header: Sequence[str]) -> Iterator[Tuple[int, List[str]]]:
    """Tab-separated data rows after checking the header."""
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        raise AnnotationError(f"{path}: the file is empty (expected the header {'<TAB>'.join(header)})")
    number, line = first
    found = [f.strip() for f in line.split("\t")]
    if found != list(header):
        raise _error(path, number, f"expected the header {'<TAB>'.join(header)!s}, found {line!r}")
    for number, line in lines:
        fields = line.split("\t")
        if len(fields) != len(header):
            raise _error(
                path, number,
                f"expected {len(header)} tab-separated fields ({', '.join(header)}), found {len(fields)}",
            )
        yield number, [f.strip() for f in fields]


def _llp_labels(text: str, path: Path, line: int, class_index: Dict[str, int]) -> Tuple[int, ...]:
    tokens = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in tokens):
        raise _error(path, line, f"event_labels {text!r} has an empty label")
    unknown = [t for t in tokens if t not in class_index]
    if unknown:
        raise _error(
            path, line,
            f"unknown LLP label {unknown[0]!r} (valid: the 25 classes of CLASS_NAMES_LLP, "
            f"e.g. Speech, Frying_(food), Violin_fiddle)",
        )
    return tuple(sorted({class_index[t] for t in tokens}))  # duplicates like Clapping,Clapping collapse


def read_llp(root: PathLike) -> AnnotationSet:
    """Read an LLP root: ``AVVP_train.csv``, ``AVVP_val_pd.csv``, ``AVVP_test_pd.csv`` (+ dense eval).

    * ``clip_id`` = the ``filename`` column (e.g. ``BjCEufrlXm4_20_30``); ``media_id`` = its first
      11 characters (the YouTube id, which may contain ``_`` and ``-``).
    * ``labels`` = sorted unique class indices in :data:`CLASS_NAMES_LLP` order.
    * If ``AVVP_eval_audio.csv`` / ``AVVP_eval_visual.csv`` exist, every val/test clip (and any
      other clip they name) gets ``extra["audio_events"]`` / ``extra["visual_events"]``: a
      10 x 25 list of 0/1 (second t positive when onset <= t < offset; a clip with no rows is all
      zeros). Rows naming no clip, zero-length and reversed events go to ``problems``.
    """
    root = Path(root)
    class_index = {name: i for i, name in enumerate(CLASS_NAMES_LLP)}
    records: List[ClipRecord] = []
    files: List[str] = []
    where: Dict[str, Tuple[str, int]] = {}
    for split, name in LLP_SPLIT_FILES.items():
        path = _require_file(root / name, "LLP")
        files.append(str(path))
        for number, (filename, labels_text) in _tsv_rows(path, ("filename", "event_labels")):
            if len(filename) <= LLP_ID_LENGTH or any(c.isspace() for c in filename):
                raise _error(
                    path, number,
                    f"filename {filename!r} is not '<11-character YouTube id>_<start>_<end>'",
                )
            if filename in where:
                other_file, other_line = where[filename]
                raise _error(path, number, f"clip {filename} already listed in {other_file}, line {other_line}")
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
        matrices = _read_llp_dense(path, by_id, class_index, problems)
        for record in records:
            if record.split in ("val", "test") or record.clip_id in matrices:
                empty = [[0] * len(CLASS_NAMES_LLP) for _ in range(NUM_SEGMENTS)]
                dense.setdefault(record.clip_id, {})[key] = matrices.get(record.clip_id, empty)
    if dense:
        records = [
            replace(r, extra={**r.extra, **dense[r.clip_id]}) if r.clip_id in dense else r for r in records
        ]
    return AnnotationSet(
        dataset="llp",
        class_names=list(CLASS_NAMES_LLP),
        records=records,
        files=files,
        background=False,
        problems=problems,
    )


def _read_llp_dense(
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
    header = ("filename", "onset", "offset", "event_labels")
    for number, (filename, onset_text, offset_text, label) in _tsv_rows(path, header):
        onset = _parse_int(onset_text, path, number, "onset", 0, NUM_SEGMENTS)
        offset = _parse_int(offset_text, path, number, "offset", 0, NUM_SEGMENTS)
        if filename not in clips:
            orphans.append(f"line {number} {filename!r}")
            continue
        if label not in class_index:
            raise _error(path, number, f"unknown LLP label {label!r} (valid: the 25 classes of CLASS_NAMES_LLP)")
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
        problems.append(_summarise(path, "rows name no clip of the split files", orphans))
    if zero_length:
        problems.append(_summarise(path, "zero-length events (onset = offset, no positive second)", zero_length))
    if reversed_events:
        problems.append(_summarise(path, "reversed events (onset > offset, no positive second)", reversed_events))
    return matrices


# ---------------------------------------------------------------------------------------------
# VGG-Sound (official csv)
# ---------------------------------------------------------------------------------------------


def vggsound_clip_id(youtube_id: str, start_seconds: int) -> str:
    """``<youtube id>_<start, 6 digits>``: the file stem of the official VGG-Sound release."""
    return f"{youtube_id}_{start_seconds:06d}"


def _read_vggsound_rows(path: Path) -> List[Tuple[int, str, int, str, str]]:
    rows = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            for fields in reader:
                number = reader.line_num
                if not fields or not any(f.strip() for f in fields):
                    continue
                if len(fields) != 4:
                    raise _error(
                        path, number,
                        f"expected 4 comma-separated fields (youtube_id,start_seconds,label,split; "
                        f"quote labels that contain commas), found {len(fields)}",
                    )
                youtube_id, start_text, label, split = (f.strip() for f in fields)
                if not youtube_id or any(c.isspace() for c in youtube_id):
                    raise _error(path, number, f"bad youtube_id {fields[0]!r}")
                try:
                    start = int(start_text)
                except ValueError:
                    raise _error(path, number, f"start_seconds {start_text!r} is not an integer") from None
                if start < 0:
                    raise _error(path, number, f"start_seconds {start} is negative")
                if not label:
                    raise _error(path, number, "empty label")
                if split not in VGGSOUND_SPLITS:
                    raise _error(path, number, f"split {split!r} is not one of {', '.join(VGGSOUND_SPLITS)}")
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
    path = _require_file(Path(csv_path), "VGG-Sound")
    rows = _read_vggsound_rows(path)
    if not rows:
        raise AnnotationError(f"{path}: no rows")
    class_names = sorted({row[3] for row in rows})
    class_index = {name: i for i, name in enumerate(class_names)}
    records: List[ClipRecord] = []
    seen: Dict[str, int] = {}
    for number, youtube_id, start, label, split in rows:
        clip_id = vggsound_clip_id(youtube_id, start)
        if clip_id in seen:
            raise _error(path, number, f"clip {youtube_id},{start} repeats line {seen[clip_id]}")
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


# ---------------------------------------------------------------------------------------------
# VGG-Sound 40K subset (DG-SCT zero-shot pretraining list)
# ---------------------------------------------------------------------------------------------


def _parse_second_labels(text: str, path: Path, line: int) -> Tuple[int, ...]:
    """The text of a Python list of ten 0/1 values, e.g. ``[0, 0, 1, 1, 1, 1, 1, 1, 0, 0]``.

    Parsed by hand (no eval): brackets, then comma-separated 0 or 1 (``1.0`` / ``0.0`` accepted).
    """
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise _error(path, line, f"label {text!r} is not a list like [0, 1, ...] of {NUM_SEGMENTS} values")
    values = []
    for token in body[1:-1].split(","):
        token = token.strip()
        if token in ("0", "0.0", "0."):
            values.append(0)
        elif token in ("1", "1.0", "1."):
            values.append(1)
        else:
            raise _error(path, line, f"label {text!r}: value {token!r} is not 0 or 1")
    if len(values) != NUM_SEGMENTS:
        raise _error(path, line, f"label {text!r} has {len(values)} values, expected {NUM_SEGMENTS}")
    return tuple(values)


def _pad_video_id(text: str, path: Path, line: int) -> str:
    value = text.strip()
    if value.endswith(".0"):  # written back by pandas as a float
        value = value[:-2]
    if not value.isdigit() or len(value) > VGG40K_ID_DIGITS:
        raise _error(path, line, f"video_id {text!r} is not a number of at most {VGG40K_ID_DIGITS} digits")
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
    categories_path = _require_file(root / VGG40K_CATEGORIES, "VGG-Sound 40K")
    class_names, class_index, background = _class_space(categories_path)
    path = _require_file(root / VGG40K_LABELS, "VGG-Sound 40K")
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
                raise _error(path, 1, f"header lacks the column(s) {', '.join(missing)} (found {', '.join(header)})")
            position = {name: header.index(name) for name in VGG40K_REQUIRED_COLUMNS}
            other = [(i, h) for i, h in enumerate(header) if h and h not in VGG40K_REQUIRED_COLUMNS]
            for fields in reader:
                number = reader.line_num
                if not fields or not any(f.strip() for f in fields):
                    continue
                if len(fields) != len(header):
                    raise _error(
                        path, number,
                        f"expected {len(header)} comma-separated fields like the header, found {len(fields)} "
                        f"(the label list must be quoted)",
                    )
                category = fields[position["category"]].strip()
                if category not in class_index:
                    raise _error(path, number, f"unknown category {category!r} (not in {VGG40K_CATEGORIES})")
                video_id = _pad_video_id(fields[position["video_id"]], path, number)
                seconds = _parse_second_labels(fields[position["label"]], path, number)
                split = fields[position["split"]].strip()
                if split not in SPLITS:
                    raise _error(path, number, f"split {split!r} is not one of {', '.join(SPLITS)}")
                if video_id in seen:
                    raise _error(path, number, f"video_id {video_id} repeats line {seen[video_id]}")
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


# ---------------------------------------------------------------------------------------------
# dispatch
# ---------------------------------------------------------------------------------------------


def _vggsound_csv(root: PathLike) -> Path:
    """``root`` may be the csv itself or a folder holding ``vggsound.csv``."""
    path = Path(root)
    return path / VGGSOUND_CSV if path.is_dir() else path


READERS: Dict[str, Callable[[PathLike], AnnotationSet]] = {
    "ave": read_ave,
    "llp": read_llp,
    "vggsound": lambda root: read_vggsound(_vggsound_csv(root)),
    "vggsound40k": read_vggsound40k,
}
DATASETS = tuple(READERS)


def _check_dataset(dataset: str) -> str:
    key = dataset.lower()
    if key not in READERS:
        raise UserError(f"unknown dataset {dataset!r}; valid datasets: {', '.join(DATASETS)}")
    return key


def read_annotations(dataset: str, root: PathLike) -> AnnotationSet:
    """Read the annotation files of ``dataset`` ("ave", "llp", "vggsound", "vggsound40k") under ``root``."""
    return READERS[_check_dataset(dataset)](root)


def dataset_class_names(dataset: str, root: Optional[PathLike] = None) -> List[str]:
    """The class list in official index order (background excluded).

    LLP's list is fixed; the others are read from ``root`` (AVE ``categories.txt``, the 40K
    categories file, or the distinct labels of ``vggsound.csv``).
    """
    key = _check_dataset(dataset)
    if key == "llp":
        return list(CLASS_NAMES_LLP)
    if root is None:
        raise UserError(f"dataset {dataset!r}: the class list is read from its root; give --root")
    if key == "ave":
        return _read_class_list(_require_file(Path(root) / AVE_CATEGORIES, "AVE"))
    if key == "vggsound40k":
        return _read_class_list(_require_file(Path(root) / VGG40K_CATEGORIES, "VGG-Sound 40K"))
    return sorted({row[3] for row in _read_vggsound_rows(_require_file(_vggsound_csv(root), "VGG-Sound"))})
