"""CMBS and MGN heads of the supervised runners: targets, losses (and their parity flags), predictions,
mixup with mixed targets, the optional R(2+1)D input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avfewshot.errors import UserError
from avfewshot.supervised.augment import AugmentConfig, MixPlan, draw_mixup
from avfewshot.supervised.avvp import load_st_features
from avfewshot.supervised.cmbs import (CMBSConfig, CMBSHead, CMBSOutputs, ave_targets, cmbs_loss,
                                       segment_predictions)
from avfewshot.supervised.mgn import MGNConfig, MGNHead, mgn_loss

TINY_CMBS = CMBSConfig(visual_dim=12, audio_dim=10, num_classes=5, audio_fc=8, video_fc=16, d_model=16, ffn=32)
TINY_MGN = MGNConfig(visual_dim=12, audio_dim=10, num_classes=6, segments=3, dim=16, heads=4, depth_audio=1,
                     depth_visual=1, depth_av=2, gate_dim=8, gate_ffn=16)


def test_ave_targets_follow_the_released_rule():
    labels = torch.tensor([[28, 4, 4, 28], [28, 28, 28, 28], [7, 7, 7, 7]])
    has_event, video_class = ave_targets(labels, 28)
    assert has_event.tolist() == [[0, 1, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]]
    assert video_class.tolist() == [4, 0, 7]  # a clip without foreground counts as class 0, as released


def test_cmbs_loss_terms_and_the_double_sigmoid_flag():
    out = CMBSOutputs(is_event=torch.tensor([[2.0, -1.0]]), event=torch.tensor([[0.5, 1.5, -0.5]]),
                      av_score=torch.tensor([[0.0, 1.0, 0.0]]), av_gate=torch.tensor([[0.9, 0.2]]))
    labels = torch.tensor([[1, 3]])  # background = 3
    target = torch.tensor([[1.0, 0.0]])
    expected_common = (F.binary_cross_entropy_with_logits(out.is_event, target)
                       + F.cross_entropy(out.event, torch.tensor([1])) + F.cross_entropy(out.av_score, torch.tensor([1])))
    fixed, parts = cmbs_loss(out, labels, 3)
    gate_prob = -(np.log(0.9) + np.log(0.8)) / 2
    assert parts["av_gate"] == pytest.approx(gate_prob, rel=1e-5)
    assert float(fixed) == pytest.approx(float(expected_common) + gate_prob, rel=1e-5)
    released, parts = cmbs_loss(out, labels, 3, double_sigmoid=True)
    double = float(F.binary_cross_entropy_with_logits(out.av_gate, target))
    assert parts["av_gate"] == pytest.approx(double, rel=1e-5) and double != pytest.approx(gate_prob, rel=1e-3)


def test_segment_predictions_gate_the_class_by_is_event():
    out = CMBSOutputs(is_event=torch.tensor([[3.0, -3.0, 0.1]]), event=torch.tensor([[0.0, 2.0, 1.0]]),
                      av_score=torch.zeros(1, 3), av_gate=torch.zeros(1, 3))
    assert segment_predictions(out, 3).tolist() == [[1, 3, 1]]


def test_cmbs_head_shapes_top_k_and_gradients():
    torch.manual_seed(0)
    head = CMBSHead(TINY_CMBS)
    visual, audio = torch.randn(2, 3, 12), torch.randn(2, 3, 10)
    out = head(visual, audio)
    assert out.is_event.shape == (2, 3) and out.event.shape == (2, 5) and out.av_score.shape == (2, 5)
    assert ((out.av_gate > 0) & (out.av_gate < 1)).all()
    scores = torch.tensor([[[1.0], [5.0], [3.0]]])
    assert head.top_k_mean(scores).item() == pytest.approx(3.0)  # k = min(4, T) = 3
    loss, _ = cmbs_loss(out, torch.tensor([[0, 5, 5], [2, 2, 2]]), 5)
    loss.backward()
    assert head.a_fc.weight.grad is not None and head.is_event.weight.grad.abs().sum() > 0


def test_mgn_head_outputs_and_frame_probabilities():
    torch.manual_seed(0)
    head = MGNHead(TINY_MGN).eval()
    visual, audio = torch.randn(2, 3, 12), torch.randn(2, 3, 10)
    out = head(visual, audio)
    assert out.video_prob.shape == (2, 6) and out.audio_frame_prob.shape == (2, 3, 6)
    assert ((out.video_prob > 0) & (out.video_prob < 1)).all()
    # frame probability = p_a x (1 + softmax over segments): between p_a and 2 p_a, summing to (T + 1) p_a
    ratio = out.audio_frame_prob / out.audio_prob.unsqueeze(1)
    assert ((ratio >= 1) & (ratio <= 2)).all()
    torch.testing.assert_close(ratio.sum(dim=1), torch.full((2, 6), 4.0))
    assert out.audio_class_logits.shape == (6, 6)


def test_mgn_loss_is_the_released_sum():
    torch.manual_seed(1)
    head = MGNHead(TINY_MGN)
    out = head(torch.randn(2, 3, 12), torch.randn(2, 3, 10))
    y = torch.zeros(2, 6)
    y[0, 1] = y[1, 4] = 1
    loss, parts = mgn_loss(out, y)
    classes = torch.arange(6)
    expected = (F.binary_cross_entropy(out.video_prob, y) + F.binary_cross_entropy(out.audio_prob, y)
                + F.binary_cross_entropy(out.visual_prob, 0.9 * y + 0.05)
                + F.cross_entropy(out.audio_class_logits, classes) + F.cross_entropy(out.visual_class_logits, classes))
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    loss.backward()
    assert head.audio_token.grad.abs().sum() > 0 and head.temporal_gate.video_gate.weight.grad is not None


def test_mgn_released_ungated_audio_leaves_the_video_gate_branch_dead():
    torch.manual_seed(1)
    head = MGNHead(MGNConfig(**{**TINY_MGN.__dict__, "gated_audio": False}))
    loss, _ = mgn_loss(head(torch.randn(2, 3, 12), torch.randn(2, 3, 10)), torch.zeros(2, 6))
    loss.backward()
    assert head.temporal_gate.video_gate.weight.grad is None
    assert head.temporal_gate.audio_gate.weight.grad.abs().sum() > 0


def test_st_features_are_required_when_enabled(tmp_path):
    head = MGNHead(MGNConfig(**{**TINY_MGN.__dict__, "st_features": True}))
    with pytest.raises(UserError, match="st_features"):
        head(torch.randn(1, 3, 12), torch.randn(1, 3, 10))
    out = head(torch.randn(1, 3, 12), torch.randn(1, 3, 10), torch.randn(1, 3, 512))
    assert out.video_prob.shape == (1, 6)
    with pytest.raises(UserError, match="r2plus1d_18"):
        load_st_features(None, ["a"])
    with pytest.raises(UserError, match="missing"):
        load_st_features(str(tmp_path), ["abc"])
    np.save(tmp_path / "abc.npy", np.ones((10, 512), dtype=np.float32))
    assert load_st_features(str(tmp_path), ["abc"]).shape == (1, 10, 512)


def test_mixup_mixes_rows_and_targets_with_the_same_lambda():
    plan = MixPlan(torch.tensor([0.25, 0.75]), "mixed_targets")
    rows = torch.arange(4.0).view(4, 1)  # videos 0, 1 with two segments each
    mixed = plan.mix_rows(rows, segments=2)
    assert mixed.view(-1).tolist() == [0.25 * 0 + 0.75 * 2, 0.25 * 1 + 0.75 * 3, 0.75 * 2 + 0.25 * 0, 0.75 * 3 + 0.25 * 1]
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert plan.mix_targets(y).tolist() == [[0.25, 0.75], [0.25, 0.75]]
    official = MixPlan(torch.tensor([0.5, 0.5, 0.5, 0.5]), "official")
    assert torch.equal(official.mix_targets(y), y)  # released: labels stay unmixed
    assert draw_mixup(AugmentConfig(), 2, 2) is None
    plan = draw_mixup(AugmentConfig(mixup="official"), 2, 3, np.random.default_rng(0))
    assert plan.lam.shape == (6,) and ((plan.lam >= 0) & (plan.lam <= 1)).all()
    with pytest.raises(UserError, match="mixup"):
        AugmentConfig(mixup="sometimes")
