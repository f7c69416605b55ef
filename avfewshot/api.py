"""The Python API the CLI mirrors: usable from a notebook.

>>> import avfewshot
>>> metrics = avfewshot.run(task="llp_cls", method="linear_probe", shots=16)   # the embedded demo
>>> avfewshot.load_results("results")                                           # every finished run
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from .config import RunConfig, parse_overrides, resolve_config


def make_config(config: Optional[Union[str, Path]] = None, overrides: Optional[Sequence[str]] = None, **explicit) -> RunConfig:
    """Resolve a run config: defaults -> preset -> recipe file -> explicit keys -> ``key=value`` overrides."""
    layer = {k: v for k, v in explicit.items() if v is not None}
    return resolve_config(layer, recipe=config, overrides=parse_overrides(overrides or []))


def run(config=None, overrides=None, force: bool = False, progress: bool = True, **explicit) -> Dict:
    """Train and evaluate one experiment (or skip it when finished). Returns its metrics dict.

    Keyword arguments are config keys: ``task``, ``method``, ``shots``, ``seed``, ``preset``, and dotted
    keys through ``overrides=["train.lr=0.002"]``. Call ``avfewshot.runtime.configure()`` before any
    torch work in the session for full CPU speed (denormal flushing; it warns here when that was late).
    """
    from .engine.trainer import run_experiment
    from .runtime import configure

    configure()
    cfg = explicit.pop("cfg", None) or make_config(config, overrides, **explicit)
    return run_experiment(cfg, force=force, progress=progress)


def load_results(results_dir: Union[str, Path] = "results", as_frame: bool = False):
    """Every finished run's metrics.json under ``results_dir``, with its folder as ``run_dir``: a list of
    dicts, or with ``as_frame=True`` a pandas DataFrame with nested keys flattened (``test.accuracy``)."""
    from .engine.results import METRICS_FILE, read_json

    out = []
    for path in sorted(Path(results_dir).rglob(METRICS_FILE)):
        data = read_json(path)
        if data:
            data["run_dir"] = str(path.parent)
            out.append(data)
    if as_frame:
        import pandas as pd

        return pd.json_normalize(out)
    return out


def build_method(name: str, task: str = "llp_cls", class_names: Optional[List[str]] = None, **explicit):
    """Build a method by name on the frozen towers of the resolved config (demo towers by default)."""
    from .data.annotations import dataset_class_names
    from .engine.trainer import get_backbone
    from .methods import build_method as _build
    from .tasks import get_task

    cfg = make_config(method=name, task=task, **explicit)
    spec = get_task(task)
    names = spec.class_list(class_names or dataset_class_names(spec.dataset))
    return _build(name, get_backbone(cfg), spec, names, cfg.method_args)


def sweep(*args, **kwargs):
    from .experiments.sweep import sweep as _sweep
    from .runtime import configure

    configure()
    return _sweep(*args, **kwargs)
