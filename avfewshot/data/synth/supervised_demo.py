"""The embedded demo roots of the supervised runners: synthetic AVE / LLP (``demo.py``), AVSBench S4 / MS3 and
MUSIC-AVQA, synthesised under ``paths.demo_dir()`` on first use and reused.

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
    "avs_s4": {"categories": 3, "clips_per_category": 4, "eval_clips_per_category": 2, "seed": 0},
    "avs_ms3": {"categories": 3, "clips_per_category": 4, "eval_clips_per_category": 2, "seed": 0},
    "avqa": {"videos": {"train": 40, "val": 8, "test": 16}, "questions_per_video": 6, "seed": 0},
}
MARKER = ".supervised-demo.json"
DEMO_VERSION = 1


def _writer(name: str) -> Callable[[Path], None]:
    settings = SUPERVISED_DEMOS[name]
    if name.startswith("avs_"):
        from .avsbench import make_avsbench

        return lambda root: make_avsbench(root, name.split("_")[1], **settings)
    from .avqa import make_avqa

    return lambda root: make_avqa(root, **settings)


def _current(root: Path, name: str) -> bool:
    try:
        marker = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker == {"version": DEMO_VERSION, "settings": SUPERVISED_DEMOS[name]}


def ensure_supervised_demo(task: str) -> Path:
    """The synthetic root of a supervised task (``ave``, ``avvp``, ``avs_s4``, ``avs_ms3``, ``avqa``)."""
    if task in ("ave", "avvp"):
        from .demo import ensure_demo

        return ensure_demo("ave" if task == "ave" else "llp")
    if task not in SUPERVISED_DEMOS:
        raise UserError(f"no supervised demo for task {task!r}; valid: ave, avvp, {', '.join(SUPERVISED_DEMOS)}")
    from ...paths import demo_dir

    base = demo_dir()
    root = base / task
    if _current(root, task):
        return root
    base.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{task}-building-", dir=str(base)))
    try:
        _writer(task)(temp)
        (temp / MARKER).write_text(json.dumps({"version": DEMO_VERSION, "settings": SUPERVISED_DEMOS[task]}))
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
