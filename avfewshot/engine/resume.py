"""Resume that checks: a run checkpoint is trusted only when it is readable, is ours, and was written by the
same configuration.

``checkpoint_last.pt`` records a fingerprint of everything that decides the numbers: the method's options, the
training settings, the data settings, the split file's content and the frozen towers. On resume:

- an unreadable, empty, truncated or foreign file is moved aside to ``checkpoint_last.pt.bad-<time>`` with a
  one-line warning, and the run starts from scratch (nothing is lost; a retry does not die the same way);
- a checkpoint of a different configuration is a one-line error naming the keys that differ and offering
  ``--force`` (which starts over).
"""
from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..config import RunConfig, to_dict
from ..errors import UserError
from . import results as res

log = logging.getLogger("avfewshot")
CHECKPOINT_FORMAT = "avfewshot-run-checkpoint"
REQUIRED_KEYS = ("format", "fingerprint", "epoch", "state", "optimizer", "scheduler", "history", "best")

# Settings that change where or how fast a run goes (or what it may load), not what it computes. The device is
# among them: a run started on one machine may resume on another (numbers then agree to the devices' rounding).
NOT_FINGERPRINTED = {
    "results_dir", "log", "data.cache", "data.cache_dir", "data.feature_cache", "data.num_workers", "data.on_error",
    "data.splits_dir", "data.root", "data.media_root", "train.threads", "train.eval_batch_size", "train.device",
    "model.trust_torchscript",
}


def _flat(mapping: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in mapping.items():
        path = f"{prefix}{'method' if key == 'method_args' and not prefix else key}"
        if isinstance(value, dict):
            out.update(_flat(value, path + "."))
        else:
            out[path] = value
    return out


def file_digest(path: Optional[Path]) -> str:
    if path is None:
        return "none"
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def fingerprint(cfg: RunConfig, backbone, split_file: Optional[Path]) -> Dict[str, str]:
    """Every setting that decides a run's numbers, as strings (comparable across processes and versions)."""
    flat = {k: repr(v) for k, v in _flat(to_dict(cfg)).items() if k not in NOT_FINGERPRINTED}
    flat["split_file_sha256"] = file_digest(split_file)
    for tower in ("image", "audio", "clip_text", "clap_text"):
        flat[f"towers.{tower}"] = backbone.fingerprint(tower)
    return flat


def differing_keys(saved: Dict[str, str], current: Dict[str, str]) -> List[str]:
    return sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))


def move_aside(path: Path, why: str, say=print) -> Path:
    bad = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}")
    path.replace(bad)
    say(f"[avfewshot] WARNING: {path} {why}; moved to {bad.name} and starting the run from scratch")
    log.warning("%s %s; moved to %s", path, why, bad)
    return bad


def read_checkpoint(path: Path, current: Dict[str, str], say=print) -> Optional[Dict[str, Any]]:
    """The checkpoint to resume from, or None (no file, or a damaged one moved aside).

    Raises a ``UserError`` when the checkpoint is sound but was written by another configuration.
    """
    if not path.exists():
        return None
    try:
        ckpt = res.load_torch(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is set aside, never trusted
        move_aside(path, f"cannot be read ({type(exc).__name__})", say)
        return None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT or any(k not in ckpt for k in REQUIRED_KEYS):
        move_aside(path, "is not an avfewshot run checkpoint", say)
        return None
    changed = differing_keys(ckpt["fingerprint"], current)
    if changed:
        shown = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
        raise UserError(f"{path} was written by a different configuration ({shown} differ); "
                        "run with the same settings to resume it, or add --force to start over")
    return ckpt


def restore(ckpt: Dict[str, Any], method, optimizer, scheduler, path: Path, say=print, scaler=None) -> bool:
    """Load a checkpoint's states; on any mismatch put everything back as it was, move the file aside, return False."""
    initial = method.trainable_state()
    opt_initial, sched_initial = optimizer.state_dict(), scheduler.state_dict()
    try:
        method.load_trainable_state(ckpt["state"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        return True
    except Exception as exc:  # noqa: BLE001 - a checkpoint that does not fit is set aside
        method.load_trainable_state(initial)
        optimizer.load_state_dict(opt_initial)
        scheduler.load_state_dict(sched_initial)
        move_aside(path, f"does not fit this method ({type(exc).__name__})", say)
        return False
