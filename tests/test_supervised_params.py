"""Real-size supervised models built on the meta device: parameter totals match the released models (§5)."""
from __future__ import annotations

import pytest
import torch

from avfewshot.supervised.ave import SupervisedAVE, SupervisedAVEConfig
from avfewshot.supervised.avvp import SupervisedAVVP, SupervisedAVVPConfig
from avfewshot.supervised.model import parameter_report, parameter_totals

pytestmark = pytest.mark.slow  # each real-size build takes ~30 s on a loaded 2-core box

UNITS = 188_538_816  # 48 DG-SCT units at r = 8, K = 32 (released 188.5 M plus nothing: gate_tk is parity-only)
SWIN_V2_L = 228_772_549  # with its 21,841-way head
HTSAT_AUDIOSET = 31_325_143  # with tscam_conv + head (527 classes), STFT and mel tensors


def build(cls, cfg):
    with torch.device("meta"):
        return cls(cfg)


def test_ave_real_size_totals():
    model = build(SupervisedAVE, SupervisedAVEConfig(keep_unused=True))
    report = parameter_report(model)
    totals = parameter_totals(model)
    assert totals["total"] == 461_282_531  # 461.28 M as measured on the released model
    assert report["encoder.visual"] == (0, SWIN_V2_L) and report["encoder.audio"] == (0, HTSAT_AUDIOSET)
    assert sum(report[f"encoder.{n}"][0] for n in ("visual_p1", "visual_p2", "audio_p1", "audio_p2")) == UNITS
    # live trainable: units + the CMBS head without the parts the released code never calls
    assert report["head"][0] == 7_881_687
    assert totals["live_trainable"] == UNITS + 7_881_687 == 196_420_503
    unused = dict(model.released_unused.named_children())
    count = {k: sum(p.numel() for p in v.parameters()) for k, v in unused.items()}
    # the released requires_grad rule (adapter_blocks, CMBS, temporal_attn) gives 201.16 M
    released_trainable = totals["live_trainable"] + sum(v for k, v in count.items() if k != "adapter_token_downsampler")
    assert released_trainable == 201_160_647
    assert count["av_inter"] + count["va_inter"] == 527_360  # the 0.53 M interaction blocks
    # the Swin stage windows as in timm 0.6: stage 3 (12x12) one unshifted window, stage 4 clamped to 6
    layers = model.encoder.visual.swin.layers
    assert all(b.window_size == (12, 12) and b.shift_size == (0, 0) for b in layers[2].blocks)
    assert layers[3].blocks[0].window_size == (6, 6)


def test_avvp_real_size_totals():
    model = build(SupervisedAVVP, SupervisedAVVPConfig(keep_unused=True, st_features=True))
    totals = parameter_totals(model)
    assert totals["total"] == 458_907_183  # 458.91 M
    report = parameter_report(model)
    assert report["head"][0] == 5_193_971
    assert totals["live_trainable"] == UNITS + 5_193_971
    fc_caption = sum(p.numel() for p in model.released_unused["fc_caption"].parameters())
    assert fc_caption == 48 * (512 * 192 + 192)  # 4.7 M
    # the released count (every non-backbone parameter plus the Swin norms it adds to its tally) is 198.89 M
    swin_norms = sum(p.numel() for n, p in model.encoder.visual.swin.named_parameters() if "norm" in n)
    assert totals["total"] - SWIN_V2_L - HTSAT_AUDIOSET + swin_norms == 198_890_515
