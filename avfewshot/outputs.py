"""Output folders checked before any work, and atomic writes whose failures are one-line errors.

``check_output_dir`` creates a folder (and its parents) and proves it writable by creating and
deleting a probe file, so a read-only folder, a file where a folder should be, or a full disk is
reported before minutes of work, naming the path. ``write_*_atomic`` write through a temporary file
and ``os.replace`` (``atomic_write``): a failure leaves the old file or
none, never part of one, and becomes a :class:`OutputError` naming the path.
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Union

from .errors import UserError

PathLike = Union[str, "os.PathLike[str]"]


def atomic_write(path: PathLike, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class OutputError(UserError):
    """An output path that cannot be written: read-only, not a folder, no space, no permission."""


_REASONS = {
    errno.ENOSPC: "no space left on its device: free some space or write elsewhere",
    errno.EDQUOT: "disk quota exceeded: free some space or write elsewhere",
    errno.EROFS: "it is on a read-only filesystem: choose a writable folder",
    errno.EACCES: "permission denied: choose a folder you can write to",
    errno.EPERM: "permission denied: choose a folder you can write to",
    errno.ENOTDIR: "a file is in the way where a folder should be",
    errno.EEXIST: "a file is in the way where a folder should be",
    errno.EISDIR: "it is a folder, not a file",
    errno.ENAMETOOLONG: "the name is too long",
}


def output_error(exc: OSError, path: PathLike, what: str) -> OutputError:
    """A one-line error for ``exc`` naming ``what`` and the path (the file the OS complained about, if any)."""
    where = exc.filename if isinstance(exc.filename, str) and exc.filename else str(path)
    reason = _REASONS.get(exc.errno or -1, exc.strerror or str(exc))
    return OutputError(f"{what} {where}: cannot write there ({reason})")


def _first_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(".")


def _probe(folder: Path) -> None:
    """Create, write and delete a small file in ``folder`` (raises the OSError a real write would)."""
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".avfewshot-probe-", suffix=".tmp")
    try:
        os.write(fd, b"probe")
    finally:
        os.close(fd)
        os.unlink(probe)


def check_output_dir(path: PathLike, what: str = "output folder", create: bool = True) -> Path:
    """Check that this process can write in ``path`` (created, and its parents, when ``create``); return it.

    Raises :class:`OutputError` naming the path when it (or a parent) is a file, is read-only, lacks
    permission, or its disk is full. ``what`` names the option in the message (e.g. ``--results``).
    With ``create=False`` nothing is left behind: the nearest existing parent is probed instead, so
    a command that fails later leaves no empty folder.
    """
    path = Path(path).expanduser()
    existing = _first_existing(path)
    if not existing.is_dir():
        where = "is a file" if existing == path else f"cannot be created: {existing} is a file"
        raise OutputError(f"{what} {path} {where}, not a folder; remove it or choose another path")
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        _probe(path if create else existing)
    except OSError as exc:
        raise output_error(exc, path, what) from None
    return path


def check_output_file(path: PathLike, what: str = "output file") -> Path:
    """Check that ``path`` can be written (its folder need not exist yet) and is not a folder."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; give a file name")
    check_output_dir(path.parent, what=f"{what}: folder", create=False)
    return path


def write_atomic(path: PathLike, write: Callable, what: str = "output file") -> Path:
    """``write(binary_handle)`` into a temporary file, then rename it over ``path``."""
    try:
        atomic_write(path, write)
    except OSError as exc:
        raise output_error(exc, path, what) from None
    return Path(path)


def write_text_atomic(path: PathLike, text: str, what: str = "output file") -> Path:
    return write_atomic(path, lambda handle: handle.write(text.encode("utf-8")), what)


def write_json_atomic(path: PathLike, data: Any, what: str = "output file", indent: int = 2) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=indent, sort_keys=True) + "\n", what)
