"""The hand-written kernels under autocast (CPU bf16 / fp16) and with bf16 frozen weights.

Relative error = ||got - ref|| / ||ref||, ref = the same module in fp32 (no autocast). Measured on
CPU at these shapes (bf16 / fp16):
* DG-SCT unit (the fused kernel's wide tensors in bf16 on the CPU, with fp32 statistics and a fp32
  narrow bottleneck; in fp32 under fp16; the attention branches around it run in the autocast dtype,
  the per-segment prompt-side maps in fp32, ``dgsct_unit.per_row``): output 6.4-6.6e-3 / 3.7-3.8e-4
  (plain path 5.8-6.1e-3 / 7.3-7.5e-4), gradient of x 2.0-3.8e-2 / 4.6-5.3e-4 (plain 1.5-3.9e-2 /
  7.8-8.5e-4), of the guide 3.0-3.7e-2 / 3.0-4.8e-3 (plain 2.9-3.7e-2 / 3.4-5.1e-3), all parameter
  gradients 1.6-3.5e-2 / 4.8-5.8e-4. (With the fused kernel in fp32 under bf16 too: output 3.0-3.1e-3.) (Before ``per_row``, with those maps
  in the autocast dtype: gradients up to 7.0e-2 / 2.8e-2.) Bounds: ``UNIT``. Single parameter gradients are not bounded one by one: those of the
  spatial and temporal scorers are near zero (pre-LN cancels per-token scales, see dgsct_unit) and
  their relative error is large on both paths; all gradients together are.
* HTS-AT block (swin_blocks) and open_clip blocks (clip_blocks) with weights stored in the low dtype
  under autocast: output and input gradient 1.1-3.2e-3 / 1.3-3.8e-4 (fp32 residual stream, read by the
  LayerNorms in the low dtype; 1.0e-3 / 1.3e-4 when they read it in fp32). Bounds: ``LOW``.
"""
from __future__ import annotations

import copy

import pytest
import torch

from avfewshot.adapters.dgsct_unit import DGSCTUnit, DGSCTUnitConfig
from avfewshot.adapters.fused_bottleneck import ModulatedBottleneck
from avfewshot.encoders.clip_blocks import block_forward
from avfewshot.encoders.swin_blocks import swin_block_forward
from avfewshot.precision import autocast_context, dtype_of

LOW = {"bf16": 1e-2, "fp16": 1e-3}
#: (output, grad x, grad guide, all parameter gradients) of a DG-SCT unit, fused or plain path
UNIT = {"bf16": (1e-2, 6e-2, 6e-2, 6e-2), "fp16": (2e-3, 5e-3, 1e-2, 5e-3)}


def rel(got: torch.Tensor, ref: torch.Tensor) -> float:
    got, ref = got.detach().double(), ref.detach().double()
    return float((got - ref).norm() / ref.norm().clamp_min(1e-30))


def unit_run(unit, x, guide, weights, precision):
    x = x.clone().requires_grad_()
    guide = guide.clone().requires_grad_()
    with autocast_context("cpu", precision):
        out = unit(x, guide)
    (out.float() * weights).sum().backward()
    grads = {n: p.grad.clone() for n, p in unit.named_parameters() if p.grad is not None}
    return out.detach().float(), x.grad, guide.grad, grads


def perturbed_unit(**options) -> DGSCTUnit:
    torch.manual_seed(0)
    unit = DGSCTUnit(DGSCTUnitConfig(guide_dim=64, guide_tokens=10, gamma=0.05, **options)).train()
    with torch.no_grad():
        unit.gate.fill_(0.3)
        unit.exchange_gate.fill_(0.2)
        for p in unit.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return unit


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("options", [dict(dim=96, tokens=64, reduction=8, conv_groups=2),
                                     dict(dim=384, tokens=16, reduction=8, conv_groups=2)])
def test_fused_unit_under_autocast_equals_the_plain_path_and_fp32(options, precision):
    base = perturbed_unit(**options)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, options["tokens"], options["dim"], generator=g)
    guide = torch.randn(6, 10, 64, generator=g)
    weights = torch.randn(6, options["tokens"], options["dim"], generator=g)
    calls = []
    original = ModulatedBottleneck.forward
    ModulatedBottleneck.forward = staticmethod(lambda ctx, *a: calls.append(1) or original(ctx, *a))
    try:
        fused = unit_run(copy.deepcopy(base), x, guide, weights, precision)
    finally:
        ModulatedBottleneck.forward = original
    assert calls == [1]  # the fused kernel ran under autocast
    plain_unit = copy.deepcopy(base)
    plain_unit.fused = False
    plain = unit_run(plain_unit, x, guide, weights, precision)
    ref = unit_run(copy.deepcopy(base), x, guide, weights, "fp32")
    assert fused[0].dtype == torch.float32 and fused[1].dtype == torch.float32

    def errors(got):
        params = [n for n in ref[3]]
        assert sorted(got[3]) == sorted(params)
        flat = lambda r: torch.cat([r[3][n].flatten() for n in params])  # noqa: E731
        return [rel(a, b) for a, b in zip(got[:3], ref[:3])] + [rel(flat(got), flat(ref))]

    fused_err, plain_err = errors(fused), errors(plain)
    bound = UNIT[precision]
    assert all(e < b for e, b in zip(fused_err, bound)), fused_err
    assert all(e < b for e, b in zip(plain_err, bound)), plain_err
    # bf16 on the CPU: the fused kernel's wide tensors are bf16 as the plain path's are, with fp32
    # statistics; fp16: it computes in fp32, so its output is the closer one
    assert fused_err[0] <= plain_err[0] * (1.25 if precision == "bf16" else 1.0)


def swin_block(dim, resolution, heads, shift):
    from avfewshot.encoders.clap_import import import_clap_module

    import_clap_module()
    from clap_module.htsat import SwinTransformerBlock

    torch.manual_seed(resolution + shift)
    block = SwinTransformerBlock(dim, (resolution, resolution), heads, window_size=8, shift_size=shift).eval()
    with torch.no_grad():
        block.attn.relative_position_bias_table.normal_()
    for p in block.parameters():
        p.requires_grad_(False)
    return block


def low_copy(block, precision):
    """The block with its Linear weights stored in the precision's dtype (as ``store_weights_in`` does)."""
    low = copy.deepcopy(block)
    for m in low.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.MultiheadAttention)):
            for p in m.parameters(recurse=False):
                p.data = p.data.to(dtype_of(precision))
    return low


def block_errors(forward, block, x, precision):
    g = torch.randn_like(x)
    x32 = x.clone().requires_grad_()
    ref = forward(block, x32)
    (ref_grad,) = torch.autograd.grad(ref, x32, g)
    xl = x.clone().requires_grad_()
    with autocast_context("cpu", precision):
        got = forward(low_copy(block, precision), xl)
    (got_grad,) = torch.autograd.grad(got, xl, g)
    assert got.dtype == torch.float32  # the residual stream keeps the input's dtype
    return rel(got, ref), rel(got_grad, ref_grad)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("dim,resolution,heads,shift", [(32, 16, 4, 0), (32, 16, 4, 4)])
def test_swin_block_under_autocast_with_low_precision_weights(dim, resolution, heads, shift, precision):
    block = swin_block(dim, resolution, heads, shift)
    x = torch.randn(3, resolution * resolution, dim)
    out_err, grad_err = block_errors(swin_block_forward, block, x, precision)
    assert out_err < LOW[precision] and grad_err < LOW[precision], (out_err, grad_err)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_clip_block_under_autocast_with_low_precision_weights(precision):
    from open_clip.model import CLIP

    torch.manual_seed(0)
    model = CLIP(embed_dim=32, vision_cfg=dict(image_size=32, patch_size=8, width=64, layers=2, head_width=16),
                 text_cfg=dict(context_length=12, vocab_size=100, width=48, heads=4, layers=2)).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    block = model.visual.transformer.resblocks[1]
    out_err, grad_err = block_errors(lambda b, x: block_forward(b, x), block, torch.randn(3, 17, 64), precision)
    assert out_err < LOW[precision] and grad_err < LOW[precision], (out_err, grad_err)
    mask = model.attn_mask[:9, :9]  # the causal text block (a -inf mask in the low dtype)
    text = model.transformer.resblocks[0]
    out_err, grad_err = block_errors(lambda b, x: block_forward(b, x, mask), text, torch.randn(4, 9, 48), precision)
    assert out_err < LOW[precision] and grad_err < LOW[precision], (out_err, grad_err)
