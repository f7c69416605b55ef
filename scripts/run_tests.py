"""Run the test suite as N concurrent pytest processes over disjoint sets of test files (default: one per CPU
core, at most 2), then print each shard's output and exit non-zero if any shard failed.

Why: most of the suite's time is a few single-threaded demo trainings (one torch thread each, so they do not
spin on a loaded machine); two of them run side by side on a 2-core machine. Files are dealt to shards by their
measured cost (``COST``, seconds on an idle 2-core machine; unknown files count 5 s), heaviest first, each to
the least loaded shard; files that share a session's results (``GROUPS``) stay together. Each shard has its own
session cache, so the demo towers and media are built once per shard.

    python scripts/run_tests.py [--shards N] [pytest options ...]
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COST = {  # seconds, measured 2026-12-03 (``pytest --durations=0``), rounded
    "test_demo_towers.py": 330, "test_supervised_avs_avqa_runner.py": 420, "test_supervised_runner.py": 260, "test_faults.py": 200, "test_precision_demo.py": 150,
    "test_device.py": 90, "test_experiments.py": 70, "test_package.py": 70, "test_distributed.py": 60,
    "test_precision.py": 50, "test_checkpoints.py": 45, "test_fused_bottleneck.py": 40, "test_run_checks.py": 50,
    "test_dgsct_method.py": 50, "test_runtime.py": 30, "test_released_towers.py": 20, "test_quickgelu.py": 20,
    "test_offline.py": 15, "test_supervised_avs_avqa_models.py": 60, "test_cache.py": 20, "test_avqa_data.py": 15, "test_injection.py": 15, "test_synth.py": 15,
}
NO_TESTS_COLLECTED = 5  # pytest's exit code
GROUPS = [("test_demo_towers.py", "test_precision_demo.py")]  # the second reads the first's session results


def deal(files, shards: int):
    """Lists of files per shard, balanced by ``COST``."""
    units = []
    grouped = {name for group in GROUPS for name in group}
    for group in GROUPS:
        members = [f for f in files if f.name in group]
        if members:
            units.append(members)
    units += [[f] for f in files if f.name not in grouped]
    units.sort(key=lambda unit: -sum(COST.get(f.name, 5) for f in unit))
    load, out = [0] * shards, [[] for _ in range(shards)]
    for unit in units:
        i = load.index(min(load))
        out[i] += unit
        load[i] += sum(COST.get(f.name, 5) for f in unit)
    return [sorted(shard) for shard in out if shard]


def main(argv) -> int:
    shards = min(2, os.cpu_count() or 1)
    if "--shards" in argv:
        at = argv.index("--shards")
        shards, argv = int(argv[at + 1]), argv[:at] + argv[at + 2:]
    files = sorted((REPO / "tests").glob("test_*.py"))
    named = [a for a in argv if a.startswith("tests") or "::" in a or a.endswith(".py")]
    if shards <= 1 or named:  # one process when files or test ids are named
        return subprocess.call([sys.executable, "-m", "pytest", *([] if named else ["tests"]), *argv], cwd=REPO)
    base = Path(tempfile.mkdtemp(prefix="avfewshot-tests-"))
    started = time.time()
    procs, logs = [], []
    for i, shard in enumerate(deal(files, shards)):
        # the first shard prints as it goes (a CI log shows progress); the others are printed when they end
        log = None if i == 0 else tempfile.TemporaryFile(mode="w+")
        cmd = [sys.executable, "-m", "pytest", *[str(f.relative_to(REPO)) for f in shard], *argv,
               f"--basetemp={base / f'shard{i + 1}'}"]
        print(f"[tests] shard {i + 1}: {len(shard)} files", flush=True)
        procs.append(subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT if log else None))
        logs.append(log)
    codes = [p.wait() for p in procs]
    for i, log in enumerate(logs):
        if log is not None:
            log.seek(0)
            print(f"\n===== shard {i + 1} (exit {codes[i]}) =====", flush=True)
            sys.stdout.write(log.read())
    if 0 in codes:  # a selection (-k, -m) that matches nothing in one shard is not a failure
        codes = [0 if c == NO_TESTS_COLLECTED else c for c in codes]
    print(f"\n[tests] {len(procs)} shards, exit codes {codes}, {time.time() - started:.0f} s wall", flush=True)
    failed = next((c for c in codes if c != 0), 0)
    if not failed:
        shutil.rmtree(base, ignore_errors=True)
    else:
        print(f"[tests] the shards' temporary folders are kept under {base}", flush=True)
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
