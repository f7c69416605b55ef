"""Atomic result files: a killed process leaves either the old file or the new one, never half of one."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Union

from ..outputs import atomic_write  # noqa: F401  (re-exported: the engine's writers use it)

PathLike = Union[str, Path]


def write_text(path: PathLike, text: str) -> None:
    atomic_write(path, lambda h: h.write(text.encode()))


def write_json(path: PathLike, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: PathLike) -> Optional[Dict]:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None


def save_torch(path: PathLike, obj: Any) -> None:
    import torch

    atomic_write(path, lambda h: torch.save(obj, h))


def load_torch(path: PathLike) -> Any:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"
LOG_FILE = "run.log"
LAST_CKPT = "checkpoint_last.pt"
FINAL_CKPT = "trainable.pt"


def is_finished(run_dir: PathLike) -> bool:
    return (Path(run_dir) / METRICS_FILE).exists()
