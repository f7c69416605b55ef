"""Optional TensorBoard logging (``--log tensorboard`` / ``log=[tensorboard]``), off by default.

TensorBoard is not a dependency: without the ``tensorboard`` package the writer is None, a
message says how to get it, and the run goes on. The engine calls::

    writer = tensorboard_writer(run_dir)        # None when not installed
    log_scalars(writer, entry, step=epoch)      # a history entry: {"epoch": 3, "loss": ..., "select_score": ...}
    close_writer(writer)
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Dict, Optional, Union

log = logging.getLogger("avfewshot")
TENSORBOARD_DIR = "tensorboard"
INSTALL_HINT = "pip install tensorboard"


def tensorboard_writer(run_dir: Union[str, Path], say: Callable[[str], None] = print):
    """A ``SummaryWriter`` logging to ``<run_dir>/tensorboard``, or None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises ImportError when the tensorboard package is missing
        message = (f"[avfewshot] --log tensorboard: the tensorboard package is not installed ({INSTALL_HINT}); "
                   "continuing without TensorBoard logging")
        log.info("%s", message)
        say(message)
        return None
    return SummaryWriter(log_dir=str(Path(run_dir) / TENSORBOARD_DIR))


def log_scalars(writer, values: Dict[str, object], step: int, prefix: str = "") -> None:
    """Write every numeric entry of ``values`` (except the step counter ``epoch``) at ``step``."""
    if writer is None:
        return
    for key, value in values.items():
        if key == "epoch" or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        writer.add_scalar(f"{prefix}{key}", float(value), step)


def close_writer(writer) -> None:
    if writer is not None:
        writer.flush()
        writer.close()


def tensorboard_enabled(log_targets) -> bool:
    return "tensorboard" in [str(t).lower() for t in (log_targets or [])]


def tensorboard_writer_for(cfg, run_dir: Union[str, Path], say: Callable[[str], None] = print) -> Optional[object]:
    """The writer when the run config asks for it (``log: [tensorboard]``), else None without a message."""
    return tensorboard_writer(run_dir, say) if tensorboard_enabled(getattr(cfg, "log", None)) else None
