"""Claimed sweep cells: one process runs a cell, however many sweeps share the results folder.

Before running a cell, a sweep creates ``<run_dir>/.claim.lock`` with ``O_CREAT | O_EXCL`` (atomic
on local filesystems and on NFS v3+), holding the owner's host, pid, process start time and a
random token. While the cell runs, a heartbeat thread touches the lock's modification time. The
lock is deleted when the run ends (finished or failed).

A lock is **stale**, and may be taken over with a log line, when its owner ran on this host and its
process is gone (killed, crashed, or the pid now belongs to another process), or when its last
heartbeat is older than the timeout (the only test possible for another host: a machine that died
or lost the filesystem). A takeover removes the stale lock only if it is byte-for-byte the one judged
stale (under a short-lived ``.claim.lock.takeover`` guard, itself created with ``O_EXCL``), then
claims as usual, so two processes taking over the same lock cannot both win.

Under ``torchrun`` every rank of one job runs the same cell: rank 0 claims and tells the others.
Clocks of hosts sharing a filesystem must agree to well within the timeout.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional, Tuple

from ..errors import UserError

LOCK_FILE = ".claim.lock"
GUARD_SUFFIX = ".takeover"
DEFAULT_TIMEOUT = 1800.0  # seconds without a heartbeat before another host's claim is stale
UNREADABLE_GRACE = 60.0  # a lock with no readable owner (its writer died right after creating it)
GUARD_GRACE = 60.0  # a takeover guard is held for milliseconds; an older one was left by a killed process

RUN = "run"  # this process (group) holds the claim: run the cell
HELD = "held"  # another live process holds it
FINISHED = "finished"  # it finished while we were claiming it


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    started: float  # wall-clock time the owning process started (for people reading the lock)
    proc_start: Optional[int]  # /proc start time in clock ticks: tells a reused pid from the owner
    token: str

    def describe(self) -> str:
        return f"{self.host}:{self.pid}"


def _proc_start(pid: int) -> Optional[int]:
    """Start time of ``pid`` in clock ticks since boot (Linux), None where /proc is missing."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[19]) if len(fields) > 19 else None


def _is_zombie(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rindex(")") + 2:].startswith("Z")


@lru_cache(maxsize=1)
def _token() -> str:
    return uuid.uuid4().hex


def this_process() -> Owner:
    pid = os.getpid()
    return Owner(socket.gethostname(), pid, _process_started(), _proc_start(pid), _token() + f"-{pid}")


@lru_cache(maxsize=1)
def _process_started() -> float:
    """Wall-clock start of this process (boot time + /proc start ticks); now, where /proc is missing."""
    ticks = _proc_start(os.getpid())
    try:
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return round(boot + ticks / os.sysconf("SC_CLK_TCK"), 3) if ticks is not None else round(time.time(), 3)
    except (OSError, StopIteration, ValueError):
        return round(time.time(), 3)


def process_alive(pid: int, proc_start: Optional[int] = None) -> bool:
    """Whether ``pid`` runs on this host (and is the same process, when its start time is known)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if _is_zombie(pid):
        return False
    if proc_start is not None:
        current = _proc_start(pid)
        return current is None or current == proc_start
    return True


def read_lock(path: Path) -> Tuple[Optional[Owner], bytes, Optional[float]]:
    """(owner or None when unreadable, raw bytes, mtime); mtime None when the lock is gone."""
    try:
        raw = path.read_bytes()
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None, b"", None
    try:
        data = json.loads(raw.decode("utf-8"))
        owner = Owner(str(data["host"]), int(data["pid"]), float(data["started"]),
                      None if data.get("proc_start") is None else int(data["proc_start"]), str(data["token"]))
    except (ValueError, KeyError, TypeError):
        owner = None
    return owner, raw, mtime


def stale_reason(owner: Optional[Owner], mtime: float, timeout: float, now: Optional[float] = None) -> Optional[str]:
    """Why a lock may be taken over, or None while its owner may still be running."""
    age = (now if now is not None else time.time()) - mtime
    if owner is None:
        grace = min(timeout, UNREADABLE_GRACE)
        return f"its owner is unreadable and it is {age:.0f} s old" if age > grace else None
    if owner.host == socket.gethostname() and not process_alive(owner.pid, owner.proc_start):
        return f"its process {owner.describe()} is gone"
    if age > timeout:
        return f"its owner {owner.describe()} gave no sign of life for {age:.0f} s (timeout {timeout:.0f} s)"
    return None


def _remove_if_unchanged(lock: Path, seen: bytes) -> bool:
    """Delete ``lock`` if it still holds exactly ``seen``; False when another process got there first."""
    guard = lock.with_name(lock.name + GUARD_SUFFIX)
    try:
        fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:  # a guard outlives its takeover only when its process was killed inside it
            if time.time() - guard.stat().st_mtime > GUARD_GRACE:
                guard.unlink()
        except FileNotFoundError:
            pass
        return False
    try:
        os.close(fd)
        try:
            current = lock.read_bytes()
        except FileNotFoundError:
            return True
        if current != seen:
            return False
        lock.unlink(missing_ok=True)
        return True
    finally:
        guard.unlink(missing_ok=True)


class Claim:
    """A held claim: keeps the lock's heartbeat going; ``release()`` (or leaving ``with``) deletes it."""

    def __init__(self, path: Optional[Path], owner: Optional[Owner], timeout: float, decision: str = RUN,
                 holder: Optional[Owner] = None):
        self.path, self.owner, self.timeout, self.decision, self.holder = path, owner, timeout, decision, holder
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        if path is not None and decision == RUN:
            self._thread = threading.Thread(target=self._beat, name="avfewshot-claim-heartbeat", daemon=True)
            self._thread.start()

    @property
    def owned(self) -> bool:
        """This process holds the lock file (under torchrun only rank 0 does)."""
        return self.path is not None and self.decision == RUN

    def _beat(self) -> None:
        interval = max(0.05, min(60.0, self.timeout / 4))
        while not self._stop.wait(interval):
            try:
                os.utime(self.path)
            except OSError:
                pass

    def still_ours(self) -> bool:
        owner, _, _ = read_lock(self.path) if self.path is not None else (None, b"", None)
        return owner is not None and self.owner is not None and owner.token == self.owner.token

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.owned and self.still_ours():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def try_claim(run_dir: Path, timeout: float = DEFAULT_TIMEOUT, say: Callable[[str], None] = print) -> Claim:
    """Claim ``run_dir`` for this process: ``.decision`` is RUN (ours) or HELD (``.holder`` runs it)."""
    from ..outputs import check_output_dir

    run_dir = check_output_dir(run_dir, "run folder")  # read-only, a file in the way, full disk: one line
    lock = run_dir / LOCK_FILE
    me = this_process()
    holder: Optional[Owner] = None
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder, raw, mtime = read_lock(lock)
            if mtime is None:
                continue  # released meanwhile: try again
            why = stale_reason(holder, mtime, timeout)
            if why is None:
                return Claim(None, None, timeout, HELD, holder)
            if _remove_if_unchanged(lock, raw):
                say(f"[sweep] taking over {run_dir}: its claim is stale ({why})")
            continue
        try:
            os.write(fd, json.dumps(asdict(me), sort_keys=True).encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        return Claim(lock, me, timeout)
    return Claim(None, None, timeout, HELD, holder)


def holder_of(run_dir: Path, timeout: float = DEFAULT_TIMEOUT) -> Optional[Owner]:
    """The live owner of ``run_dir``'s claim, or None (no lock, or a stale one); for ``--dry-run``."""
    owner, _, mtime = read_lock(Path(run_dir) / LOCK_FILE)
    if mtime is None or stale_reason(owner, mtime, timeout) is not None:
        return None
    return owner or Owner("?", 0, 0.0, None, "")


def claim_cell(run_dir: Path, is_finished: Callable[[Path], bool], timeout: float = DEFAULT_TIMEOUT,
               say: Callable[[str], None] = print) -> Claim:
    """Claim a cell and re-check that it is still unfinished; under torchrun rank 0 decides for all ranks."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _claim_unfinished(run_dir, is_finished, timeout, say)
    import torch

    from ..engine.distributed import init_from_environment

    ctx = init_from_environment()
    claim, error = None, None
    if ctx.main:
        try:
            claim = _claim_unfinished(run_dir, is_finished, timeout, say)
        except Exception as exc:  # noqa: BLE001 - the other ranks must hear about it, not wait forever
            error = exc
    decision = [claim.decision if claim is not None else (str(error) if error is not None else None)]
    torch.distributed.broadcast_object_list(decision, src=0)
    if error is not None:
        raise error
    if decision[0] not in (RUN, HELD, FINISHED):
        raise UserError(f"rank 0 could not claim {run_dir}: {decision[0]}")
    return claim if claim is not None else Claim(None, None, timeout, decision[0])


def _claim_unfinished(run_dir: Path, is_finished, timeout: float, say) -> Claim:
    claim = try_claim(run_dir, timeout, say)
    if claim.decision == RUN and is_finished(run_dir):  # finished between our first look and the claim
        claim.release()
        claim.decision = FINISHED
    return claim


def remove_orphan_temp_files(run_dir: Path) -> int:
    """Delete ``.<name>.*.tmp`` files of interrupted atomic writes in a cell this process has claimed.

    Only the claim holder writes in a run folder, so while we hold the claim every such file belongs
    to a process that is gone. Returns how many were removed.
    """
    removed = 0
    for stale in Path(run_dir).glob(".*.tmp"):
        stale.unlink(missing_ok=True)
        removed += 1
    return removed
