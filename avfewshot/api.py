"""The Python API the CLI mirrors: usable from a notebook.

>>> import avfewshot
>>> metrics = avfewshot.run(task="llp_cls", method="linear_probe", shots=16)   # the embedded demo
>>> avfewshot.load_results("results")                                           # every finished run
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from .config import RunConfig


def make_config(config: Optional[Union[str, Path]] = None, overrides: Optional[Sequence[str]] = None, **explicit) -> RunConfig:
    """Resolve and check a run config: defaults -> preset -> recipe file -> explicit keys -> ``key=value`` overrides.

    Task and method names, method options and value ranges are checked here, before anything is built.
    """
    from .engine.build import resolve_run_config

    return resolve_run_config(config, list(overrides or []), **explicit)


def run(config=None, overrides=None, force: bool = False, progress: bool = True, **explicit) -> Dict:
    """Train and evaluate one experiment (or skip it when finished). Returns its metrics dict.

    Keyword arguments are config keys: ``task``, ``method``, ``shots``, ``seed``, ``preset``, and dotted
    keys through ``overrides=["train.lr=0.002"]``. The process's floating-point and allocator settings are
    left alone; call ``avfewshot.runtime.configure()`` first for the CPU speed settings the command uses.
    """
    from .engine.trainer import run_experiment

    cfg = explicit.pop("cfg", None) or make_config(config, overrides, **explicit)
    return run_experiment(cfg, force=force, progress=progress)


def make_supervised_config(overrides: Optional[Sequence[str]] = None, **explicit):
    """Resolve and check a supervised run config: defaults -> the task's preset -> explicit keys -> overrides.

    Explicit keys: ``task``, ``preset``, ``seed``, ``results_dir`` and dotted keys such as ``data.root``.
    """
    from .config import parse_overrides
    from .engine.supervised_config import resolve_supervised_config

    return resolve_supervised_config(explicit, parse_overrides(list(overrides or [])))


def run_supervised(overrides=None, force: bool = False, progress: bool = True, data_root=None, **explicit) -> Dict:
    """Train and evaluate one fully supervised runner (or skip it when finished). Returns its metrics dict.

    >>> avfewshot.run_supervised(task="avs_s4")                    # the tiny configuration on the synthetic demo
    >>> avfewshot.run_supervised(task="ave", data_root="/data/AVE", overrides=["train.device=cuda"])
    """
    from .engine.supervised_runner import run_supervised_experiment

    if data_root is not None:
        explicit["data.root"] = str(data_root)
    cfg = explicit.pop("cfg", None) or make_supervised_config(overrides, **explicit)
    return run_supervised_experiment(cfg, force=force, progress=progress)


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
    """Build a method by name on the frozen towers of the resolved config (demo towers by default).

    Without ``class_names`` the classes are those of the data root (``data_root=...``) or of the demo.
    """
    from .engine.build import build_run

    data_root = explicit.pop("data_root", None)
    cfg = make_config(method=name, task=task, **{"data.root": data_root}, **explicit)
    return build_run(cfg, data="classes", class_names=class_names).method


def sweep(*args, **kwargs):
    """Run a (task x method x shots x seed) grid; see ``avfewshot.experiments.sweep.sweep``."""
    from .experiments.sweep import sweep as _sweep

    return _sweep(*args, **kwargs)
