"""Guard against torch 2.9.1's CPU BatchNorm backward layout bug (docs/design.md, "BatchNorm layout").

For a contiguous (N, C, L, 1) input whose incoming gradient has strides (L·C, 1, C, 1) (the layout the
released DG-SCT adapter produces after its second BatchNorm), ``native_batch_norm_backward`` returns a
wrong input gradient, in float64 too and in eval mode too. The toolkit's BatchNorm call sites (the DG-SCT
unit's two BatchNorm1d on (rows, C), plain and fused paths, and HTS-AT's ``bn0``) must only ever hand the
kernel a gradient laid out like its input; these tests record every BatchNorm backward they dispatch.
"""
from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from avfewshot.adapters.dgsct_unit import DGSCTUnit, DGSCTUnitConfig

BACKWARD_OPS = ("native_batch_norm_backward", "batch_norm_backward", "cudnn_batch_norm_backward")


def same_layout(grad: torch.Tensor, inp: torch.Tensor) -> bool:
    """The layouts the kernel handles correctly: identical strides, or both plainly contiguous."""
    return tuple(grad.stride()) == tuple(inp.stride()) or (grad.is_contiguous() and inp.is_contiguous())


class BatchNormBackwards(TorchDispatchMode):
    """Records (grad, input) of every BatchNorm backward dispatched inside the block."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in BACKWARD_OPS:
            grad, inp = args[0], args[1]
            self.calls.append((name, tuple(inp.shape), tuple(grad.stride()), tuple(inp.stride()), same_layout(grad, inp)))
        return func(*args, **(kwargs or {}))


def analytic_batch_norm_grad(x: torch.Tensor, g: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """d/dx of training-mode BatchNorm over every dim but 1, written out (no BatchNorm kernel)."""
    dims = [d for d in range(x.dim()) if d != 1]
    shape = [1, -1] + [1] * (x.dim() - 2)
    m = x.numel() // x.shape[1]
    mean = x.mean(dims, keepdim=True)
    invstd = (x.var(dims, unbiased=False, keepdim=True) + eps).rsqrt()
    xhat = (x - mean) * invstd
    gsum = g.sum(dims, keepdim=True)
    gxhat = (g * xhat).sum(dims, keepdim=True)
    return weight.view(shape) * invstd * (g - gsum / m - xhat * gxhat / m)


def test_the_layout_predicate_covers_the_bug():
    """Every gradient layout of a (2, 8, 10, 1) BatchNorm2d that the predicate calls safe gives the analytic
    gradient; the bug's own layout is flagged (and, on an affected torch, is wrong)."""
    torch.manual_seed(0)
    shape = (2, 8, 10, 1)
    bn = torch.nn.BatchNorm2d(8).double().train()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    flagged = 0
    for perm in itertools.permutations(range(4)):
        inverse = [perm.index(i) for i in range(4)]
        g = torch.randn(*[shape[p] for p in perm], dtype=torch.float64).permute(*inverse)
        (got,) = torch.autograd.grad(bn(x), x, g)
        want = analytic_batch_norm_grad(x.detach(), g, bn.weight.detach(), bn.eps)
        if same_layout(g, x):
            assert torch.allclose(got, want, atol=1e-10), perm
        else:
            flagged += 1
    bug_grad = torch.randn(2, 10, 8, 1, dtype=torch.float64).permute(0, 2, 1, 3)
    assert bug_grad.stride() == (80, 1, 8, 1) and not same_layout(bug_grad, x)
    assert flagged > 0
    # the remedy the toolkit would use if a call site ever produced that layout: make the gradient contiguous
    (fixed,) = torch.autograd.grad(bn(x), x, bug_grad.contiguous())
    assert torch.allclose(fixed, analytic_batch_norm_grad(x.detach(), bug_grad, bn.weight.detach(), bn.eps), atol=1e-10)


def unit(dim: int, fused: bool, training: bool) -> DGSCTUnit:
    torch.manual_seed(0)
    u = DGSCTUnit(DGSCTUnitConfig(dim=dim, tokens=16, guide_dim=32, guide_tokens=10, reduction=8, conv_groups=2))
    with torch.no_grad():
        u.gate.fill_(0.3)
        u.exchange_gate.fill_(0.2)
        for p in u.parameters():
            p.add_(0.05 * torch.randn_like(p))
    u.fused = fused
    return u.train(training)


@pytest.mark.parametrize("dim", [96, 384])  # bottleneck 12 (narrow, column sums) and 48 (ATen BatchNorm)
@pytest.mark.parametrize("fused,training,hold", [(False, True, False), (True, True, False), (True, True, True),
                                                 (False, True, True), (False, False, False)])
def test_dgsct_unit_batch_norms_get_matching_layouts(dim, fused, training, hold):
    u = unit(dim, fused, training)
    u.hold_running_stats = hold
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 16, dim, generator=g, requires_grad=True)
    guide = torch.randn(4, 10, 32, generator=g, requires_grad=True)
    weights = torch.randn(4, 16, dim, generator=g)
    recorder = BatchNormBackwards()
    with recorder:
        (u(x, guide) * weights).sum().backward()
    assert all(ok for *_, ok in recorder.calls), recorder.calls
    if training:  # BN_up (C wide) always runs ATen's kernel; BN_down too unless the fused path's narrow formulas
        assert recorder.calls, "no BatchNorm backward was recorded: the guard would be vacuous"
        assert all(len(shape) == 2 for _, shape, *_ in recorder.calls)  # (rows, C), never (N, C, L, 1)
    else:
        assert not recorder.calls  # outside training the BatchNorms are folded into the 1x1 maps


def test_htsat_bn0_backward_gets_a_matching_layout(tmp_path):
    """HTS-AT folds (N, 1, T, F) to (N, F, T, 1) for ``bn0``: a size-1 last dim, as in the bug. The
    gradient reaching it is laid out like its input (both the transposed view)."""
    from avfewshot.encoders import build_backbone

    from helpers.bpe import encoder_env

    with encoder_env(tmp_path):
        audio = build_backbone(clip_arch="tiny", clip_weights="none", clap_arch="tiny", clap_weights="none").audio
    bn0 = audio.branch.bn0
    wave = 0.1 * torch.randn(2, audio.sample_rate, generator=torch.Generator().manual_seed(0))
    for training in (True, False):
        bn0.train(training)  # as the released towers' training mode would
        w = wave.clone().requires_grad_()
        recorder = BatchNormBackwards()
        with recorder:
            audio.frontend(w).square().sum().backward()
        assert recorder.calls and all(ok for *_, ok in recorder.calls), recorder.calls
        assert all(len(shape) == 4 and shape[-1] == 1 for _, shape, *_ in recorder.calls)
    bn0.train(False)
