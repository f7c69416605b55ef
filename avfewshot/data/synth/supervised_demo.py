"""The embedded demo roots of the supervised runners: synthetic AVE (the few-shot demo's, ``demo.py``), LLP for
AVVP, AVSBench S4 / MS3 and MUSIC-AVQA, synthesised under ``paths.demo_dir()`` on first use and reused.

AVVP has its own LLP root, without the few-shot demo's domain shift (``domain.py``): the shift exists to give
the pretrained demo towers' zero-shot headroom; a weakly supervised head trained from scratch on T = 2 tiny
segments learns the per-second labels only on unshifted clips (on the shifted ones its Type@AV F-score stayed at
the empty predictor's, 44.4).

Built in a temporary sibling folder and renamed into place (a half-built root is never used); a root written
with other generator settings is rebuilt (``.supervised-demo.json`` records them).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict

from ...errors import UserError

#: generator settings per demo (the AVS / AVQA sizes keep a tiny run within a minute on one core)
SUPERVISED_DEMOS: Dict[str, Dict[str, Any]] = {
    "avvp": {"classes": 6, "clips_per_class": 16, "eval_clips_per_class": 4, "seed": 0},
    "avs_s4": {"categories": 3, "clips_per_category": 4, "eval_clips_per_category": 2, "seed": 0},
    "avs_ms3": {"categories": 3, "clips_per_category": 4, "eval_clips_per_category": 2, "seed": 0},
    "avqa": {"videos": {"train": 40, "val": 8, "test": 16}, "questions_per_video": 6, "seed": 0},
}
MARKER = ".supervised-demo.json"
DEMO_VERSION = 1


def _writer(name: str) -> Callable[[Path], None]:
    settings = SUPERVISED_DEMOS[name]
    if name == "avvp":
        from .make import make_dataset

        return lambda root: make_dataset("llp", root, layout="raw", **settings)
    if name.startswith("avs_"):
        from .avsbench import make_avsbench

        return lambda root: make_avsbench(root, name.split("_")[1], **settings)
    from .avqa import make_avqa

    return lambda root: make_avqa(root, **settings)


def _marker(name: str) -> Dict[str, Any]:
    """What makes a root current: this module's version, the synthesis generator's and the settings."""
    from .make import GENERATOR_VERSION

    return {"version": DEMO_VERSION, "generator": GENERATOR_VERSION, "settings": SUPERVISED_DEMOS[name]}


def _current(root: Path, name: str) -> bool:
    try:
        marker = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker == _marker(name)


def ensure_supervised_demo(task: str) -> Path:
    """The synthetic root of a supervised task (``ave``, ``avvp``, ``avs_s4``, ``avs_ms3``, ``avqa``)."""
    if task == "ave":
        from .demo import ensure_demo

        return ensure_demo("ave")
    if task not in SUPERVISED_DEMOS:
        raise UserError(f"no supervised demo for task {task!r}; valid: ave, {', '.join(SUPERVISED_DEMOS)}")
    from ...paths import demo_dir

    base = demo_dir()
    root = base / task
    if _current(root, task):
        return root
    base.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{task}-building-", dir=str(base)))
    try:
        _writer(task)(temp)
        (temp / MARKER).write_text(json.dumps(_marker(task)))
        if root.exists():
            if _current(root, task):  # another process finished first
                return root
            stale = Path(tempfile.mkdtemp(prefix=f".{task}-stale-", dir=str(base)))
            os.replace(root, stale / task)
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(temp, root)
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
    return root
