"""The method interface every method implements, and the method registry.

A method wraps the frozen backbone with its own trainable parts. The engine only calls:
``forward(batch) -> Scores``, ``loss(batch, scores, epoch)``, ``trainable_parameters()``,
``trainable_state()`` / ``load_trainable_state()``. Everything else is the method's business.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Type

import torch
from torch import nn

from ..errors import UserError
from ..registry import Registry
from . import fusion as fusion_lib

METHODS: Registry[Type["Method"]] = Registry("method")


@dataclass
class MethodConfig:
    """Options shared by every method; each method extends this dataclass with its own fields."""

    fusion: str = "confidence"  # see methods/fusion.py
    sum_weights: List[float] = field(default_factory=lambda: [2.0, 2.0])
    audio_logit_scale: str = "exp"  # exp (CLAP's trained temperature) | raw (the released DG-SCT code)
    clip_template: Optional[str] = None  # None: prompts/templates.yaml
    clap_template: Optional[str] = None
    clap_name_style: Optional[str] = None  # raw | spaces (None: prompts/templates.yaml)


@dataclass
class Scores:
    """Per-segment logits, each (B, T, K)."""

    fused: torch.Tensor
    visual: Optional[torch.Tensor] = None
    audio: Optional[torch.Tensor] = None
    extras: Dict[str, torch.Tensor] = field(default_factory=dict)


class Method(nn.Module):
    name: str = "method"
    Config: Type[MethodConfig] = MethodConfig
    #: True when the method has nothing to train (sweeps run it once per seed, at 0 shots)
    zero_shot: bool = False
    #: frozen features this method may read from the feature cache ("image", "audio")
    cacheable_features: Tuple[str, ...] = ()

    def __init__(self, backbone, task, class_names: List[str], cfg: MethodConfig):
        super().__init__()
        self.backbone = backbone
        self.task = task
        self.class_names = list(class_names)  # includes "background" for segment tasks
        self.cfg = cfg
        fusion_lib.check_mode(cfg.fusion)

    # -- what the engine calls ---------------------------------------------------------------
    def forward(self, batch: Dict[str, Any]) -> Scores:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, batch: Dict[str, Any], scores: Scores, epoch: int) -> Tuple[torch.Tensor, Dict[str, float]]:
        """Default objective: the fusion mode's loss on the task's targets (see methods/fusion.py)."""
        target = self.task.training_targets(batch, self.task_num_classes)
        l_v, l_a = scores.visual, scores.audio
        if l_v is None or l_a is None:
            loss = fusion_lib.soft_cross_entropy(self.task.reduce(scores.fused), target)
            return loss, {"loss": float(loss.detach())}
        return fusion_lib.fused_loss(self.task.reduce(l_v), self.task.reduce(l_a), target, self.cfg.fusion, self.cfg.sum_weights)

    def trainable_parameters(self) -> List[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def trainable_state(self) -> Dict[str, torch.Tensor]:
        """Everything that is not the frozen backbone (parameters and persistent buffers)."""
        return {k: v.detach().clone() for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    def load_trainable_state(self, state: Dict[str, torch.Tensor], strict: bool = True) -> None:
        own = {k for k in self.state_dict() if not k.startswith("backbone.")}
        missing, unexpected = own - set(state), set(state) - own
        if strict and (missing or unexpected):
            raise UserError(
                f"checkpoint does not fit method {self.name!r}: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
            )
        self.load_state_dict(state, strict=False)

    # -- helpers -------------------------------------------------------------------------------
    @property
    def task_num_classes(self) -> int:
        """Number of real classes (without background)."""
        return len(self.class_names) - (1 if self.task.background else 0)

    def audio_scale(self) -> torch.Tensor:
        s = self.backbone.clap_logit_scale
        return s.exp() if self.cfg.audio_logit_scale == "exp" else s

    def clip_scale(self) -> torch.Tensor:
        return self.backbone.clip_logit_scale.exp()

    #: True for methods that reproduce the released code's training-mode towers (model.frozen_towers=released)
    supports_released_towers: bool = False

    def train(self, mode: bool = True):
        # the frozen towers stay in eval mode, except HTS-AT and RoBERTa under model.frozen_towers=released
        released = getattr(self.backbone, "released_towers", list)()
        if mode and released and not self.supports_released_towers:
            raise UserError(f"model.frozen_towers=released reproduces the released DG-SCT training; method "
                            f"{self.name!r} runs with model.frozen_towers=eval only")
        super().train(mode)
        self.backbone.train(mode)
        return self


def method_config_class(name: str) -> Type[MethodConfig]:
    _import_all()
    return METHODS.get(name).Config


def make_method_config(name: str, args: Dict[str, Any]) -> MethodConfig:
    """Validate ``method.*`` overrides against the method's dataclass (unknown keys are errors)."""
    from ..config import _coerce  # typed coercion shared with the run config
    from typing import get_type_hints

    cls = method_config_class(name)
    hints = get_type_hints(cls)
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(args) - valid)
    if unknown:
        raise UserError(f"unknown option(s) {unknown} for method {name!r}; valid: {', '.join(sorted(valid))}")
    return cls(**{k: _coerce(v, hints[k], f"method.{k}") for k, v in args.items()})


def build_method(name: str, backbone, task, class_names: List[str], args: Optional[Dict[str, Any]] = None) -> Method:
    _import_all()
    cfg = make_method_config(name, args or {})
    return METHODS.get(name)(backbone, task, class_names, cfg)


_METHOD_MODULES = ("zeroshot", "linear_probe", "dgsct", "coop", "cocoop", "clip_adapter", "maple")


def _import_all() -> None:
    """Import the method modules so they register themselves (missing optional ones are skipped)."""
    import importlib

    for mod in _METHOD_MODULES:
        try:
            importlib.import_module(f"{__package__}.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{mod}":
                raise
