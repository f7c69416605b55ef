"""The typed configuration of a supervised run (``avfewshot supervised``), layered like ``avfewshot run``'s.

Layers, in order: dataclass defaults -> the task's preset (``tiny``: the §7 configuration, the embedded demo's
default; ``official``: real-size towers and the released recipe, AVE / AVVP's default with a data root) -> explicit
keys (``--seed``, ``--data-root``, ...) -> ``key=value`` overrides (``train.lr=0.001``,
``model.double_sigmoid=true``). The resolved config is saved as the run's config.yaml.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..config import check_fields, set_path
from ..errors import UserError
from ..fields import bounded, choice

TASKS = ("ave", "avvp", "avs_s4", "avs_ms3", "avqa")
PRESET_NAMES = ("tiny", "official")
METHOD = "dgsct_supervised"  # the ``method`` field of metrics.json (aggregate groups by it)


@dataclass
class SupervisedTrain:
    epochs: int = bounded(4, low=1)
    batch_size: int = bounded(8, low=1)
    eval_batch_size: int = bounded(16, low=1)
    lr: float = bounded(3e-3, above=0.0)
    weight_decay: float = bounded(0.0, low=0.0)
    step_size: int = bounded(100, low=1)  # StepLR: lr x gamma every step_size epochs (the released recipes)
    gamma: float = bounded(0.35, above=0.0)
    early_stop: int = bounded(0, low=0)  # stop after this many epochs without a better validation score; 0 = off
    # val: the best validation epoch | last | best_on_test_UNSAFE: the released AVE protocol (selects on test)
    selection: str = choice("val", "val", "last", "best_on_test_UNSAFE")
    threads: int = bounded(0, low=0)  # torch threads; 0 = torch default
    device: str = "auto"  # auto | cpu | cuda | cuda:N (engine/device.py)
    precision: str = choice("fp32", "fp32", "bf16", "fp16")  # autocast for forward and loss

    def validate(self) -> None:
        import re

        if not re.fullmatch(r"auto|cpu|cuda|cuda:\d+", self.device):
            raise UserError(f"train.device={self.device!r} is not valid; choose auto, cpu, cuda or cuda:N")


@dataclass
class SupervisedData:
    root: Optional[str] = None  # None: the embedded synthetic demo of the task
    seconds: List[int] = field(default_factory=list)  # seconds of each 10-s clip used (AVE / AVVP); [] = all
    cache_dir: Optional[str] = None  # decoded-media cache (AVE / AVVP)
    st_features: Optional[str] = None  # AVVP: the LLP R(2+1)D-18 feature folder (model.st_features=true)


@dataclass
class SupervisedModel:
    size: str = choice("tiny", "tiny", "real")  # backbone size (supervised/presets.py)
    # AVS / AVQA: adapted (Swin-V2 + HTS-AT + DG-SCT units, trained end to end) | standin (a frozen tiny stand-in
    # encoder computed once, only the head trains: the fast path, tiny size only)
    encoder: str = choice("adapted", "adapted", "standin")
    visual_weights: Optional[str] = None  # local Swin-V2 file (real size); None = random weights
    audio_weights: Optional[str] = None  # local HTSAT_AudioSet_Saved_1.ckpt; None = random weights
    double_sigmoid: bool = False  # AVE parity: BCE-with-logits on the (already sigmoid) av gate
    st_features: bool = False  # AVVP: R(2+1)D-18 clip features as an extra video input
    mixup: str = choice("none", "none", "mixed_targets", "official")  # AVVP audio mixup
    spec_augment: bool = False
    gated_audio: bool = True  # AVVP: false = the released MGN reads the ungated audio
    grounding_epochs: int = bounded(3, low=0)  # AVQA: the first epochs train the match term only (pre-stage)
    standin_seed: int = bounded(0, low=0)  # AVS / AVQA: the frozen stand-in encoder's seed
    negatives: str = choice("frozen", "frozen", "adapted")  # AVQA negative frames: plain frozen Swin (released) | units
    ungated_audio: bool = False  # AVS / AVQA parity: the released audio units have no output gate
    train_htsat: bool = False  # S4 parity: the released freeze filter leaves HTS-AT trainable


@dataclass
class SupervisedRunConfig:
    task: str = choice("ave", *TASKS)
    preset: str = choice("tiny", *PRESET_NAMES)
    seed: int = bounded(1, low=0)
    results_dir: str = "results"
    data: SupervisedData = field(default_factory=SupervisedData)
    model: SupervisedModel = field(default_factory=SupervisedModel)
    train: SupervisedTrain = field(default_factory=SupervisedTrain)

    @property
    def demo(self) -> bool:
        return self.data.root is None

    @property
    def method(self) -> str:
        return METHOD

    def run_dir(self) -> Path:
        """results/<task>/dgsct_supervised/<preset>/seed<S> (the few-shot layout, the preset where the shots are)."""
        return Path(self.results_dir) / self.task / METHOD / self.preset / f"seed{self.seed}"


_TINY_AVE_AVVP = {"model.size": "tiny", "data.seconds": [1, 6], "train.batch_size": 8, "train.step_size": 100}
#: per task and preset: the layer applied over the defaults
PRESETS: Dict[str, Dict[str, Dict[str, Any]]] = {
    "ave": {
        "tiny": {**_TINY_AVE_AVVP, "train.epochs": 4, "train.lr": 3e-3},
        # AVE_RECIPE (supervised/ave.py): Adam 5e-4, StepLR(3, 0.35), 50 epochs, batch 8, early stop 20
        "official": {"model.size": "real", "train.epochs": 50, "train.lr": 5e-4, "train.step_size": 3,
                     "train.gamma": 0.35, "train.batch_size": 8, "train.early_stop": 20},
    },
    "avvp": {
        "tiny": {**_TINY_AVE_AVVP, "train.epochs": 14, "train.lr": 5e-3, "train.batch_size": 4},
        # AVVP_RECIPE (supervised/avvp.py): Adam 3e-4, StepLR(10, 0.1), 40 epochs, batch 8, mixup with mixed targets
        "official": {"model.size": "real", "train.epochs": 40, "train.lr": 3e-4, "train.step_size": 10,
                     "train.gamma": 0.1, "train.batch_size": 8, "model.mixup": "mixed_targets"},
    },
    "avs_s4": {
        "tiny": {"train.epochs": 10, "train.lr": 3e-3, "train.batch_size": 1, "train.eval_batch_size": 4},
        # released S4: Adam 3e-4, 15 epochs, batch 8, no scheduler
        "official": {"model.size": "real", "train.epochs": 15, "train.lr": 3e-4, "train.batch_size": 8,
                     "train.step_size": 1000, "train.gamma": 1.0, "train.eval_batch_size": 4},
    },
    "avs_ms3": {
        "tiny": {"train.epochs": 10, "train.lr": 3e-3, "train.batch_size": 1, "train.eval_batch_size": 4},
        # released MS3: Adam 1.5e-4, 30 epochs, batch 2, no scheduler
        "official": {"model.size": "real", "train.epochs": 30, "train.lr": 1.5e-4, "train.batch_size": 2,
                     "train.step_size": 1000, "train.gamma": 1.0, "train.eval_batch_size": 4},
    },
    "avqa": {
        # batches of 6 questions grouped by video (the demo has 6 per video): about one encoder pass per step
        "tiny": {"train.epochs": 10, "train.lr": 3e-3, "train.batch_size": 6, "train.eval_batch_size": 64,
                 "model.grounding_epochs": 1},
        # released ST-AVQA: Adam 1e-4, StepLR(8, 0.1), 80 epochs, early stop 3, batch 8 (after the grounding stage)
        "official": {"model.size": "real", "train.epochs": 80, "train.lr": 1e-4, "train.step_size": 8,
                     "train.gamma": 0.1, "train.batch_size": 8, "train.early_stop": 3, "model.grounding_epochs": 1},
    },
}


def resolve_supervised_config(explicit: Optional[Dict[str, Any]] = None, overrides: Optional[Dict[str, Any]] = None) -> SupervisedRunConfig:
    """defaults -> the task's preset -> explicit keys -> overrides; every key and value checked (one-line errors)."""
    explicit = {k: v for k, v in (explicit or {}).items() if v is not None}
    layer = {**explicit, **(overrides or {})}
    task = str(layer.get("task", SupervisedRunConfig.task))
    if task not in TASKS:
        raise UserError(f"unknown supervised task {task!r}; valid: {', '.join(TASKS)}")
    root = layer.get("data.root")
    demo = root in (None, "", "none")
    preset = str(layer.get("preset", "official" if not demo and "official" in PRESETS[task] else "tiny"))
    if preset not in PRESET_NAMES:
        raise UserError(f"unknown supervised preset {preset!r}; valid: {', '.join(PRESET_NAMES)}")
    if preset not in PRESETS[task]:
        raise UserError(f"supervised {task}: no preset {preset!r}; valid: {', '.join(PRESETS[task])}")
    cfg = SupervisedRunConfig()
    for key, value in {"task": task, "preset": preset, **PRESETS[task][preset], **layer}.items():
        if key.startswith("method.") or key == "method_args":
            raise UserError(f"unknown supervised config key {key!r}; options of the model are model.<name>")
        set_path(cfg, key, value)
    if demo:
        cfg.data.root = None
    check_fields(cfg, "")
    cfg.train.validate()
    if task in ("avs_s4", "avs_ms3", "avqa") and cfg.model.encoder == "standin" and cfg.model.size != "tiny":
        raise UserError(f"supervised {task}: model.encoder=standin is the tiny fast path; use model.size=tiny or "
                        f"model.encoder=adapted")
    if any(s < 0 or s > 9 for s in cfg.data.seconds) or len(set(cfg.data.seconds)) != len(cfg.data.seconds):
        raise UserError(f"data.seconds={cfg.data.seconds}: distinct seconds between 0 and 9 of each 10-s clip")
    return cfg
