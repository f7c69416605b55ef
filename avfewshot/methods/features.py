"""Frozen-feature cache: per-segment image / audio embeddings of the untouched towers.

Valid only where the tower's output does not depend on anything trained (zero-shot, linear
probe, CoOp / CoCoOp image and audio sides, CLIP-Adapter); methods say which features they may
read through ``Method.cacheable_features``. Entries are keyed by the tower fingerprint
(architecture + weights + preprocessing), the precision the towers compute in (autocast's dtype at
the time: bf16 features never answer an fp32 run) and the clip's decoded-input key (media identity +
every preprocessing parameter), so any change misses; never by device. Written atomically; kept in memory too.

Each ``.pt`` entry holds ``{"format", "crc32", "tensor"}``: the CRC-32 of the tensor's bytes is
checked on read, so an entry whose bytes changed on disk (or that is not an entry at all) is
logged once, deleted and recomputed instead of being used.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import torch

from ..data.checksum import crc32
from ..paths import feature_cache_dir
from ..precision import active_autocast_dtype, name_of

log = logging.getLogger("avfewshot")
FEATURE_FORMAT = 2  # 2: entries carry a CRC-32 of the tensor bytes (folders of format 1 are never read)


def tensor_crc32(value: torch.Tensor) -> int:
    """CRC-32 of the tensor's raw bytes (any dtype), without a copy when it is contiguous on the CPU."""
    raw = value.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
    return crc32(raw.numpy().data)


def pack_entry(value: torch.Tensor) -> Dict[str, object]:
    return {"format": FEATURE_FORMAT, "crc32": tensor_crc32(value), "tensor": value}


def unpack_entry(entry: object) -> torch.Tensor:
    """The tensor of a loaded entry; ValueError naming what is wrong with it."""
    if not (isinstance(entry, dict) and entry.get("format") == FEATURE_FORMAT
            and isinstance(entry.get("tensor"), torch.Tensor)):
        raise ValueError("not a feature-cache entry of this format")
    value = entry["tensor"]
    crc = tensor_crc32(value)
    if crc != entry.get("crc32"):
        raise ValueError(f"tensor checksum mismatch (crc32 {crc:08x}, entry says {entry.get('crc32')})")
    return value


class FeatureStore:
    def __init__(self, backbone, root: Optional[Path] = None, enabled: bool = True, on_disk: bool = True):
        self.backbone = backbone
        self.enabled = enabled
        self.on_disk = on_disk
        self.root = Path(root) if root else feature_cache_dir()
        self._memory: Dict[str, torch.Tensor] = {}
        self.hits = 0
        self.misses = 0

    def _folder(self, tower: str, compute: str) -> Path:
        identity = f"format={FEATURE_FORMAT}|{self.backbone.fingerprint(tower)}"
        if compute != "fp32":  # fp32 folders keep their names
            identity += f"|compute={compute}"
        digest = hashlib.sha256(identity.encode()).hexdigest()[:20]
        return self.root / f"{tower}-{digest}"

    def compute_precision(self) -> str:
        """fp32 | bf16 | fp16: the dtype autocast computes in right now on the towers' device."""
        scale = getattr(self.backbone, "clip_logit_scale", None)
        dtype = active_autocast_dtype(scale.device.type if isinstance(scale, torch.Tensor) else "cpu")
        return "fp32" if dtype is None else name_of(dtype)

    def _load(self, tower: str, key: str, compute: str) -> Optional[torch.Tensor]:
        mem_key = f"{tower}/{compute}/{key}"
        if mem_key in self._memory:
            return self._memory[mem_key]
        if self.on_disk:
            path = self._folder(tower, compute) / f"{key}.pt"
            if path.exists():
                try:
                    value = unpack_entry(torch.load(path, weights_only=True, map_location="cpu"))
                except Exception as exc:  # a damaged entry is recomputed, never trusted
                    log.warning("feature cache: %s is corrupt (%s); deleting it and computing it again",
                                path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                    path.unlink(missing_ok=True)
                    return None
                self._memory[mem_key] = value
                return value
        return None

    def _save(self, tower: str, key: str, compute: str, value: torch.Tensor) -> None:
        self._memory[f"{tower}/{compute}/{key}"] = value
        if not self.on_disk:
            return
        folder = self._folder(tower, compute)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key[:16]}-", suffix=".tmp")
            os.close(fd)
            try:
                torch.save(pack_entry(value), tmp)
                os.replace(tmp, folder / f"{key}.pt")
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except (OSError, RuntimeError) as exc:  # full / read-only folder (torch.save raises RuntimeError)
            log.warning("feature cache: cannot write %s (%s); continuing without caching it", folder / f"{key}.pt", exc)

    def get(self, tower: str, batch: Dict, compute) -> torch.Tensor:
        """(B, T, D) features for the batch; ``compute(batch) -> (B, T, D)`` runs on a miss."""
        keys: List[str] = list(batch["cache_key"])
        if not self.enabled:
            return compute(batch)
        compute_in = self.compute_precision()
        cached = [self._load(tower, k, compute_in) for k in keys]
        if all(c is not None for c in cached):
            self.hits += len(keys)
            return torch.stack(cached)
        self.misses += len(keys)
        if "frames" not in batch:
            raise RuntimeError(f"{tower} features of {keys[0]} are not cached and the batch carries no media")
        with torch.no_grad():
            out = compute(batch)
        with torch.inference_mode(False):  # a normal CPU copy, even when computed in inference mode on a GPU
            for key, value in zip(keys, out):
                self._save(tower, key, compute_in, value.detach().to("cpu", copy=True))
        return out
