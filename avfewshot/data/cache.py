"""On-disk cache of decoded clips (uint8 frames + float32 audio), so a second pass decodes nothing.

Key = sha256 of (cache format version, every :class:`MediaSpec` field, the layout, and the
identity of every media file: resolved path + size + mtime_ns, or the file's sha256 when
``content_hash=True``, which survives copying a dataset elsewhere). A changed parameter or a
touched file therefore gives a new key; stale entries are simply never read again.

Entries are ``<root>/<key[:2]>/<key>.clip``: a small JSON header (key, shapes, frame indices, the
CRC-32 of the payload) and the raw payload: uint8 frames stored channel-first (T, 3, H, W), the
layout the normalisation writes, then float32 audio (about 3.4 MB per clip at 224 px and 48 kHz;
an ``.npz`` container cost more to parse than the arrays cost to read). A read is one ``readinto``
into an uninitialised buffer; the frames come back as a (T, H, W, 3) view of it, so normalising
them needs no transposing copy. Each is written to a temporary name in the same folder, then
``os.replace``-d into place, so a reader sees a complete entry or none. An entry that fails to
load, whose payload does not match its checksum (bytes changed on disk, same size) or does not
match the expected shapes is logged, deleted and recomputed. The CRC-32 is checked before
anything is handed out; it guards against damage, not against someone forging an entry
(``checksum.py``: zlib-ng's implementation, 0.2-0.4 ms per clip, else zlib's, 1-2 ms).
Entries of earlier formats have other keys (the format is part of the key), so they are never
looked up; one found under a current key is rejected by its magic, never misread.

Counters (``hits``, ``misses``, ``recovered``) are per process: with DataLoader workers each
worker counts its own lookups.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple, Union

import numpy as np

from .checksum import crc32
from .media import DecodedClip, MediaFiles, MediaSpec

ENTRY_SUFFIX = ".clip"
_MAGIC = b"AVFCLIP3"  # 3: frames stored channel-first (T, 3, H, W); 2 had (T, H, W, 3)


def _write_entry(out, key: str, clip: DecodedClip) -> None:
    frames = np.ascontiguousarray(np.moveaxis(np.asarray(clip.frames, dtype=np.uint8), -1, -3))
    audio = np.ascontiguousarray(clip.audio, dtype=np.float32)
    padding = bytes(-frames.nbytes % 4)  # keep the float32 audio 4-byte aligned
    crc = crc32(audio.data, crc32(padding, crc32(frames.data)))
    header = json.dumps({"key": key, "frames": list(frames.shape), "audio": list(audio.shape),
                         "frame_indices": [int(i) for i in clip.frame_indices], "crc32": crc}).encode()
    out.write(_MAGIC + len(header).to_bytes(4, "little") + header)
    out.write(frames.data)
    out.write(padding)
    out.write(audio.data)


def _read_entry(path: Path):
    """(frames (T, H, W, 3) view of channel-first bytes, audio, frame_indices, key); ValueError on any inconsistency."""
    with open(path, "rb") as handle:
        if handle.read(len(_MAGIC)) != _MAGIC:
            raise ValueError("not a decoded-clip entry of this format")
        size = int.from_bytes(handle.read(4), "little")
        header = json.loads(handle.read(size))
        frames_shape, audio_shape = tuple(header["frames"]), tuple(header["audio"])
        if len(frames_shape) != 4 or frames_shape[1] != 3:
            raise ValueError(f"frames shape {frames_shape} is not channel-first")
        n_frames = int(np.prod(frames_shape))
        audio_offset = n_frames + (-n_frames % 4)
        n_audio = int(np.prod(audio_shape)) * 4
        if os.fstat(handle.fileno()).st_size != handle.tell() + audio_offset + n_audio:
            raise ValueError("entry is truncated or has trailing bytes")
        buffer = np.empty(audio_offset + n_audio, dtype=np.uint8)  # not zero-filled: every byte is read
        if handle.readinto(memoryview(buffer)) != buffer.size:
            raise ValueError("entry is truncated")
    crc = crc32(buffer)
    if crc != header.get("crc32"):
        raise ValueError(f"payload checksum mismatch (crc32 {crc:08x}, header says {header.get('crc32')})")
    frames = np.moveaxis(buffer[:n_frames].reshape(frames_shape), -3, -1)  # a view: no copy
    audio = buffer[audio_offset:].view(np.float32).reshape(audio_shape)
    return frames, audio, tuple(int(i) for i in header["frame_indices"]), str(header["key"])

log = logging.getLogger("avfewshot")

PathLike = Union[str, "os.PathLike[str]"]

CACHE_FORMAT_VERSION = "4"  # 3: entries carry a payload checksum; 4: frames stored channel-first


def _file_identity(path: Path, content_hash: bool) -> Dict[str, object]:
    stat = path.stat()
    identity: Dict[str, object] = {"size": stat.st_size}
    if content_hash:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        identity["sha256"] = digest.hexdigest()
        identity["name"] = path.name
    else:
        identity["path"] = str(path.resolve())
        identity["mtime_ns"] = stat.st_mtime_ns
    return identity


def clip_key(files: MediaFiles, spec: MediaSpec, content_hash: bool = False) -> str:
    """Digest of the media files' identity and every preprocessing parameter."""
    payload = {
        "format": CACHE_FORMAT_VERSION,
        "layout": files.layout,
        "spec": spec.as_dict(),
        "files": [_file_identity(p, content_hash) for p in files.paths()],
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    recovered: int = 0  # corrupt entries deleted and recomputed
    writes: int = 0


class DecodedCache:
    """Decoded-clip cache. ``enabled=False`` turns it into a pass-through (keys are still computed)."""

    def __init__(self, root: Optional[PathLike] = None, enabled: bool = True, content_hash: bool = False):
        if root is None:
            from ..paths import decoded_cache_dir

            root = decoded_cache_dir()
        self.root = Path(root).expanduser()
        self.enabled = bool(enabled)
        self.content_hash = bool(content_hash)
        self.stats = CacheStats()

    # counters as plain attributes for callers and tests
    @property
    def hits(self) -> int:
        return self.stats.hits

    @property
    def misses(self) -> int:
        return self.stats.misses

    @property
    def recovered(self) -> int:
        return self.stats.recovered

    def reset_stats(self) -> None:
        self.stats = CacheStats()

    def key(self, files: MediaFiles, spec: MediaSpec) -> str:
        return clip_key(files, spec, self.content_hash)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}{ENTRY_SUFFIX}"

    def get(self, key: str, spec: MediaSpec) -> Optional[DecodedClip]:
        """The cached clip, or None when absent; a corrupt entry is deleted (and counted)."""
        if not self.enabled:
            return None
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            frames, audio, indices, stored_key = _read_entry(path)
            T, S = spec.num_segments, spec.image_size
            if stored_key != key:
                raise ValueError(f"entry holds key {stored_key[:12]}...")
            if frames.dtype != np.uint8 or frames.shape != (T, S, S, 3):
                raise ValueError(f"frames {frames.dtype} {frames.shape}")
            if audio.dtype != np.float32 or audio.shape != (T, spec.audio_rate):
                raise ValueError(f"audio {audio.dtype} {audio.shape}")
        except Exception as exc:  # truncated zip, bad header, wrong arrays...
            log.warning("decoded cache: %s is corrupt (%s); deleting it and decoding again", path, exc)
            self.stats.recovered += 1
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            return None
        return DecodedClip(frames, audio, indices)

    def put(self, key: str, clip: DecodedClip) -> Optional[Path]:
        """Write atomically (temporary file + os.replace); a failure to write only logs."""
        if not self.enabled:
            return None
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(prefix=f".{key[:16]}-", suffix=".tmp", dir=str(path.parent))
            try:
                with os.fdopen(handle, "wb") as out:
                    _write_entry(out, key, clip)
                os.replace(temp, path)
            except BaseException:
                try:
                    os.unlink(temp)
                except FileNotFoundError:
                    pass
                raise
        except OSError as exc:
            log.warning("decoded cache: cannot write %s (%s); continuing without caching it", path, exc)
            return None
        self.stats.writes += 1
        return path

    def fetch(self, files: MediaFiles, spec: MediaSpec, decode: Callable[[MediaFiles, MediaSpec], DecodedClip]) -> Tuple[DecodedClip, str]:
        """The cached clip if present, else ``decode(files, spec)`` stored for next time; plus its key."""
        key = self.key(files, spec)
        clip = self.get(key, spec)
        if clip is not None:
            self.stats.hits += 1
            return clip, key
        self.stats.misses += 1
        clip = decode(files, spec)
        self.put(key, clip)
        return clip, key

    def clear(self) -> int:
        """Delete every entry (and stray temporary files); return how many files were removed."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for path in self.root.glob("*/*"):
            if path.suffix in (ENTRY_SUFFIX, ".tmp"):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def __repr__(self) -> str:
        state = "on" if self.enabled else "off"
        return f"DecodedCache({str(self.root)!r}, {state}, hits={self.hits}, misses={self.misses})"
