"""CPU run-time settings: denormal flushing, the memory allocator, the mmap threshold, huge pages.

Denormals. HTS-AT's shifted windows add a -100 mask before the softmax, so about half of those
attention weights are exp(-100 + ...) ~ 1e-44: subnormal floats. x86 arithmetic on subnormals is
slow (a batched 64x64 @ 64x24 product measured 22 ms with normal inputs, 579 ms with half of them
subnormal), and the backward pass multiplies them again. With flushing on (FTZ/DAZ), values below
1.2e-38 count as zero; they are below float32 resolution next to the weights they are summed with,
so the outputs agree to rounding. The setting is per thread and OpenMP workers copy it when they
are created, so it must happen before the first parallel torch operation: the CLI does it first;
API users who want it call ``configure()`` first thing. ``denormals_flushed()`` checks that every worker
flushes.

Allocator. glibc keeps freed blocks below its mmap threshold (dynamic, up to 32 MB) for reuse; over
training steps the heap fragments and the resident size grows well past the live tensors. A fixed
threshold (``mmap_threshold_mb``) returns every larger block to the system at once, so the peak
resident memory tracks the live tensors, at the price of page faults on each large allocation
(about 1 µs per 4 KB page on the reference machine).

Huge pages. PyTorch's own switch ``THP_MEM_ALLOC_ENABLE=1`` aligns large CPU tensors to 2 MB and
asks the kernel for transparent huge pages, so a fresh 126 MB tensor costs 63 page faults instead
of 30,000. Read once by torch's allocator, so it is set before torch is imported. With
DG-SCT's unit checkpointing, huge pages and a 32 MB threshold measured 12.3 s per step and 7.4 GB
(8 MB threshold, 4 KB pages: 15-18 s, 7.8 GB).

Allocator choice. The fastest setting measured is not a glibc tuning but another allocator:
tcmalloc (Debian/Ubuntu package ``libtcmalloc-minimal4``) keeps freed large blocks in its own page
heap and hands them out again, so once warm a training step makes almost no page faults (0-50 per
DG-SCT step instead of ~360,000 with glibc; a fault costs ~9 µs per 4 KB page on the reference
machine) and the heap does not fragment: `avfewshot bench dgsct` measured 7.5-8.1 s per step and
7.5-7.6 GB peak RSS against 9.3-9.5 s and 10.0-10.7 GB with glibc (exact GELU, copies and fresh
matmul outputs were paying for the faults). Freed pages are kept (``TCMALLOC_RELEASE_RATE=0``):
with tcmalloc's default release rate later steps faulted them in again. An allocator can only be
chosen when the process starts (``LD_PRELOAD``), so ``AVFEWSHOT_ALLOCATOR=tcmalloc`` makes the ``avfewshot`` command restart itself once, before it
imports torch, with the library preloaded (``adopt_allocator``); ``allocator_environment`` gives
the environment for a child process (the benchmark uses it). A requested library that is not
installed is a one-line error saying which package to install. The glibc settings above
(threshold, huge pages) are for glibc's malloc and are not needed with tcmalloc.

Who applies them. Only the ``avfewshot`` command, first thing (``configure()``), from its options
``--denormals``, ``--allocator``, ``--mmap-threshold-mb``, ``--huge-pages`` or the environment:
``AVFEWSHOT_DENORMALS`` = flush (default) | keep, ``AVFEWSHOT_ALLOCATOR`` = system (default) | tcmalloc,
``AVFEWSHOT_MMAP_THRESHOLD_MB`` = an integer (unset: glibc's default), ``AVFEWSHOT_HUGE_PAGES`` = 1 (sets
``THP_MEM_ALLOC_ENABLE``). Importing avfewshot or calling its API (``avfewshot.run``) changes none of them: a
notebook calls ``avfewshot.runtime.configure()`` itself when it wants them. Every run records the settings in
force in ``metrics.json`` (``describe_settings``).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import warnings
from pathlib import Path
from typing import Dict, List, Mapping, Optional

M_MMAP_THRESHOLD = -3  # mallopt parameter number (glibc malloc.h)
ALLOCATOR_VARIABLE = "AVFEWSHOT_ALLOCATOR"
#: allocator name -> (library names for ctypes.util.find_library, the package that provides it)
ALLOCATORS: Dict[str, tuple] = {
    "tcmalloc": (("tcmalloc_minimal", "tcmalloc"), "libtcmalloc-minimal4 (Debian/Ubuntu) or gperftools-libs (Fedora)"),
}
_REEXEC_GUARD = "_AVFEWSHOT_ALLOCATOR_RESTARTED"
_configured = False


def requested_allocator(environ: Optional[Mapping[str, str]] = None) -> str:
    """The allocator named by ``AVFEWSHOT_ALLOCATOR`` (default ``system``)."""
    from .errors import UserError

    name = (environ if environ is not None else os.environ).get(ALLOCATOR_VARIABLE, "").strip() or "system"
    if name != "system" and name not in ALLOCATORS:
        raise UserError(f"{ALLOCATOR_VARIABLE}={name!r}: valid are system, {', '.join(ALLOCATORS)}")
    return name


def find_allocator(name: str) -> str:
    """The library to preload for ``name`` (a file name the dynamic loader finds)."""
    from .errors import UserError

    libraries, package = ALLOCATORS[name]
    for library in libraries:
        found = ctypes.util.find_library(library)
        if found:
            return found
    raise UserError(f"{ALLOCATOR_VARIABLE}={name}: lib{libraries[0]}.so was not found by the dynamic loader; "
                    f"install {package}, or unset {ALLOCATOR_VARIABLE} to use the C library's malloc")


def loaded_allocator() -> str:
    """Which allocator this process runs with: a name from ``ALLOCATORS`` or ``system``."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "system"
    for name, (libraries, _) in ALLOCATORS.items():
        if any(f"lib{library}.so" in maps for library in libraries):
            return name
    return "system"


def allocator_environment(name: str, environ: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """A copy of the environment that starts a process with allocator ``name`` preloaded."""
    env = dict(os.environ if environ is None else environ)
    env[ALLOCATOR_VARIABLE] = name
    env.pop(_REEXEC_GUARD, None)
    # drop any allocator this process was started with (e.g. a parent run with tcmalloc)
    known = [f"lib{library}.so" for libraries, _ in ALLOCATORS.values() for library in libraries]
    preload = [item for item in env.get("LD_PRELOAD", "").split() if not any(k in item for k in known)]
    if name != "system":
        preload.insert(0, find_allocator(name))
    if preload:
        env["LD_PRELOAD"] = " ".join(preload)
    else:
        env.pop("LD_PRELOAD", None)
    if name == "system":
        return env
    # tcmalloc reports every allocation over 1 GB on stderr by default; not an error here
    env.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(1 << 40))
    # keep freed pages for reuse: returning them made later steps fault them in again (860,000
    # faults and +40 % step time measured with the default release rate)
    env.setdefault("TCMALLOC_RELEASE_RATE", "0")
    return env


def adopt_allocator(command: List[str]) -> None:
    """Restart this process as ``command`` with the requested allocator preloaded, if it is not
    already in use. Call it before torch is imported; it returns only when nothing needs doing."""
    name = requested_allocator()
    if name == "system" or loaded_allocator() == name:
        return
    if os.environ.get(_REEXEC_GUARD):
        warnings.warn(f"{ALLOCATOR_VARIABLE}={name}: the restarted process still runs without it "
                      f"(LD_PRELOAD ignored?); continuing with the C library's malloc", RuntimeWarning, stacklevel=2)
        return
    env = allocator_environment(name)
    env[_REEXEC_GUARD] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command, env)


def flush_denormals(on: bool = True) -> bool:
    """Set FTZ/DAZ on this thread (and on OpenMP workers created afterwards)."""
    import torch

    return bool(torch.set_flush_denormal(on))


def denormals_flushed() -> bool:
    """True when multi-threaded torch operations (ATen's and the BLAS's own threads) treat a
    subnormal input as zero everywhere."""
    import torch

    # subnormal floats from their bit pattern (a float conversion would already flush them)
    tiny = torch.full((1 << 18,), 1 << 20, dtype=torch.int32).view(torch.float32)  # ~1.5e-39
    products = torch.bmm(tiny.view(64, 64, 64), torch.ones(64, 64, 24))  # as the window attention
    return bool((tiny * 1.0).count_nonzero() == 0 and products.count_nonzero() == 0)


def set_mmap_threshold(megabytes: int) -> bool:
    """glibc ``mallopt(M_MMAP_THRESHOLD)``; False where the C library has no such call."""
    if megabytes <= 0 or megabytes > 32:
        raise ValueError(f"mmap threshold {megabytes} MB: glibc accepts 1..32 MB")
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):
        return False
    return mallopt is not None and bool(mallopt(M_MMAP_THRESHOLD, megabytes << 20))


def use_huge_pages() -> bool:
    """Ask torch's CPU allocator for transparent huge pages; False when torch is already imported
    (its allocator may have read the switch already)."""
    os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
    return "torch" not in sys.modules


def configure(denormals: Optional[str] = None, mmap_threshold_mb: Optional[int] = None,
              huge_pages: Optional[bool] = None) -> None:
    """Apply the settings once per process (arguments override the environment)."""
    global _configured
    if _configured and denormals is None and mmap_threshold_mb is None and huge_pages is None:
        return
    _configured = True
    from .errors import UserError

    if huge_pages is None:
        huge_pages = os.environ.get("AVFEWSHOT_HUGE_PAGES", "") not in ("", "0")
    if huge_pages and not use_huge_pages():
        warnings.warn("huge pages were requested after torch was imported: set AVFEWSHOT_HUGE_PAGES=1 (or "
                      "THP_MEM_ALLOC_ENABLE=1) in the environment instead", RuntimeWarning, stacklevel=2)

    allocator = requested_allocator()
    if allocator != "system" and loaded_allocator() != allocator:
        warnings.warn(f"{ALLOCATOR_VARIABLE}={allocator} takes effect when the process starts: the avfewshot "
                      f"command restarts itself with it; start your own program with "
                      f"LD_PRELOAD={find_allocator(allocator)}", RuntimeWarning, stacklevel=2)

    mode = denormals or os.environ.get("AVFEWSHOT_DENORMALS", "flush")
    if mode not in ("flush", "keep"):
        raise UserError(f"AVFEWSHOT_DENORMALS={mode!r}: use flush or keep")
    if mode == "flush":
        flush_denormals(True)
        if not denormals_flushed():
            warnings.warn("denormal flushing is off on some torch worker threads (they were started before "
                          "avfewshot.runtime.configure()): call it before any torch computation for full speed",
                          RuntimeWarning, stacklevel=2)
    threshold = mmap_threshold_mb
    raw = os.environ.get("AVFEWSHOT_MMAP_THRESHOLD_MB", "")
    if threshold is None and raw:
        if not raw.isdigit() or not 1 <= int(raw) <= 32:
            raise UserError(f"AVFEWSHOT_MMAP_THRESHOLD_MB={raw!r}: give a whole number of megabytes from 1 to 32 "
                            f"(or unset it for glibc's default)")
        threshold = int(raw)
    if threshold:
        set_mmap_threshold(threshold)
        _applied["mmap_threshold_mb"] = str(threshold)
    _applied["huge_pages"] = "on" if huge_pages else "off"


_applied: Dict[str, str] = {}


def describe_settings() -> Dict[str, str]:
    """The run-time settings in force in this process, for metrics.json (they change speed, and denormal
    flushing changes results at the 1e-38 level)."""
    return {
        "denormals": "flushed" if denormals_flushed() else "kept",
        "allocator": loaded_allocator(),
        "huge_pages": _applied.get("huge_pages", "on" if os.environ.get("THP_MEM_ALLOC_ENABLE") == "1" else "off"),
        "mmap_threshold_mb": _applied.get("mmap_threshold_mb", "glibc default"),
    }


#: command-line option -> environment variable (the CLI sets the variable, so a restarted process keeps it)
CLI_OPTIONS = {
    "denormals": "AVFEWSHOT_DENORMALS",
    "allocator": ALLOCATOR_VARIABLE,
    "mmap_threshold_mb": "AVFEWSHOT_MMAP_THRESHOLD_MB",
    "huge_pages": "AVFEWSHOT_HUGE_PAGES",
}


def add_cli_options(parser) -> None:
    """The run-time settings as options of the ``avfewshot`` command (before the sub-command)."""
    group = parser.add_argument_group("CPU run-time settings (also from the environment: see avfewshot.runtime)")
    group.add_argument("--denormals", choices=["flush", "keep"], default=None,
                       help="flush subnormal floats to zero (default: flush; AVFEWSHOT_DENORMALS)")
    group.add_argument("--allocator", choices=["system", *ALLOCATORS], default=None,
                       help="memory allocator; the command restarts itself with it (AVFEWSHOT_ALLOCATOR)")
    group.add_argument("--mmap-threshold-mb", type=int, default=None, metavar="N",
                       help="glibc's fixed mmap threshold, 1-32 MB (AVFEWSHOT_MMAP_THRESHOLD_MB)")
    group.add_argument("--huge-pages", action="store_true", default=None,
                       help="transparent huge pages for large tensors (AVFEWSHOT_HUGE_PAGES=1)")


def apply_cli_options(args) -> None:
    """Write the given options into the environment, where ``adopt_allocator`` and ``configure`` read them."""
    for name, variable in CLI_OPTIONS.items():
        value = getattr(args, name, None)
        if value is not None:
            os.environ[variable] = "1" if value is True else str(value)
