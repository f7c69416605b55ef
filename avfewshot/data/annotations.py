"""Readers for the official annotation files of AVE, LLP (AVVP), VGG-Sound and the VGG-Sound 40K subset.

Every reader validates while it reads: a malformed row raises :class:`AnnotationError` naming the
file, the 1-based line number and what is wrong. Oddities that are part of the real datasets
(LLP evaluation rows naming no clip or malformed, zero-length or reversed events, AVE videos
shared between splits) are collected in ``AnnotationSet.problems`` instead of being dropped silently.

This module is the public entry point; the readers live in :mod:`avfewshot.data.readers` (one
module per dataset) and the file names and class lists in :mod:`avfewshot.data.facts`.
Formats and quirks: ``docs/datasets.md`` §1-§3.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Union

from ..errors import UserError
from .facts import (
    AVE_ANNOTATIONS, AVE_CATEGORIES, AVE_SPLIT_FILES, DATASET_TABLE, LLP_CLASS_NAMES, LLP_EVAL_FILES, LLP_ID_LENGTH,
    LLP_SPLIT_FILES, SPLITS, VGG40K_CATEGORIES, VGG40K_ID_DIGITS, VGG40K_LABELS, VGG40K_REQUIRED_COLUMNS,
    VGGSOUND_CSV, VGGSOUND_SPLITS, dataset_info,
)
from .readers.ave import read_ave
from .readers.common import MAX_EXAMPLES, read_class_list, require_file
from .readers.llp import read_llp
from .readers.vggsound import read_vggsound, read_vggsound40k, read_vggsound_rows, vggsound_clip_id, vggsound_csv_path
from .records import AnnotationSet, ClipRecord

PathLike = Union[str, "os.PathLike[str]"]

CLASS_NAMES_LLP = LLP_CLASS_NAMES  # the older name, kept for callers

READERS: Dict[str, Callable[[PathLike], AnnotationSet]] = {
    "ave": read_ave,
    "llp": read_llp,
    "vggsound": lambda root: read_vggsound(vggsound_csv_path(root)),
    "vggsound40k": read_vggsound40k,
}
DATASETS = tuple(DATASET_TABLE)  # the same names as READERS (tests check it)


def read_annotations(dataset: str, root: PathLike) -> AnnotationSet:
    """Read the annotation files of ``dataset`` ("ave", "llp", "vggsound", "vggsound40k") under ``root``."""
    return READERS[dataset_info(dataset).name](root)


def dataset_class_names(dataset: str, root: Optional[PathLike] = None) -> List[str]:
    """The class list of ``dataset`` in official index order (background excluded).

    With ``root``: read from its files (AVE ``categories.txt``, the 40K categories file, the
    distinct labels of ``vggsound.csv``; LLP's list is fixed by the dataset). Without: the official
    list (AVE 28, LLP 25); VGG-Sound and the 40K subset have none in code, so they need ``root``.
    """
    info = dataset_info(dataset)
    if root is None:
        if info.fixed_classes:
            return list(info.fixed_classes)
        raise UserError(f"dataset {dataset!r}: the class list is read from its root; give --root")
    if info.class_list_file:
        return read_class_list(require_file(Path(root) / info.class_list_file, info.title))
    if info.name == "vggsound":  # the distinct labels of the csv, sorted
        return sorted({row[3] for row in read_vggsound_rows(require_file(vggsound_csv_path(root), info.title))})
    return list(info.fixed_classes)  # LLP: fixed by the dataset, no file in the root


def missing_annotation_files(dataset: str, root: PathLike) -> List[str]:
    """The annotation files ``read_annotations(dataset, root)`` needs that are not in ``root`` (a cheap check)."""
    info = dataset_info(dataset)
    if info.name == "vggsound" and Path(root).is_file():  # the csv itself may be given
        return []
    return [name for name in info.annotation_files if not (Path(root) / name).is_file()]


__all__ = (
    "AnnotationSet", "ClipRecord", "READERS", "DATASETS", "SPLITS", "read_annotations", "dataset_class_names",
    "missing_annotation_files", "read_ave", "read_llp", "read_vggsound", "read_vggsound40k", "vggsound_clip_id", "CLASS_NAMES_LLP",
    "LLP_CLASS_NAMES", "AVE_ANNOTATIONS", "AVE_CATEGORIES", "AVE_SPLIT_FILES", "LLP_SPLIT_FILES", "LLP_EVAL_FILES",
    "LLP_ID_LENGTH", "VGGSOUND_CSV", "VGGSOUND_SPLITS", "VGG40K_LABELS", "VGG40K_CATEGORIES",
    "VGG40K_REQUIRED_COLUMNS", "VGG40K_ID_DIGITS", "MAX_EXAMPLES",
)
