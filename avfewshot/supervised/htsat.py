"""The frozen HTS-AT audio backbone of the supervised runners (laion-clap's ``clap_module.htsat``).

Built from the model code only (``encoders/clap_import.py``: the top-level ``laion_clap`` is never
imported), with random weights or the AudioSet checkpoint ``HTSAT_AudioSet_Saved_1.ckpt`` of the
DG-SCT release (a Lightning file: ``state_dict`` with every key prefixed ``sed_model.``; the STFT and
mel tensors are part of it).

Front end, as released (docs/supervised.md §0): each 1-s segment is tiled to ``clip_seconds`` (10 s at real
size), STFT, log-mel, ``bn0`` over the mel bins; then (train mode of the adapters only, and only when
asked) SpecAugment and mixup; then bicubic resize of time and the fold into a square canvas
(``reshape_wav2img``), 4x4 patches + LN. The tower itself always runs in eval mode: ``bn0`` keeps its
running statistics and drop-path never fires.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import torch
from torch import nn

from ..encoders import checkpoints as ckpt
from ..encoders.clap_import import import_clap_module
from ..encoders.clap_towers import dft_window
from ..encoders.frozen import FrozenTower
from ..encoders.swin_blocks import swin_block_forward
from ..errors import UserError
from .presets import HTSATSize

#: key prefix of the released Lightning checkpoint (the SED wrapper's attribute name)
CHECKPOINT_PREFIX = "sed_model."


def build_htsat_model(size: HTSATSize) -> nn.Module:
    """``clap_module.htsat.HTSAT_Swin_Transformer`` of the given size, random weights.

    Under a ``torch.device("meta")`` context the model is built on the CPU and then moved to meta:
    torchlibrosa fills its STFT kernels through ``.data`` assignment, which meta tensors refuse.
    """
    if torch.empty(0).device.type == "meta":
        with torch.device("cpu"):
            return build_htsat_model(size).to("meta")
    import_clap_module()
    from clap_module.htsat import HTSAT_Swin_Transformer
    from clap_module.model import CLAPAudioCfp

    cfg = CLAPAudioCfp(model_type="HTSAT", model_name="supervised", sample_rate=size.sample_rate, audio_length=1024,
                       window_size=size.window_size, hop_size=size.hop_size, fmin=size.fmin, fmax=size.fmax,
                       class_num=size.num_classes, mel_bins=size.mel_bins,
                       clip_samples=size.sample_rate * size.clip_seconds)
    return HTSAT_Swin_Transformer(
        spec_size=size.spec_size, patch_size=size.patch_size, patch_stride=(size.patch_size, size.patch_size),
        num_classes=size.num_classes, embed_dim=size.embed_dim, depths=list(size.depths),
        num_heads=list(size.num_heads), window_size=size.swin_window, config=cfg, enable_fusion=False,
        fusion_type="None")


def htsat_state_from_file(path: Path) -> Dict[str, torch.Tensor]:
    """The HTS-AT state dict of a released checkpoint, ``sed_model.`` prefix removed."""
    if not path.is_file():
        raise UserError(f"HTS-AT checkpoint {path} not found: pass the AudioSet file HTSAT_AudioSet_Saved_1.ckpt "
                        f"(DG-SCT checkpoints.zip, folder AudioSet/)")
    state = ckpt.unwrap_state_dict(ckpt.read_state_dict(path), path)
    if any(k.startswith(CHECKPOINT_PREFIX) for k in state):
        state = {k[len(CHECKPOINT_PREFIX):]: v for k, v in state.items() if k.startswith(CHECKPOINT_PREFIX)}
    return state


class HTSATAudio(FrozenTower):
    """HTS-AT pieces: ``mel`` -> ``to_image`` -> ``embed`` -> per stage ``merge`` and ``block`` s."""

    def __init__(self, size: HTSATSize, weights: Optional[str] = None):
        super().__init__()
        self.size = size
        self.htsat = build_htsat_model(size)
        if weights:
            path = Path(weights).expanduser()
            ckpt.load_strict(self.htsat, htsat_state_from_file(path), path, "HTS-AT (AudioSet)")
        self.clip_samples = size.sample_rate * size.clip_seconds
        self.grids = size.grids
        self.dims = size.dims
        self.depths = tuple(size.depths)
        stft = self.htsat.spectrogram_extractor.stft
        self.fft_window = None if stft.conv_real.weight.is_meta else dft_window(stft)
        self.freeze()

    @property
    def stages(self):
        return self.htsat.layers

    def fill(self, wave: torch.Tensor) -> torch.Tensor:
        """(N, S) one-second segments -> (N, clip_samples), each segment looped (the released tiling)."""
        n = wave.shape[-1]
        if n == self.clip_samples:
            return wave
        if n > self.clip_samples:
            raise UserError(f"audio segments of {n} samples are longer than HTS-AT's clip of {self.clip_samples}")
        return wave.repeat(1, -(-self.clip_samples // n))[:, : self.clip_samples]

    def power_spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        """torchlibrosa's power spectrogram, computed with an FFT when its conv kernels are a windowed DFT."""
        extractor = self.htsat.spectrogram_extractor
        if self.fft_window is None or extractor.power != 2.0 or wave.device.type == "meta":
            return extractor(wave)
        stft = extractor.stft
        spec = torch.stft(wave, stft.n_fft, stft.hop_length, window=self.fft_window.to(wave.device),
                          center=stft.center, pad_mode=stft.pad_mode, onesided=True, return_complex=True)
        power = spec.real.square().addcmul_(spec.imag, spec.imag)
        return power.transpose(1, 2).unsqueeze(1)

    def mel(self, wave: torch.Tensor) -> torch.Tensor:
        """(N, S) -> (N, 1, frames, mel_bins): STFT, log-mel, bn0 (running statistics)."""
        h = self.htsat
        x = h.logmel_extractor(self.power_spectrogram(self.fill(wave)))
        return h.bn0(x.transpose(1, 3)).transpose(1, 3)

    def to_image(self, mel: torch.Tensor) -> torch.Tensor:
        """(N, 1, frames, mel_bins) -> (N, 1, spec, spec): bicubic time resize and the frequency fold."""
        return self.htsat.reshape_wav2img(mel)

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 1, spec, spec) -> (N, L, C) patch tokens of stage 1."""
        h = self.htsat
        x = h.patch_embed(image)
        if h.ape:
            x = x + h.absolute_pos_embed
        return h.pos_drop(x)

    def merge(self, stage: int, x: torch.Tensor) -> torch.Tensor:
        """Patch merging into ``stage`` (>= 1): HTS-AT merges at the end of the previous stage."""
        if stage == 0:
            return x
        return self.stages[stage - 1].downsample(x)

    def block(self, stage: int, block: int, x: torch.Tensor) -> torch.Tensor:
        return swin_block_forward(self.stages[stage].blocks[block], x)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """The unadapted tower: (N, S) -> last-stage tokens (N, L, C), without HTS-AT's final norm."""
        x = self.embed(self.to_image(self.mel(wave)))
        for s, depth in enumerate(self.depths):
            x = self.merge(s, x)
            for j in range(depth):
                x = self.block(s, j, x)
        return x
