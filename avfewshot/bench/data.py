"""``avfewshot bench data``: cold-decode vs warm-cache throughput of the Dataset on synthetic LLP.

Synthesises the LLP demo-sized set in a scratch folder, then iterates the AVClipDataset (CLAP
spec: 224 px frames, 48 kHz audio) ``repeats`` times cold (the decoded cache emptied first: every
clip decoded, resized, resampled and written), each cold pass followed by ``repeats`` warm passes
(every clip a cache hit: read, CRC-32 checked, normalised). Cold and warm passes are interleaved so
both see the same machine load. Prints the median clips/s of each, the spread, and the ratio of
the medians (target: warm >= 10x cold); the ratio of each cold pass to its own warm passes gives
the ratio's spread. CPU time per clip (all threads of the process) is reported too: unlike wall
time it barely moves with other processes' load, so it tells a busy machine from a slow path.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple


def _pass(dataset) -> Tuple[float, float]:
    """(wall, CPU) seconds to fetch every item (what a DataLoader with num_workers=0 does)."""
    started, cpu = time.perf_counter(), time.process_time()
    for index in range(len(dataset)):
        item = dataset[index]
        if item is None:
            raise RuntimeError(f"clip {dataset.records[index].clip_id} failed to decode")
    return time.perf_counter() - started, time.process_time() - cpu


def _load() -> List[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux / macOS
        return []


def _spread(values: List[float]) -> List[float]:
    return [round(min(values), 2), round(max(values), 2)]


def run(work_dir: Path, repeats: int = 3) -> Dict[str, object]:
    from ..data.annotations import read_annotations
    from ..data.cache import DecodedCache
    from ..data.checksum import CRC32_IMPLEMENTATION
    from ..data.dataset import AVClipDataset
    from ..data.media import MediaSpec
    from ..data.synth import DEMO_SIZES, make_dataset

    repeats = max(1, int(repeats))
    root = work_dir / "llp"
    started = time.perf_counter()
    make_dataset("llp", root, seed=0, layout="raw", **DEMO_SIZES["llp"])
    synth_seconds = time.perf_counter() - started
    annotations = read_annotations("llp", root)
    spec = MediaSpec(image_size=224, audio_rate=48000, image_norm="clip")
    cache = DecodedCache(work_dir / "decoded-cache", enabled=True)
    dataset = AVClipDataset(annotations.records, len(annotations.class_names), root, spec, cache=cache, background=False)
    n = len(dataset)

    # warm the imports (torch, decord, av, torchaudio) outside the measurement
    from ..data.media import decode_clip, find_media

    decode_clip(find_media(root, annotations.records[0].media_id, "raw"), spec)

    load_before = _load()
    cold, cold_cpu, warm, warm_cpu, ratios = [], [], [], [], []
    decodes, hits, warm_decodes = 0, 0, 0
    for _ in range(repeats):
        cache.clear()
        cache.reset_stats()
        seconds, cpu = _pass(dataset)
        cold.append(seconds)
        cold_cpu.append(cpu)
        decodes += cache.misses
        cache.reset_stats()
        these = [_pass(dataset) for _ in range(repeats)]
        warm.extend(t[0] for t in these)
        warm_cpu.extend(t[1] for t in these)
        hits += cache.hits
        warm_decodes += cache.misses
        ratios.append(seconds / statistics.median(t[0] for t in these))
    size = sum(p.stat().st_size for p in cache.root.rglob("*.clip"))
    cold_median, warm_median = statistics.median(cold), statistics.median(warm)
    return {
        "benchmark": "data",
        "dataset": "synthetic llp (demo size)",
        "clips": n,
        "spec": spec.as_dict(),
        "crc32": CRC32_IMPLEMENTATION,
        "synth_seconds": round(synth_seconds, 3),
        "repeats": repeats,
        "cold_seconds_each": [round(t, 3) for t in cold],
        "cold_clips_per_s": round(n / cold_median, 2),
        "cold_clips_per_s_range": _spread([n / t for t in cold]),
        "cold_decodes": decodes,
        "cold_cpu_ms_per_clip": round(statistics.median(cold_cpu) / n * 1e3, 2),
        "warm_seconds_each": [round(t, 4) for t in warm],
        "warm_clips_per_s": round(n / warm_median, 2),
        "warm_clips_per_s_range": _spread([n / t for t in warm]),
        "warm_ms_per_clip": round(warm_median / n * 1e3, 3),
        "warm_cpu_ms_per_clip": round(statistics.median(warm_cpu) / n * 1e3, 3),
        "warm_hits": hits,
        "warm_misses": warm_decodes,
        "ratio_warm_over_cold": round(cold_median / warm_median, 2),
        "ratio_each_cold_pass": [round(r, 2) for r in ratios],
        "ratio_cpu": round(statistics.median(cold_cpu) / statistics.median(warm_cpu), 2),
        "load_average_before": load_before,
        "load_average_after": _load(),
        "cache_mb": round(size / 1e6, 1),
    }


def main(args) -> int:
    repeats = args.repeats if getattr(args, "repeats", None) else 3
    work = getattr(args, "work_dir", None)
    temp = None
    if work:
        work_dir = Path(work)
        work_dir.mkdir(parents=True, exist_ok=True)
    else:
        temp = tempfile.mkdtemp(prefix="avfewshot-bench-data-")
        work_dir = Path(temp)
    try:
        result = run(work_dir, repeats)
    finally:
        if temp:
            shutil.rmtree(temp, ignore_errors=True)
    r = result
    k = r["repeats"]
    print(f"synthetic LLP: {r['clips']} clips (synthesised in {r['synth_seconds']:.1f} s); "
          f"load average {r['load_average_before']} before, {r['load_average_after']} after")
    print(f"cold (decode + cache write): {r['cold_clips_per_s']:8.1f} clips/s  median of {k} passes "
          f"(range {r['cold_clips_per_s_range'][0]}-{r['cold_clips_per_s_range'][1]}; {r['cold_decodes']} decodes; "
          f"CPU {r['cold_cpu_ms_per_clip']:.1f} ms/clip)")
    print(f"warm (cache hits):           {r['warm_clips_per_s']:8.1f} clips/s  median of {k * k} passes "
          f"(range {r['warm_clips_per_s_range'][0]}-{r['warm_clips_per_s_range'][1]}; {r['warm_misses']} decodes; "
          f"{r['warm_ms_per_clip']:.2f} ms/clip, CPU {r['warm_cpu_ms_per_clip']:.2f} ms/clip; CRC-32 by {r['crc32']})")
    target = "meets" if r["ratio_warm_over_cold"] >= 10 else "BELOW"
    each = ", ".join(f"{x:.1f}" for x in r["ratio_each_cold_pass"])
    print(f"warm / cold: {r['ratio_warm_over_cold']:.1f}x, ratio of the medians ({target} the 10x target; "
          f"each cold pass over its warm passes: {each}; in CPU time {r['ratio_cpu']:.1f}x); cache {r['cache_mb']} MB")
    if getattr(args, "out", None):
        from ..engine.results import write_text

        write_text(args.out, json.dumps(result, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.out}")
    return 0
