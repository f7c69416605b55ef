"""Parameter counts by module for ``avfewshot params``: real-size architectures, random weights, no files read."""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Optional, Tuple


def count_by_module(method, depth: int = 2) -> "OrderedDict[str, Tuple[int, int]]":
    """name prefix (first ``depth`` components) -> (trainable, total)."""
    table: "OrderedDict[str, List[int]]" = OrderedDict()
    for name, p in method.named_parameters():
        key = ".".join(name.split(".")[:depth])
        row = table.setdefault(key, [0, 0])
        row[1] += p.numel()
        if p.requires_grad:
            row[0] += p.numel()
    return OrderedDict((k, (v[0], v[1])) for k, v in table.items())


def build_real_size(method_name: str, task_name: str, preset: str, clip_arch: Optional[str], overrides: List[str]):
    """The method at real size (the preset's architectures), random weights, the dataset's official class list."""
    from .build import TowerCache, build_run, resolve_run_config

    explicit: Dict[str, object] = {"method": method_name, "task": task_name, "preset": preset, "seed": 0,
                                   "model.clip_weights": "none", "model.clap_weights": "none"}
    if clip_arch:
        explicit["model.clip_arch"] = clip_arch
    cfg = resolve_run_config(None, overrides, demo_layers=False, **explicit)
    run = build_run(cfg, data="none", towers=TowerCache(), placeholder_tokenizer=True)
    return run.method, cfg


def print_parameter_table(method_name, task_name, preset, clip_arch, overrides, depth: int = 2) -> None:
    method, cfg = build_real_size(method_name, task_name, preset, clip_arch, overrides)
    rows = count_by_module(method, depth)
    width = max(len(k) for k in rows) + 2
    print(f"{method_name} on {task_name} (preset {preset}; CLIP {cfg.model.clip_arch}, CLAP {cfg.model.clap_arch}; random weights)")
    print(f"{'module':<{width}}{'trainable':>14}{'total':>14}")
    for name, (trainable, total) in rows.items():
        print(f"{name:<{width}}{trainable:>14,}{total:>14,}")
    trainable = sum(v[0] for v in rows.values())
    total = sum(v[1] for v in rows.values())
    print(f"{'TOTAL':<{width}}{trainable:>14,}{total:>14,}  ({100.0 * trainable / max(total, 1):.2f} % trainable)")
    if hasattr(method, "parameter_groups"):
        for group, count in method.parameter_groups().items():
            print(f"  {group}: {count:,}")
