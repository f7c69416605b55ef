"""``avfewshot bench baselines``: what the frozen-feature cache and CoCoOp's text truncation buy.

On the embedded demo (the tiny demo encoders, the AVE task at 16 shots) it prints
- the training-epoch time of CoOp and CLIP-Adapter with the feature cache off and on (warm), and
  their ratio (the cache removes both towers from every step; target >= 20x);
- CoCoOp's training-step time (batch 1, every segment its own prompts) with full-length text
  sequences and with the sequences truncated to the longest real prompt.
The decoded-input cache is warm in every measurement. The epoch figure is what the engine does: with
every feature cached, the dataset stops reading media (items carry labels and cache keys only); the
"without data loading" figure runs the same steps on pre-collated batches, i.e. the method's own work.
``--precision fp32 bf16``: every figure once per precision (``train.precision`` and the frozen towers'
storage dtype set to it; the forward and loss of the steps timed here run under
``precision.autocast_context``, the epochs under whatever autocast the engine applies).
"""
from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional


def _build(work: Path, method: str, batch_size: int, method_args: Optional[Dict] = None, precision: str = "fp32"):
    """The demo AVE run of ``method`` at 16 shots (decoded cache in ``work``, feature cache off)."""
    import torch

    from ..engine.build import build_run, resolve_run_config
    from ..precision import frozen_dtype_for

    keys = {"train.precision": precision, "model.frozen_dtype": frozen_dtype_for(precision), "task": "ave", "method": method, "shots": 16, "seed": 1,
            "results_dir": str(work / "results"), "data.cache_dir": str(work / "decoded"), "data.feature_cache": False,
            "train.batch_size": batch_size, "train.optimizer": "sgd", "train.lr": 0.002, "train.epochs": 1}
    keys.update({f"method.{k}": v for k, v in (method_args or {}).items()})
    run = build_run(resolve_run_config(**keys), data="train")
    torch.manual_seed(0)
    return run


def _epoch_seconds(method, data, cfg, repeats: int) -> float:
    import torch

    from ..engine.trainer import make_optimizer, train_one_epoch

    optimizer = make_optimizer(method.trainable_parameters(), cfg)
    times = []
    for epoch in range(repeats):
        t0 = time.perf_counter()
        train_one_epoch(method, data.train, optimizer, cfg, epoch, progress=False)
        times.append(time.perf_counter() - t0)
    torch.manual_seed(0)
    return statistics.median(times)


def _compute_seconds(method, batches, repeats: int, precision: str = "fp32") -> float:
    """One pass of forward + backward + SGD step over pre-collated batches (no data loading)."""
    import torch

    from ..precision import autocast_context

    optimizer = torch.optim.SGD(method.trainable_parameters(), lr=0.002)
    method.train()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for batch in batches:
            with autocast_context("cpu", precision):
                scores = method(batch)
                loss, _ = method.loss(batch, scores, 0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _cache_figures(work: Path, name: str, repeats: int, precision: str = "fp32") -> Dict[str, float]:
    from ..engine.trainer import loader, make_optimizer, train_one_epoch, warm_feature_cache
    from ..methods.features import FeatureStore

    run = _build(work, name, batch_size=32, precision=precision)
    cfg, backbone, data, method = run.cfg, run.backbone, run.data, run.method
    # warm the decoded-input cache so both measurements read decoded clips
    train_one_epoch(method, data.train, make_optimizer(method.trainable_parameters(), cfg), cfg, 0, progress=False)
    batches = [b for b in loader(data.train, cfg.train.batch_size, cfg) if b is not None]
    uncached = _epoch_seconds(method, data, cfg, repeats)
    uncached_compute = _compute_seconds(method, batches, repeats, precision)
    method.features = FeatureStore(backbone, root=work / "features")
    warm_feature_cache(method, [data.train], cfg)  # as the engine does: fills the cache, then no media is read
    cached = _epoch_seconds(method, data, cfg, repeats)
    data.train.media = True  # the pre-collated batches below carry media
    cached_compute = _compute_seconds(method, batches, repeats, precision)
    return {"clips": len(data.train), "uncached_s": uncached, "cached_s": cached, "speedup": uncached / max(cached, 1e-9),
            "uncached_compute_s": uncached_compute, "cached_compute_s": cached_compute,
            "compute_speedup": uncached_compute / max(cached_compute, 1e-9)}


def _cocoop_figures(work: Path, repeats: int, steps: int = 3, precision: str = "fp32") -> Dict[str, float]:
    import torch

    from ..precision import autocast_context

    from ..data.dataset import collate_clips
    from ..methods.features import FeatureStore

    store = batch = None
    out: Dict[str, float] = {}
    for truncate in (False, True):
        run = _build(work, "cocoop", batch_size=1, method_args={"truncate_text": truncate}, precision=precision)
        method = run.method
        batch = batch if batch is not None else collate_clips([run.data.train[0]])
        store = store or FeatureStore(run.backbone, root=work / "features")
        method.features = store
        optimizer = torch.optim.SGD(method.trainable_parameters(), lr=0.002)
        method.train()

        def step():
            with autocast_context("cpu", precision):
                scores = method(batch)
                loss, _ = method.loss(batch, scores, 0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        step()  # warm-up (fills the feature cache)
        times: List[float] = []
        for _ in range(max(1, repeats) * steps):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        key = "truncated" if truncate else "full"
        out[f"{key}_step_s"] = statistics.median(times)
        out[f"{key}_text_length_clip"] = method.visual_branch.prompt_learner.max_length()
        out[f"{key}_text_length_clap"] = method.audio_branch.prompt_learner.max_length()
    out["speedup"] = out["full_step_s"] / max(out["truncated_step_s"], 1e-9)
    return out


def main(args) -> int:
    repeats = args.repeats or 2
    precisions = list(getattr(args, "precision", None) or ["fp32"])
    every = {}
    with tempfile.TemporaryDirectory(prefix="avfewshot-bench-baselines-") as tmp:
        work = Path(args.work_dir) if args.work_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for precision in precisions:
            every[precision] = _measure(work, repeats, precision)  # feature caches are keyed by the storage dtype
        if args.out:
            Path(args.out).write_text(json.dumps(every[precisions[0]] if len(precisions) == 1 else every, indent=2))
    return 0


def _measure(work: Path, repeats: int, precision: str) -> Dict[str, object]:
    figures = {"repeats": repeats, "precision": precision}
    print(f"demo AVE task, 16 shots, tiny demo encoders; median over repeats; precision {precision}")
    for name in ("coop", "clip_adapter"):
        f = _cache_figures(work, name, repeats, precision)
        figures[name] = f
        print(f"{name:<13} epoch ({f['clips']} clips, batch 32): no feature cache {f['uncached_s']:.3f} s, "
              f"cache {f['cached_s']:.3f} s, ratio {f['speedup']:.1f}x; without data loading "
              f"{f['uncached_compute_s']:.3f} s vs {f['cached_compute_s']:.3f} s, ratio {f['compute_speedup']:.1f}x")
    c = _cocoop_figures(work, repeats, precision=precision)
    figures["cocoop"] = c
    print(f"cocoop        step (batch 1): full text {c['full_step_s']:.3f} s "
          f"(CLIP {c['full_text_length_clip']} / CLAP {c['full_text_length_clap']} positions), truncated "
          f"{c['truncated_step_s']:.3f} s ({c['truncated_text_length_clip']} / {c['truncated_text_length_clap']}), "
          f"ratio {c['speedup']:.1f}x")
    return figures
