"""CLAP towers: HTS-AT (laion-clap's ``clap_module.htsat``) and RoBERTa (transformers), frozen.

The modules carry the released checkpoints' names (``audio_branch``, ``text_branch``,
``text_transform``, ``text_projection``, ``audio_transform``, ``audio_projection``,
``logit_scale_a``, ``logit_scale_t``), so a released state dict loads strictly after clean-up.
The RoBERTa text tower is built from a local ``RobertaConfig``: nothing is fetched from the hub.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from ..errors import UserError
from . import checkpoints as ckpt
from . import specs
from .clap_import import import_clap_module
from .frozen import FrozenTower, low_precision_compute, seeded_init, skip_weight_init
from .swin_blocks import swin_block_forward
from .tokenizers import RobertaTextTokenizer

ROBERTA_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "type_vocab_size", "layer_norm_eps", "pad_token_id", "bos_token_id",
                "eos_token_id")
FRONTEND_BUFFERS = ("spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight",
                    "logmel_extractor.melW")


def roberta_config(text_cfg: Dict):
    from transformers import RobertaConfig

    values = {k: text_cfg[k] for k in ROBERTA_KEYS}
    return RobertaConfig(**values, hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)


def htk_mel_matrix(frontend: specs.AudioFrontend) -> torch.Tensor:
    """(n_freqs, n_mels) HTK filterbank without area normalisation, as CLAP's fused-model data pipeline."""
    import torchaudio

    return torchaudio.functional.melscale_fbanks(
        n_freqs=frontend.window_size // 2 + 1, f_min=float(frontend.fmin), f_max=float(frontend.fmax),
        n_mels=frontend.mel_bins, sample_rate=frontend.sample_rate, norm=None, mel_scale="htk")


def slaney_mel_matrix(frontend: specs.AudioFrontend) -> torch.Tensor:
    import librosa

    mel = librosa.filters.mel(sr=frontend.sample_rate, n_fft=frontend.window_size, n_mels=frontend.mel_bins,
                              fmin=frontend.fmin, fmax=frontend.fmax)
    return torch.from_numpy(mel.T.copy())


def mel_matrix(frontend: specs.AudioFrontend, mel_scale: str) -> torch.Tensor:
    if mel_scale == "htk":
        return htk_mel_matrix(frontend)
    if mel_scale == "slaney":
        return slaney_mel_matrix(frontend)
    raise UserError(f"unknown mel scale {mel_scale!r}; valid: slaney, htk")


class ClapModel(nn.Module):
    """The CLAP network with the released checkpoints' module names (no training-only logic)."""

    def __init__(self, arch: specs.ClapArch, frontend: specs.AudioFrontend):
        super().__init__()
        import_clap_module()
        from clap_module.htsat import HTSAT_Swin_Transformer
        from clap_module.model import CLAPAudioCfp, MLPLayers
        from transformers import RobertaModel

        a = arch.audio
        audio_cfg = CLAPAudioCfp(
            model_type="HTSAT", model_name=arch.name, sample_rate=frontend.sample_rate, audio_length=1024,
            window_size=frontend.window_size, hop_size=frontend.hop_size, fmin=frontend.fmin, fmax=frontend.fmax,
            class_num=a["num_classes"], mel_bins=a["mel_bins"], clip_samples=frontend.clip_samples)
        self.audio_branch = HTSAT_Swin_Transformer(
            spec_size=a["spec_size"], patch_size=a["patch_size"], patch_stride=tuple(a["patch_stride"]),
            num_classes=a["num_classes"], embed_dim=a["embed_dim"], depths=list(a["depths"]),
            num_heads=list(a["num_heads"]), window_size=a["window_size"], config=audio_cfg,
            enable_fusion=arch.fused, fusion_type=a.get("fusion") or "None")
        self.text_branch = RobertaModel(roberta_config(arch.text), add_pooling_layer=True)
        joint, hidden = arch.joint_dim, int(arch.text["hidden_size"])
        self.text_transform = MLPLayers(units=[joint, joint, joint], dropout=0.1)
        self.text_projection = nn.Sequential(nn.Linear(hidden, joint), nn.ReLU(), nn.Linear(joint, joint))
        self.audio_transform = MLPLayers(units=[joint, joint, joint], dropout=0.1)
        self.audio_projection = nn.Sequential(nn.Linear(arch.audio_width, joint), nn.ReLU(), nn.Linear(joint, joint))
        self.logit_scale_a = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))
        self.logit_scale_t = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))


@dataclass(frozen=True)
class ClapBuild:
    model: ClapModel
    arch: specs.ClapArch
    frontend: specs.AudioFrontend
    weights: ckpt.ResolvedWeights
    mel_scale: str


def build_clap_model(arch_name: str, weights: Optional[str], frontend_name: str = "native",
                     trust_torchscript: bool = False) -> ClapBuild:
    arch = specs.clap_arch(arch_name)
    frontend = specs.resolve_frontend(frontend_name, arch)
    resolved = ckpt.resolve_clap_weights(weights)
    import_clap_module()
    state = None
    trained_fused = arch.fused
    if resolved.path is not None:
        raw = ckpt.unwrap_state_dict(ckpt.read_state_dict(resolved.path, trust_torchscript), resolved.path)
        trained_fused = ckpt.checkpoint_is_fused(raw)
        if arch.fused and not trained_fused:
            raise UserError(f"CLAP checkpoint {resolved.path} is unfused but architecture {arch_name!r} has the fusion "
                            f"branch: use an unfused architecture (e.g. HTSAT-tiny)")
        state = ckpt.clean_clap_state(raw, fused_model=arch.fused)
        del raw
    entry = specs.clap_checkpoint(resolved.tag) if resolved.tag else None
    # CLAP's fused models were trained on torchaudio's HTK mels, the unfused ones on torchlibrosa's Slaney mels
    mel_scale = entry.mel_scale if entry else ("htk" if trained_fused else "slaney")
    with seeded_init() if state is None else skip_weight_init():
        model = ClapModel(arch, frontend)
    branch = model.audio_branch
    with torch.no_grad():
        computed = mel_matrix(frontend, mel_scale)
        if state is None and frontend.mel_matrix == "checkpoint":
            # no checkpoint to inherit from: use what a CLAP checkpoint holds (its own 48 kHz matrix)
            native = specs.catalogue().frontends.get(arch.frontend)
            computed = mel_matrix(native, mel_scale)
        branch.logmel_extractor.melW.copy_(computed)
        own_frontend = {k: v.detach().clone() for k, v in branch.state_dict().items() if k in FRONTEND_BUFFERS}
        if state is not None:
            ckpt.load_strict(model, state, resolved.path, f"CLAP {arch_name}")
            if frontend.mel_matrix == "computed":  # the file's STFT/mel tensors were made for 48 kHz
                branch.load_state_dict(own_frontend, strict=False)
    return ClapBuild(model.eval(), arch, frontend, resolved, mel_scale)


def dft_window(stft: nn.Module) -> Optional[torch.Tensor]:
    """The analysis window of a torchlibrosa ``STFT`` whose conv kernels are exactly a windowed DFT
    (w(t)·cos, ∓w(t)·sin of 2πft/n_fft), else None (then the convolutions are used as stored)."""
    real = stft.conv_real.weight.detach()[:, 0, :].double()  # (bins, n_fft)
    imag = stft.conv_imag.weight.detach()[:, 0, :].double()
    bins, n_fft = real.shape
    if bins != n_fft // 2 + 1 or getattr(stft, "n_fft", None) != n_fft:
        return None
    window = real[0]
    steps = torch.arange(n_fft, dtype=torch.float64)
    angle = 2 * math.pi * torch.outer(torch.arange(bins, dtype=torch.float64), steps) / n_fft
    cos, sin = window * torch.cos(angle), window * torch.sin(angle)
    tol = 1e-5 * (float(window.abs().max()) or 1.0)

    def close(a: torch.Tensor, b: torch.Tensor) -> bool:
        return torch.allclose(a, b, atol=tol, rtol=0)

    if not close(real, cos) or not (close(imag, -sin) or close(imag, sin)):
        return None
    return window.float()


class AudioTower(FrozenTower):
    """HTS-AT. ``frontend`` -> ``embed`` -> ``stages[s].blocks`` / ``downsample`` -> ``head`` -> ``project``."""

    def __init__(self, build: ClapBuild):
        super().__init__()
        self.branch = build.model.audio_branch
        self.audio_projection = build.model.audio_projection
        self.spec = build.frontend
        self.mel_scale = build.mel_scale
        self.sample_rate = build.frontend.sample_rate
        self.clip_samples = build.frontend.clip_samples
        self.stages = self.branch.layers
        self.fused = build.arch.fused
        self.width = build.arch.audio_width
        self.output_dim = build.arch.joint_dim
        # a buffer (not saved): it moves with the tower to the run's device; none on a meta build
        stft = self.branch.spectrogram_extractor.stft
        window = None if stft.conv_real.weight.is_meta else dft_window(stft)
        self.register_buffer("fft_window", window, persistent=False)
        self.freeze()

    def fp32_modules(self):
        """The STFT / log-mel front end and bn0 stay fp32 (log of small powers; one pass per clip)."""
        b = self.branch
        return (b.spectrogram_extractor, b.logmel_extractor, b.bn0)

    def fill(self, wave: torch.Tensor) -> torch.Tensor:
        """(N, S) -> (N, clip_samples): loop (DG-SCT) or repeat-pad (CLAP) each segment to the clip length."""
        n = wave.shape[-1]
        if n == self.clip_samples:
            return wave
        if n > self.clip_samples:
            raise UserError(f"audio segments of {n} samples are longer than the front-end's clip of "
                            f"{self.clip_samples} samples ({self.spec.name})")
        if self.spec.fill == "loop":
            return wave.repeat(1, -(-self.clip_samples // n))[:, : self.clip_samples]
        if self.spec.fill == "repeatpad":
            out = wave.repeat(1, self.clip_samples // n)
            return nn.functional.pad(out, (0, self.clip_samples - out.shape[-1]))
        raise UserError(f"unknown audio fill {self.spec.fill!r}; valid: loop, repeatpad")

    def power_spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        """(N, clip_samples) -> (N, 1, frames, bins): torchlibrosa's ``Spectrogram`` (power 2).

        torchlibrosa computes the STFT as two 1-D convolutions with a windowed DFT basis (42 GFLOP for
        20 ten-second clips); when the stored basis is that DFT, ``torch.stft`` computes the same
        frames with an FFT (equal to float rounding, ~10x faster).
        """
        extractor = self.branch.spectrogram_extractor
        if self.fft_window is None or extractor.power != 2.0:
            return extractor(wave)
        stft = extractor.stft
        spec = torch.stft(wave, stft.n_fft, stft.hop_length, window=self.fft_window, center=stft.center,
                          pad_mode=stft.pad_mode, onesided=True, return_complex=True)
        power = spec.real.square().addcmul_(spec.imag, spec.imag)  # real² + imag², as torchlibrosa
        return power.transpose(1, 2).unsqueeze(1)

    def frontend(self, wave: torch.Tensor) -> torch.Tensor:
        """(N, S) waveform -> (N, 1, F, F) spectrogram image (STFT, log-mel, bn0, fold). SpecAugment only
        when the tower is in training mode (``model.frozen_towers=released``), as HTS-AT's own forward.

        Always fp32, autocast or not: the log of small powers loses the quiet bins in bf16."""
        if wave.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(wave.device.type):
            with torch.autocast(device_type=wave.device.type, enabled=False):
                return self.frontend(wave.float())
        b = self.branch
        x = self.power_spectrogram(self.fill(wave.float()))
        x = b.logmel_extractor(x)
        x = x.transpose(1, 3)
        x = b.bn0(x)
        x = x.transpose(1, 3)
        if b.training:
            x = b.spec_augmenter(x)
        return b.reshape_wav2img(x)

    @low_precision_compute
    def embed(self, img: torch.Tensor) -> torch.Tensor:
        """(N, 1, F, F) -> (N, L, C1) patch tokens in ``stream_dtype``."""
        b = self.branch
        x = b.patch_embed(img, longer_idx=[]) if self.fused else b.patch_embed(img)
        if b.ape:
            x = x + b.absolute_pos_embed
        return b.pos_drop(x).to(self.stream_dtype)

    @low_precision_compute
    def downsample(self, s: int, x: torch.Tensor) -> torch.Tensor:
        """Stage s's patch merging (identity when it has none), ``stream_dtype`` out."""
        stage = self.stages[s]
        return x if stage.downsample is None else stage.downsample(x).to(self.stream_dtype)

    @low_precision_compute
    def block(self, s: int, j: int, x: torch.Tensor) -> torch.Tensor:
        """Block j of stage s on (N, L, C) tokens (the released block's function, faster kernels)."""
        return swin_block_forward(self.stages[s].blocks[j], x)

    def run_stage(self, s: int, x: torch.Tensor) -> torch.Tensor:
        stage = self.stages[s]
        for j in range(len(stage.blocks)):
            x = self.block(s, j, x)
        return self.downsample(s, x)

    @low_precision_compute
    def head(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, L, C) final tokens -> (N, C): final norm, CLAP's frequency-group reshape, mean."""
        b = self.branch
        x = b.norm(tokens)
        n, _, c = x.shape
        grid = b.spec_size // (2 ** (len(b.depths) - 1))
        sf, st = grid // b.patch_stride[0], grid // b.patch_stride[1]
        x = x.permute(0, 2, 1).contiguous().reshape(n, c, sf, st)
        c_freq_bin = sf // b.freq_ratio
        x = x.reshape(n, c, sf // c_freq_bin, c_freq_bin, st)
        x = x.permute(0, 1, 3, 2, 4).contiguous().reshape(n, c, c_freq_bin, -1)
        return torch.flatten(b.avgpool(torch.flatten(x, 2)), 1).float()

    @low_precision_compute
    def project(self, emb: torch.Tensor) -> torch.Tensor:
        return self.audio_projection(emb).float()

    @low_precision_compute
    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = self.embed(self.frontend(wave))
        for s in range(len(self.stages)):
            x = self.run_stage(s, x)
        return self.project(self.head(x))


class ClapTextTower(FrozenTower):
    """RoBERTa pooled at ``<s>`` (position 0), then CLAP's text projection."""

    def __init__(self, build: ClapBuild, tokenizer: RobertaTextTokenizer):
        super().__init__()
        self.text_branch = build.model.text_branch
        self.text_projection = build.model.text_projection
        self.word_embeddings = self.text_branch.embeddings.word_embeddings
        self.pad_token_id = int(build.arch.text["pad_token_id"])
        self.context_length = int(build.arch.text.get("context_length", 77))
        self.width = int(build.arch.text["hidden_size"])
        self.tokenizer = tokenizer
        if tokenizer.vocab_size != self.word_embeddings.num_embeddings:
            raise UserError(f"tokenizer in {tokenizer.folder} has {tokenizer.vocab_size} entries, the CLAP text tower "
                            f"{self.word_embeddings.num_embeddings}")
        self.freeze()

    def tokenize(self, texts) -> Tuple[torch.Tensor, torch.Tensor]:
        """list[str] -> (ids, attention mask), both (C, context_length) int64."""
        return self.tokenizer(list(texts))

    def position_ids(self, mask: torch.Tensor) -> torch.Tensor:
        """RoBERTa's positions for the ids path (pad + 1, pad + 2, ... on real tokens, pad elsewhere)."""
        mask = mask.long()
        return torch.cumsum(mask, dim=1) * mask + self.pad_token_id

    @low_precision_compute
    def encode_embeddings(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(C, L, W) word embeddings + (C, L) mask -> (C, D) fp32; bit-identical to the ids path."""
        if embeds.is_meta:  # shapes only: transformers' mask logic reads values
            return embeds.new_empty(embeds.shape[0], self.text_projection[-1].out_features, dtype=torch.float32)
        out = self.text_branch(inputs_embeds=embeds, attention_mask=mask, position_ids=self.position_ids(mask))
        return self.text_projection(out.pooler_output).float()

    @low_precision_compute
    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.encode_embeddings(self.word_embeddings(ids), mask)
