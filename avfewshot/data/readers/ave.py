"""AVE reader: ``Annotations.txt``, ``{train,val,test}Set.txt`` and ``categories.txt``."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple, Union

from ..facts import AVE_ANNOTATIONS, AVE_CATEGORIES, AVE_HEADER_LINE, AVE_SPLIT_FILES
from ..records import NUM_SEGMENTS, AnnotationSet, ClipRecord
from .common import class_space, line_error, parse_int, require_file, segment_labels, summarise, text_lines

PathLike = Union[str, "os.PathLike[str]"]

AVE_HEADER = tuple(field.lower() for field in AVE_HEADER_LINE.split("&"))


def _is_ave_header(line: str) -> bool:
    fields = tuple(f.strip().lower().replace(" ", "") for f in line.split("&"))
    return fields == AVE_HEADER


def _read_ave_rows(
    path: Path, class_index: Dict[str, int]
) -> List[Tuple[int, str, str, str, int, int]]:
    """Validated rows (line, category, video id, quality, start, end); a header line is skipped."""
    rows = []
    for position, (number, line) in enumerate(text_lines(path)):
        if position == 0 and _is_ave_header(line):
            continue
        fields = line.split("&")
        if len(fields) != 5:
            raise line_error(
                path, number,
                f"expected 5 '&'-separated fields (Category&VideoID&Quality&StartTime&EndTime), "
                f"found {len(fields)}",
            )
        category, video_id, quality = fields[0].strip(), fields[1].strip(), fields[2].strip()
        if category not in class_index:
            raise line_error(path, number, f"unknown category {category!r} (not in {AVE_CATEGORIES})")
        if not video_id or any(c.isspace() for c in video_id):
            raise line_error(path, number, f"bad video id {fields[1]!r}")
        start = parse_int(fields[3], path, number, "start time", 0, NUM_SEGMENTS)
        end = parse_int(fields[4], path, number, "end time", 0, NUM_SEGMENTS)
        if start > end:
            raise line_error(path, number, f"start time {start} is after end time {end}")
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
    categories_path = require_file(root / AVE_CATEGORIES, "AVE")
    class_names, class_index, background = class_space(categories_path)

    annotations_path = require_file(root / AVE_ANNOTATIONS, "AVE")
    all_rows = _read_ave_rows(annotations_path, class_index)
    row_of: Dict[Tuple[str, str, int, int], int] = {}
    for row_number, (number, category, video_id, _quality, start, end) in enumerate(all_rows):
        key = (category, video_id, start, end)
        if key in row_of:
            raise line_error(annotations_path, number, f"row repeats row {row_of[key] + 1} exactly")
        row_of[key] = row_number
    rows_per_video = Counter(row[2] for row in all_rows)

    records: List[ClipRecord] = []
    files = [str(categories_path), str(annotations_path)]
    used_rows: Dict[int, Tuple[str, int]] = {}
    splits_of_video: Dict[str, List[str]] = {}
    for split, name in AVE_SPLIT_FILES.items():
        split_path = require_file(root / name, "AVE")
        files.append(str(split_path))
        for number, category, video_id, quality, start, end in _read_ave_rows(split_path, class_index):
            key = (category, video_id, start, end)
            if key not in row_of:
                raise line_error(
                    split_path, number,
                    f"row {category}&{video_id}&{start}&{end} does not appear in {AVE_ANNOTATIONS}",
                )
            annotation_row = row_of[key]
            if annotation_row in used_rows:
                other_file, other_line = used_rows[annotation_row]
                raise line_error(split_path, number, f"row already listed in {other_file}, line {other_line}")
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
                    segment_labels=segment_labels(label, start, end, background),
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
        problems.append(summarise(annotations_path, "rows listed in no split file", unused))
    shared = sorted(v for v, splits in splits_of_video.items() if len(set(splits)) > 1)
    if shared:
        examples = [f"{v} ({'/'.join(splits_of_video[v])})" for v in shared]
        problems.append(
            summarise(annotations_path, "videos annotated in two splits", examples, "kept: one record per row")
        )
    return AnnotationSet(
        dataset="ave",
        class_names=class_names,
        records=records,
        files=files,
        background=True,
        problems=problems,
    )
