"""The model section of a run config. Kept free of torch so ``avfewshot.config`` can import it cheaply."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..fields import choice


@dataclass
class ModelConfig:
    """Which frozen towers to build and from which weights.

    ``*_weights``: a tag from ``avfewshot models list``, a local file, or ``none`` (random init).
    ``audio_frontend``: ``native`` (the CLAP architecture's own audio settings), ``clap``
    (48 kHz, hop 480, as in CLAP pretraining), ``dgsct`` (32 kHz, hop 320, mel matrix computed for
    32 kHz) or ``dgsct-compat`` (as the released DG-SCT code: 32 kHz audio through the checkpoint's
    48 kHz mel matrix).
    ``trust_torchscript``: TorchScript archives can run code when loaded; only those whose sha256
    the checkpoint table lists (OpenAI's releases) are loaded unless this is true.
    """

    clip_arch: str = "ViT-B-32"
    clip_weights: str = "openai"
    clip_activation: str = choice("auto", "auto", "quickgelu", "gelu")  # auto (QuickGELU iff the weights are OpenAI's; encoders/clip_activation.py) | quickgelu | gelu
    clap_arch: str = "HTSAT-tiny"
    clap_weights: str = "630k-audioset-best"
    clap_tokenizer: Optional[str] = None  # folder with vocab.json + merges.txt (default: <weights>/roberta-base)
    audio_frontend: str = "native"
    image_norm: str = choice("clip", "clip", "imagenet")  # recorded in the image fingerprint; the data layer applies it
    # the frozen towers' weights: fp32, or bf16 / fp16 (half their memory, no per-call casts under autocast)
    frozen_dtype: str = choice("fp32", "fp32", "bf16", "fp16")
    # eval: the frozen towers never leave eval mode | released: in training, HTS-AT and RoBERTa follow the
    # method's train() as in the released DG-SCT code (SpecAugment, drop-path, bn0 batch statistics, dropout)
    frozen_towers: str = choice("eval", "eval", "released")
    trust_torchscript: bool = False  # load TorchScript weights whose sha256 is not a published digest (can run code)


WEIGHTS_NONE = ("none", "random", "")
FROZEN_TOWER_MODES = ("eval", "released")
