"""Finding weights on disk and reading them safely.

A checkpoint is a pickle, and a pickle can run code: plain checkpoints are read only with
``torch.load(weights_only=True)`` or as ``.safetensors``. The released CLAP files also hold numpy
scalars (epoch, ...), so exactly the numpy scalar/dtype reconstructors are allowed while they load,
never more.

A TorchScript archive (OpenAI's released CLIP ``.pt`` files are TorchScript) can run TorchScript
code while it loads (``__setstate__``), so ``torch.jit.load`` sees only archives whose sha256 is a
digest OpenAI published (the ``torchscript_sha256`` entries of the checkpoint table, taken from its
download URLs), or any archive when the user opts in with ``model.trust_torchscript=true``.
Every unreadable file is a one-line :class:`UserError` naming it.
"""
from __future__ import annotations

import glob
import hashlib
import os
import re
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
    """A TorchScript zip (an OpenAI JIT ``.pt``): it has a ``constants.pkl`` record, as torch itself tests."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UserError(f"cannot read weights file {path}: damaged zip archive ({_first_line(exc)})") from None
    return any(n == "constants.pkl" or n.endswith("/constants.pkl") for n in names)


def published_torchscript_digests() -> Dict[str, str]:
    """sha256 -> description of every TorchScript file the checkpoint table lists (OpenAI's releases)."""
    out: Dict[str, str] = {}
    for tag, per_arch in specs.catalogue().clip_checkpoints.items():
        for arch, entry in per_arch.items():
            if entry.torchscript_sha256:
                out[entry.torchscript_sha256.lower()] = f"CLIP {arch} {tag}"
    return out


_DIGESTS: Dict[Tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, per process


def file_sha256(path: Path) -> str:
    """sha256 of a file (about 0.4 s for a 350 MB CLIP file), remembered per (path, size, mtime)."""
    st = path.stat()
    ident = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if ident not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        _DIGESTS[ident] = digest.hexdigest()
    return _DIGESTS[ident]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _read_torchscript(path: Path, trust_torchscript: bool) -> Dict[str, "object"]:
    import torch

    if not trust_torchscript and file_sha256(path) not in published_torchscript_digests():
        raise UserError(
            f"weights file {path} is a TorchScript archive, which can run code when loaded, and its sha256 is not "
            f"a published digest: save it as a plain state dict or .safetensors, or set model.trust_torchscript=true "
            f"if you trust its source")
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError and others for damaged archives
        raise UserError(f"cannot read TorchScript weights file {path}: {_first_line(exc)}") from None
    # only the tensors are kept: no TorchScript method of the archive is ever called
    return dict(module.state_dict())


def _weights_only_reason(exc: BaseException) -> str:
    """torch's weights_only error in a few words (its own text is paragraphs of advice)."""
    text = str(exc)
    found = re.search(r"(?:unsupported|Unsupported global:) GLOBAL ([\w.]+)", text)
    if found:
        return f"it holds the Python object {found.group(1)}, not only tensors and numpy scalars (refusing to unpickle it)"
    if "Weights only load failed" in text:
        return "it holds Python objects other than tensors and numpy scalars (refusing to unpickle them)"
    return f"the file is damaged or not a PyTorch checkpoint ({_first_line(exc)})"


def read_state_dict(path: Path, trust_torchscript: bool = False) -> Dict[str, "object"]:
    """Read a ``.safetensors`` / ``.bin`` / ``.pt`` file; return the (possibly nested) object.

    ``trust_torchscript``: load any TorchScript archive, not only those with a published digest.
    """
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError, ...
            raise UserError(f"cannot read safetensors weights file {path}: {_first_line(exc)}") from None
    if is_torchscript_archive(path):
        return _read_torchscript(path, trust_torchscript)
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, zip errors, truncated files
        raise UserError(f"cannot read checkpoint {path} with torch.load(weights_only=True): "
                        f"{_weights_only_reason(exc)}") from None


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
