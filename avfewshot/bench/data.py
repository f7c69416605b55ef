"""``avfewshot bench data``: cold-decode vs warm-cache throughput of the Dataset on synthetic LLP.

Synthesises the LLP demo-sized set in a scratch folder, then iterates the AVClipDataset (CLAP
spec: 224 px frames, 48 kHz audio) once with an empty decoded cache (every clip decoded, resized,
resampled and written) and ``repeats`` more times with the cache full. Prints clips/s for both
and their ratio (target: warm >= 10x cold).
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Dict


def _pass(dataset) -> float:
    """Seconds to fetch every item (what a DataLoader with num_workers=0 does)."""
    started = time.perf_counter()
    for index in range(len(dataset)):
        item = dataset[index]
        if item is None:
            raise RuntimeError(f"clip {dataset.records[index].clip_id} failed to decode")
    return time.perf_counter() - started


def run(work_dir: Path, repeats: int = 3) -> Dict[str, object]:
    from ..data.annotations import read_annotations
    from ..data.cache import DecodedCache
    from ..data.dataset import AVClipDataset
    from ..data.media import MediaSpec
    from ..data.synth import DEMO_SIZES, make_dataset

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

    cold = _pass(dataset)
    cold_misses = cache.misses
    cache.reset_stats()
    warm_times = [_pass(dataset) for _ in range(max(1, repeats))]
    warm = min(warm_times)
    size = sum(p.stat().st_size for p in cache.root.rglob("*.clip"))
    return {
        "benchmark": "data",
        "dataset": "synthetic llp (demo size)",
        "clips": n,
        "spec": spec.as_dict(),
        "synth_seconds": round(synth_seconds, 3),
        "cold_seconds": round(cold, 4),
        "cold_clips_per_s": round(n / cold, 2),
        "cold_decodes": cold_misses,
        "warm_seconds_each": [round(t, 4) for t in warm_times],
        "warm_clips_per_s": round(n / warm, 2),
        "warm_hits": cache.hits,
        "warm_misses": cache.misses,
        "ratio_warm_over_cold": round(cold / warm, 2),
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
    print(f"synthetic LLP: {result['clips']} clips (synthesised in {result['synth_seconds']:.1f} s)")
    print(f"cold (decode + cache write): {result['cold_clips_per_s']:8.1f} clips/s  ({result['cold_seconds']:.2f} s, "
          f"{result['cold_decodes']} decodes)")
    print(f"warm (cache hits):           {result['warm_clips_per_s']:8.1f} clips/s  (best of {len(result['warm_seconds_each'])}, "
          f"{result['warm_misses']} decodes)")
    target = "meets" if result["ratio_warm_over_cold"] >= 10 else "BELOW"
    print(f"warm / cold: {result['ratio_warm_over_cold']:.1f}x ({target} the 10x target); cache {result['cache_mb']} MB")
    if getattr(args, "out", None):
        Path(args.out).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.out}")
    return 0
