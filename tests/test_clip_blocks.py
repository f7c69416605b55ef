"""open_clip self-attention blocks through the contiguous-projection path equal the module's path."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from avfewshot.encoders import clip_blocks
from avfewshot.encoders.clip_blocks import block_forward, self_attention, transformer_forward


@pytest.fixture(scope="module")
def clip_model():
    from open_clip.model import CLIP

    torch.manual_seed(0)
    return CLIP(embed_dim=32, vision_cfg=dict(image_size=32, patch_size=8, width=64, layers=2, head_width=16),
                text_cfg=dict(context_length=12, vocab_size=100, width=48, heads=4, layers=2)).eval()


def test_vit_block_forward_and_gradient_equal_the_module(clip_model):
    block = clip_model.visual.transformer.resblocks[1]
    x = torch.randn(3, 17, 64, requires_grad=True)
    calls = []
    original = torch.nn.functional.scaled_dot_product_attention
    try:  # the contiguous path really runs (it calls SDPA itself)
        clip_blocks.F.scaled_dot_product_attention = lambda *a, **k: calls.append(1) or original(*a, **k)
        ours = block_forward(block, x)
    finally:
        clip_blocks.F.scaled_dot_product_attention = original
    theirs = block(x)
    assert calls == [1]
    assert torch.allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    g = torch.randn_like(ours)
    grad_ours, = torch.autograd.grad(ours, x, g)
    grad_theirs, = torch.autograd.grad(theirs, x, g)
    assert torch.allclose(grad_ours, grad_theirs, rtol=1e-5, atol=1e-6)


def test_causal_text_transformer_equals_the_module(clip_model):
    x = torch.randn(4, 9, 48, requires_grad=True)
    mask = clip_model.attn_mask[:9, :9]
    ours = transformer_forward(clip_model.transformer, x, mask)
    theirs = clip_model.transformer(x, attn_mask=mask)
    assert torch.allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    # causal: the first position does not see the others
    y = x.detach().clone()
    y[:, 1:] += 1.0
    assert torch.allclose(transformer_forward(clip_model.transformer, y.requires_grad_(), mask)[:, 0], ours[:, 0],
                          atol=1e-6)


def test_without_gradients_and_for_other_attention_the_module_runs(clip_model):
    block = clip_model.visual.transformer.resblocks[0]
    x = torch.randn(2, 17, 64)
    with torch.no_grad():
        assert torch.equal(self_attention(block, x), block.attention(q_x=x))

    class Custom(nn.Module):  # not an nn.MultiheadAttention: delegated untouched
        def __init__(self):
            super().__init__()
            self.attn = nn.Identity()

        def attention(self, q_x, attn_mask=None):
            return 2 * q_x

    assert torch.equal(self_attention(Custom(), x.requires_grad_()), 2 * x)
