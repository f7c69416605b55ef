"""The one place that turns a configuration into a run: towers, task, class names, data, method.

- ``resolve_run_config(...)`` layers a configuration (defaults -> preset -> recipe -> flags -> overrides)
  and checks it before anything is built: task and method names, the method's options against its typed
  ``Config``, value ranges, the data root. Every mistake is a one-line ``UserError`` within seconds.
- ``build_run(cfg, data=...)`` builds everything a run needs; ``rebuild_run(run_dir)`` rebuilds a finished run
  from its folder (``config.yaml`` + ``trainable.pt``) for bundles, pictures and evaluation.
- ``TowerCache`` keeps frozen towers between the runs of one process (a sweep builds them once).

Every command, the Python API and every benchmark build runs here.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from ..config import RunConfig, from_dict, parse_overrides, resolve_config
from ..errors import UserError

log = logging.getLogger("avfewshot")
PathLike = Union[str, Path]

#: What ``build_run`` reads from the data: nothing (the official class list, for real-size builds without data),
#: the class names of the run's data root (or the demo), the test set, or everything the run trains and selects on.
DATA_NEEDS = ("none", "classes", "eval", "train")


class TowerCache:
    """Frozen towers shared by the runs of one process, keyed by the model configuration.

    Lifetime: as long as the object. It holds at most ``capacity`` backbones (default one: a sweep whose cells
    share their towers builds them once; asking for other towers releases the oldest). ``clear()`` releases
    them all. ``default_towers()`` is the process-wide instance the commands and the API use; tests and
    notebooks can pass their own to ``build_run``.
    """

    def __init__(self, capacity: int = 1):
        self.capacity = max(1, capacity)
        self._items: Dict[str, Any] = {}

    @staticmethod
    def key(model_cfg, placeholder_tokenizer: bool = False, device: Optional[str] = None) -> str:
        return repr((dataclasses.asdict(model_cfg), placeholder_tokenizer, device))

    def get(self, model_cfg, placeholder_tokenizer: bool = False, device: Optional[str] = None):
        """The towers for ``model_cfg``; ``device="meta"`` builds shapes only (parameter counts)."""
        key = self.key(model_cfg, placeholder_tokenizer, device)
        if key not in self._items:
            from ..encoders import build_backbone

            while len(self._items) >= self.capacity:
                self._items.pop(next(iter(self._items)))
            self._items[key] = build_backbone(model_cfg, placeholder_tokenizer=placeholder_tokenizer, device=device)
        return self._items[key]

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


_DEFAULT_TOWERS = TowerCache()


def default_towers() -> TowerCache:
    return _DEFAULT_TOWERS


# -- configuration -----------------------------------------------------------------------------
def resolve_run_config(config: Optional[PathLike] = None, overrides: Sequence[str] = (), demo_layers: Optional[bool] = None,
                       **explicit: Any) -> RunConfig:
    """Layer and check a run configuration (see the module docstring). ``explicit`` holds config keys
    (``task``, ``method``, ``shots``, dotted keys such as ``train.lr``); None values are ignored.
    ``demo_layers=False`` keeps the real-size towers without a data root (parameter counts, benchmarks)."""
    layer = {k: v for k, v in explicit.items() if v is not None}
    cfg = resolve_config(layer, recipe=config, overrides=parse_overrides(list(overrides)), demo_layers=demo_layers)
    return check_run_config(cfg)


def check_run_config(cfg: RunConfig) -> RunConfig:
    """Names, method options and the data root, checked without building anything. Fills ``cfg.method_args``
    with every option of the method (its defaults included), so the saved configuration is complete."""
    from ..methods import get_method_class, make_method_config
    from ..tasks import get_task

    from ..precision import check_precision_pair

    get_task(cfg.task)
    check_precision_pair(cfg.train.precision, cfg.model.frozen_dtype)
    method_cls = get_method_class(cfg.method)
    method_cfg = make_method_config(cfg.method, cfg.method_args)
    cfg.method_args = dataclasses.asdict(method_cfg)
    if cfg.model.frozen_towers == "released" and not method_cls.supports_released_towers:
        raise UserError(f"model.frozen_towers=released reproduces the released DG-SCT code's training-mode towers; "
                        f"method {cfg.method!r} does not support it (use model.frozen_towers=eval)")
    if cfg.shots > 0 and not method_cls.zero_shot and cfg.train.epochs < 1:
        raise UserError(f"train.epochs={cfg.train.epochs}: method {cfg.method!r} trains at {cfg.shots} shots, so it needs "
                        "train.epochs >= 1 (for the untrained method use --shots 0)")
    check_data_root(cfg)
    return cfg


def check_data_root(cfg: RunConfig) -> None:
    """``data.root`` (when given) is a folder holding the task's annotation files; ``data.media_root`` a folder."""
    from ..data.annotations import missing_annotation_files
    from ..tasks import get_task

    for key, value in (("data.root", cfg.data.root), ("data.media_root", cfg.data.media_root)):
        if value in (None, ""):
            continue
        path = Path(value).expanduser()
        if not path.exists():
            raise UserError(f"{key} {path} does not exist")
        if not path.is_dir():
            raise UserError(f"{key} {path} is not a folder")
    if cfg.data.root:
        dataset = get_task(cfg.task).dataset
        missing = missing_annotation_files(dataset, Path(cfg.data.root).expanduser())
        if missing:
            raise UserError(f"data.root {cfg.data.root} has no {dataset} annotation file {missing[0]} "
                            f"(expected there: {', '.join(missing)}); check the folder with `avfewshot data check`")


# -- the run -----------------------------------------------------------------------------------
@dataclass
class Run:
    """Everything one run needs."""

    cfg: RunConfig
    task: Any  # TaskSpec
    backbone: Any  # encoders.Backbone
    class_names: List[str]  # the method's label space (background appended for segment-level tasks)
    data: Any  # engine.data.RunData, or None when no data was asked for
    method: Any  # methods.Method


def _class_names(cfg: RunConfig, task, need: str) -> List[str]:
    from ..data.annotations import dataset_class_names

    if need == "none":
        return dataset_class_names(task.dataset)
    from .data import data_root

    return dataset_class_names(task.dataset, data_root(cfg, task.dataset))


def build_run(cfg: RunConfig, data: str = "train", towers: Optional[TowerCache] = None,
              placeholder_tokenizer: bool = False, class_names: Optional[List[str]] = None) -> Run:
    """Build the towers, the data the run needs (``data``: one of ``DATA_NEEDS``), and the method.

    The method is initialised from ``torch.manual_seed(cfg.seed)``, so the same configuration gives the same
    initial weights; with ``cfg.init`` it then loads the pretraining bundle, and with ``data.feature_cache`` it
    reads frozen features through the feature store. ``class_names`` replaces the dataset's own list.
    Under torchrun, rank 0 prepares the shared files (the demo, the split) before the other ranks read them.
    """
    import torch

    from ..methods import build_method
    from ..tasks import get_task
    from .distributed import context

    if data not in DATA_NEEDS:
        raise ValueError(f"data={data!r}; valid: {', '.join(DATA_NEEDS)}")
    task = get_task(cfg.task)
    torch.manual_seed(cfg.seed)
    meta = cfg.train.device == "meta"  # shapes only: parameter counts without memory (data must be "none")
    if meta and data != "none":
        raise UserError(f"train.device=meta builds shapes only; it cannot read data (data={data!r})")
    backbone = (towers if towers is not None else default_towers()).get(cfg.model, placeholder_tokenizer, "meta" if meta else None)
    ctx = context()
    if ctx.enabled and not ctx.main:
        ctx.barrier()  # rank 0 synthesises the demo / writes the split first
    run_data = None
    if data in ("eval", "train"):
        from .data import build_run_data

        run_data = build_run_data(cfg, task, backbone, need_train=data == "train" and cfg.shots > 0)
        names = class_names or run_data.class_names
    else:
        names = class_names or _class_names(cfg, task, data)
    if ctx.enabled and ctx.main:
        ctx.barrier()
    labels = task.class_list(list(names))
    torch.manual_seed(cfg.seed)  # the method's initialisation depends on the seed only
    with torch.device("meta") if meta else contextlib.nullcontext():
        method = build_method(cfg.method, backbone, task, labels, cfg.method_args)
    if cfg.init:
        from .bundles import load_bundle_into

        load_bundle_into(method, cfg.init)
    if cfg.data.feature_cache and method.cacheable_features:
        from ..methods.features import FeatureStore

        method.features = FeatureStore(backbone)
    return Run(cfg, task, backbone, labels, run_data, method)


def read_run_config(run_dir: PathLike, data_root: Optional[str] = None) -> RunConfig:
    """The resolved configuration saved in a run folder (``data_root`` replaces its data root)."""
    import yaml

    from . import results as res

    path = Path(run_dir) / res.CONFIG_FILE
    if not path.is_file():
        raise UserError(f"{run_dir} has no {res.CONFIG_FILE}: point at a run folder (results/<task>/<method>/shot<K>/seed<S>)")
    try:
        cfg = from_dict(yaml.safe_load(path.read_text()) or {})
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML: {exc}") from None
    if data_root:
        cfg.data.root = data_root
    return check_run_config(cfg)


def rebuild_run(run_dir: PathLike, data: str = "eval", data_root: Optional[str] = None,
                towers: Optional[TowerCache] = None) -> Run:
    """A finished run's method with its trained state (``trainable.pt``), in eval mode, and the data asked for."""
    from . import results as res

    run_dir = Path(run_dir)
    final = run_dir / res.FINAL_CKPT
    if not final.is_file() or not res.is_finished(run_dir):
        raise UserError(f"{run_dir} is not a finished run (no {res.METRICS_FILE} / {res.FINAL_CKPT}); run it first")
    cfg = read_run_config(run_dir, data_root)
    cfg.init = None  # the trained state already includes what the bundle gave
    run = build_run(cfg, data=data, towers=towers)
    run.method.load_trainable_state(res.load_torch(final)["state"])
    run.method.eval()
    return run
