"""QuickGELU or exact GELU for a CLIP checkpoint, decided from the weights rather than guessed.

OpenAI trained its CLIP models with QuickGELU (x·σ(1.702x)); open_clip's plain configs (``ViT-B-16``) use
exact GELU, and its OpenAI configs carry a ``-quickgelu`` suffix. The two state-dict layouts have the same
keys, so loading OpenAI weights into the plain config succeeds and silently computes other features
(2.4e-2 apart on ViT-B/16 image features). Rules, in order:

1. ``model.clip_activation=quickgelu|gelu``, or a ``*-quickgelu`` architecture: as asked;
2. random weights: the architecture's own activation;
3. evidence of OpenAI weights: a catalogue tag trained with QuickGELU (``openai``), a TorchScript archive
   (OpenAI's release format), OpenAI's metadata entries (``input_resolution``, ``context_length``,
   ``vocab_size``) in the state dict, safetensors metadata naming OpenAI, or a file at one of the
   catalogue's OpenAI locations (its file names in the weights folder, the Hugging Face cache of its hub
   repository) -> QuickGELU;
4. otherwise, for an architecture that OpenAI weights exist for (ViT-B-32, ViT-B-16), a weights file
   of unknown provenance is refused with a one-line error naming both choices; architectures without
   OpenAI weights (the tiny demo towers) keep their own activation.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Optional

from ..errors import UserError
from . import specs

log = logging.getLogger("avfewshot")

ACTIVATIONS = ("auto", "quickgelu", "gelu")
QUICK_GELU_SUFFIX = "-quickgelu"
OPENAI_METADATA_KEYS = ("input_resolution", "context_length", "vocab_size")


def _quick_gelu_entries():
    for per_arch in specs.catalogue().clip_checkpoints.values():
        for entry in per_arch.values():
            if entry.quick_gelu:
                yield entry


def openai_weights_exist(arch_name: str) -> bool:
    """True when the catalogue lists QuickGELU-trained (OpenAI) weights for this architecture."""
    base = specs.clip_base_arch(arch_name)
    return any(entry.arch == base for entry in _quick_gelu_entries())


def safetensors_metadata(path: Path) -> dict:
    """The free-form ``__metadata__`` of a .safetensors header ({} for other files)."""
    if path.suffix != ".safetensors":
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception:  # a damaged header fails again, with a proper message, when the tensors are read
        return {}


def _at_openai_location(path: Path, arch_name: str) -> bool:
    from .. import paths

    base = specs.clip_base_arch(arch_name)
    resolved = path.expanduser().resolve()
    for entry in _quick_gelu_entries():
        if entry.arch != base:
            continue
        if any(resolved == (paths.weights_dir() / name).resolve() for name in entry.files):
            return True
        hub_folder = "models--" + entry.hf_hub.replace("/", "--")
        if hub_folder in resolved.parts:
            return True
    return False


def openai_evidence(arch_name: str, resolved, keys: Iterable[str], is_torchscript: bool) -> Optional[str]:
    """Why the weights are OpenAI's (QuickGELU-trained), or None when nothing says so."""
    if resolved.tag:
        entry = specs.clip_checkpoint(arch_name, resolved.tag)
        if entry is not None and entry.quick_gelu:
            return f"the {resolved.tag!r} weights"
    if resolved.path is None:
        return None
    if is_torchscript:
        return "a TorchScript archive (OpenAI's release format)"
    present = [k for k in OPENAI_METADATA_KEYS if k in set(keys)]
    if present:
        return f"OpenAI's metadata entries in the state dict ({', '.join(present)})"
    meta = safetensors_metadata(resolved.path)
    if any("openai" in f"{k} {v}".lower() for k, v in meta.items()):
        return "safetensors metadata naming OpenAI"
    if _at_openai_location(resolved.path, arch_name):
        return "a file at the catalogue's location for OpenAI weights"
    return None


def choose_quick_gelu(arch_name: str, activation: str, resolved, keys: Iterable[str] = (),
                      is_torchscript: bool = False) -> bool:
    """True when the CLIP model must run QuickGELU for these weights (see the module docstring)."""
    if activation not in ACTIVATIONS:
        raise UserError(f"unknown model.clip_activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
    arch_quick = arch_name.endswith(QUICK_GELU_SUFFIX) or bool(specs.clip_arch(arch_name).model_cfg().get("quick_gelu"))
    if activation == "quickgelu":
        return True
    if activation == "gelu":
        if arch_quick:
            raise UserError(f"model.clip_activation=gelu contradicts model.clip_arch={arch_name}; use the plain "
                            f"architecture {specs.clip_base_arch(arch_name)} or clip_activation=auto")
        why = openai_evidence(arch_name, resolved, keys, is_torchscript)
        if why:
            log.warning("CLIP %s: exact GELU as asked (model.clip_activation=gelu), although %s suggest(s) "
                        "OpenAI weights trained with QuickGELU", arch_name, why)
        return False
    if arch_quick:
        return True
    if resolved.path is None:
        return False
    why = openai_evidence(arch_name, resolved, keys, is_torchscript)
    if why:
        log.info("CLIP %s: %s, trained with QuickGELU: using it", arch_name, why)
        return True
    if openai_weights_exist(arch_name):
        base = specs.clip_base_arch(arch_name)
        raise UserError(
            f"CLIP weights {resolved.path}: cannot tell whether they are OpenAI's (trained with QuickGELU) or "
            f"not; set model.clip_arch={base}{QUICK_GELU_SUFFIX} for OpenAI weights, or model.clip_activation=gelu "
            f"to run {base} with exact GELU")
    return False
