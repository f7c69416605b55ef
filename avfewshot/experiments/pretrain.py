"""Pretrain a method on the full VGG-Sound 40K train split, then write its transfer bundle.

The training is an ordinary engine run (task ``vggsound40k``: 141 events + background per second,
``data.split_protocol=full``: every train clip, selection on the val split), so it resumes after
an interruption and is skipped once finished. The bundle is then built from the run's final
trainable state (``trainable.pt``) and its resolved ``config.yaml``:

    avfewshot pretrain --dataset vggsound40k --data-root DIR --out bundles/dgsct_vggsound40k.pt
    avfewshot run --method dgsct --shots 0 --init bundles/dgsct_vggsound40k.pt --task ave

Without ``--data-root`` it pretrains on the synthetic VGG-Sound 40K of the demo.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence, Union

from ..errors import UserError

PathLike = Union[str, Path]
PRETRAIN_DATASETS = ("vggsound40k",)
PRETRAIN_KEYS = {"data.split_protocol": "full"}


def default_bundle_path(method: str, dataset: str, seed: int) -> Path:
    return Path("bundles") / f"{method}_{dataset}_seed{seed}.pt"


def pretrain_config(dataset: str = "vggsound40k", method: str = "dgsct", data_root: Optional[PathLike] = None,
                    config: Optional[PathLike] = None, overrides: Sequence[str] = (), seed: Optional[int] = None,
                    preset: Optional[str] = None, results_dir: PathLike = "results/pretrain"):
    from ..engine.build import resolve_run_config

    if dataset not in PRETRAIN_DATASETS:
        raise UserError(f"--dataset {dataset!r}: pretraining is defined for {', '.join(PRETRAIN_DATASETS)}")
    explicit = {"task": dataset, "method": method, "seed": seed, "preset": preset,
                "data.root": str(data_root) if data_root else None, "results_dir": str(results_dir), **PRETRAIN_KEYS}
    cfg = resolve_run_config(config, list(overrides), **explicit)
    if cfg.data.split_protocol != "full":
        raise UserError("pretraining uses every train clip: data.split_protocol must stay 'full'")
    if cfg.shots <= 0:
        raise UserError("pretraining needs training: shots must be > 0 (the full protocol ignores its value otherwise)")
    return cfg


def pretrain(dataset: str = "vggsound40k", method: str = "dgsct", data_root: Optional[PathLike] = None,
             out: Optional[PathLike] = None, config: Optional[PathLike] = None, overrides: Sequence[str] = (),
             seed: Optional[int] = None, preset: Optional[str] = None, results_dir: PathLike = "results/pretrain",
             progress: bool = True, force: bool = False, say: Callable[[str], None] = print) -> Path:
    """Train (or resume, or reuse) the pretraining run and write its bundle; returns the bundle path."""
    from ..engine.distributed import is_main_process
    from ..engine.trainer import run_experiment

    cfg = pretrain_config(dataset, method, data_root, config, overrides, seed, preset, results_dir)
    metrics = run_experiment(cfg, force=force, progress=progress)
    if not metrics.get("trainable_parameters"):
        raise UserError(f"method {method!r} has nothing to train, so there is nothing to pretrain; "
                        "zero-shot methods run as they are (`avfewshot run --shots 0`)")
    out = Path(out) if out else default_bundle_path(cfg.method, dataset, cfg.seed)
    if is_main_process():
        bundle_from_run(cfg.run_dir(), out, metrics)
        say(f"[avfewshot] pretraining bundle -> {out}\n"
            f"[avfewshot] zero-shot transfer: avfewshot run --method {cfg.method} --shots 0 --init {out} --task ave|ave_cls|llp_cls")
    return out


def bundle_from_run(run_dir: PathLike, out: PathLike, metrics: Optional[dict] = None) -> Path:
    """Rebuild a finished run's method from its config.yaml + trainable.pt and save its bundle."""
    from ..engine.build import rebuild_run
    from ..engine.bundles import save_bundle

    run = rebuild_run(run_dir, data="classes")
    extra = {"pretraining_run": str(run_dir)}
    if metrics:
        extra.update({"test": metrics.get("test"), "val_score": metrics.get("val_score"), "best_epoch": metrics.get("best_epoch"),
                      "num_train_clips": metrics.get("num_train_clips"), "demo": metrics.get("demo")})
    return save_bundle(out, run.method, run.cfg, run.class_names, extra)
