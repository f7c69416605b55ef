"""Helpers shared by the annotation readers: line iteration, file / line errors, problem summaries."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

from ...errors import AnnotationError
from ..records import NUM_SEGMENTS

MAX_EXAMPLES = 5  # examples quoted per reported problem


def require_file(path: Path, dataset: str) -> Path:
    if not path.is_file():
        raise AnnotationError(
            f"{path}: annotation file not found; a {dataset} root must hold it "
            f"(docs/datasets.md §1-§3 lists the files of each dataset)"
        )
    return path


def text_lines(path: Path) -> Iterator[Tuple[int, str]]:
    """(1-based line number, text without line ending) for every non-blank line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{path}: not UTF-8 text ({exc}); is this the right file?") from None
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.rstrip("\r")
        if line.strip():
            yield number, line


def line_error(path: Path, line: int, what: str) -> AnnotationError:
    return AnnotationError(f"{path}, line {line}: {what}")


def parse_int(text: str, path: Path, line: int, field: str, low: int, high: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise line_error(path, line, f"{field} {text!r} is not an integer") from None
    if not low <= value <= high:
        raise line_error(path, line, f"{field} {value} is outside {low}..{high}")
    return value


def segment_labels(class_index: int, start: int, end: int, background: int) -> Tuple[int, ...]:
    """Second t is foreground when start <= t < end (checked against AVE labels_closs.h5)."""
    return tuple(class_index if start <= t < end else background for t in range(NUM_SEGMENTS))


def read_class_list(path: Path) -> List[str]:
    names: List[str] = []
    seen: Dict[str, int] = {}
    for number, line in text_lines(path):
        name = line.strip()
        if name in seen:
            raise line_error(path, number, f"class {name!r} repeats line {seen[name]}")
        seen[name] = number
        names.append(name)
    if not names:
        raise AnnotationError(f"{path}: the class list is empty")
    return names


def class_space(path: Path) -> Tuple[List[str], Dict[str, int], int]:
    """(class names, name -> index, background index) from a one-class-per-line file."""
    names = read_class_list(path)
    return names, {name: i for i, name in enumerate(names)}, len(names)


def summarise(path: Path, what: str, examples: Sequence[str], action: str = "ignored") -> str:
    """One problem line: file, count, what happened to them, and a few examples."""
    shown = "; ".join(examples[:MAX_EXAMPLES])
    more = f"; ... ({len(examples) - MAX_EXAMPLES} more)" if len(examples) > MAX_EXAMPLES else ""
    return f"{path.name}: {len(examples)} {what} ({action}), e.g. {shown}{more}"


def tsv_rows(path: Path, header: Sequence[str]) -> Iterator[Tuple[int, List[str]]]:
    """Tab-separated data rows after checking the header."""
    lines = text_lines(path)
    first = next(lines, None)
    if first is None:
        raise AnnotationError(f"{path}: the file is empty (expected the header {'<TAB>'.join(header)})")
    number, line = first
    found = [f.strip() for f in line.split("\t")]
    if found != list(header):
        raise line_error(path, number, f"expected the header {'<TAB>'.join(header)!s}, found {line!r}")
    for number, line in lines:
        fields = line.split("\t")
        if len(fields) != len(header):
            raise line_error(
                path, number,
                f"expected {len(header)} tab-separated fields ({', '.join(header)}), found {len(fields)}",
            )
        yield number, [f.strip() for f in fields]
