"""DG-SCT injection into the frozen towers: the pairing as data, exact identity at init, real-size counts."""
from __future__ import annotations

import pytest
import torch

from avfewshot.adapters.dgsct_unit import count_parameters
from avfewshot.adapters.injection import AdaptedEncoders
from avfewshot.adapters.pairing import StreamShape, every_kth, one_to_one, pairing_for
from avfewshot.encoders import ModelConfig, build_backbone
from avfewshot.errors import UserError

from helpers.bpe import encoder_env

TINY = dict(clip_arch="tiny", clip_weights="none", clap_arch="tiny", clap_weights="none")
UNUSED_PER_ADAPTER = 512 * 192 + 192 + 1  # fc_caption + gate_tk: 98,497, never built here
# docs/dgsct.md §3.4: official parameters per adapter (audio, visual) by audio stage (C, L)
OFFICIAL = {(96, 4096): (420_605, 2_821_815), (192, 1024): (453_173, 2_741_943),
            (384, 256): (1_020_581, 2_850_999), (768, 64): (3_136_325, 3_136_311)}
HTSAT_TINY = ((2, 2, 6, 2), tuple(StreamShape(t, c) for t, c in ((4096, 96), (1024, 192), (256, 384), (64, 768))))


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    with encoder_env(tmp_path_factory.mktemp("injection")):
        yield build_backbone(ModelConfig(**TINY))


@pytest.fixture(scope="module")
def inputs(backbone):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(20, 3, backbone.image_size, backbone.image_size, generator=g)
    wave = 0.1 * torch.randn(20, backbone.audio_rate, generator=g)
    return images, wave


def open_gates(module, value=0.5):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith(("gate", "exchange_gate")):
                p.fill_(value)


# -- the pairing ------------------------------------------------------------------------------
def test_real_size_pairing_is_twelve_to_twelve_with_stage_shapes():
    pairing = one_to_one(12, StreamShape(50, 768), *HTSAT_TINY)
    assert len(pairing) == 12
    assert [s.audio_stage for s in pairing.steps] == [0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3]
    assert [s.audio_block for s in pairing.steps] == [0, 1, 0, 1, 0, 1, 2, 3, 4, 5, 0, 1]
    assert [s.visual_block for s in pairing.steps] == list(range(12))
    assert pairing.steps[0].audio == StreamShape(4096, 96) and pairing.steps[11].audio == StreamShape(64, 768)
    assert all(s.visual == StreamShape(50, 768) for s in pairing.steps)


def test_unequal_depths_are_rejected():
    with pytest.raises(UserError, match="12 blocks and the audio encoder 10"):
        one_to_one(12, StreamShape(50, 768), (2, 2, 4, 2), HTSAT_TINY[1])


def test_swin_v2_large_pairing_is_expressible():
    swin = [StreamShape(t, c) for t, c in ((2304, 192), (576, 384), (144, 768), (36, 1536))]
    pairing = every_kth((2, 2, 18, 2), swin, *HTSAT_TINY)
    assert len(pairing) == 12 and pairing.schedule == "block_input"
    third = [s for s in pairing.steps if s.visual_stage == 2]
    assert [s.visual_block + 1 for s in third] == [3, 6, 9, 12, 15, 18]  # docs/supervised.md §0, 1-based
    assert [s.audio_block for s in third] == list(range(6))
    assert [s.visual_flat for s in pairing.steps[:4]] == [0, 1, 2, 3]
    assert third[0].visual_flat == 4 + 2 and pairing.steps[-1].visual_flat == 2 + 2 + 18 + 1
    assert third[0].visual == StreamShape(144, 768) and third[0].audio == StreamShape(256, 384)


def test_tiny_pairing_from_towers(backbone):
    pairing = pairing_for(backbone.image, backbone.audio)
    assert len(pairing) == len(backbone.image.blocks) == sum(len(s.blocks) for s in backbone.audio.stages)
    assert [s.audio.tokens for s in pairing.steps] == [1024, 256, 64, 16]
    assert [s.audio.dim for s in pairing.steps] == [16, 32, 64, 128]


# -- identity at initialisation ---------------------------------------------------------------
@pytest.mark.parametrize("training", [False, True])
def test_adapted_encoders_equal_frozen_towers_at_init(backbone, inputs, training):
    images, wave = inputs
    enc = AdaptedEncoders(backbone.image, backbone.audio, {"alpha": 0.2, "beta": 0.05, "gamma": 0.05})
    enc.train(training)
    with torch.no_grad():
        out = enc(images, wave)
        assert torch.equal(out.image, backbone.image(images))
        assert torch.equal(out.audio, backbone.audio(wave))


def test_open_gates_change_both_streams_and_gradients_reach_first_units(backbone, inputs):
    images, wave = inputs
    enc = AdaptedEncoders(backbone.image, backbone.audio)
    open_gates(enc)
    out = enc(images, wave)
    assert not torch.allclose(out.image, backbone.image(images))
    assert not torch.allclose(out.audio, backbone.audio(wave))
    (out.image.square().sum() + out.audio.square().sum()).backward()
    for name in ("visual_p1", "audio_p1"):
        grad = getattr(enc, name)[0].down.weight.grad
        assert grad is not None and grad.abs().sum() > 0
    assert all(p.grad is None for p in backbone.parameters())


def test_state_holds_only_the_units(backbone):
    enc = AdaptedEncoders(backbone.image, backbone.audio)
    keys = list(enc.state_dict())
    assert keys and all(k.split(".")[0] in ("visual_p1", "visual_p2", "audio_p1", "audio_p2") for k in keys)


@pytest.mark.parametrize("off", ["a2v", "v2a"])
def test_direction_switch_removes_its_units_and_effect(backbone, inputs, off):
    images, wave = inputs
    torch.manual_seed(0)
    full = AdaptedEncoders(backbone.image, backbone.audio)
    open_gates(full)
    part = AdaptedEncoders(backbone.image, backbone.audio, a2v=off != "a2v", v2a=off != "v2a")
    removed = ("visual_p1", "visual_p2") if off == "a2v" else ("audio_p1", "audio_p2")
    assert set(full.state_dict()) - set(part.state_dict()) == {k for k in full.state_dict() if k.startswith(removed)}
    assert not any(k.startswith(removed) for k in part.state_dict())
    part.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith(removed)})
    with torch.no_grad():  # reference: the full model with the removed units' outputs closed
        for name in removed:
            for unit in getattr(full, name):
                unit.gate.zero_()
        ref, got = full.eval()(images, wave), part.eval()(images, wave)
        assert torch.equal(got.image, ref.image) and torch.equal(got.audio, ref.audio)
        frozen = backbone.image(images) if off == "a2v" else backbone.audio(wave)
        assert torch.equal(got.image if off == "a2v" else got.audio, frozen)


@pytest.mark.parametrize("mode", ["steps", "units", True])
def test_checkpointing_gives_the_same_loss_gradients_and_statistics(backbone, inputs, mode):
    images, wave = inputs
    torch.manual_seed(0)
    plain = AdaptedEncoders(backbone.image, backbone.audio)
    open_gates(plain)
    ckpt = AdaptedEncoders(backbone.image, backbone.audio, checkpoint=mode)
    assert ckpt.checkpoint == ("steps" if mode is True else mode)
    ckpt.load_state_dict(plain.state_dict())
    results = []
    for enc in (plain, ckpt):
        enc.train()
        out = enc(images[:10], wave[:10])
        (out.image.square().mean() + out.audio.square().mean()).backward()
        results.append((enc.state_dict(), {n: p.grad.clone() for n, p in enc.named_parameters()}))
    (s1, g1), (s2, g2) = results
    for k in s1:
        assert torch.allclose(s1[k].float(), s2[k].float(), atol=1e-6), k  # BatchNorm stats updated once
    for k in g1:
        assert torch.allclose(g1[k], g2[k], atol=1e-6, rtol=1e-5), k
    assert not any(u.hold_running_stats for lst in ckpt.units().values() for u in lst)


def test_checkpoint_mode_is_checked(backbone):
    with pytest.raises(UserError, match="valid are none, units, steps"):
        AdaptedEncoders(backbone.image, backbone.audio, checkpoint="layers")


# -- real size --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_size_encoders(tmp_path_factory):
    """ViT-B/32 + HTS-AT-tiny with random weights (built once: it takes a while)."""
    from avfewshot.bench.dgsct import write_standin_roberta_tokenizer

    root = tmp_path_factory.mktemp("real-size")
    with encoder_env(root):
        tok = write_standin_roberta_tokenizer(root / "roberta")
        bb = build_backbone(ModelConfig(clip_arch="ViT-B-32", clip_weights="none", clap_arch="HTSAT-tiny",
                                        clap_weights="none", clap_tokenizer=str(tok)))
        yield AdaptedEncoders(bb.image, bb.audio)


def test_real_size_adapter_counts_match_the_reference_table(real_size_encoders):
    enc = real_size_encoders
    assert len(enc.pairing) == 12
    for step in enc.pairing.steps:
        audio_count, visual_count = OFFICIAL[(step.audio.dim, step.audio.tokens)]
        for site in ("p1", "p2"):
            assert count_parameters(getattr(enc, f"audio_{site}")[step.index]) == audio_count - UNUSED_PER_ADAPTER
            assert count_parameters(getattr(enc, f"visual_{site}")[step.index]) == visual_count - UNUSED_PER_ADAPTER
    official_total = sum(2 * (a + v) * d for (a, v), d in zip(OFFICIAL.values(), (2, 2, 6, 2)))
    assert round(official_total / 1e6, 2) == 97.30
    assert count_parameters(enc) == official_total - 48 * UNUSED_PER_ADAPTER
