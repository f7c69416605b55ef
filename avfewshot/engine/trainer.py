"""Train a method's trainable parameters, select, evaluate on test, write the run directory.

Resume rule: a checkpoint of the trainable state, optimiser, scheduler and selection state is
written atomically after every epoch, and every epoch re-seeds its RNGs from (seed, epoch), so a
killed run restarted from its last checkpoint ends with exactly the metrics of an uninterrupted run.
"""
from __future__ import annotations

import logging
import platform
import sys
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from .. import __version__
from ..config import RunConfig, dump_yaml
from ..errors import UserError
from ..precision import optimizer_step
from . import results as res
from .schedule import make_scheduler  # noqa: F401 - re-exported for callers of trainer.make_scheduler

log = logging.getLogger("avfewshot")

# -- building blocks --------------------------------------------------------------------------
def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919) % (2**31 - 1)


def make_optimizer(params, cfg: RunConfig) -> torch.optim.Optimizer:
    """``params``: a list of tensors or of parameter groups (``Method.optimizer_param_groups``)."""
    """The configured optimizer with fused updates: the same arithmetic as the per-parameter loop
    (to rounding, ~1e-8) in one vectorised pass per parameter. DG-SCT has 1,591 trainable tensors
    (93 M values): Adam's step measured 75 ms fused against 230 ms with ``foreach`` on CPU."""
    t = cfg.train
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay, fused=True)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay, fused=True)
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay, fused=True)
    raise UserError(f"unknown train.optimizer {t.optimizer!r}; valid: adam, adamw, sgd")


def model_device(method) -> torch.device:
    """The device the method's tensors live on (CPU for a method without any)."""
    for tensor in method.parameters():
        return tensor.device
    for tensor in method.buffers():
        return tensor.device
    return torch.device("cpu")


def loader(dataset, batch_size: int, cfg: RunConfig, shuffle_seed: Optional[int] = None, pin_memory: bool = False):
    """Batches of ``batch_size`` clips in total over all processes (each rank loads its share)."""
    from torch.utils.data import DataLoader

    from ..data.dataset import collate_clips
    from .distributed import EpochShardSampler, context

    ctx = context()
    if batch_size % ctx.world:
        raise UserError(f"batch size {batch_size} is not divisible by the {ctx.world} processes")
    sampler = EpochShardSampler(len(dataset), ctx, seed=shuffle_seed or 0, shuffle=shuffle_seed is not None)
    return DataLoader(
        dataset,
        batch_size=batch_size // ctx.world,
        sampler=sampler,
        collate_fn=collate_clips,
        num_workers=cfg.data.num_workers,
        pin_memory=pin_memory,
    )


@torch.inference_mode()
def predict(method, dataset, cfg: RunConfig, progress: bool = False, desc: str = "eval") -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fused per-segment scores (N, T, K), labels (N, C), segment labels (N, T), in dataset order.

    Runs on the method's device, under the run's precision, in inference mode. Under torchrun each rank
    predicts its shard and the shards are gathered on every rank.
    """
    from tqdm import tqdm

    from .device import to_device
    from .distributed import context
    from ..precision import autocast_context

    method.eval()
    device = model_device(method)
    parts = []
    batches = loader(dataset, cfg.train.eval_batch_size, cfg, pin_memory=device.type == "cuda")
    for batch in tqdm(batches, desc=desc, disable=not progress, leave=False):
        if batch is None:
            continue
        with autocast_context(device.type, cfg.train.precision):
            out = method(to_device(batch, device))
        parts.append((batch["index"].numpy(), out.fused.float().cpu().numpy(), batch["labels"].numpy(), batch["segment_labels"].numpy()))
    parts = [p for shard in context().gather(parts) for p in shard]
    if not parts:
        raise UserError(f"no clip of the {desc} set could be decoded")
    order = np.argsort(np.concatenate([p[0] for p in parts]), kind="stable")
    return tuple(np.concatenate([p[i] for p in parts])[order] for i in (1, 2, 3))


def evaluate(method, dataset, task, cfg: RunConfig, progress: bool = False, desc: str = "eval") -> Dict[str, float]:
    scores, labels, segs = predict(method, dataset, cfg, progress, desc)
    return task.evaluate(scores, labels, segs)


def warm_feature_cache(method, datasets, cfg: RunConfig, progress: bool = False) -> None:
    """One forward pass over every dataset fills the frozen-feature cache with whatever the method
    reads; afterwards the datasets stop reading media (their items carry labels and keys only)."""
    for ds in datasets:
        if ds is not None:
            predict(method, ds, cfg, progress, desc="features")
    for ds in datasets:
        if ds is not None:
            ds.media = False


def train_one_epoch(method, dataset, optimizer, cfg: RunConfig, epoch: int, progress: bool, model=None,
                    scaler=None) -> Dict[str, float]:
    """One pass over the train set; ``model`` is the (possibly DDP-wrapped) module whose forward runs.

    Forward and loss run under the run's precision on the method's device; with an fp16 ``scaler`` the loss
    is scaled for the backward pass and the gradients unscaled before clipping.
    """
    from tqdm import tqdm

    from .device import to_device
    from ..precision import autocast_context

    model = model or method
    method.train()
    device = model_device(method)
    params = method.trainable_parameters()
    totals: Dict[str, float] = {}
    count = 0
    batches = loader(dataset, cfg.train.batch_size, cfg, shuffle_seed=epoch_seed(cfg.seed, epoch), pin_memory=device.type == "cuda")
    bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.train.epochs}", disable=not progress, leave=False)
    for batch in bar:
        if batch is None:
            continue
        batch = to_device(batch, device)
        with autocast_context(device.type, cfg.train.precision):
            scores = model(batch)
            loss, parts = method.loss(batch, scores, epoch)
        if not torch.isfinite(loss):
            raise UserError(f"the loss became {float(loss)} at epoch {epoch + 1}; lower train.lr or check the inputs")
        optimizer.zero_grad(set_to_none=True)
        method.backward(scaler.scale(loss) if scaler is not None else loss, parts)
        if scaler is not None:
            scaler.unscale_(optimizer)
        if cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip, foreach=True)
        optimizer_step(optimizer, scaler)
        count += 1
        for key, value in {"loss": float(loss.detach()), **parts}.items():
            totals[key] = totals.get(key, 0.0) + float(value)
        bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
    stats = {k: v / max(count, 1) for k, v in totals.items()}
    from .distributed import context

    shards = context().gather(stats)  # each rank saw its share of every global batch: average them
    return {k: sum(s.get(k, 0.0) for s in shards) / len(shards) for k in stats}


# -- the run ----------------------------------------------------------------------------------
def _setup_logging(run_dir: Path) -> logging.Handler:
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / res.LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def _environment(device: torch.device, precision: str) -> Dict[str, str]:
    from ..runtime import describe_settings
    from .device import describe
    from .distributed import context

    return {
        **describe(device),
        "precision": precision,
        **describe_settings(),
        "avfewshot": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processes": str(context().world),
        "threads": str(torch.get_num_threads()),
        "argv": " ".join(sys.argv),
    }


def _usable(dataset) -> int:
    """Clips of a dataset that were not skipped (undecodable media with data.on_error=skip)."""
    if dataset is None:
        return 0
    return len(dataset) - len(set(getattr(dataset, "skipped", None) or []))


def run_experiment(cfg: RunConfig, force: bool = False, progress: bool = True, say=print) -> Dict:
    """Run (or resume, or skip when finished) one (task, method, shots, seed) experiment."""
    from .build import check_run_config
    from .distributed import init_from_environment

    check_run_config(cfg)
    if cfg.train.device == "meta":
        raise UserError("train.device=meta builds shapes without memory: it counts parameters (avfewshot params), it cannot run")
    from .device import resolve_device

    resolve_device(cfg.train.device)  # a missing GPU is an error before anything is built or written
    ctx = init_from_environment(cfg.train.device)
    run_dir = cfg.run_dir()
    if res.is_finished(run_dir) and not force:
        if ctx.main:
            say(f"[avfewshot] {run_dir} is finished; skipping (use --force to run again)")
        return res.read_json(run_dir / res.METRICS_FILE)
    if ctx.main:  # a read-only folder, a file in the way or a full disk: one line naming the path, before any work
        from ..outputs import check_output_dir

        check_output_dir(run_dir, "run folder")
    if force and ctx.main:
        for name in (res.METRICS_FILE, res.LAST_CKPT, res.FINAL_CKPT):
            (run_dir / name).unlink(missing_ok=True)
    ctx.barrier()
    handler = _setup_logging(run_dir) if ctx.main else None
    say = say if ctx.main else (lambda *a, **k: None)
    try:
        return _run(cfg, run_dir, progress and ctx.main, say, ctx)
    finally:
        if handler:
            log.removeHandler(handler)
            handler.close()


def _run(cfg: RunConfig, run_dir: Path, progress: bool, say, ctx) -> Dict:
    from . import resume
    from .build import build_run
    from .device import resolve_device

    started = time.time()
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    if cfg.demo:
        say(f"[avfewshot] no --data-root: running on the embedded synthetic demo with tiny encoders (weights "
            f"{cfg.model.clip_weights} / {cfg.model.clap_weights}; 'demo' = pretrained on the synthetic concepts). Its "
            f"numbers only show that the pipeline works; they say nothing about the method.")
    device = resolve_device(cfg.train.device)
    run = build_run(cfg, data="train")
    method, task, data = run.method, run.task, run.data
    method.to(device)
    log.info("device %s, precision %s", device, cfg.train.precision)
    if method.features is not None and {"image", "audio"} <= set(method.cacheable_features):
        warm_feature_cache(method, [data.train, data.val, data.test], cfg, progress)
    checkpoint = None
    if cfg.shots > 0 and method.trainable_parameters() and ctx.main:
        checkpoint = resume.read_checkpoint(run_dir / res.LAST_CKPT, resume.fingerprint(cfg, run.backbone, data.split_file), say)
    if ctx.main:  # written only once the checkpoint (if any) is known to belong to this configuration
        res.write_text(run_dir / res.CONFIG_FILE, dump_yaml(cfg))
    log.info("run %s: task=%s method=%s shots=%d seed=%d preset=%s", run_dir, cfg.task, cfg.method, cfg.shots, cfg.seed, cfg.preset)

    params = method.trainable_parameters()
    history, best, train_time = [], {"score": None, "epoch": None}, 0.0
    if cfg.shots > 0 and params and cfg.train.epochs > 0:
        history, best, train_time = _train(cfg, run, run_dir, checkpoint, progress, say, ctx)
    elif cfg.shots > 0 and not params:
        log.info("method %s has nothing to train; evaluating as is", cfg.method)

    test_metrics = evaluate(method, data.test, task, cfg, progress, desc="test")
    metrics = {
        "task": cfg.task,
        "method": cfg.method,
        "shots": cfg.shots,
        "seed": cfg.seed,
        "preset": cfg.preset,
        "init": cfg.init,
        "split_protocol": cfg.data.split_protocol,
        "demo": cfg.demo,
        "selection": cfg.train.selection,
        "main_metric": task.main_metric,
        "test": test_metrics,
        "best_epoch": best["epoch"],
        "val_score": best["score"],
        "history": history,
        "num_train_clips": _usable(data.train),
        "num_val_clips": _usable(data.val),
        "num_test_clips": _usable(data.test),
        "skipped_clips": sorted({c for ds in (data.train, data.val, data.test) for c in (getattr(ds, "skipped", None) or [])}),
        "trainable_parameters": int(sum(p.numel() for p in params)),
        "split_file": str(data.split_file) if data.split_file else None,
        "train_seconds": round(train_time, 2),
        "total_seconds": round(time.time() - started, 2),
        "environment": _environment(device, cfg.train.precision),
        "text_feature_check": method.text_feature_report() if hasattr(method, "text_feature_report") else [],
    }
    if ctx.main:
        res.save_torch(run_dir / res.FINAL_CKPT, {"method": cfg.method, "state": method.trainable_state()})
        res.write_json(run_dir / res.METRICS_FILE, metrics)  # written last: its presence means "finished"
        (run_dir / res.LAST_CKPT).unlink(missing_ok=True)
    ctx.barrier()
    main = test_metrics[task.main_metric]
    extra = f", hit rate {test_metrics['hit_rate']:.2f}" if "hit_rate" in test_metrics else ""
    say(f"[avfewshot] {cfg.task} / {cfg.method} / {cfg.shots}-shot / seed {cfg.seed}: "
        f"test {task.main_metric} {main:.2f}{extra} ({test_metrics['num_clips']} clips) -> {run_dir}")
    log.info("test metrics: %s", test_metrics)
    return metrics


def _train(cfg: RunConfig, run, run_dir: Path, checkpoint: Optional[Dict], progress: bool, say, ctx):
    from . import resume
    from .distributed import wrap
    from .tensorboard import close_writer, log_scalars, tensorboard_writer_for

    method, task, data = run.method, run.task, run.data
    from ..precision import grad_scaler

    optimizer = make_optimizer(method.optimizer_param_groups(cfg.train), cfg)
    scheduler = make_scheduler(optimizer, cfg)
    scaler = grad_scaler(model_device(method).type, cfg.train.precision)
    start_epoch, history = 0, []
    best = {"score": None, "epoch": None}
    best_state = None
    ckpt_path = run_dir / res.LAST_CKPT
    if ctx.enabled:  # every rank resumes from what rank 0 read (only rank 0 reads and checks the file)
        checkpoint = ctx.broadcast(checkpoint)
    if checkpoint is not None and resume.restore(checkpoint, method, optimizer, scheduler, ckpt_path,
                                                 say if ctx.main else (lambda *_: None), scaler):
        start_epoch, history, best = checkpoint["epoch"], checkpoint["history"], checkpoint["best"]
        best_state = checkpoint.get("best_state")
        say(f"[avfewshot] resuming {run_dir} after epoch {start_epoch}")
        log.info("resumed after epoch %d", start_epoch)
    fingerprint = resume.fingerprint(cfg, run.backbone, data.split_file)
    selection = cfg.train.selection
    select_on = {"val": data.val, "best_on_test_UNSAFE": data.test}.get(selection)
    if selection == "val" and data.val is None:
        raise UserError("train.selection=val but the split has no validation clips; use train.selection=last")
    if selection == "best_on_test_UNSAFE":
        say("[avfewshot] WARNING: selecting the epoch on the TEST split (the released DG-SCT protocol); "
            "these numbers are optimistic and not a fair few-shot result")
    model = wrap(method, ctx)
    writer = tensorboard_writer_for(cfg, run_dir, say) if ctx.main else None
    t0 = time.time()
    for epoch in range(start_epoch, cfg.train.epochs):
        torch.manual_seed(epoch_seed(cfg.seed, epoch))
        stats = train_one_epoch(method, data.train, optimizer, cfg, epoch, progress, model=model, scaler=scaler)
        scheduler.step()
        entry = {"epoch": epoch + 1, **{k: round(v, 6) for k, v in stats.items()}}
        if select_on is not None:
            score = evaluate(method, select_on, task, cfg, desc="val" if selection == "val" else "test")[task.main_metric]
            entry["select_score"] = score
            if best["score"] is None or score > best["score"]:
                best = {"score": score, "epoch": epoch + 1}
                best_state = method.trainable_state()
        history.append(entry)
        log.info("epoch %d: %s", epoch + 1, entry)
        log_scalars(writer, entry, epoch + 1)
        if ctx.main:
            res.save_torch(ckpt_path, {
                "format": resume.CHECKPOINT_FORMAT,
                "fingerprint": fingerprint,
                "epoch": epoch + 1,
                "state": method.trainable_state(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "history": history,
                "best": best,
                "best_state": best_state,
            })
        ctx.barrier()
    close_writer(writer)
    if best_state is not None:
        method.load_trainable_state(best_state)
    elif selection == "last":
        best = {"score": None, "epoch": cfg.train.epochs}
    return history, best, time.time() - t0
