"""DG-SCT adapter unit: official golden vectors, parameter counts, switches, init and training."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from avfewshot.adapters import (
    DGSCTUnit,
    DGSCTUnitConfig,
    count_parameters,
    load_official_state_dict,
    to_official_state_dict,
)
from avfewshot.errors import UserError

UNUSED_PER_ADAPTER = 512 * 192 + 192 + 1  # fc_caption + gate_tk, never built here

# docs/dgsct.md §3.4: official parameters per adapter, audio stage (C, L) paired with ViT-B/32 (768, 50)
OFFICIAL_COUNTS = {
    (96, 4096): (420_605, 2_821_815),
    (192, 1024): (453_173, 2_741_943),
    (384, 256): (1_020_581, 2_850_999),
    (768, 64): (3_136_325, 3_136_311),
}


def to_tokens(t: torch.Tensor) -> torch.Tensor:
    """Official adapter layout (N, C, L, 1) -> token layout (N, L, C)."""
    return t.squeeze(-1).transpose(1, 2)


def to_official_layout(t: torch.Tensor) -> torch.Tensor:
    return t.transpose(1, 2).unsqueeze(-1)


# ---------------------------------------------------------------- an independent reference
def reference_forward(sd, x, guide, cfg: DGSCTUnitConfig, training: bool = False):
    """The official computation, written plainly in the official layout and order.

    sd: official names; x (N, C, L, 1); guide (N, C_P, L_P, 1). Handles the switches with the rule
    documented in dgsct_unit (an absent part's term is dropped, C's 1 - alpha offset with it).
    Returns (output (N, C, L, 1), spatial softmax map (N, 1, L) or None, temporal (N, 1) or None,
    updated BN running stats).
    """

    def lin(name, t):
        return t @ sd[name + ".weight"].T + sd[name + ".bias"]

    n = x.shape[0]
    xs = to_tokens(x)
    stats = {}
    if cfg.uses_guide:
        gs = to_tokens(guide)
        g = torch.einsum("ij,njc->nic", sd["conv_adapter.weight"][:, :, 0, 0], gs)
        g = g + sd["conv_adapter.bias"][None, :, None]
        g = lin("fc", g)  # (N, L, C)
        prompt = g.mean(dim=1)
    if cfg.latent_exchange:
        tok = sd["my_tokens"].expand(n, -1, -1)
        tok = tok + torch.softmax(tok @ g.transpose(1, 2), dim=-1) @ g
        xs = xs + sd["gate_av"] * (torch.softmax(xs @ tok.transpose(1, 2), dim=-1) @ tok)
    factor = torch.ones((), dtype=x.dtype)
    x_c = xs
    if cfg.channel:
        q_a = F.relu(lin("fc_affine_audio_1", prompt)).unsqueeze(1)
        q_v = F.relu(lin("fc_affine_video_1", xs))
        raw = (q_a * q_v).mean(dim=1)
        m_c = torch.sigmoid(lin("fc_affine_v_c_att", F.relu(lin("fc_affine_bottleneck", raw)))).unsqueeze(1)
        x_c = xs * (m_c + 1)
        factor = factor + cfg.alpha * m_c - cfg.alpha
    pool = m_t = None
    if cfg.spatial:
        q = F.relu(lin("fc_affine_video_2", x_c)) * F.relu(lin("fc_affine_audio_2", prompt)).unsqueeze(1)
        s = lin("fc_affine_v_s_att", q)  # (N, L, 1)
        factor = factor + cfg.beta * torch.sigmoid(s)
        pool = torch.softmax(torch.tanh(s).transpose(1, 2), dim=-1)
    if cfg.temporal:
        m_t = torch.sigmoid(lin("temporal_gated.0", prompt))  # (N, 1)
        factor = factor + cfg.gamma * m_t.unsqueeze(-1)
    h = to_official_layout(xs * factor)

    def layer_norm(name, t):
        t = to_tokens(t)
        return to_official_layout(F.layer_norm(t, t.shape[-1:], sd[name + ".weight"], sd[name + ".bias"]))

    def batch_norm(name, t):
        mean, var = sd[name + ".running_mean"].clone(), sd[name + ".running_var"].clone()
        out = F.batch_norm(t, mean, var, sd[name + ".weight"], sd[name + ".bias"], training, 0.1, 1e-5)
        stats[name] = (mean, var)
        return out

    if cfg.pre_ln:
        h = layer_norm("ln_before", h)
    h = F.conv2d(h, sd["down_sampler.weight"], groups=cfg.conv_groups)
    if cfg.use_bn:
        h = batch_norm("bn1", h)
    h = F.conv2d(F.relu(h), sd["up_sampler.weight"], groups=cfg.conv_groups)
    if cfg.use_bn:
        h = batch_norm("bn2", h)
    if cfg.post_ln:
        h = layer_norm("ln_post", h)
    if cfg.output_gate:
        h = sd["gate"] * h
    return h, pool, m_t, stats


# ---------------------------------------------------------------- helpers
SMALL = DGSCTUnitConfig(dim=32, tokens=12, guide_dim=24, guide_tokens=7)
SWITCHES = ("channel", "spatial", "temporal", "latent_exchange", "use_bn", "pre_ln", "post_ln", "output_gate")


def analytic_size(cfg: DGSCTUnitConfig, switch: str) -> int:
    c, d, k, b = cfg.dim, cfg.attention_hidden, cfg.num_latent_tokens, cfg.bottleneck_dim
    return {
        "channel": 2 * (c * c + c) + (c * d + d) + (d * c + c),
        "spatial": 2 * (c * d + d) + (d + 1),
        "temporal": c + 1,
        "latent_exchange": k * c + 1,
        "use_bn": 2 * b + 2 * c,
        "pre_ln": 2 * c,
        "post_ln": 2 * c,
        "output_gate": 1,
    }[switch]


def randomised_unit(cfg: DGSCTUnitConfig, seed: int = 0, dtype=torch.float64) -> DGSCTUnit:
    """A unit with open gates and random norm parameters / running stats, so every tensor matters."""
    torch.manual_seed(seed)
    unit = DGSCTUnit(cfg).to(dtype)
    with torch.no_grad():
        for name, p in unit.named_parameters():
            if name == "gate":
                p.fill_(0.7)
            elif name == "exchange_gate":
                p.fill_(0.3)
            elif name.startswith(("bn_", "ln_")):
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.3 * torch.randn_like(p))
        for name, buf in unit.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(0.2 * torch.randn_like(buf))
            elif name.endswith("running_var"):
                buf.copy_(0.5 + torch.rand_like(buf))
    return unit


def inputs(cfg: DGSCTUnitConfig, n: int = 20, seed: int = 1, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cfg.tokens, cfg.dim, generator=gen, dtype=dtype)
    guide = torch.randn(n, cfg.guide_tokens, cfg.guide_dim, generator=gen, dtype=dtype)
    return x, guide


# ---------------------------------------------------------------- golden vectors
@pytest.fixture(scope="module")
def golden(golden_dir):
    path = golden_dir / "dgsct_adapter_golden.pt"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    data = torch.load(path, weights_only=True)
    assert data["format"] == "dgsct_adapter_golden/v1"
    return data


def golden_config(case, **changes) -> DGSCTUnitConfig:
    args, opts = case["ctor_args"], case["options"]
    cfg = DGSCTUnitConfig(
        dim=args["input_dim"], tokens=args["conv_dim_out"], guide_dim=args["linear_in"],
        guide_tokens=args["conv_dim_in"], reduction=args["reduction_factor"],
        conv_groups=opts["num_conv_group"], num_latent_tokens=args["num_tk"],
        alpha=opts["alpha"], beta=opts["beta"], gamma=opts["gamma"],
    )
    return cfg.replace(**changes)


def run_golden(case, dtype, **changes):
    unit = DGSCTUnit(golden_config(case, **changes))
    load_official_state_dict(unit, case["state_dict"])
    unit.eval().to(dtype)
    x = to_tokens(case["inputs"]["x"]).to(dtype)
    guide = to_tokens(case["inputs"]["vis_token"]).to(dtype)
    with torch.no_grad():
        out, maps = unit(x, guide, return_maps=True)
    return unit, out, maps


@pytest.mark.parametrize("case_name", ["stage3_audio", "stage3_visual"])
@pytest.mark.parametrize("order", ["auto", "tokens_first", "channels_first"])
def test_golden_official_function(golden, case_name, order):
    case = golden["cases"][case_name]
    assert case["mode"] == "eval"
    _, out, maps = run_golden(case, torch.float32, projection_order=order)
    torch.testing.assert_close(to_official_layout(out), case["output"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(maps.spatial_pool.unsqueeze(1), case["spatial_att_maps"], atol=1e-5, rtol=1e-5)
    temporal = maps.temporal.reshape(-1, 10, 1, 1)
    torch.testing.assert_close(temporal, case["temporal_att_maps"], atol=1e-5, rtol=1e-5)
    assert out.abs().max() > 1.0  # the gates are open: a real, non-trivial output


@pytest.mark.parametrize("case_name", ["stage3_audio", "stage3_visual"])
def test_golden_float64_gap_matches_recorded(golden, case_name):
    """In float64 our gap to the stored float32 output is the official float64 gap, no more."""
    case = golden["cases"][case_name]
    _, out, _ = run_golden(case, torch.float64)
    gap = (to_official_layout(out) - case["output"].double()).abs().max().item()
    assert gap <= case["float64_recompute_max_abs_diff"] + 1e-9


@pytest.mark.parametrize("case_name", ["stage3_audio", "stage3_visual"])
def test_golden_reference_and_round_trip(golden, case_name):
    case = golden["cases"][case_name]
    sd = {k: v.double() if v.is_floating_point() else v for k, v in case["state_dict"].items()}
    x, g = case["inputs"]["x"].double(), case["inputs"]["vis_token"].double()
    out, pool, m_t, _ = reference_forward(sd, x, g, golden_config(case))
    assert (out - case["output"].double()).abs().max() <= case["float64_recompute_max_abs_diff"] + 1e-9
    torch.testing.assert_close(pool.float(), case["spatial_att_maps"], atol=1e-6, rtol=1e-6)

    unit = DGSCTUnit(golden_config(case))
    load_official_state_dict(unit, case["state_dict"])
    back = to_official_state_dict(unit, include_unused=True)
    assert set(back) == set(case["state_dict"])
    for name, tensor in case["state_dict"].items():
        if not name.startswith(("fc_caption", "gate_tk")):
            assert back[name].shape == tensor.shape and torch.equal(back[name], tensor), name
    assert set(to_official_state_dict(unit)) == set(case["state_dict"]) - {"fc_caption.weight", "fc_caption.bias", "gate_tk"}


def test_golden_mapping_rejects_mismatch(golden):
    case = golden["cases"]["stage3_audio"]
    wrong_size = DGSCTUnit(golden_config(case, tokens=64))
    with pytest.raises(UserError, match="conv_adapter.weight"):
        load_official_state_dict(wrong_size, case["state_dict"])
    no_channel = DGSCTUnit(golden_config(case, channel=False))
    with pytest.raises(UserError, match="switched-off"):
        load_official_state_dict(no_channel, case["state_dict"])
    load_official_state_dict(no_channel, case["state_dict"], strict=False)
    torch.testing.assert_close(no_channel.spatial_self.weight, case["state_dict"]["fc_affine_video_2.weight"])


# ---------------------------------------------------------------- sizes
@pytest.mark.parametrize("stage", sorted(OFFICIAL_COUNTS))
def test_parameter_counts_at_real_size(stage):
    c, length = stage
    audio = DGSCTUnit(DGSCTUnitConfig(dim=c, tokens=length, guide_dim=768, guide_tokens=50))
    visual = DGSCTUnit(DGSCTUnitConfig(dim=768, tokens=50, guide_dim=c, guide_tokens=length))
    official_audio, official_visual = OFFICIAL_COUNTS[stage]
    assert count_parameters(audio) == official_audio - UNUSED_PER_ADAPTER
    assert count_parameters(visual) == official_visual - UNUSED_PER_ADAPTER
    assert len(list(audio.parameters())) == 36 - 3  # 36 official tensors minus fc_caption.{w,b}, gate_tk


def test_initialisation_follows_official_defaults():
    torch.manual_seed(0)
    unit = DGSCTUnit(DGSCTUnitConfig(dim=768, tokens=50, guide_dim=384, guide_tokens=256))
    assert unit.gate.item() == 0.0 and unit.exchange_gate.item() == 0.0
    assert 0.0 <= unit.latent_tokens.min() and unit.latent_tokens.max() < 1.0
    assert unit.latent_tokens.std() > 0.25  # uniform[0, 1): std 0.289
    bound = 1 / (768 // 2) ** 0.5  # conv default, fan_in = in / groups
    assert unit.down.weight.abs().max() <= bound and unit.down.weight.abs().max() > 0.95 * bound
    assert unit.guide_token_proj.weight.abs().max() <= 1 / 256 ** 0.5
    assert torch.equal(unit.bn_up.running_var, torch.ones(768)) and torch.equal(unit.ln_post.weight, torch.ones(768))


# ---------------------------------------------------------------- identity at initialisation
@pytest.mark.parametrize("changes", [{}, {"temporal_mode": "rnn"}, {"use_bn": False, "pre_ln": False}])
@pytest.mark.parametrize("training", [False, True])
def test_output_is_exactly_zero_at_init(changes, training):
    torch.manual_seed(3)
    unit = DGSCTUnit(SMALL.replace(**changes)).train(training)
    for scale in (1.0, 1e3):
        x, g = inputs(SMALL, dtype=torch.float32)
        out = unit(scale * x, scale * g)
        assert out.shape == x.shape
        assert torch.equal(out, torch.zeros_like(out))


# ---------------------------------------------------------------- switches
def test_full_unit_matches_reference_in_eval_and_train():
    unit = randomised_unit(SMALL)
    x, g = inputs(SMALL)
    sd = to_official_state_dict(unit)
    for training in (False, True):
        unit.train(training)
        before = {k: v.clone() for k, v in unit.state_dict().items()}
        out, maps = unit(x, g, return_maps=True)
        ref, pool, m_t, stats = reference_forward(sd, to_official_layout(x), to_official_layout(g), SMALL, training)
        torch.testing.assert_close(to_official_layout(out), ref, atol=1e-10, rtol=1e-10)
        torch.testing.assert_close(maps.spatial_pool, pool.squeeze(1))
        torch.testing.assert_close(maps.temporal, m_t)
        for official, local in (("bn1", "bn_down"), ("bn2", "bn_up")):
            torch.testing.assert_close(unit.state_dict()[f"{local}.running_mean"], stats[official][0])
            torch.testing.assert_close(unit.state_dict()[f"{local}.running_var"], stats[official][1])
            changed = not torch.equal(unit.state_dict()[f"{local}.running_mean"], before[f"{local}.running_mean"])
            assert changed == training
        unit.load_state_dict(before)


@pytest.mark.parametrize("switch", SWITCHES)
def test_each_switch_removes_its_parameters_and_effect(switch):
    full = randomised_unit(SMALL)
    cfg = SMALL.replace(**{switch: False})
    reduced = DGSCTUnit(cfg).double()
    load_official_state_dict(reduced, to_official_state_dict(full), strict=False)
    assert count_parameters(full) - count_parameters(reduced) == analytic_size(SMALL, switch)

    full.eval(), reduced.eval()
    x, g = inputs(SMALL)
    out_full, maps_full = full(x, g, return_maps=True)
    out, maps = reduced(x, g, return_maps=True)
    assert (out - out_full).abs().max() > 1e-6  # the part had an effect, and now it is gone
    ref, _, _, _ = reference_forward(to_official_state_dict(reduced), to_official_layout(x), to_official_layout(g), cfg)
    torch.testing.assert_close(to_official_layout(out), ref, atol=1e-10, rtol=1e-10)
    absent = {"channel": "channel", "spatial": "spatial", "temporal": "temporal"}.get(switch)
    for field in ("channel", "spatial", "temporal"):
        assert (getattr(maps, field) is None) == (field == absent)
    assert (maps.spatial_pool is None) == (switch == "spatial")


def test_channel_off_equals_alpha_zero():
    """C off drops the whole term alpha*(M_c - 1): the same as alpha = 0 when S does not read x_c."""
    base = SMALL.replace(spatial=False, temporal=False)
    with_c = randomised_unit(base.replace(alpha=0.0)).eval()
    without_c = DGSCTUnit(base.replace(channel=False)).double().eval()
    load_official_state_dict(without_c, to_official_state_dict(with_c), strict=False)
    x, g = inputs(base)
    torch.testing.assert_close(without_c(x, g), with_c(x, g), atol=1e-12, rtol=1e-12)
    # and with alpha > 0 the channel map does modulate x
    with_c.config = base.replace(alpha=0.2)
    assert (with_c(x, g) - without_c(x, g)).abs().max() > 1e-6


def test_guide_unused_when_every_guided_part_is_off():
    cfg = SMALL.replace(channel=False, spatial=False, temporal=False, latent_exchange=False)
    unit = DGSCTUnit(cfg)
    projection = SMALL.guide_tokens * SMALL.tokens + SMALL.tokens + SMALL.guide_dim * SMALL.dim + SMALL.dim
    expected = count_parameters(DGSCTUnit(SMALL)) - projection - sum(
        analytic_size(SMALL, s) for s in ("channel", "spatial", "temporal", "latent_exchange"))
    assert count_parameters(unit) == expected
    assert not hasattr(unit, "guide_token_proj")
    with torch.no_grad():
        unit.gate.fill_(1.0)
    x, g = inputs(cfg, dtype=torch.float32)
    unit.eval()
    torch.testing.assert_close(unit(x, None), unit(x, g))  # plain bottleneck of x


def test_mean_only_projection_matches_full_projection():
    """Without latent exchange the prompt comes from the mean projection row: same values."""
    full = randomised_unit(SMALL.replace(latent_exchange=True))
    full.exchange_gate.data.zero_()  # exchange without effect
    reduced = DGSCTUnit(SMALL.replace(latent_exchange=False)).double()
    load_official_state_dict(reduced, to_official_state_dict(full), strict=False)
    full.eval(), reduced.eval()
    x, g = inputs(SMALL)
    torch.testing.assert_close(reduced(x, g), full(x, g), atol=1e-12, rtol=1e-12)


# ---------------------------------------------------------------- temporal RNN mode
@pytest.mark.parametrize("cell,per_gate", [("gru", 3), ("lstm", 4)])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_rnn_temporal_mode(cell, per_gate, bidirectional):
    cfg = SMALL.replace(temporal_mode="rnn", rnn_cell=cell, rnn_bidirectional=bidirectional)
    unit = randomised_unit(cfg).eval()
    c, h = cfg.dim, cfg.temporal_rnn_hidden
    dirs = 2 if bidirectional else 1
    rnn_size = dirs * per_gate * (c * h + h * h + 2 * h) + (dirs * h + 1)
    assert count_parameters(unit) - count_parameters(DGSCTUnit(SMALL)) == rnn_size - (c + 1)

    x, g = inputs(cfg, n=20)
    out, maps = unit(x, g, return_maps=True)
    assert out.shape == x.shape and maps.temporal.shape == (20, 1)
    g2 = g.clone()
    g2[5] += 1.0  # video 0, segment 5
    _, maps2 = unit(x, g2, return_maps=True)
    changed = (maps2.temporal - maps.temporal).abs().squeeze(1) > 1e-12
    assert changed[5:10].all()  # the perturbed segment and every later one
    assert not changed[10:].any()  # the other video is untouched
    assert changed[:5].any() == bidirectional  # causal unless bidirectional

    with pytest.raises(UserError, match="multiple of segments"):
        unit(x[:15], g[:15])
    with pytest.raises(UserError, match="rnn"):
        to_official_state_dict(unit)


# ---------------------------------------------------------------- training behaviour
def test_train_mode_uses_batch_statistics():
    unit = randomised_unit(SMALL)
    x, g = inputs(SMALL)
    x2 = x.clone()
    x2[0] += 1.0
    for training, interacts in ((False, False), (True, True)):
        unit.train(training)
        out, out2 = unit(x, g), unit(x2, g)
        assert ((out2[1:] - out[1:]).abs().max() > 1e-9) == interacts


@pytest.mark.parametrize("training", [True, False])
def test_optimiser_steps_open_gates_then_change_every_parameter(training):
    torch.manual_seed(0)
    unit = DGSCTUnit(SMALL).double().train(training)  # float64: signal and rounding noise far apart
    x, g = inputs(SMALL)
    target = torch.randn_like(x)
    initial = {k: p.detach().clone() for k, p in unit.named_parameters()}
    optimiser = torch.optim.Adam(unit.parameters(), lr=1e-2)
    grads = {}
    for step in range(4):
        optimiser.zero_grad()
        loss = (unit(x, g) - target).pow(2).mean()
        loss.backward()
        grads = {k: p.grad.detach().clone() for k, p in unit.named_parameters()}
        optimiser.step()
        if step == 0:  # only the output gate had a gradient: it opens first
            assert unit.gate.item() != 0.0
            for name, p in unit.named_parameters():
                if name != "gate":
                    assert torch.equal(p, initial[name]), name
    # In train mode ln_before.bias only shifts every token equally before a batch-statistics BN,
    # so it cannot matter (an official quirk): its gradient is rounding noise, not a signal.
    inert = {"ln_before.bias"} if training else set()
    for name, p in unit.named_parameters():
        if name not in inert:
            assert not torch.equal(p, initial[name]), f"{name} never changed"
            assert grads[name].abs().max() > 1e-10, f"{name} has no gradient"
    if training:
        assert grads["ln_before.bias"].abs().max() < 1e-9 * grads["ln_before.weight"].abs().max()


# ---------------------------------------------------------------- interface
def test_maps_shapes_and_recording():
    unit = randomised_unit(SMALL).eval()
    x, g = inputs(SMALL, n=10)
    out, maps = unit(x, g, return_maps=True)
    assert maps.channel.shape == (10, SMALL.dim)
    assert maps.spatial.shape == maps.spatial_pool.shape == (10, SMALL.tokens)
    assert maps.temporal.shape == (10, 1)
    torch.testing.assert_close(maps.spatial_pool.sum(-1), torch.ones(10, dtype=torch.float64))
    assert unit.last_maps is None
    unit.record_maps = True
    torch.testing.assert_close(unit(x, g), out)
    torch.testing.assert_close(unit.last_maps.spatial, maps.spatial)


def test_bad_inputs_and_configs_raise_user_errors():
    unit = DGSCTUnit(SMALL)
    x, g = inputs(SMALL, dtype=torch.float32)
    with pytest.raises(UserError, match="x has shape"):
        unit(x.transpose(1, 2), g)
    with pytest.raises(UserError, match="guide is None"):
        unit(x, None)
    with pytest.raises(UserError, match="guide has shape"):
        unit(x, g[:, :, :-1])
    for bad in ({"dim": 33}, {"reduction": 5}, {"conv_groups": 3}, {"temporal_mode": "lstm"},
                {"projection_order": "fast"}, {"tokens": 0}):
        with pytest.raises(UserError, match="DGSCTUnitConfig." + next(iter(bad))):
            dataclasses.replace(SMALL, **bad)
