"""Media problems: tagged errors, short decoder messages, and checks shared by frame and audio decoding."""
from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, List, Optional

from ..errors import MediaError

if TYPE_CHECKING:
    from .media import MediaSpec

MEDIA_PROBLEM_KINDS = ("missing", "empty", "undecodable", "no_video", "no_audio", "too_short", "frame_count")


def media_error(kind: str, message: str) -> MediaError:
    """A MediaError tagged with ``kind`` (one of MEDIA_PROBLEM_KINDS) for the dataset check."""
    error = MediaError(message)
    error.kind = kind  # type: ignore[attr-defined]
    return error


def error_kind(error: BaseException) -> str:
    return getattr(error, "kind", "undecodable")


def unreachable_reason(path: Path, folder: bool = False) -> Optional[str]:
    """Why a name that exists cannot be used as a file (or ``folder``): a symbolic link loop, a broken
    link, a folder where a file belongs (or the reverse); None when it is fine or does not exist."""
    if not os.path.lexists(path):
        return None
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link loop (following the links never reaches a file); point the link at the real file"
        if os.path.islink(path) and exc.errno == errno.ENOENT:
            return f"is a broken symbolic link (it points to {os.readlink(path)}, which does not exist); fix or remove it"
        return f"cannot be opened ({exc.strerror})"
    if os.path.isdir(path) != folder:
        return "is a file, not a folder" if folder else "is a folder, not a file"
    return None


def check_nonempty(path: Path, what: str) -> None:
    try:
        size = path.stat().st_size
    except OSError:
        reason = unreachable_reason(path)
        raise media_error("missing", f"{path}: {what} {reason or 'not found'}") from None
    if size == 0:
        raise media_error("empty", f"{path}: {what} is an empty (zero-byte) file; re-extract or re-download it")


@contextlib.contextmanager
def captured_stderr() -> Iterator[List[str]]:
    """Send file descriptor 2 to a temporary file while the block runs; the yielded list then holds its text.

    decord's C++ logger writes errors straight to fd 2 (its QUIET level does not cover the
    "ERROR opening" line), which would print beside our own message. Redirecting the descriptor is
    process-wide while it lasts; decoding runs on one thread per process, so nothing else is lost.
    """
    captured: List[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no fd 2 to redirect (a detached process)
        yield captured
        return
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield captured
            finally:
                os.dup2(saved, 2)
                sink.seek(0)
                captured.append(sink.read().decode("utf-8", errors="replace"))
    finally:
        os.close(saved)


DECORD_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+:\d+: (Check failed: .*?\) )?")


def short_message(exc: object) -> str:
    """The useful part of a decoder's message (decord prefixes its C++ source location)."""
    text = DECORD_PREFIX.sub("", " ".join(str(exc).split()))
    return (text[:200] + "...") if len(text) > 200 else (text or type(exc).__name__)


def check_length(path: Path, what: str, seconds: float, spec: MediaSpec, notes: List[str]) -> None:
    needed = float(spec.duration)
    if seconds >= needed - spec.short_tolerance - 1e-9:
        return
    message = f"{path}: {what} is {seconds:.2f} s long; {spec.duration} s are needed ({spec.num_segments} one-second segments)"
    if not spec.pad_short:
        raise media_error("too_short", message + "; drop the clip, or allow padding (MediaSpec.pad_short / data.on_error=skip)")
    notes.append(message + "; padded (last frame repeated, silence appended)")
