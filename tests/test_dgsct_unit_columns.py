"""The DG-SCT unit's supervised AVS / AVQA columns (docs/supervised.md §0): bicubic "interp" guide alignment
and the released AVS LayerNorm order (no pre-LN, gate before the post-LN), each against a direct reference
written here in the released unit's order."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from avfewshot.adapters import DGSCTUnit, DGSCTUnitConfig, count_parameters
from avfewshot.errors import UserError

# a visual-side unit (6x6 grid, C = 16) guided by an 8x8 audio grid (C' = 8), and the reverse
VISUAL = DGSCTUnitConfig(dim=16, tokens=36, guide_dim=8, guide_tokens=64, reduction=4, conv_groups=2,
                         num_latent_tokens=4, alpha=0.3, beta=0.05, temporal=False, segments=1)
AUDIO = VISUAL.replace(dim=8, tokens=64, guide_dim=16, guide_tokens=36, reduction=2)
S4 = {"alignment": "interp", "pre_ln": False, "gate_before_post_ln": True, "use_bn": False}


def random_unit(cfg: DGSCTUnitConfig, gate: float = 0.7, seed: int = 0) -> DGSCTUnit:
    torch.manual_seed(seed)
    unit = DGSCTUnit(cfg).double()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in unit.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
        if cfg.output_gate:
            unit.gate.fill_(gate)
        unit.exchange_gate.fill_(0.8)
    return unit


def inputs(cfg: DGSCTUnitConfig, n: int = 3, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, cfg.tokens, cfg.dim, generator=g, dtype=torch.float64),
            torch.randn(n, cfg.guide_tokens, cfg.guide_dim, generator=g, dtype=torch.float64))


def reference(unit: DGSCTUnit, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """The released AVS unit written plainly: fc, then bicubic resize of the guide grid (the released
    order), latent exchange, channel and spatial attention, recalibration, grouped bottleneck, then the
    LayerNorms and the gate in the configured order."""
    cfg, sd = unit.config, unit.state_dict()

    def lin(name, t):
        return t @ sd[name + ".weight"].T + sd[name + ".bias"]

    def layer_norm(name, t):
        return F.layer_norm(t, (t.shape[-1],), sd[name + ".weight"], sd[name + ".bias"])

    n = x.shape[0]
    projected = lin("guide_channel_proj", guide)  # (N, L', C)
    side, out = math.isqrt(cfg.guide_tokens), math.isqrt(cfg.tokens)
    grid = projected.view(n, side, side, -1).permute(0, 3, 1, 2)
    v = F.interpolate(grid, size=[out, out], mode="bicubic").reshape(n, cfg.dim, -1).transpose(1, 2)
    tokens = sd["latent_tokens"].expand(n, -1, -1)
    tokens = tokens + torch.softmax(tokens @ v.transpose(1, 2), -1) @ v
    x = x + sd["exchange_gate"] * (torch.softmax(x @ tokens.transpose(1, 2), -1) @ tokens)
    a = v.mean(1)
    joint = (F.relu(lin("channel_guide", a))[:, None] * F.relu(lin("channel_self", x))).mean(1)
    channel = torch.sigmoid(lin("channel_excite", F.relu(lin("channel_squeeze", joint))))[:, None]
    scores = lin("spatial_score", F.relu(lin("spatial_self", x * (channel + 1))) * F.relu(lin("spatial_guide", a))[:, None])
    x = x * (cfg.alpha * channel + cfg.beta * torch.sigmoid(scores) + 1 - cfg.alpha)
    if cfg.pre_ln:
        x = layer_norm("ln_before", x)
    down = torch.block_diag(*sd["down.weight"].unbind(0))
    up = torch.block_diag(*sd["up.weight"].unbind(0))
    h = F.relu(x @ down.T) @ up.T
    gate = sd["gate"] if cfg.output_gate else 1.0
    if cfg.gate_before_post_ln:
        return layer_norm("ln_post", gate * h)
    return gate * layer_norm("ln_post", h)


@pytest.mark.parametrize("base", [VISUAL, AUDIO], ids=["downsize", "upsize"])
@pytest.mark.parametrize("changes", [
    S4,  # the released S4 column
    {**S4, "output_gate": False},  # its audio units (no gate)
    {"alignment": "interp", "use_bn": False},  # interp with the default order (pre-LN, post-LN, gate)
    {"pre_ln": False, "gate_before_post_ln": True, "use_bn": False},  # MS3: conv alignment, AVS order
], ids=["s4", "s4_ungated", "interp_default_order", "ms3_order"])
def test_column_matches_the_direct_reference(base, changes):
    cfg = base.replace(**changes)
    unit = random_unit(cfg)
    x, g = inputs(cfg)
    for training in (False, True):
        unit.train(training)
        out = unit(x, g)
        if cfg.alignment == "interp":
            torch.testing.assert_close(out, reference(unit, x, g), atol=1e-10, rtol=1e-10)
        else:  # conv alignment (the default path, against its own reference in test_dgsct_unit.py): the order
            bare = DGSCTUnit(cfg.replace(gate_before_post_ln=False, post_ln=False, output_gate=False)).double()
            bare.load_state_dict(unit.state_dict(), strict=False)  # h: the bottleneck output before post-LN
            bare.train(training)
            expected = F.layer_norm(unit.gate * bare(x, g), (cfg.dim,), unit.ln_post.weight, unit.ln_post.bias)
            torch.testing.assert_close(out, expected, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("base", [VISUAL, AUDIO])
def test_resize_order_is_exact_either_way(base):
    """The unit resizes the narrower side first; both orders equal the released fc-then-resize."""
    cfg = base.replace(**S4)
    unit = random_unit(cfg)
    _, g = inputs(cfg)
    n, side, out = g.shape[0], math.isqrt(cfg.guide_tokens), math.isqrt(cfg.tokens)
    fc_first = unit.guide_channel_proj(g).view(n, side, side, -1).permute(0, 3, 1, 2)
    fc_first = F.interpolate(fc_first, size=[out, out], mode="bicubic").flatten(2).transpose(1, 2)
    torch.testing.assert_close(unit._interp_guide(g), fc_first, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("base", [VISUAL, AUDIO])
@pytest.mark.parametrize("training", [False, True])
def test_zero_gate_gives_exactly_zero_in_every_gated_column(base, training):
    for changes in (S4, {"alignment": "interp", "use_bn": False}, {"pre_ln": False, "gate_before_post_ln": True}):
        torch.manual_seed(4)
        unit = DGSCTUnit(base.replace(**changes)).train(training)
        with torch.no_grad():
            unit.exchange_gate.fill_(1.0)
            unit.latent_tokens.normal_()
        x, g = (t.float() for t in inputs(base))
        out = unit(1e3 * x, g)
        assert torch.equal(out, torch.zeros_like(out)), changes


def test_released_ungated_audio_unit_changes_the_stream_from_the_first_step():
    unit = DGSCTUnit(AUDIO.replace(**S4, output_gate=False))
    x, g = (t.float() for t in inputs(AUDIO))
    out = unit(x, g)
    # a LayerNorm output with unit weight: every token has zero mean and (almost) unit variance
    assert out.abs().mean() > 0.5 and torch.allclose(out.mean(-1), torch.zeros(out.shape[:2]), atol=1e-5)
    assert not hasattr(unit, "gate")


def test_interp_alignment_builds_no_token_map():
    conv = DGSCTUnit(VISUAL.replace(use_bn=False))
    interp = DGSCTUnit(VISUAL.replace(alignment="interp", use_bn=False))
    assert not hasattr(interp, "guide_token_proj") and hasattr(conv, "guide_token_proj")
    assert count_parameters(conv) - count_parameters(interp) == 64 * 36 + 36


def test_interp_needs_square_grids():
    with pytest.raises(UserError, match="guide_tokens=50"):
        VISUAL.replace(alignment="interp", guide_tokens=50)
    with pytest.raises(UserError, match="alignment='nearest'"):
        VISUAL.replace(alignment="nearest")


def test_gradients_reach_every_parameter_of_the_s4_column():
    unit = random_unit(VISUAL.replace(**S4)).train()
    x, g = inputs(VISUAL)
    unit(x, g).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in unit.parameters())
