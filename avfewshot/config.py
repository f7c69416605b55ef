"""Typed, layered run configuration.

Layers, applied in order: dataclass defaults -> preset -> recipe file (YAML) -> command-line
``key=value`` overrides (dotted paths such as ``train.lr=0.002`` or ``method.n_ctx=4``). The resolved
config (every field, including the method's own defaults) is saved with every run as config.yaml.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union, get_args, get_origin, get_type_hints

import yaml

from .encoders.config import ModelConfig
from .errors import UserError
from .fields import bounded, choice  # noqa: F401  (re-exported: method configs use them)
from .paths import demo_recipe as find_demo_recipe


@dataclass
class DataConfig:
    root: Optional[str] = None  # None: the embedded synthetic demo
    media_root: Optional[str] = None  # where the media lives, if not beside the annotation files
    layout: str = choice("raw", "raw", "dgsct")  # raw (mp4/wav) | dgsct (frames/ + wave/*.npy)
    frame_position: float = bounded(0.5, low=0.0, high=1.0)  # where in each second the frame is taken
    cache: bool = True  # decoded-input cache
    cache_dir: Optional[str] = None
    feature_cache: bool = True  # frozen-feature cache where a method allows it
    on_error: str = choice("raise", "raise", "skip")  # skip: report and skip clips whose media cannot be decoded
    num_workers: int = bounded(0, low=0)
    # coop (seeded random K per class) | dgsct (first K rows per class) | full (pretraining)
    split_protocol: str = choice("coop", "coop", "dgsct", "full")
    splits_dir: str = "splits"
    allow_fewer: bool = False


@dataclass
class TrainConfig:
    epochs: int = bounded(20, low=0)  # trained methods need >= 1 (checked with the method)
    batch_size: int = bounded(4, low=1)
    eval_batch_size: int = bounded(8, low=1)
    optimizer: str = choice("adamw", "adam", "adamw", "sgd")
    lr: float = bounded(2e-3, above=0.0)
    weight_decay: float = bounded(0.0, low=0.0)
    momentum: float = bounded(0.9, low=0.0, high=1.0)
    schedule: str = choice("cosine", "cosine", "multistep", "constant")
    milestones: List[int] = field(default_factory=list)
    lr_gamma: float = bounded(0.5, above=0.0)
    warmup_epochs: int = bounded(0, low=0)
    # ramp (toolkit: (e+1)/(W+1)·lr, decay over epochs−W) | constant | linear (Dassl); engine/schedule.py
    warmup: str = choice("ramp", "ramp", "constant", "linear")
    warmup_lr: float = bounded(1e-5, above=0.0)  # Dassl's WARMUP_CONS_LR (constant) / WARMUP_MIN_LR (linear, first epoch)
    grad_clip: float = bounded(1.0, low=0.0)  # max gradient norm; 0 disables
    # val | last; "best_on_test_UNSAFE" only reproduces the released DG-SCT protocol
    selection: str = choice("last", "last", "val", "best_on_test_UNSAFE")
    threads: int = bounded(0, low=0)  # torch threads; 0 = torch default
    # auto (this rank's GPU when there is one, else the CPU) | cpu | cuda | cuda:N
    device: str = "auto"
    # fp32 | bf16 | fp16: autocast for forward and loss (fp16 with a gradient scaler); trainable weights stay fp32
    precision: str = choice("fp32", "fp32", "bf16", "fp16")

    def validate(self) -> None:
        import re

        if not re.fullmatch(r"auto|cpu|cuda|cuda:\d+|meta", self.device):
            raise UserError(f"train.device={self.device!r} is not valid; choose auto, cpu, cuda or cuda:N")


@dataclass
class RunConfig:
    task: str = "llp_cls"
    method: str = "dgsct"  # the method this toolkit exists for
    shots: int = bounded(16, low=0)
    seed: int = bounded(1, low=0)
    preset: str = "paper"
    init: Optional[str] = None  # a pretraining bundle to start from (zero-shot transfer)
    results_dir: str = "results"
    log: List[str] = field(default_factory=list)  # e.g. ["tensorboard"]
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    method_args: Dict[str, Any] = field(default_factory=dict)

    @property
    def demo(self) -> bool:
        return self.data.root is None

    def run_dir(self) -> Path:
        """results/<task>/<method>/shot<K>[-init-<bundle>]/seed<S> (``full`` instead of shot<K> for pretraining)."""
        shots = "full" if self.data.split_protocol == "full" else f"shot{self.shots}"
        if self.init:
            shots += f"-init-{Path(self.init).stem}"
        return Path(self.results_dir) / self.task / self.method / shots / f"seed{self.seed}"


# Presets: the paper's clean protocol and a parity mode with the released few-shot code.
PRESETS: Dict[str, Dict[str, Any]] = {
    "paper": {
        "model.image_norm": "clip",
        "data.split_protocol": "coop",
        "model.audio_frontend": "native",
        "train.selection": "val",
        "method.fusion": "confidence",
        "method.audio_logit_scale": "exp",
    },
    "dgsct-official": {
        "model.clip_arch": "ViT-B-32",
        "model.clap_weights": "630k-audioset-fusion-best",
        "model.audio_frontend": "dgsct-compat",
        "model.image_norm": "imagenet",
        "data.split_protocol": "dgsct",
        "train.optimizer": "adam",
        "train.lr": 3e-4,
        "train.weight_decay": 0.0,
        "train.schedule": "multistep",
        "train.milestones": [10, 20, 30],
        "train.lr_gamma": 0.5,
        "train.grad_clip": 0.5,
        "train.batch_size": 2,
        "train.eval_batch_size": 2,
        "train.selection": "last",
        "method.fusion": "sum",
        "method.audio_logit_scale": "raw",
        "method.clap_name_style": "raw",  # "The sounds of " + the raw name ("Frying_(food)"), as released
    },
}

# The embedded demo: the tiny towers pretrained on the synthetic concept world (built into the cache on
# first use, see encoders/demo_towers.py), so zero-shot, the audio branch and transfer show. Tests that
# want the random towers set model.clip_weights=none model.clap_weights=none. A method may add demo
# settings in runners/demo/<method>.yaml.
DEMO_OVERRIDES: Dict[str, Any] = {
    "model.clip_arch": "tiny",
    "model.clip_weights": "demo",
    "model.clap_arch": "tiny",
    "model.clap_weights": "demo",
    "model.audio_frontend": "native",  # the tiny CLAP has its own 16 kHz front end
}


def coerce_value(value: Any, typ: Any, where: str) -> Any:
    """``value`` (a YAML scalar or a command-line string) as type ``typ``; errors name ``where``."""
    origin = get_origin(typ)
    if origin is Union:  # Optional[X]
        args = [a for a in get_args(typ) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        return coerce_value(value, args[0], where)
    if isinstance(value, str) and typ is not str and origin is None:
        value = yaml.safe_load(value)
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{where}: expected true/false, got {value!r}")
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise UserError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if typ is float:
        if isinstance(value, str):  # YAML 1.1 reads "3e-3" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if typ is str:
        return str(value)
    if origin in (list, List, Sequence):
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, (list, tuple)):
            value = [value]
        (item,) = get_args(typ) or (Any,)
        return [coerce_value(v, item, where) if item is not Any else v for v in value]
    if origin in (dict, Dict):
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def check_fields(obj: Any, prefix: str) -> None:
    """Check every field's declared choices and range (``choice`` / ``bounded``); one-line errors name the key."""
    import math

    for f in fields(obj):
        value, meta, key = getattr(obj, f.name), f.metadata, f"{prefix}.{f.name}" if prefix else f.name
        if "choices" in meta and value is not None:
            for item in value if isinstance(value, list) else [value]:
                if item not in meta["choices"]:
                    valid = ", ".join(str(c) for c in meta["choices"])
                    raise UserError(f"{key}={item!r} is not valid; choose from {valid}")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and ("low" in meta or "above" in meta):
            low, high, above = meta.get("low"), meta.get("high"), meta.get("above")
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"{key}={value} must be a finite number")
            if (low is not None and value < low) or (high is not None and value > high) or (above is not None and value <= above):
                wanted = " and ".join(w for w in (f">= {low}" if low is not None else "", f"> {above}" if above is not None else "",
                                                  f"<= {high}" if high is not None else "") if w)
                raise UserError(f"{key}={value} is out of range; it must be {wanted}")
        if is_dataclass(value):
            check_fields(value, key)


def build_dataclass(cls: Any, values: Dict[str, Any], prefix: str, owner: str) -> Any:
    """``cls(**values)`` with every value coerced to its field's type and checked (choices, ranges).

    Unknown keys, wrong types and bad values are one-line errors naming ``prefix.key`` and the valid choices.
    """
    hints = get_type_hints(cls)
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise UserError(f"unknown option {prefix}.{unknown[0]} for {owner}; valid options: {', '.join(sorted(valid))}")
    obj = cls(**{k: coerce_value(v, hints[k], f"{prefix}.{k}") for k, v in values.items()})
    check_fields(obj, prefix)
    if callable(getattr(obj, "validate", None)):
        obj.validate()  # cross-field rules of the dataclass itself
    return obj


def set_path(cfg: Any, dotted: str, value: Any) -> None:
    """Set ``a.b.c`` on nested dataclasses; ``method.x`` goes into ``method_args``. Unknown keys are errors."""
    parts = dotted.split(".")
    if parts[0] == "method" and len(parts) >= 2:
        cfg.method_args[".".join(parts[1:])] = value
        return
    obj = cfg
    for i, name in enumerate(parts):
        if not is_dataclass(obj):
            raise UserError(f"config key {dotted!r}: {'.'.join(parts[:i])} has no fields")
        hints = get_type_hints(type(obj))
        names = [f.name for f in fields(obj)]
        if name not in names:
            raise UserError(f"unknown config key {dotted!r}; valid keys here: {', '.join(names)}")
        if i == len(parts) - 1:
            setattr(obj, name, coerce_value(value, hints[name], dotted))
        else:
            obj = getattr(obj, name)


def _flatten(mapping: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        if prefix == "" and key == "method_args" and isinstance(value, dict):
            out.update({f"method.{k}": v for k, v in value.items()})
        elif isinstance(value, dict):
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


def read_yaml_mapping(path: Union[str, Path], what: str = "recipe file", shape: str = "a mapping of config keys") -> Dict[str, Any]:
    """A YAML file that must hold a mapping; errors name the file and what it should hold."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"{what} {path} is a folder; give a YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{what} {path} cannot be read ({exc.strerror if isinstance(exc, OSError) else 'not text'})") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{what} {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{what} {path} must hold {shape}")
    return data


def load_recipe(path: Union[str, Path]) -> Dict[str, Any]:
    return _flatten(read_yaml_mapping(path))


def parse_overrides(items: Sequence[str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"override {item!r} must look like key=value (e.g. train.lr=0.002)")
        key, value = item.split("=", 1)
        out[key.strip()] = value
    return out


def resolve_config(
    base: Optional[Dict[str, Any]] = None,
    recipe: Optional[Union[str, Path]] = None,
    overrides: Optional[Dict[str, Any]] = None,
    demo_layers: Optional[bool] = None,
) -> RunConfig:
    """defaults -> preset -> [demo towers] -> recipe -> [runners/demo/<method>.yaml] -> explicit keys.

    ``base`` holds explicit CLI flags (task, method, ...); ``overrides`` the ``key=value`` items.
    The two bracketed layers apply on the embedded demo (no data root), unless ``demo_layers`` says otherwise.
    """
    layers: List[Dict[str, Any]] = []
    recipe_layer = load_recipe(recipe) if recipe else {}
    explicit = dict(base or {})
    explicit.update(overrides or {})
    preset = explicit.get("preset", recipe_layer.get("preset", "paper"))
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; valid presets: {', '.join(sorted(PRESETS))}")
    layers.append(PRESETS[preset])
    root = explicit.get("data.root", recipe_layer.get("data.root"))
    demo = root in (None, "", "none") if demo_layers is None else demo_layers
    if demo:
        layers.append(DEMO_OVERRIDES)
    layers.append(recipe_layer)
    if demo:
        method = explicit.get("method", recipe_layer.get("method", RunConfig.method))
        demo_recipe = find_demo_recipe(method)
        if demo_recipe is not None:  # the demo's tiny random towers want their own learning rates
            layers.append(load_recipe(demo_recipe))
    layers.append(explicit)
    cfg = RunConfig()
    for layer in layers:
        for key, value in layer.items():
            set_path(cfg, key, value)
    check_fields(cfg, "")
    cfg.train.validate()
    return cfg


def to_dict(cfg: RunConfig) -> Dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(data: Dict[str, Any]) -> RunConfig:
    cfg = RunConfig()
    for key, value in _flatten(data).items():
        set_path(cfg, key, value)
    return cfg


def dump_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
