"""Frozen CLIP (open_clip) and CLAP (laion-clap's clap_module) towers, built offline from data.

``import avfewshot.encoders`` is cheap: torch, open_clip and clap_module load on first use.
"""
from .config import ModelConfig

_LAZY = {
    "build_backbone": "backbone",
    "Backbone": "backbone",
    "build_clip_model": "clip_towers",
    "build_clap_model": "clap_towers",
    "import_clap_module": "clap_import",
    "resolve_clip_weights": "checkpoints",
    "resolve_clap_weights": "checkpoints",
}

__all__ = ["ModelConfig", *_LAZY]


def __getattr__(name):  # PEP 562
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
