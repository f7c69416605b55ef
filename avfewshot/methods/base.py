"""The method interface every method implements, and the method registry.

A method wraps the frozen backbone with its own trainable parts. The engine only calls:
``forward(batch) -> Scores``, ``loss(batch, scores, epoch)``, ``trainable_parameters()``,
``trainable_state()`` / ``load_trainable_state()`` and the optional hooks ``optimizer_param_groups()`` and
``backward()``. Everything else is the method's business. ``docs/adding_a_method.md`` walks through one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Type

import torch
from torch import nn

from ..config import choice
from ..errors import UserError
from ..registry import Registry
from . import fusion as fusion_lib

METHODS: Registry[Type["Method"]] = Registry("method")


@dataclass
class MethodConfig:
    """Options shared by every method; each method extends this dataclass with its own fields."""

    fusion: str = choice("confidence", *fusion_lib.FUSION_MODES)  # see methods/fusion.py
    sum_weights: List[float] = field(default_factory=lambda: [2.0, 2.0])
    audio_logit_scale: str = choice("exp", "exp", "raw")  # exp (CLAP's trained temperature) | raw (the released DG-SCT code)
    clip_template: Optional[str] = None  # None: prompts/templates.yaml
    clap_template: Optional[str] = None
    clap_name_style: Optional[str] = choice(None, "raw", "spaces")  # raw | spaces (None: prompts/templates.yaml)


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

    # -- optional hooks (the engine calls them; override to change the training step) ---------------
    def optimizer_param_groups(self, train_cfg) -> List[Dict[str, Any]]:
        """Parameter groups for the optimizer, e.g. another learning rate for a head:
        ``[{"params": [...]}, {"params": [...], "lr": train_cfg.lr * 10}]``. Default: one group."""
        return [{"params": self.trainable_parameters()}]

    def backward(self, loss: torch.Tensor, parts: Dict[str, Any]) -> None:
        """Fill the trainable parameters' ``.grad`` from this step's loss (and the loss's ``parts``).

        Gradient-surgery methods (ProGrad, PCGrad) override this: compute the gradients of several
        objectives with ``torch.autograd.grad`` and combine them. The engine clips and steps afterwards."""
        loss.backward()

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


def discover_methods() -> Registry[Type["Method"]]:
    """Import every module of this package (each registers its methods) and the ``avfewshot.methods``
    entry points of installed packages; a new method file needs no edit anywhere else."""
    global _DISCOVERED
    if not _DISCOVERED:
        import importlib
        import pkgutil
        from importlib.metadata import entry_points

        for module in pkgutil.iter_modules(_package_path()):
            if not module.name.startswith("_"):
                importlib.import_module(f"{__package__}.{module.name}")
        for entry in entry_points(group="avfewshot.methods"):
            entry.load()  # an external package's module registers its methods on import
        _DISCOVERED = True
    return METHODS


_DISCOVERED = False


def _package_path() -> List[str]:
    import importlib

    return list(importlib.import_module(__package__).__path__)


def get_method_class(name: str) -> Type["Method"]:
    """The registered method class; an unknown name is a one-line error listing the valid names."""
    return discover_methods().get(name)


def make_method_config(name: str, args: Dict[str, Any]) -> MethodConfig:
    """Check ``method.*`` options against the method's typed ``Config``: an unknown key, a wrong type or a bad
    value is a one-line error naming the key and the valid choices."""
    from ..config import build_dataclass

    return build_dataclass(get_method_class(name).Config, args, prefix="method", owner=f"method {name!r}")


def build_method(name: str, backbone, task, class_names: List[str], args: Optional[Dict[str, Any]] = None) -> Method:
    cfg = make_method_config(name, args or {})
    method = get_method_class(name)(backbone, task, class_names, cfg)
    if callable(getattr(method, "check_text_features", None)):
        method.check_text_features()  # warns when the class prompts' text features collapsed
    return method
