"""The faster HTS-AT block forward and FFT front end compute the released modules' functions."""
from __future__ import annotations

import pytest
import torch

from avfewshot.encoders.clap_import import import_clap_module
from avfewshot.encoders.swin_blocks import swin_block_forward, window_order


def released_block(dim, resolution, heads, shift, window=8):
    import_clap_module()
    from clap_module.htsat import SwinTransformerBlock

    torch.manual_seed(resolution + shift)
    block = SwinTransformerBlock(dim, (resolution, resolution), heads, window_size=window, shift_size=shift).eval()
    with torch.no_grad():
        block.attn.relative_position_bias_table.normal_()  # a visible bias (the default init is 0.02-wide)
    for p in block.parameters():
        p.requires_grad_(False)
    return block


@pytest.mark.parametrize("dim,resolution,heads,shift", [
    (16, 32, 2, 0), (16, 32, 2, 4), (32, 16, 4, 4), (64, 8, 8, 4),  # the last: resolution = window, no shift
])
def test_fast_block_equals_the_released_block_forward_and_backward(dim, resolution, heads, shift):
    block = released_block(dim, resolution, heads, shift)
    x = torch.randn(3, resolution * resolution, dim, requires_grad=True)
    grad_out = torch.randn(3, resolution * resolution, dim)
    ref = block(x)[0]
    (ref_grad,) = torch.autograd.grad(ref, x, grad_out)
    got = swin_block_forward(block, x)
    (got_grad,) = torch.autograd.grad(got, x, grad_out)
    assert torch.allclose(got, ref, atol=1e-5, rtol=1e-5)
    assert torch.allclose(got_grad, ref_grad, atol=1e-5, rtol=1e-5)
    assert all(p.grad is None for p in block.parameters())
    with torch.no_grad():
        assert torch.allclose(swin_block_forward(block, x), ref, atol=1e-5, rtol=1e-5)


def test_window_order_is_roll_then_window_partition():
    import_clap_module()
    from clap_module.htsat import window_partition

    h = w = 16
    grid = torch.arange(h * w).view(1, h, w, 1)
    for shift in (0, 4):
        order, inverse = window_order(h, w, 8, shift)
        rolled = torch.roll(grid, shifts=(-shift, -shift), dims=(1, 2))
        assert torch.equal(order, window_partition(rolled, 8).reshape(-1))
        assert torch.equal(order[inverse], torch.arange(h * w))


def test_fft_front_end_equals_torchlibrosa_and_falls_back_when_the_basis_is_not_a_dft():
    import copy

    from avfewshot.encoders.clap_towers import AudioTower, build_clap_model, dft_window

    built = build_clap_model("tiny", None)
    tower = AudioTower(built)
    assert tower.fft_window is not None
    wave = tower.fill(0.1 * torch.randn(2, built.frontend.sample_rate, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        ref = tower.branch.spectrogram_extractor(wave)
        got = tower.power_spectrogram(wave)
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-6 * float(ref.max()), rtol=1e-4)
    odd = copy.deepcopy(tower.branch.spectrogram_extractor.stft)
    with torch.no_grad():
        odd.conv_real.weight[3, 0, 5] += 0.5
    assert dft_window(odd) is None
