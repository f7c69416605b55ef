"""Run one supervised experiment (``avfewshot supervised``): train, select on validation, test, write the run folder.

The few-shot runner's rules (``engine/trainer.py``): the run folder holds config.yaml (the resolved typed
config), run.log, ``checkpoint_last.pt`` after every epoch (trainable state, optimiser, scheduler, scaler,
history, selection state; fingerprinted, ``engine/resume.py``), and once finished ``trainable.pt`` and
``metrics.json`` (written last: its presence means "finished", and a finished run is skipped unless
``force``). Every epoch re-seeds its RNGs from (seed, epoch), so a run killed at any point and restarted
ends with exactly the metrics of an uninterrupted one. The trivial baselines' scores sit beside the model's.
"""
from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from ..config import dump_yaml, to_dict
from ..errors import UserError
from . import results as res
from .supervised_config import METHOD, SupervisedRunConfig

log = logging.getLogger("avfewshot")
#: settings that change where or how fast a run goes, not what it computes
NOT_FINGERPRINTED = {"results_dir", "data.root", "data.cache_dir", "data.st_features", "train.threads",
                     "train.eval_batch_size", "train.device"}
#: metrics.json ``shots`` of a supervised run (the whole training split): aggregate shows it as "all"
SUPERVISED_SHOTS = -1


def data_root(cfg: SupervisedRunConfig) -> Path:
    if cfg.demo:
        from ..data.synth.supervised_demo import ensure_supervised_demo

        return ensure_supervised_demo(cfg.task)
    root = Path(cfg.data.root).expanduser()
    if not root.is_dir():
        raise UserError(f"--data-root {root} is not a folder; give the {cfg.task} dataset root (see README, "
                        f"'Supervised runners')")
    return root


def build_task_run(cfg: SupervisedRunConfig, root: Optional[Path] = None):
    """The task run (model, batches, evaluation, baselines) of ``cfg``; the model's initialisation is seeded."""
    root = root or data_root(cfg)
    torch.manual_seed(cfg.seed)
    if cfg.task in ("ave", "avvp"):
        from ..supervised.runs import build_clip_task_run

        return build_clip_task_run(cfg.task, root, cfg)
    from ..supervised_heads.adapted_runs import build_head_task_run

    return build_head_task_run(cfg.task, root, cfg)


def fingerprint(cfg: SupervisedRunConfig, task_run) -> Dict[str, str]:
    from .resume import _flat, file_digest

    flat = {k: repr(v) for k, v in _flat(to_dict(cfg)).items() if k not in NOT_FINGERPRINTED}
    for path in task_run.data_files:
        flat[f"data_file.{Path(path).name}"] = file_digest(path) if Path(path).is_file() else "missing"
    return flat


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run_supervised_experiment(cfg: SupervisedRunConfig, force: bool = False, progress: bool = True, say=print) -> Dict:
    """Run (or resume, or skip when finished) one supervised (task, preset, seed) experiment."""
    from ..outputs import check_output_dir
    from .device import resolve_device
    from .trainer import _setup_logging

    resolve_device(cfg.train.device)  # a missing GPU is an error before anything is built or written
    run_dir = cfg.run_dir()
    if res.is_finished(run_dir) and not force:
        say(f"[avfewshot] {run_dir} is finished; skipping (use --force to run again)")
        return res.read_json(run_dir / res.METRICS_FILE)
    check_output_dir(run_dir, "run folder")
    if force:
        for name in (res.METRICS_FILE, res.LAST_CKPT, res.FINAL_CKPT):
            (run_dir / name).unlink(missing_ok=True)
    handler = _setup_logging(run_dir)
    try:
        return _run(cfg, run_dir, progress, say)
    finally:
        log.removeHandler(handler)
        handler.close()


def _run(cfg: SupervisedRunConfig, run_dir: Path, progress: bool, say) -> Dict:
    from . import resume
    from .device import resolve_device
    from .trainer import _environment

    started = time.time()
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    if cfg.demo:
        say(f"[avfewshot] no --data-root: supervised {cfg.task} on its embedded synthetic demo ({cfg.preset} preset). "
            f"Its numbers only show that the pipeline works; they say nothing about the method.")
    device = resolve_device(cfg.train.device)
    task_run = build_task_run(cfg)
    task_run.model.to(device)
    task_run.device = device
    fp = fingerprint(cfg, task_run)
    checkpoint = resume.read_checkpoint(run_dir / res.LAST_CKPT, fp, say)
    res.write_text(run_dir / res.CONFIG_FILE, dump_yaml(cfg))
    log.info("supervised run %s: task=%s preset=%s seed=%d device=%s precision=%s", run_dir, cfg.task, cfg.preset,
             cfg.seed, device, cfg.train.precision)
    history, best, train_time = _train(cfg, task_run, run_dir, fp, checkpoint, progress, say)
    test = _evaluate(task_run, "test", cfg)
    main = task_run.main_metric
    baselines = task_run.baselines("test")
    params = task_run.model.trainable_parameters()
    metrics = {
        "task": cfg.task, "method": METHOD, "shots": SUPERVISED_SHOTS, "seed": cfg.seed, "preset": cfg.preset,
        "demo": cfg.demo, "selection": cfg.train.selection, "main_metric": main,
        "encoder": "standin" if cfg.model.encoder == "standin" and cfg.task in ("avs_s4", "avs_ms3", "avqa")
        else f"adapted-{cfg.model.size}",
        "test": test, "baseline": {"test": baselines},
        "beats_baselines": all(test[main] > scores[main] for scores in baselines.values()),
        "best_epoch": best["epoch"], "val_score": best["score"], "history": history,
        "num_train_clips": task_run.counts["train"], "num_val_clips": task_run.counts["val"],
        "num_test_clips": task_run.counts["test"],
        "trainable_parameters": int(sum(p.numel() for p in params)),
        "train_seconds": round(train_time, 2), "total_seconds": round(time.time() - started, 2),
        "environment": _environment(device, cfg.train.precision),
    }
    res.save_torch(run_dir / res.FINAL_CKPT, {"task": cfg.task, "method": METHOD, "state": task_run.model.trainable_state()})
    res.write_json(run_dir / res.METRICS_FILE, metrics)  # written last: its presence means "finished"
    (run_dir / res.LAST_CKPT).unlink(missing_ok=True)
    shown = ", ".join(f"{name} {scores[main]:.2f}" for name, scores in baselines.items())
    say(f"[avfewshot] supervised {cfg.task} / {cfg.preset} / seed {cfg.seed}: test {main} {test[main]:.2f} "
        f"(trivial baseline: {shown}) -> {run_dir}")
    log.info("test metrics: %s; baselines: %s", test, baselines)
    return metrics


def _evaluate(task_run, split: str, cfg: SupervisedRunConfig) -> Dict[str, float]:
    from ..precision import autocast_context

    with torch.inference_mode(), autocast_context(task_run.device.type, cfg.train.precision):
        return task_run.evaluate(split)


def _train(cfg: SupervisedRunConfig, task_run, run_dir: Path, fp: Dict[str, str], checkpoint: Optional[Dict],
           progress: bool, say):
    from ..precision import autocast_context, grad_scaler, optimizer_step
    from . import resume
    from .trainer import epoch_seed

    model, t = task_run.model, cfg.train
    params = model.trainable_parameters()
    optimizer = torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=t.step_size, gamma=t.gamma)
    scaler = grad_scaler(task_run.device.type, t.precision)
    start, history, best, best_state, stale, stopped = 0, [], {"score": None, "epoch": None}, None, 0, False
    ckpt_path = run_dir / res.LAST_CKPT
    if checkpoint is not None and resume.restore(checkpoint, model, optimizer, scheduler, ckpt_path, say, scaler):
        start, history, best = checkpoint["epoch"], checkpoint["history"], checkpoint["best"]
        best_state, stale, stopped = checkpoint.get("best_state"), checkpoint.get("stale", 0), checkpoint.get("stopped", False)
        say(f"[avfewshot] resuming {run_dir} after epoch {start}")
    selection_split = "test" if t.selection == "best_on_test_UNSAFE" else "val"
    if t.selection == "best_on_test_UNSAFE":
        say("[avfewshot] WARNING: train.selection=best_on_test_UNSAFE selects the epoch on the TEST split (the released "
            "AVE protocol); its test numbers are optimistic")
    t0 = time.time()
    for epoch in range(start, t.epochs):
        if stopped:
            break
        seed = epoch_seed(cfg.seed, epoch)
        seed_everything(seed)
        model.train()
        totals, count = {}, 0
        for batch in task_run.train_batches(seed):
            with autocast_context(task_run.device.type, t.precision):
                loss, parts = task_run.step(batch, epoch)
            if not torch.isfinite(loss):
                raise UserError(f"the loss became {float(loss)} at epoch {epoch + 1}; lower train.lr or check the inputs")
            optimizer.zero_grad(set_to_none=True)
            (scaler.scale(loss) if scaler is not None else loss).backward()
            optimizer_step(optimizer, scaler)
            count += 1
            for key, value in parts.items():
                totals[key] = totals.get(key, 0.0) + float(value)
        scheduler.step()
        scores = _evaluate(task_run, selection_split, cfg)
        entry = {"epoch": epoch + 1, "train": {k: v / max(count, 1) for k, v in totals.items()}, selection_split: scores}
        history.append(entry)
        score = float(scores[task_run.main_metric])
        if t.selection != "last" and epoch >= task_run.first_selectable_epoch:
            if best["score"] is None or score > best["score"]:  # ties keep the earlier epoch
                best, best_state, stale = {"score": score, "epoch": epoch + 1}, model.trainable_state(), 0
            else:
                stale += 1
                stopped = bool(t.early_stop) and stale >= t.early_stop
        msg = f"epoch {epoch + 1}/{t.epochs}: loss {entry['train'].get('loss', float('nan')):.4f}, {selection_split} {task_run.main_metric} {score:.2f}"
        log.info(msg)
        if progress:
            say(f"[avfewshot] {msg}")
        res.save_torch(ckpt_path, {
            "format": resume.CHECKPOINT_FORMAT, "fingerprint": fp, "epoch": epoch + 1,
            "state": model.trainable_state(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None, "history": history, "best": best,
            "best_state": best_state, "stale": stale, "stopped": stopped,
        })
        if stopped:
            say(f"[avfewshot] early stop: no better {selection_split} {task_run.main_metric} for {stale} epochs")
    if best_state is not None:
        model.load_trainable_state(best_state)
    elif t.selection == "last":
        best = {"score": None, "epoch": len(history)}
    return history, best, time.time() - t0
