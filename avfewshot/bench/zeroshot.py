"""``avfewshot bench zeroshot``: zero-shot evaluation throughput on the demo, and where the time goes.

Runs the fused zero-shot classifier over the demo LLP test set through the engine's own
``predict`` path, with the frozen-feature cache off (every clip is encoded) and the decoded-input
cache warm, and times the four frozen towers with forward hooks. Prints clips/s, segments/s and
the share of wall time spent outside the encoders (data loading, collation, fusion, metrics).
A second line shows the same evaluation with the feature cache warm (no encoder runs at all).
``--precision fp32 bf16``: one measurement per precision (frozen towers stored in that dtype, the
evaluation under ``precision.autocast_context``).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Dict


class _TowerTimer:
    """Wall time spent inside the towers' forward calls (outermost calls only)."""

    def __init__(self, towers):
        self.seconds = 0.0
        self._depth = 0
        self._start = 0.0
        self.handles = []
        for tower in towers:
            self.handles.append(tower.register_forward_pre_hook(self._enter))
            self.handles.append(tower.register_forward_hook(self._exit))

    def _enter(self, *_):
        if self._depth == 0:
            self._start = time.perf_counter()
        self._depth += 1

    def _exit(self, *_):
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._start

    def remove(self):
        for h in self.handles:
            h.remove()


def run(repeats: int = 3, precision: str = "fp32") -> Dict[str, object]:
    from ..precision import autocast_context

    with autocast_context("cpu", precision):
        return _run(repeats, precision)


def _run(repeats: int, precision: str) -> Dict[str, object]:
    import torch

    from ..engine.build import build_run, resolve_run_config
    from ..precision import frozen_dtype_for
    from ..engine.trainer import evaluate, predict
    from ..methods.features import FeatureStore

    cfg = resolve_run_config(task="llp_cls", method="zeroshot", shots=0, **{
        "data.feature_cache": False, "train.precision": precision, "model.frozen_dtype": frozen_dtype_for(precision)})
    run = build_run(cfg, data="eval")  # decodes once: the decoded cache is warm
    task, backbone, data, method = run.task, run.backbone, run.data, run.method
    n = len(data.test)
    segments = n * 10
    predict(method, data.test, cfg)  # warm-up (allocator, lazy imports)

    timer = _TowerTimer([backbone.image, backbone.audio, backbone.clip_text, backbone.clap_text])
    walls, inside = [], []
    for _ in range(max(1, repeats)):
        timer.seconds = 0.0
        started = time.perf_counter()
        metrics = evaluate(method, data.test, task, cfg)
        walls.append(time.perf_counter() - started)
        inside.append(timer.seconds)
    timer.remove()
    best = min(range(len(walls)), key=walls.__getitem__)
    wall, enc = walls[best], inside[best]

    with tempfile.TemporaryDirectory() as scratch:
        method.features = FeatureStore(backbone, root=Path(scratch))
        predict(method, data.test, cfg)  # fills the feature cache
        started = time.perf_counter()
        cached_metrics = evaluate(method, data.test, task, cfg)
        cached_wall = time.perf_counter() - started
    assert cached_metrics == metrics, "the feature cache changed the zero-shot result"
    return {
        "benchmark": "zeroshot",
        "precision": precision,
        "dataset": "demo llp_cls test set",
        "clips": n,
        "threads": torch.get_num_threads(),
        "wall_seconds": round(wall, 4),
        "encoder_seconds": round(enc, 4),
        "clips_per_second": round(n / wall, 2),
        "segments_per_second": round(segments / wall, 2),
        "share_outside_encoders": round(1 - enc / wall, 4),
        "feature_cache_wall_seconds": round(cached_wall, 4),
        "feature_cache_clips_per_second": round(n / cached_wall, 2),
        "feature_cache_speedup": round(wall / cached_wall, 1),
        "accuracy": metrics["accuracy"],
    }


def main(args) -> int:
    precisions = list(getattr(args, "precision", None) or ["fp32"])
    every = {}
    for precision in precisions:
        every[precision] = figures = run(args.repeats or 3, precision)
        _print(figures)
    if args.out:
        from ..engine.results import write_json

        write_json(args.out, every[precisions[0]] if len(precisions) == 1 else every)
    return 0


def _print(figures: Dict[str, object]) -> None:
    print(f"zero-shot evaluation, {figures['dataset']} ({figures['clips']} clips, {figures['threads']} threads, "
          f"precision {figures['precision']}, accuracy {figures['accuracy']:.4f})")
    print(f"  encoders run:      {figures['clips_per_second']:8.2f} clips/s  {figures['segments_per_second']:8.2f} segments/s"
          f"  ({figures['wall_seconds']:.3f} s, {figures['encoder_seconds']:.3f} s inside the encoders)")
    print(f"  outside encoders:  {100 * figures['share_outside_encoders']:.1f} % of wall time")
    print(f"  features cached:   {figures['feature_cache_clips_per_second']:8.2f} clips/s"
          f"  ({figures['feature_cache_speedup']}x the encoder run, identical metrics)")
