"""The embedded demo roots: synthesised once under ``paths.demo_dir()`` and reused."""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict

from ...errors import UserError
from .domain import DEMO_SHIFT
from .make import GENERATOR_VERSION, make_dataset

log = logging.getLogger("avfewshot")

# Sizes allow 16-shot runs (>= 16 single-label train clips per class) and stay small and fast; 8 test clips
# per class (48 on AVE, 51 on LLP) keep one clip at about 2 points of accuracy.
DEMO_SIZES: Dict[str, Dict[str, int]] = {
    "ave": {"classes": 6, "clips_per_class": 16, "eval_clips_per_class": 8},
    "llp": {"classes": 6, "clips_per_class": 16, "eval_clips_per_class": 8},
    "vggsound40k": {"classes": 12, "clips_per_class": 6, "eval_clips_per_class": 2},
    "vggsound": {"classes": 6, "clips_per_class": 8, "eval_clips_per_class": 2},
}
DEMO_SEED = 0
STAMP = "demo.json"


def ensure_demo(dataset: str) -> Path:
    """The demo root of ``dataset`` under ``paths.demo_dir()``, synthesised on first use.

    Built in a temporary sibling folder and renamed into place, so a half-built demo is never
    used; a demo from another generator version, other sizes or another domain shift is rebuilt.
    """
    from ...paths import demo_dir

    if dataset not in DEMO_SIZES:
        raise UserError(f"no demo for dataset {dataset!r}; demos exist for {', '.join(sorted(DEMO_SIZES))}")
    base = demo_dir()
    root = base / dataset
    if _demo_is_current(root):
        return root
    base.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{dataset}-building-", dir=str(base)))
    try:
        log.info("synthesising the %s demo under %s (first use)", dataset, root)
        make_dataset(dataset, temp, seed=DEMO_SEED, layout="raw", shift=DEMO_SHIFT,
                     **DEMO_SIZES[dataset])
        (temp / STAMP).write_text(json.dumps(_stamp(dataset), sort_keys=True) + "\n", encoding="ascii")
        if root.exists():
            if _demo_is_current(root):  # another process finished first
                return root
            stale = Path(tempfile.mkdtemp(prefix=f".{dataset}-stale-", dir=str(base)))
            os.replace(root, stale / dataset)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(temp, root)
        except OSError:
            if not _demo_is_current(root):
                raise
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
    return root


def _demo_is_current(root: Path) -> bool:
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="ascii"))
    except (OSError, ValueError):
        return False
    return (manifest.get("generator_version") == GENERATOR_VERSION and manifest.get("layout") == "raw"
            and _read_stamp(root) == _stamp(root.name))


def _stamp(dataset: str) -> Dict[str, object]:
    """What else makes a demo root current: its sizes and the domain shift it was rendered with."""
    return {"sizes": dict(DEMO_SIZES.get(dataset, {})), "domain_shift": DEMO_SHIFT.as_dict()}


def _read_stamp(root: Path) -> object:
    try:
        return json.loads((root / STAMP).read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None
