"""The k-shot split generator: reproducible train / validation subsets written as JSON files.

Two protocols:

* ``coop`` (default): a seeded random sample of K training clips per class, plus a separate
  ``min(K, 4)``-shot validation sample per class drawn from the val split. Test clips are never
  used, nor any train / val record whose video is also a test clip (AVE's shared speech pairs;
  listed under ``notes``). The randomness is a seeded hash ranking: a clip's rank in class c is
  ``sha256(f"{seed}:{subset}:{c}:{clip_id}")``, and the K lowest ranks are kept. This needs no
  global or library RNG state, gives the same answer on every Python / numpy version, and makes
  the K-shot sample of a class a prefix of its 2K-shot sample (nested shots).
  **Multi-label clips (LLP)**: a clip is a candidate for every class in its label set and is
  picked at most once. Classes are filled from the rarest (fewest candidates) to the most common,
  ties by class index, so a rare class is not starved by a common one; a picked clip keeps all
  its labels and is recorded with the class it was sampled for (``sampled_for``).
* ``dgsct``: the official DG-SCT rule, first K rows per class in file order of the train split
  (AVE: every row, 28 K clips; LLP: single-label rows only, so Speech is never covered and
  k = 16 gives 384 clips over 24 classes; the 40K list: first K rows per category). The seed is
  recorded but unused. Validation (not in the official code) takes, class by class in index
  order, the first ``min(K, 4)`` val rows (in file order, multi-label rows allowed, each clip once)
  whose label set holds the class; classes left out of training are left out of validation too.

A class with fewer training candidates than asked is an error unless ``allow_fewer``, which keeps
what there is and records the shortfall in the file. Validation is best effort: a val class with
fewer than ``min(K, 4)`` clips is always recorded as a ``val`` shortfall, never an error (the
user chose K for training; real LLP val has classes with 1-3 clips). A class with no eligible rows at
all (Speech under ``dgsct`` on LLP, as the official code does; any class a small root lacks) is left
out and listed under ``uncovered_classes``.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ..outputs import check_output_dir, write_text_atomic
from ..errors import AnnotationError, UserError
from .annotations import read_annotations
from .records import AnnotationSet, ClipRecord

GENERATOR_VERSION = "1"
SPLIT_FORMAT = "avfewshot-split"
PROTOCOLS = ("coop", "dgsct")
MAX_VAL_SHOTS = 4
REQUIRED_KEYS = (
    "format", "generator_version", "dataset", "protocol", "shots", "seed", "class_names",
    "annotation_files", "train", "val", "shortfalls", "uncovered_classes", "notes",
)

PathLike = Union[str, "os.PathLike[str]"]


def sha256_file(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def annotation_hashes(annotations: AnnotationSet) -> Dict[str, str]:
    """File name -> sha256 of every annotation file the set was read from."""
    return {Path(f).name: sha256_file(f) for f in annotations.files}


def split_file_name(shots: int, seed: int) -> str:
    return f"shot_{shots}-seed_{seed}.json"


def split_path(out_dir: PathLike, dataset: str, protocol: str, shots: int, seed: int) -> Path:
    return Path(out_dir) / dataset / protocol / split_file_name(shots, seed)


# ---------------------------------------------------------------------------------------------
# selection
# ---------------------------------------------------------------------------------------------


def _rank(seed: int, subset: str, class_index: int, clip_id: str) -> str:
    return hashlib.sha256(f"{seed}:{subset}:{class_index}:{clip_id}".encode("utf-8")).hexdigest()


def _candidates(records: Sequence[ClipRecord], num_classes: int, single_label_only: bool) -> List[List[ClipRecord]]:
    per_class: List[List[ClipRecord]] = [[] for _ in range(num_classes)]
    for record in records:
        if single_label_only and len(record.labels) != 1:
            continue
        for label in record.labels:
            per_class[label].append(record)
    return per_class


def _select(
    records: Sequence[ClipRecord],
    num_classes: int,
    shots: int,
    protocol: str,
    seed: int,
    subset: str,
    single_label_only: bool,
) -> Tuple[List[Tuple[int, ClipRecord]], List[Dict[str, int]], List[int]]:
    """(class, record) picks, shortfalls (class, requested, available), uncovered classes."""
    per_class = _candidates(records, num_classes, single_label_only)
    picks: Dict[int, List[ClipRecord]] = {}
    shortfalls: List[Dict[str, int]] = []
    uncovered: List[int] = []
    if protocol == "dgsct":
        order = list(range(num_classes))
    else:
        order = sorted(range(num_classes), key=lambda c: (len(per_class[c]), c))
    taken: set = set()
    for c in order:
        if not per_class[c]:  # a class the subset never shows (LLP Speech under dgsct; a small root)
            uncovered.append(c)
            continue
        if protocol == "dgsct":
            pool = [r for r in per_class[c] if r.clip_id not in taken]  # file order
        else:
            ranked = sorted(per_class[c], key=lambda r: (_rank(seed, subset, c, r.clip_id), r.clip_id))
            pool = [r for r in ranked if r.clip_id not in taken]
        chosen = pool[:shots]
        taken.update(r.clip_id for r in chosen)
        picks[c] = chosen
        if len(chosen) < shots:
            shortfalls.append({"class": c, "requested": shots, "available": len(chosen)})
    ordered = [(c, r) for c in range(num_classes) for r in picks.get(c, [])]
    return ordered, shortfalls, uncovered


def _entry(class_index: int, record: ClipRecord) -> Dict[str, object]:
    return {
        "clip_id": record.clip_id,
        "media_id": record.media_id,
        "labels": list(record.labels),
        "sampled_for": class_index,
    }


def make_split(
    annotations: AnnotationSet,
    shots: int,
    seed: int,
    protocol: str = "coop",
    allow_fewer: bool = False,
    file_hashes: Optional[Dict[str, str]] = None,
) -> Dict[str, object]:
    """Build one split as a JSON-ready dict (see the module docstring for the rules).

    ``file_hashes`` (name -> sha256) defaults to hashing ``annotations.files``.
    """
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown split protocol {protocol!r}; valid protocols: {', '.join(PROTOCOLS)}")
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise UserError(f"shots must be a positive integer, got {shots!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"seed must be an integer, got {seed!r}")
    num_classes = len(annotations.class_names)
    single_label_only = protocol == "dgsct" and annotations.dataset == "llp"
    train_records = annotations.split("train")
    val_records = annotations.split("val")
    if not train_records:
        raise UserError(f"{annotations.dataset}: the annotations have no train split to sample from")
    notes: List[str] = []
    test_media = {r.media_id for r in annotations.split("test")}
    if protocol == "coop":
        # sort inputs so the result never depends on file order
        train_records = sorted(train_records, key=lambda r: r.clip_id)
        val_records = sorted(val_records, key=lambda r: r.clip_id)
        # a record whose video is also a test clip (AVE speech pairs) would leak the test media
        leaking = [r.clip_id for r in train_records + val_records if r.media_id in test_media]
        if leaking:
            train_records = [r for r in train_records if r.media_id not in test_media]
            val_records = [r for r in val_records if r.media_id not in test_media]
            notes.append(
                f"{len(leaking)} train/val record(s) share their video with a test clip and were not "
                f"sampled: {', '.join(leaking)}"
            )

    train, train_short, uncovered = _select(
        train_records, num_classes, shots, protocol, seed, "train", single_label_only
    )
    val_shots = min(shots, MAX_VAL_SHOTS)
    if val_records:
        # validation is not part of the official rule: multi-label val clips are allowed
        val, val_short, _ = _select(val_records, num_classes, val_shots, protocol, seed, "val", False)
        val_short = [s for s in val_short if s["class"] not in uncovered]
        val = [(c, r) for c, r in val if c not in uncovered]
    else:
        val, val_short = [], []
        notes.append(f"{annotations.dataset} has no val split: the validation subset is empty")

    shortfalls = [{"subset": "train", **s} for s in train_short] + [{"subset": "val", **s} for s in val_short]
    for s in shortfalls:
        s["class_name"] = annotations.class_names[s["class"]]
    if train_short and not allow_fewer:
        lines = "; ".join(
            f"class {s['class_name']!r} has {s['available']} of {s['requested']}"
            for s in shortfalls[: len(train_short)][:5]
        )
        more = f" (and {len(train_short) - 5} more)" if len(train_short) > 5 else ""
        raise UserError(
            f"{annotations.dataset}, {protocol} protocol, {shots} shots: not enough training clips: "
            f"{lines}{more}. Use fewer shots, or --allow-fewer to keep what there is (recorded as shortfalls)"
        )
    if uncovered:
        notes.append(
            "classes without any (eligible) training clip are left out of the split"
            + (" (dgsct keeps single-label training rows only)" if single_label_only else "")
            + ": "
            + ", ".join(annotations.class_names[c] for c in uncovered)
        )
    test_ids = {r.clip_id for r in annotations.split("test")}
    if any(r.clip_id in test_ids for _, r in train + val):  # cannot happen: ids are unique per set
        raise AnnotationError(f"{annotations.dataset}: a test clip was selected; clip ids are not unique")
    return {
        "format": SPLIT_FORMAT,
        "generator_version": GENERATOR_VERSION,
        "dataset": annotations.dataset,
        "protocol": protocol,
        "shots": shots,
        "val_shots": val_shots,
        "seed": seed,
        "class_names": list(annotations.class_names),
        "annotation_files": dict(file_hashes) if file_hashes is not None else annotation_hashes(annotations),
        "train": [_entry(c, r) for c, r in train],
        "val": [_entry(c, r) for c, r in val],
        "shortfalls": shortfalls,
        "uncovered_classes": [annotations.class_names[c] for c in uncovered],
        "notes": notes,
    }


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------


def dumps_split(split: Dict[str, object]) -> str:
    """Canonical text: sorted keys, fixed separators, one trailing newline."""
    return json.dumps(split, sort_keys=True, indent=1, separators=(",", ": "), ensure_ascii=True) + "\n"


def write_split(split: Dict[str, object], out_dir: PathLike) -> Path:
    """Write ``<out_dir>/<dataset>/<protocol>/shot_<K>-seed_<S>.json`` atomically; return its path."""
    path = split_path(out_dir, str(split["dataset"]), str(split["protocol"]), int(split["shots"]), int(split["seed"]))
    write_text_atomic(path, dumps_split(split), "split file")
    return path


def make_splits(
    dataset: str,
    root: PathLike,
    shots: Iterable[int],
    seeds: Iterable[int],
    protocol: str = "coop",
    out_dir: PathLike = "splits",
    allow_fewer: bool = False,
) -> List[Path]:
    """Read the annotations once, then write one split file per (shots, seed); return the paths."""
    check_output_dir(out_dir, "splits folder", create=False)
    annotations = read_annotations(dataset, root)
    hashes = annotation_hashes(annotations)
    splits = [
        make_split(annotations, k, s, protocol=protocol, allow_fewer=allow_fewer, file_hashes=hashes)
        for k in shots
        for s in seeds
    ]  # build everything first: an error leaves no partial set of files behind
    return [write_split(split, out_dir) for split in splits]


def load_split(path: PathLike, root: Optional[PathLike] = None, strict: bool = False) -> Dict[str, object]:
    """Read and validate a split file.

    With ``root``, the sha256 of each annotation file named in the split is compared with the file
    under ``root``: a mismatch or a missing file warns (``strict=False``) or raises.
    """
    path = Path(path)
    try:
        split = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: split file not found; make it with 'avfewshot splits make'") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: not a valid split file ({exc})") from None
    if not isinstance(split, dict) or split.get("format") != SPLIT_FORMAT:
        raise AnnotationError(f"{path}: not an avfewshot split file (no \"format\": \"{SPLIT_FORMAT}\")")
    missing = [k for k in REQUIRED_KEYS if k not in split]
    if missing:
        raise AnnotationError(f"{path}: split file lacks {', '.join(missing)}; regenerate it")
    if split["generator_version"] != GENERATOR_VERSION:
        warnings.warn(
            f"{path}: written by split generator version {split['generator_version']}, "
            f"this is version {GENERATOR_VERSION}",
            stacklevel=2,
        )
    num_classes = len(split["class_names"])
    for subset in ("train", "val"):
        seen = set()
        for i, entry in enumerate(split[subset]):
            where = f"{path}: {subset}[{i}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("clip_id"), str):
                raise AnnotationError(f"{where} has no clip_id")
            labels = entry.get("labels")
            if not isinstance(labels, list) or not labels or not all(
                isinstance(x, int) and 0 <= x < num_classes for x in labels
            ):
                raise AnnotationError(f"{where} ({entry['clip_id']}): labels {labels!r} are not class indices")
            if entry["clip_id"] in seen:
                raise AnnotationError(f"{where}: clip {entry['clip_id']} is listed twice")
            seen.add(entry["clip_id"])
    if root is not None:
        _check_hashes(path, split, Path(root), strict)
    return split


def _check_hashes(path: Path, split: Dict[str, object], root: Path, strict: bool) -> None:
    problems = []
    for name, expected in sorted(split["annotation_files"].items()):  # type: ignore[union-attr]
        candidate = root / name if root.is_dir() else root.parent / name
        if not candidate.is_file():
            problems.append(f"{name} is missing under {root}")
        elif sha256_file(candidate) != expected:
            problems.append(f"{candidate} differs from the file the split was made from")
    if problems:
        message = f"{path}: annotation files do not match: " + "; ".join(problems)
        if strict:
            raise AnnotationError(message + ". Regenerate the split or point --root at the original files")
        warnings.warn(message, stacklevel=3)


def split_records(split: Dict[str, object], annotations: AnnotationSet, subset: str = "train") -> List[ClipRecord]:
    """The annotation records listed in ``split[subset]`` ("train" or "val"), in split order."""
    by_id = {r.clip_id: r for r in annotations.records}
    missing = [e["clip_id"] for e in split[subset] if e["clip_id"] not in by_id]  # type: ignore[index]
    if missing:
        raise AnnotationError(
            f"split {split.get('dataset')}/{split.get('protocol')} lists {len(missing)} clip(s) absent from "
            f"the annotations, e.g. {', '.join(missing[:3])}; was it made from another root?"
        )
    return [by_id[e["clip_id"]] for e in split[subset]]  # type: ignore[index]
