"""Frozen-feature cache: per-segment image / audio embeddings of the untouched towers.

Valid only where the tower's output does not depend on anything trained (zero-shot, linear
probe, CoOp / CoCoOp image and audio sides, CLIP-Adapter); methods say which features they may
read through ``Method.cacheable_features``. Entries are keyed by the tower fingerprint
(architecture + weights + preprocessing) and the clip's decoded-input key (media identity + every
preprocessing parameter), so any change misses. Written atomically; kept in memory too.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import torch

from ..paths import feature_cache_dir


class FeatureStore:
    def __init__(self, backbone, root: Optional[Path] = None, enabled: bool = True, on_disk: bool = True):
        self.backbone = backbone
        self.enabled = enabled
        self.on_disk = on_disk
        self.root = Path(root) if root else feature_cache_dir()
        self._memory: Dict[str, torch.Tensor] = {}
        self.hits = 0
        self.misses = 0

    def _folder(self, tower: str) -> Path:
        digest = hashlib.sha256(self.backbone.fingerprint(tower).encode()).hexdigest()[:20]
        return self.root / f"{tower}-{digest}"

    def _load(self, tower: str, key: str) -> Optional[torch.Tensor]:
        mem_key = f"{tower}/{key}"
        if mem_key in self._memory:
            return self._memory[mem_key]
        if self.on_disk:
            path = self._folder(tower) / f"{key}.pt"
            if path.exists():
                try:
                    value = torch.load(path, weights_only=True, map_location="cpu")
                except Exception:  # a damaged entry is recomputed, never trusted
                    path.unlink(missing_ok=True)
                    return None
                self._memory[mem_key] = value
                return value
        return None

    def _save(self, tower: str, key: str, value: torch.Tensor) -> None:
        self._memory[f"{tower}/{key}"] = value
        if not self.on_disk:
            return
        folder = self._folder(tower)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        os.close(fd)
        torch.save(value, tmp)
        os.replace(tmp, folder / f"{key}.pt")

    def get(self, tower: str, batch: Dict, compute) -> torch.Tensor:
        """(B, T, D) features for the batch; ``compute(batch) -> (B, T, D)`` runs on a miss."""
        keys: List[str] = list(batch["cache_key"])
        if not self.enabled:
            return compute(batch)
        cached = [self._load(tower, k) for k in keys]
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
                self._save(tower, key, value.detach().to("cpu", copy=True))
        return out
