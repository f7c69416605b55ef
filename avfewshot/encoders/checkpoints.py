"""Finding weights on disk and reading them safely.

A checkpoint is a pickle, and a pickle can run code: everything is read with
``torch.load(weights_only=True)``. The released CLAP files also hold numpy scalars (epoch, ...), so
exactly the numpy scalar/dtype reconstructors are allowed while they load, never more.
"""
from __future__ import annotations

import glob
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from .. import paths
from ..errors import MissingCheckpointError, UserError
from . import specs
from .config import WEIGHTS_NONE


@dataclass(frozen=True)
class ResolvedWeights:
    """Where a tower's weights come from; ``path is None`` means random initialisation."""

    spec: str  # what the user asked for (tag, path or none)
    path: Optional[Path]
    tag: Optional[str] = None

    @property
    def random(self) -> bool:
        return self.path is None

    def identity(self) -> str:
        """Cheap identity for fingerprints: file name, size and modification time."""
        if self.path is None:
            return "random-init"
        st = self.path.stat()
        return f"{self.path.name}:{st.st_size}:{int(st.st_mtime)}"


def is_none(weights: Optional[str]) -> bool:
    return weights is None or str(weights).strip().lower() in WEIGHTS_NONE


def looks_like_path(weights: str) -> bool:
    return os.sep in weights or weights.startswith(("~", ".")) or Path(weights).suffix in (
        ".pt", ".pth", ".bin", ".safetensors", ".ckpt")


def _direct_file(weights: str, what: str) -> Path:
    path = Path(weights).expanduser()
    if not path.is_file():
        raise MissingCheckpointError(f"{what} weights file {path} does not exist (model.*_weights={weights!r})")
    return path


def entry_folder(entry) -> Path:
    """Released weights live in the weights folder; weights built on first use (``built``) in the cache."""
    return paths.built_weights_dir() if getattr(entry, "built", "") else paths.weights_dir()


def _not_built(what: str, name: str, path: Path) -> MissingCheckpointError:
    return MissingCheckpointError(f"{what} weights {name!r} are built on first use and are not at {path} yet: "
                                  f"build_backbone builds them (or run `avfewshot models build-demo`)")


# -- CLAP ------------------------------------------------------------------------------------
def resolve_clap_weights(weights: Optional[str]) -> ResolvedWeights:
    if is_none(weights):
        return ResolvedWeights(str(weights), None)
    entry = specs.clap_checkpoint(weights)
    if entry is None:
        if looks_like_path(weights) or Path(weights).expanduser().is_file():
            return ResolvedWeights(weights, _direct_file(weights, "CLAP"))
        valid = ", ".join(specs.catalogue().clap_checkpoints.names())
        raise UserError(f"unknown CLAP weights {weights!r}: use a tag ({valid}), a file path, or 'none'")
    path = entry_folder(entry) / entry.file
    if not path.is_file() and entry.built:
        raise _not_built("CLAP", entry.name, path)
    if not path.is_file():
        raise MissingCheckpointError(
            f"CLAP checkpoint {entry.name!r} not found at {path}. Download it from {entry.source} and put it "
            f"there (or set $AVFEWSHOT_WEIGHTS to the folder that holds it, or pass a file path).")
    return ResolvedWeights(weights, path, tag=entry.name)


# -- CLIP ------------------------------------------------------------------------------------
def hf_cache_candidates(repo: str) -> List[Path]:
    """open_clip files already in a local Hugging Face hub cache (read-only glob, no network)."""
    roots = []
    if os.environ.get("HF_HUB_CACHE"):
        roots.append(Path(os.environ["HF_HUB_CACHE"]))
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    roots.append(hf_home / "hub")
    folder = "models--" + repo.replace("/", "--")
    found: List[Path] = []
    for root in roots:
        for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            found.extend(Path(p) for p in sorted(glob.glob(str(root / folder / "snapshots" / "*" / name))))
    return found


def clip_candidates(arch: str, tag: str) -> List[Path]:
    entry = specs.clip_checkpoint(arch, tag)
    if entry is None:
        return []
    local = [entry_folder(entry) / f for f in entry.files]
    return local + (hf_cache_candidates(entry.hf_hub) if entry.hf_hub else [])


def resolve_clip_weights(arch: str, weights: Optional[str]) -> ResolvedWeights:
    if is_none(weights):
        return ResolvedWeights(str(weights), None)
    entry = specs.clip_checkpoint(arch, weights)
    if entry is None:
        if looks_like_path(weights) or Path(weights).expanduser().is_file():
            return ResolvedWeights(weights, _direct_file(weights, "CLIP"))
        tags = [t for t in specs.clip_tags() if specs.clip_checkpoint(arch, t)]
        raise UserError(f"unknown CLIP weights {weights!r} for architecture {arch!r}: use "
                        f"{'a tag (' + ', '.join(tags) + '), ' if tags else ''}a file path, or 'none'")
    for path in clip_candidates(arch, weights):
        if path.is_file():
            return ResolvedWeights(weights, path, tag=weights)
    expected = entry_folder(entry) / entry.files[0]
    if entry.built:
        raise _not_built("CLIP", weights, expected)
    raise MissingCheckpointError(
        f"CLIP {entry.arch} weights {weights!r} not found at {expected} (also looked for "
        f"{', '.join(entry.files[1:])} there and in the Hugging Face cache for {entry.hf_hub}). Download "
        f"{entry.source} and put it at {expected}, or pass a file path.")


# -- safe reading ----------------------------------------------------------------------------
def _numpy_safe_globals() -> list:
    """The reconstructors a pickled numpy scalar needs, under numpy 1.x and 2.x names."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    allowed: list = [scalar, (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"), np.dtype]
    dtype_classes = getattr(np, "dtypes", None)
    if dtype_classes is not None:
        for name in ("Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
                     "Float16", "Float32", "Float64"):
            cls = getattr(dtype_classes, f"{name}DType", None)
            if cls is not None:
                allowed.append(cls)
    return allowed


def is_torchscript_archive(path: Path) -> bool:
    """An OpenAI JIT ``.pt`` (a TorchScript zip with code/ and constants.pkl)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    return any(n.endswith("constants.pkl") for n in names) and any("/code/" in n for n in names)


def read_state_dict(path: Path) -> Dict[str, "object"]:
    """Read a ``.safetensors`` / ``.bin`` / ``.pt`` file; return the (possibly nested) object."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    if is_torchscript_archive(path):
        # TorchScript archives are not pickles of Python objects; only their tensors are kept
        module = torch.jit.load(str(path), map_location="cpu")
        return dict(module.state_dict())
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, zip errors, truncated files
        raise UserError(
            f"cannot read checkpoint {path} with torch.load(weights_only=True): {exc}. The file is damaged, "
            f"or holds Python objects other than tensors and numpy scalars (refusing to unpickle it).") from None


def unwrap_state_dict(obj: object, path: Path) -> Dict[str, "object"]:
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise UserError(f"checkpoint {path} holds no state dict")
    import torch

    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise UserError(f"checkpoint {path} holds no tensors")
    return tensors


def strip_prefix(state: Dict[str, object], prefix: str = "module.") -> Dict[str, object]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_strict(module, state: Dict[str, object], path: Path, what: str) -> None:
    """``load_state_dict`` with a readable error listing missing and unexpected keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(state)) if tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = [f"checkpoint {path} does not match the {what} architecture"]
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
            if keys:
                parts.append(f"{label} ({len(keys)}): {_head(keys)}")
        parts.append("check model.*_arch against the checkpoint (e.g. fused vs unfused CLAP, ViT-B-32 vs ViT-B-16)")
        raise UserError("; ".join(parts))
    module.load_state_dict(state, strict=True)


def _head(keys: Iterable[str], n: int = 8) -> str:
    keys = list(keys)
    return ", ".join(keys[:n]) + (f", ... (+{len(keys) - n} more)" if len(keys) > n else "")


# -- key clean-up ----------------------------------------------------------------------------
FUSION_PREFIXES: Tuple[str, ...] = ("audio_branch.patch_embed.mel_conv2d.", "audio_branch.patch_embed.fusion_model.",
                                    "audio_branch.mel_conv1d.", "audio_branch.fusion_model.")
DROPPED_CLAP_KEYS = ("text_branch.embeddings.position_ids", "text_branch.embeddings.token_type_ids")


def clean_clap_state(state: Dict[str, object], fused_model: bool) -> Dict[str, object]:
    """Released-layout CLAP keys -> this toolkit's CLAP module keys."""
    state = strip_prefix(state, "module.")
    state = {k: v for k, v in state.items() if k not in DROPPED_CLAP_KEYS}
    if not fused_model:
        state = {k: v for k, v in state.items() if not k.startswith(FUSION_PREFIXES)}
    return state


def checkpoint_is_fused(state: Dict[str, object]) -> bool:
    return any(k.startswith(FUSION_PREFIXES) for k in strip_prefix(state, "module."))
