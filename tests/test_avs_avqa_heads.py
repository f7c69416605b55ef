"""Supervised heads: shapes, TPAVI, losses, negatives, the batch-independent F-score, real-size counts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from avfewshot import metrics as M
from avfewshot.supervised_heads import (
    TPAVI, AVSDecoder, AVSDecoderConfig, STAVQAConfig, STAVQAHead, avqa_loss, grounding_parameters, load_grounding,
    masked_av_term, ms3_loss, s4_loss, sample_negatives,
)
from avfewshot.supervised_heads import params as P
from avfewshot.supervised_heads.shapes import SWIN_V2_L_192_STAGES, timm_swinv2_large_stage_shapes


def test_documented_stage_shapes_match_timm():
    assert timm_swinv2_large_stage_shapes(192) == SWIN_V2_L_192_STAGES


def test_real_size_decoder_forward_on_meta():
    with torch.device("meta"):
        decoder = AVSDecoder(AVSDecoderConfig())
        maps = [torch.empty(10, c, h, w) for c, h, w in SWIN_V2_L_192_STAGES]
        logits, fused, audio = decoder(maps, torch.empty(2, 5, 768))
    assert logits.shape == (10, 1, 224, 224)
    assert [tuple(f.shape) for f in fused] == [(10, 256, s, s) for s in (56, 28, 14, 7)]
    assert all(tuple(a.shape) == (2, 5, 256) for a in audio)


def test_real_size_stavqa_forward_on_meta():
    with torch.device("meta"):
        head = STAVQAHead(STAVQAConfig())
        final = torch.empty(2, 10, 1536, 6, 6)
        out = head(final, final, torch.empty(2, 10, 768), torch.zeros(2, 14, dtype=torch.long))
    assert out["answer"].shape == (2, 42) and out["match_pos"].shape == (20, 2) and out["grounded"].shape == (2, 10, 1536)


def test_tpavi_factorised_equals_dense_and_starts_as_layernorm():
    torch.manual_seed(0)
    x, a = torch.randn(2, 8, 3, 4, 5), torch.randn(2, 3, 6)
    fast, dense = TPAVI(8, 6), TPAVI(8, 6, dense=True)
    dense.load_state_dict(fast.state_dict())
    for block in (fast, dense):
        torch.nn.init.normal_(block.W_z[1].weight)
        block.eval()
    dense.load_state_dict(fast.state_dict())
    out_fast, aligned = fast(x, a)
    out_dense, _ = dense(x, a)
    assert torch.allclose(out_fast, out_dense, atol=1e-5) and aligned.shape == (2, 3, 8)
    fresh = TPAVI(8, 6).eval()  # zero-init BN: the block is LayerNorm(x) at step 0
    expected = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 4, 1), (8,)).permute(0, 4, 1, 2, 3)
    assert torch.allclose(fresh(x, a)[0], expected, atol=1e-5)


def test_s4_loss_reads_only_the_first_frame():
    torch.manual_seed(0)
    logits, masks = torch.randn(10, 1, 8, 8, requires_grad=True), (torch.rand(2, 1, 8, 8) > 0.5).float()
    loss = s4_loss(logits, masks)
    loss.backward()
    assert logits.grad[[1, 2, 3, 4, 6, 7, 8, 9]].abs().sum() == 0 and logits.grad[[0, 5]].abs().sum() > 0
    manual = torch.nn.functional.binary_cross_entropy(torch.sigmoid(logits[[0, 5]]), masks)
    assert torch.allclose(loss, manual, atol=1e-6)


def test_masked_av_term_is_summed_over_frames_and_averaged_over_stages():
    torch.manual_seed(0)
    logits = torch.randn(5, 1, 16, 16)
    maps = [torch.randn(5, 4, s, s) for s in (8, 4)]
    audio = [torch.randn(1, 5, 4) for _ in range(2)]
    single = masked_av_term(logits, maps, audio)
    doubled = masked_av_term(torch.cat([logits] * 2), [torch.cat([m] * 2) for m in maps],
                             [torch.cat([a] * 2) for a in audio])
    assert torch.allclose(doubled, 2 * single, rtol=1e-5)  # no normalisation by batch size
    stage0 = masked_av_term(logits, maps[:1], audio[:1])
    stage1 = masked_av_term(logits, maps[1:], audio[1:])
    assert torch.allclose(single, (stage0 + stage1) / 2, rtol=1e-5)
    masks = (torch.rand(5, 1, 16, 16) > 0.5).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, masks)
    assert torch.allclose(ms3_loss(logits, masks, maps, audio), bce + 0.5 * single, rtol=1e-5)


def test_negatives_never_come_from_the_same_video():
    rng = np.random.default_rng(0)
    videos = ["a", "b", "a", "c", "b"]
    for picks in [sample_negatives(videos, 10, rng) for _ in range(50)]:
        for own, row in zip(videos, picks):
            assert all(videos[v] != own and 0 <= f < 10 for v, f in row)
    with pytest.raises(ValueError, match="two distinct videos"):
        sample_negatives(["a", "a"], 10, rng)


def test_stavqa_outputs_and_grounding_handover():
    torch.manual_seed(0)
    config = STAVQAConfig.tiny(visual_dim=16, audio_dim=8, vocab_size=20, answers=5)
    head = STAVQAHead(config)
    out = head(torch.randn(3, 4, 16, 2, 2), torch.randn(3, 4, 16, 2, 2), torch.randn(3, 4, 8), torch.randint(0, 20, (3, 14)))
    assert out["answer"].shape == (3, 5) and out["match_pos"].shape == (12, 2) and out["match_neg"].shape == (12, 2)
    loss = avqa_loss(out, torch.tensor([0, 1, 2]))
    assert loss.item() > 0
    weights = grounding_parameters(head)
    assert {k.split(".")[0] for k in weights} == {"fc_a1", "fc_a2", "fc_gl", "match"}
    fresh = STAVQAHead(config)
    load_grounding(fresh, weights)
    assert torch.equal(fresh.fc_gl.weight, head.fc_gl.weight)
    assert not torch.equal(fresh.fc_answer.weight, head.fc_answer.weight)


def test_fscore_depends_on_batch_size_and_the_dataset_variant_does_not():
    rng = np.random.default_rng(0)
    masks = np.zeros((20, 8, 8), dtype=np.int64)
    masks[:10, 2:6, 2:6] = 1  # the first two clips have objects, the last two none
    masks[10:12, 0:2, 0:2] = 1
    logits = (rng.standard_normal((20, 8, 8)) + 3 * (2 * masks - 1) * rng.random((20, 1, 1))).astype(np.float32)
    by_batch = {n: M.avs_evaluate(logits, masks, clips_per_batch=n).f_score for n in (1, 2, 4)}
    assert len({round(v, 6) for v in by_batch.values()}) > 1
    whole = M.avs_fscore(logits, masks)
    for chunk in (1, 3, 20):
        assert M.avs_fscore_dataset(logits, masks, chunk_frames=chunk) == pytest.approx(whole, abs=1e-6)
    assert M.avs_fscore_dataset(np.zeros((2, 4, 4), np.float32), np.zeros((2, 4, 4), np.int64)) == 0.0


def test_real_size_parameter_counts_against_the_paper():
    """Heads built on meta; §5 totals include the encoder and the released dead modules (see report)."""
    s4, ms3, avqa = P.head_counts("s4"), P.head_counts("ms3"), P.head_counts("avqa")
    assert s4 == ms3  # r only changes the encoder's units
    assert s4["live"] == 30_230_345  # what the fixed head registers and runs
    # released registry: + 8 encoder template layers (6.32 M), dead temporal decoders (17.64 M),
    # PVT-sized spare Linears + dilated convs (10.54 M)
    assert s4["released"] == 64_719_689
    assert abs((s4["released"] - 17_635_328 - 10_535_936) - 36.6e6) < 0.1e6  # docs/supervised_heads.md §5: "live part" 36.6 M
    encoder = P.SWIN_V2_L + P.HTSAT + P.UNITS_R8
    implied_s4 = P.PAPER_TOTALS["s4"] - s4["released"] - P.PVT_V2_B5
    assert abs(implied_s4 - encoder) < 0.1e6  # 448.65 M vs 448.6 M
    implied_ms3_units = P.PAPER_TOTALS["ms3"] - ms3["released"] - P.PVT_V2_B5 - P.SWIN_V2_L - P.HTSAT
    bottleneck_r8 = 2 * 21_565_440 / (8 * 2)  # grouped 1x1 convs of the 48 units: 2 sum(C^2) / (r groups)
    assert abs((implied_ms3_units - P.UNITS_R8) - 3 * bottleneck_r8) < 0.1e6  # r = 2 quadruples them
    assert avqa["released"] == 70_415_532 and avqa["released"] - avqa["live"] == 2 * 1_771_008 + 3072
    implied_avqa_units = P.PAPER_TOTALS["avqa"] - avqa["released"] - P.SWIN_V2_L - P.HTSAT
    tokens_k30 = 30 * 26_496  # K 32 -> 2 tokens over the 48 units' channels
    assert abs(implied_avqa_units - (P.UNITS_R8 - tokens_k30 - bottleneck_r8 / 2)) < 0.1e6
    assert round((P.PAPER_AVQA_TOTAL - P.PAPER_TOTALS["avqa"]) / 1e6, 2) == 3.35
