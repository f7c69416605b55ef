"""The adapted supervised encoder on the tiny configuration: exact frozen towers at zero gate, the pairing's
reach when a gate opens, eval-mode towers, checkpoint layouts (timm 0.6 Swin-V2, HTS-AT ``sed_model.``)."""
from __future__ import annotations

import pytest
import torch

from avfewshot.errors import UserError
from avfewshot.supervised.encoder import AdaptedSwinHTSAT
from avfewshot.supervised.htsat import HTSATAudio
from avfewshot.supervised.presets import TINY_UNIT_CHANGES, backbone_size, check_buildable, unit_preset
from avfewshot.supervised.swin import SwinVisual

B, T = 2, 2


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny shapes are overhead-bound; two threads only contend on a loaded box
    yield
    torch.set_num_threads(threads)


def tiny_encoder(seed: int = 0) -> AdaptedSwinHTSAT:
    torch.manual_seed(seed)
    return AdaptedSwinHTSAT(backbone_size("tiny"), unit_preset("ave").replace(**TINY_UNIT_CHANGES), segments=T)


def inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn(B, T, 3, 64, 64, generator=g)
    t = torch.arange(16000) / 16000.0
    tones = torch.stack([torch.sin(2 * torch.pi * f * t) for f in (300.0, 450.0, 600.0, 750.0)]).view(B, T, -1)
    return frames, 0.3 * tones + 0.01 * torch.randn(B, T, 16000, generator=g)


def randomise_units_keeping_gates(enc: AdaptedSwinHTSAT) -> None:
    """Every unit parameter random (exchange gates included), output gates left at zero."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in enc.named_parameters():
            if p.requires_grad and not name.endswith(".gate"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5 + (1.0 if name.endswith("exchange_gate") else 0.0))


def reference_streams(enc: AdaptedSwinHTSAT, frames, audio):
    """Hand-built from the libraries' own modules: timm's Swin-V2 stages and HTS-AT's BasicLayers."""
    swin, htsat = enc.visual.swin, enc.audio.htsat
    images = frames.flatten(0, 1)
    x = swin.patch_embed(images)
    stage_maps = []
    for s, layer in enumerate(swin.layers):
        x = layer(x)
        stage_maps.append(x)
    final = swin.norm(x)
    stage_maps[-1] = final
    # the stream the last V2 unit reads: stage-4 input + the attention branch of its (only) block
    v4 = swin.layers[3].downsample(stage_maps[2])
    blk = swin.layers[3].blocks[0]
    v_mid = v4 + blk.norm1(blk._attn(v4))
    a = enc.audio.embed(enc.audio.to_image(enc.audio.mel(audio.flatten(0, 1))))
    for s, layer in enumerate(htsat.layers):
        if s == 3:
            a_in = a
        a, _ = layer(a)
    a_mid = htsat.layers[3].blocks[0](a_in)[0]
    return stage_maps, final, v_mid.flatten(1, 2), a_mid, a


@torch.no_grad()
def test_zero_gates_give_the_frozen_towers_and_the_hand_built_pooling():
    enc = tiny_encoder().eval()
    randomise_units_keeping_gates(enc)
    frames, audio = inputs()
    out = enc(frames, audio)
    stage_maps, final, v_mid, a_mid, a_last = reference_streams(enc, frames, audio)
    for mine, ref in zip(out.stage_maps, stage_maps):
        torch.testing.assert_close(mine, ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.audio_tokens, a_last, rtol=1e-5, atol=1e-5)
    # pooling maps of the last V2 / A2 units applied to the final-normed Swin and the stage-4 HTS-AT tokens
    _, maps_v = enc.visual_p2[-1](v_mid, a_mid, return_maps=True)
    _, maps_a = enc.audio_p2[-1](a_mid, v_mid, return_maps=True)
    pooled_v = torch.einsum("nl,nlc->nc", maps_v.spatial_pool, final.flatten(1, 2)).view(B, T, -1)
    pooled_a = torch.einsum("nl,nlc->nc", maps_a.spatial_pool, a_last).view(B, T, -1)
    torch.testing.assert_close(out.visual, pooled_v, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.audio, pooled_a, rtol=1e-5, atol=1e-5)
    assert out.visual.shape == (B, T, 128) and out.audio.shape == (B, T, 128)
    assert not torch.allclose(out.visual_pool, torch.full_like(out.visual_pool, 0.25))  # a real map, not uniform


@torch.no_grad()
def test_an_open_visual_gate_changes_only_the_visual_stream_from_its_stage_on():
    enc = tiny_encoder().eval()
    randomise_units_keeping_gates(enc)
    frames, audio = inputs()
    base = enc(frames, audio)
    step = enc.pairing.steps[2]  # Swin stage 3 block 3 <-> HTS-AT stage 3 block 1
    assert (step.visual_stage, step.visual_block, step.audio_stage, step.audio_block) == (2, 2, 2, 0)
    enc.visual_p1[2].gate.fill_(0.7)
    out = enc(frames, audio)
    assert torch.equal(out.stage_maps[0], base.stage_maps[0]) and torch.equal(out.stage_maps[1], base.stage_maps[1])
    assert not torch.allclose(out.stage_maps[2], base.stage_maps[2])
    assert not torch.allclose(out.final_map, base.final_map)
    assert torch.equal(out.audio_tokens, base.audio_tokens)  # audio units still gated off


@torch.no_grad()
def test_an_open_audio_gate_changes_only_the_audio_stream():
    enc = tiny_encoder().eval()
    randomise_units_keeping_gates(enc)
    frames, audio = inputs()
    base = enc(frames, audio)
    enc.audio_p2[1].gate.fill_(0.7)  # stage 2
    out = enc(frames, audio)
    for mine, ref in zip(out.stage_maps, base.stage_maps):
        assert torch.equal(mine, ref)
    assert not torch.allclose(out.audio_tokens, base.audio_tokens)


def test_pairing_is_every_kth_with_block_input_schedule():
    enc = tiny_encoder()
    assert enc.pairing.schedule == "block_input"
    assert [(s.visual_stage, s.visual_block, s.audio_stage, s.audio_block) for s in enc.pairing.steps] == [
        (0, 0, 0, 0), (1, 0, 1, 0), (2, 2, 2, 0), (3, 0, 3, 0)]
    assert [(s.visual.tokens, s.audio.tokens) for s in enc.pairing.steps] == [(256, 1024), (64, 256), (16, 64), (4, 16)]
    unit = enc.audio_p1[0]
    assert unit.guide_token_proj.weight.shape == (1024, 256) and unit.config.num_latent_tokens == 4


def test_training_keeps_the_frozen_towers_in_eval_mode_and_trains_only_the_units():
    enc = tiny_encoder()
    enc.train()
    assert enc.visual_p1[0].training and enc.visual_p1[0].bn_down.training
    for tower in (enc.visual, enc.audio):
        assert not any(m.training for m in tower.modules())
        assert not any(p.requires_grad for p in tower.parameters())
    frames, audio = inputs()
    running = enc.audio.htsat.bn0.running_mean.clone()
    out = enc(frames, audio)
    (out.visual.sum() + out.audio.sum()).backward()
    assert torch.equal(enc.audio.htsat.bn0.running_mean, running)
    assert enc.visual_p2[-1].gate.grad is not None and enc.audio_p1[0].gate.grad is not None
    assert all(p.grad is None for p in enc.visual.parameters())


def test_wrong_shapes_and_unsupported_presets_are_user_errors():
    enc = tiny_encoder()
    frames, audio = inputs()
    with pytest.raises(UserError, match="segments"):
        enc(frames[:, :1], audio[:, :1])
    with pytest.raises(UserError, match="same B and T"):
        enc(frames, audio[:1])
    for name in ("ave", "avvp", "s4", "ms3", "avqa"):  # every §0 column is buildable
        check_buildable(unit_preset(name), name)
    with pytest.raises(UserError, match="alignment must be one of"):
        check_buildable(unit_preset("s4").replace(alignment="nearest"), "s4")


def test_timm_06_checkpoint_layout_loads_with_the_same_function(tmp_path):
    """A released (timm 0.6) file merges at the end of a stage (layers.s.downsample) and names the head
    ``head``; loaded into the >= 0.9 layout it computes what the original weights compute."""
    torch.manual_seed(3)
    size = backbone_size("tiny").visual
    source = SwinVisual(size)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # post-norm weights start at zero: make every block count
    old = {}
    for key, value in source.swin.state_dict().items():
        if "relative_position_index" in key or "relative_coords_table" in key:
            continue
        for s in (1, 2, 3):
            key = key.replace(f"layers.{s}.downsample", f"layers.{s - 1}.downsample")
        old[key.replace("head.fc.", "head.")] = value
    assert "layers.0.downsample.reduction.weight" in old and "head.weight" in old
    path = tmp_path / "swinv2_06.pth"
    torch.save({"model": old}, path)
    loaded = SwinVisual(size, weights=str(path))
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), source(images), rtol=0, atol=0)
    # stage 3 (4x4 grid, window 4) is one unshifted window; stage 4 (2x2) clamps its window to 2
    assert all(b.shift_size == (0, 0) for b in loaded.swin.layers[2].blocks)
    assert loaded.swin.layers[3].blocks[0].window_size == (2, 2)


def test_htsat_audioset_checkpoint_with_sed_model_prefix(tmp_path):
    size = backbone_size("tiny").audio
    torch.manual_seed(4)
    source = HTSATAudio(size)
    path = tmp_path / "HTSAT_AudioSet_Saved_1.ckpt"
    torch.save({"state_dict": {f"sed_model.{k}": v for k, v in source.htsat.state_dict().items()}, "epoch": 3}, path)
    torch.manual_seed(9)
    loaded = HTSATAudio(size, weights=str(path))
    wave = torch.randn(2, 16000)
    with torch.no_grad():
        torch.testing.assert_close(loaded(wave), source(wave), rtol=0, atol=0)
    bad = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"sed_model.head.weight": torch.zeros(3, 3)}}, bad)
    with pytest.raises(UserError, match="does not match the HTS-AT"):
        HTSATAudio(size, weights=str(bad))
    with pytest.raises(UserError, match="not found"):
        HTSATAudio(size, weights=str(tmp_path / "missing.ckpt"))
