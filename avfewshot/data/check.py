"""``avfewshot data check``: verify a dataset root against its annotations.

Reads the annotation files (a malformed row is a fatal problem naming the file and line), then
locates and fully decodes every clip's media with the given :class:`MediaSpec` (decoding is the
only reliable test for truncation, missing audio, short clips and odd frame counts). Each
problem names the file. The root is **usable** when the annotations read and the share of clips
with bad media is at most ``tolerate`` (default 0: every clip must decode).
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union

from ..errors import AnnotationError, MediaError, UserError
from .media import MEDIA_PROBLEM_KINDS, MediaSpec, decode_clip, error_kind, find_media

PathLike = Union[str, "os.PathLike[str]"]

# A cheap spec for checking: decoding is what matters, not the encoder's input size.
CHECK_SPEC = MediaSpec(image_size=32, audio_rate=16000)


@dataclass
class Problem:
    kind: str  # "annotations", one of MEDIA_PROBLEM_KINDS, or "padded" (a warning)
    message: str  # names the file and what is wrong
    fatal: bool = True
    clips: List[str] = field(default_factory=list)  # clip ids affected


@dataclass
class CheckReport:
    dataset: str
    root: str
    layout: str
    spec: Dict[str, object]
    clips: int = 0
    media: int = 0
    media_ok: int = 0
    bad_clips: int = 0
    problems: List[Problem] = field(default_factory=list)
    annotation_notes: List[str] = field(default_factory=list)  # reader's reported oddities
    tolerate: float = 0.0
    seconds: float = 0.0

    @property
    def usable(self) -> bool:
        if any(p.kind == "annotations" for p in self.problems):
            return False
        if self.clips == 0:
            return False
        return self.bad_clips <= self.tolerate * self.clips

    def counts(self) -> Dict[str, int]:
        return dict(Counter(p.kind for p in self.problems))

    def to_dict(self) -> Dict[str, object]:
        data = asdict(self)
        data["usable"] = self.usable
        data["summary"] = self.counts()
        return data

    def write_json(self, path: PathLike, what: str = "report file") -> Path:
        """Write atomically (a full disk leaves no partial report); errors name the path."""
        from ..outputs import check_output_file, write_text_atomic

        path = check_output_file(path, what)
        return write_text_atomic(path, json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n", what)

    def format(self) -> str:
        """Summary table, then one line per problem."""
        rows = [
            ("dataset", self.dataset),
            ("root", self.root),
            ("layout", self.layout),
            ("annotated clips", str(self.clips)),
            ("media files", str(self.media)),
            ("media decoded", str(self.media_ok)),
            ("clips with bad media", str(self.bad_clips)),
        ]
        counts = self.counts()
        for kind in ("annotations",) + MEDIA_PROBLEM_KINDS + ("padded",):
            if counts.get(kind):
                rows.append((f"  {kind}", str(counts[kind])))
        if self.annotation_notes:
            rows.append(("annotation notes", str(len(self.annotation_notes))))
        rows.append(("usable", "yes" if self.usable else "NO"))
        width = max(len(k) for k, _ in rows)
        lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
        for note in self.annotation_notes:
            lines.append(f"note: {note}")
        for problem in self.problems:
            label = "error" if problem.fatal else "warning"
            lines.append(f"{label} [{problem.kind}]: {problem.message}")
        return "\n".join(lines)


def check_root(
    dataset: str,
    root: PathLike,
    layout: str = "raw",
    spec: Optional[MediaSpec] = None,
    tolerate: float = 0.0,
    progress: bool = False,
) -> CheckReport:
    """Check the annotations and every clip's media under ``root``; never raises for bad data."""
    from .annotations import read_annotations

    started = time.perf_counter()
    spec = spec or CHECK_SPEC
    if not 0.0 <= tolerate <= 1.0:
        raise UserError(f"tolerate must be a fraction between 0 and 1, got {tolerate}")
    root = Path(root)
    report = CheckReport(dataset, str(root), layout, spec.as_dict(), tolerate=tolerate)
    if not root.is_dir():
        report.problems.append(Problem("annotations", f"{root}: not a folder"))
        return report
    try:
        annotations = read_annotations(dataset, root)
    except (AnnotationError, UserError) as exc:
        report.problems.append(Problem("annotations", str(exc)))
        report.seconds = time.perf_counter() - started
        return report
    report.annotation_notes = list(annotations.problems)
    report.clips = len(annotations.records)
    clips_of: Dict[str, List[str]] = {}
    for record in annotations.records:
        clips_of.setdefault(record.media_id, []).append(record.clip_id)
    report.media = len(clips_of)
    bad = 0
    iterator = clips_of.items()
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, total=len(clips_of), desc="check", leave=False)
    for media_id, clip_ids in iterator:
        try:
            clip = decode_clip(find_media(root, media_id, layout), spec)
        except MediaError as exc:
            bad += len(clip_ids)
            report.problems.append(Problem(error_kind(exc), str(exc), True, list(clip_ids)))
            continue
        report.media_ok += 1
        for note in clip.notes:
            report.problems.append(Problem("padded", note, False, list(clip_ids)))
    report.bad_clips = bad
    report.seconds = time.perf_counter() - started
    return report
