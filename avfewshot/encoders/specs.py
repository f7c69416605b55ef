"""Architectures, audio front-ends and the checkpoint table, read from ``model_configs/*.json``.

Everything here is plain data (no torch), so ``avfewshot models list`` and config validation are
instant. Adding an architecture means adding a JSON file, like open_clip's model_configs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from ..errors import UserError
from ..registry import Registry

CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"


@dataclass(frozen=True)
class ClipArch:
    name: str
    description: str
    open_clip_config: Union[str, Dict[str, Any]]  # an open_clip config name, or the config itself

    def model_cfg(self) -> Dict[str, Any]:
        """The open_clip model config dict (a fresh copy)."""
        if isinstance(self.open_clip_config, str):
            import open_clip

            cfg = open_clip.get_model_config(self.open_clip_config)
            if cfg is None:
                raise UserError(f"open_clip has no model config {self.open_clip_config!r} (architecture {self.name})")
            return cfg
        return json.loads(json.dumps(self.open_clip_config))


@dataclass(frozen=True)
class AudioFrontend:
    """How a one-second waveform becomes HTS-AT's input image."""

    name: str
    description: str
    sample_rate: int
    window_size: int
    hop_size: int
    mel_bins: int
    fmin: float
    fmax: float
    clip_seconds: float  # each segment is looped / repeat-padded to this length
    fill: str  # loop (tile and cut, as DG-SCT) | repeatpad (whole repeats then zeros, as CLAP)
    mel_matrix: str  # computed (for this sample rate) | checkpoint (keep the loaded matrix: parity)

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def frames(self) -> int:
        return self.clip_samples // self.hop_size + 1  # centred STFT

    def describe(self) -> str:
        return (f"{self.sample_rate} Hz, win {self.window_size}, hop {self.hop_size}, {self.mel_bins} mels "
                f"{self.fmin:g}-{self.fmax:g} Hz, {self.clip_seconds:g} s {self.fill}, mel matrix {self.mel_matrix}")


@dataclass(frozen=True)
class ClapArch:
    name: str
    description: str
    audio: Dict[str, Any]  # HTS-AT constructor arguments (+ mel_bins, fusion)
    text: Dict[str, Any]  # RobertaConfig values (+ context_length, tokenizer)
    joint_dim: int
    frontend: str  # the native audio front-end

    @property
    def fused(self) -> bool:
        return bool(self.audio.get("fusion"))

    @property
    def audio_width(self) -> int:
        return int(self.audio["embed_dim"]) * 2 ** (len(self.audio["depths"]) - 1)

    @property
    def max_frames(self) -> int:
        freq_ratio = self.audio["spec_size"] // self.audio["mel_bins"]
        return self.audio["spec_size"] * freq_ratio


@dataclass(frozen=True)
class ClapCheckpoint:
    name: str
    file: str
    fused: bool
    arch: str
    mel_scale: str  # the mel filterbank the model was trained with: slaney (torchlibrosa) | htk (torchaudio)
    source: str
    description: str = ""
    built: str = ""  # "demo": not downloaded but built on first use into paths.built_weights_dir()


@dataclass(frozen=True)
class ClipCheckpoint:
    tag: str
    arch: str  # base architecture name (ViT-B-32); the -quickgelu variant shares the files
    files: List[str]
    hf_hub: str
    quick_gelu: bool
    source: str
    torchscript_sha256: Optional[str] = None  # the released TorchScript file's digest (from its download URL)
    built: str = ""  # "demo": not downloaded but built on first use into paths.built_weights_dir()


@dataclass(frozen=True)
class TokenizerEntry:
    name: str
    folder: str
    files: List[str]
    vocab_size: int
    source: str


def _read(name: str) -> Dict[str, Any]:
    path = CONFIG_DIR / name
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read model config {path}: {exc}") from None


@dataclass
class Catalogue:
    clip_archs: Registry = field(default_factory=lambda: Registry("CLIP architecture"))
    clap_archs: Registry = field(default_factory=lambda: Registry("CLAP architecture"))
    frontends: Registry = field(default_factory=lambda: Registry("audio front-end"))
    clap_checkpoints: Registry = field(default_factory=lambda: Registry("CLAP checkpoint"))
    clip_checkpoints: Dict[str, Dict[str, ClipCheckpoint]] = field(default_factory=dict)  # tag -> base arch -> entry
    tokenizers: Registry = field(default_factory=lambda: Registry("tokenizer"))


@lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    cat = Catalogue()
    for path in sorted(CONFIG_DIR.glob("clip-*.json")):
        data = _read(path.name)
        name = path.stem[len("clip-"):]
        cat.clip_archs.add(name, ClipArch(name, data.get("description", ""), data["open_clip_config"]))
    for path in sorted(CONFIG_DIR.glob("clap-*.json")):
        data = _read(path.name)
        name = path.stem[len("clap-"):]
        cat.clap_archs.add(name, ClapArch(name, data.get("description", ""), data["audio"], data["text"],
                                          int(data["joint_dim"]), data["frontend"]))
    for name, data in _read("audio_frontends.json").items():
        cat.frontends.add(name, AudioFrontend(name=name, **data))
    table = _read("checkpoints.json")
    for name, data in table["clap"].items():
        cat.clap_checkpoints.add(name, ClapCheckpoint(name=name, **data))
    for tag, per_arch in table["clip"].items():
        cat.clip_checkpoints[tag] = {arch: ClipCheckpoint(tag=tag, arch=arch, **data) for arch, data in per_arch.items()}
    for name, data in table["tokenizers"].items():
        cat.tokenizers.add(name, TokenizerEntry(name=name, **data))
    return cat


def _lookup(registry: Registry, name: str):
    try:
        return registry.get(name)
    except KeyError as exc:
        raise UserError(exc.args[0]) from None


def clip_arch(name: str) -> ClipArch:
    return _lookup(catalogue().clip_archs, name)


def clap_arch(name: str) -> ClapArch:
    return _lookup(catalogue().clap_archs, name)


def clap_checkpoint(name: str) -> Optional[ClapCheckpoint]:
    cat = catalogue()
    return cat.clap_checkpoints.get(name) if name in cat.clap_checkpoints else None


def clip_base_arch(arch: str) -> str:
    return arch[: -len("-quickgelu")] if arch.endswith("-quickgelu") else arch


def clip_checkpoint(arch: str, tag: str) -> Optional[ClipCheckpoint]:
    return catalogue().clip_checkpoints.get(tag, {}).get(clip_base_arch(arch))


def clip_tags() -> List[str]:
    return sorted(catalogue().clip_checkpoints)


def resolve_frontend(name: str, arch: ClapArch) -> AudioFrontend:
    """The front-end for ``name`` (``native`` = the architecture's own), checked against the architecture."""
    cat = catalogue()
    key = arch.frontend if name in ("native", "auto", None, "") else name
    frontend: AudioFrontend = _lookup(cat.frontends, key)
    fits = [n for n in cat.frontends.names() if _fits(cat.frontends.get(n), arch)]
    if not _fits(frontend, arch):
        raise UserError(
            f"model.audio_frontend={name!r} ({frontend.describe()}) does not fit CLAP architecture {arch.name!r} "
            f"({arch.audio['mel_bins']} mel bins, at most {arch.max_frames} frames); "
            f"front-ends that fit: native, {', '.join(fits)}")
    return frontend


def _fits(frontend: AudioFrontend, arch: ClapArch) -> bool:
    return frontend.mel_bins == arch.audio["mel_bins"] and frontend.frames <= arch.max_frames
