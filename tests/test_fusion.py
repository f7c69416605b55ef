"""Fusion rules and the confidence-weighted objective, against hand-computed values."""
import math

import pytest
import torch

from avfewshot.methods import fusion


def test_confidence_weights_and_fused_score_by_hand():
    l_v = torch.tensor([[2.0, 0.0]])
    l_a = torch.tensor([[0.0, 1.0]])
    y_v = math.exp(2) / (math.exp(2) + 1)  # top visual probability
    y_a = math.e / (1 + math.e)  # top audio probability
    w1 = y_v / (y_v + y_a)
    got = fusion.fuse(l_v, l_a, "confidence")
    want = torch.tensor([[w1 * 2.0, (1 - w1) * 1.0]])
    assert torch.allclose(got, want, atol=1e-6)


def test_confidence_fusion_keeps_a_consistent_ranking():
    # audio uninformative (flat, high), visual sure of class 0 and rejecting class 2:
    # one weight pair per segment keeps class 0 first (per-class weights would rank class 2 first)
    l_v = torch.tensor([[3.0, 1.0, -2.0]])
    l_a = torch.tensor([[4.0, 4.0, 4.0]])
    assert fusion.fuse(l_v, l_a, "confidence").argmax().item() == 0


def test_confidence_loss_by_hand():
    l_v = torch.tensor([[2.0, 0.0]])
    l_a = torch.tensor([[0.0, 1.0]])
    target = torch.tensor([[1.0, 0.0]])
    loss, parts = fusion.fused_loss(l_v, l_a, target, "confidence")
    pv0 = math.exp(2) / (math.exp(2) + 1)
    pa0 = 1 / (1 + math.e)
    y_v, y_a = pv0, math.e / (1 + math.e)
    w1 = y_v / (y_v + y_a)
    want = w1 * -math.log(pv0) + (1 - w1) * -math.log(pa0)
    assert loss.item() == pytest.approx(want, rel=1e-6)
    assert parts["w_v"] == pytest.approx(w1, rel=1e-6)


def test_confidence_weights_are_detached():
    l_v = torch.tensor([[2.0, 0.0]], requires_grad=True)
    l_a = torch.tensor([[0.0, 1.0]], requires_grad=True)
    loss, _ = fusion.fused_loss(l_v, l_a, torch.tensor([[1.0, 0.0]]), "confidence")
    loss.backward()
    pv = torch.softmax(l_v.detach(), -1)
    pa = torch.softmax(l_a.detach(), -1)
    w1 = pv.max() / (pv.max() + pa.max())
    # d/dl_v of w1*CE(l_v) with w1 constant: w1 * (softmax - onehot)
    assert torch.allclose(l_v.grad, w1 * (pv - torch.tensor([[1.0, 0.0]])), atol=1e-6)


def test_sum_and_raw_modes():
    l_v = torch.tensor([[1.0, -2.0]])
    l_a = torch.tensor([[0.5, 2.0]])
    assert torch.equal(fusion.fuse(l_v, l_a, "sum"), 2 * l_v + 2 * l_a)
    raw = fusion.fuse(l_v, l_a, "confidence_raw")
    # class 0: (1 + .25) / 1.5 ; class 1: denominator 0 -> +eps, numerator w1*lv + (1-w1)*la finite
    assert raw[0, 0].item() == pytest.approx(1.25 / 1.5, rel=1e-6)
    assert torch.isfinite(raw).all()
    w = fusion.raw_confidence_weights(torch.tensor([-1e-9]), torch.tensor([0.0]))
    assert torch.isfinite(w).all() and w.item() == pytest.approx(-1e-9 / -1e-6)


def test_unknown_mode_is_clear():
    from avfewshot.errors import UserError

    with pytest.raises(UserError, match="valid: confidence"):
        fusion.check_mode("mean")
