"""AVS (S4, MS3) and AVQA task models on the adapted Swin-V2 + HTS-AT encoder: frozen towers at zero gates in
every column, the released ungated audio units behind their flag, the S4 HTS-AT flag, the negatives' pass,
and the real-size totals built on ``meta`` (docs/supervised_heads.md §5)."""
from __future__ import annotations

import pytest
import torch

from avfewshot.errors import UserError
from avfewshot.supervised.model import parameter_report, parameter_totals
from avfewshot.supervised_heads.adapted import (
    SupervisedAVQA, SupervisedAVQAConfig, SupervisedAVS, SupervisedAVSConfig, real_size_totals,
)

from helpers.supervised_runs import one_thread  # noqa: F401 (autouse)


def clip_inputs(b: int, t: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn(b, t, 3, 64, 64, generator=g)
    time = torch.arange(16000) / 16000.0
    freqs = 300.0 + 150.0 * torch.arange(b * t, dtype=torch.float32)
    tones = torch.sin(2 * torch.pi * freqs[:, None] * time).view(b, t, -1)
    return frames, 0.3 * tones + 0.01 * torch.randn(b, t, 16000, generator=g)


def avs(preset: str = "s4", **kw) -> SupervisedAVS:
    torch.manual_seed(0)
    return SupervisedAVS(SupervisedAVSConfig(size="tiny", preset=preset, **kw))


def randomise_units_keeping_gates(model) -> None:
    """Every unit parameter random except the output gates and the post-LN biases (the AVS order's LN_post(0·h)
    is that bias, zero at initialisation)."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in model.encoder.named_parameters():
            if p.requires_grad and not name.endswith((".gate", "ln_post.bias")):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5 + (1.0 if name.endswith("exchange_gate") else 0.0))


def frozen_streams(model, frames, audio):
    enc = model.encoder
    return enc.visual(frames.flatten(0, 1)), enc.audio(audio.flatten(0, 1))


@pytest.mark.parametrize("preset", ["s4", "ms3", "avqa"])
def test_zero_gates_give_the_frozen_towers_in_every_column(preset):
    if preset == "avqa":
        torch.manual_seed(0)
        model = SupervisedAVQA(SupervisedAVQAConfig(size="tiny", segments=5))
    else:
        model = avs(preset)
    assert model.encoder.audio_p1[0].config.output_gate  # the fixed default: audio units gated
    randomise_units_keeping_gates(model)
    frames, audio = clip_inputs(1, 5)
    with torch.no_grad():
        out = model.encoder(frames, audio)
        visual, sound = frozen_streams(model, frames, audio)
    assert torch.equal(out.final_map.flatten(1, 2), visual) and torch.equal(out.audio_tokens, sound)


@pytest.mark.parametrize("preset", ["s4", "avqa"])
def test_released_ungated_audio_units_change_the_audio_stream_only(preset):
    torch.manual_seed(0)
    if preset == "avqa":
        model = SupervisedAVQA(SupervisedAVQAConfig(size="tiny", segments=5, ungated_audio=True))
    else:
        model = avs(preset, ungated_audio=True)
    assert not model.encoder.audio_p2[0].config.output_gate and model.encoder.visual_p2[0].config.output_gate
    frames, audio = clip_inputs(1, 5)
    with torch.no_grad():
        out = model.encoder(frames, audio)
        visual, sound = frozen_streams(model, frames, audio)
    assert torch.equal(out.final_map.flatten(1, 2), visual)  # visual gates still 0: the visual stream is frozen
    assert (out.audio_tokens - sound).abs().max() > 0.1  # LN-scaled audio deltas from step 0 (docs §6.5)


def test_s4_column_aligns_by_interpolation_and_ms3_by_the_token_map():
    s4, ms3 = avs("s4"), avs("ms3")
    for unit in s4.encoder.visual_p1:
        assert unit.config.alignment == "interp" and not hasattr(unit, "guide_token_proj")
        assert unit.config.gate_before_post_ln and not unit.config.pre_ln and not unit.config.use_bn
        assert torch.equal(unit.latent_tokens, torch.zeros_like(unit.latent_tokens))  # zeros token init
    # tiny size shrinks r to 4 (TINY_UNIT_CHANGES); the MS3 column keeps its conv alignment and alpha / beta
    assert all(u.config.alignment == "conv" and (u.config.alpha, u.config.beta) == (0.2, 0.1) for u in ms3.encoder.audio_p1)
    assert s4.head.config.gamma == 0.05 and ms3.head.config.gamma == 0.1


@pytest.mark.parametrize("preset", ["s4", "ms3"])
def test_avs_forward_loss_and_gradients(preset):
    model = avs(preset).train()
    frames, audio = clip_inputs(2, 5)
    masks = (torch.rand(2, 1 if preset == "s4" else 5, 32, 32) > 0.5).float()
    batch = {"frames": frames, "audio": audio, "masks": masks}
    out = model(batch)
    assert out[0].shape == (10, 1, 32, 32) and model.mask_size == 32
    loss, parts = model.loss(batch, out, 0)
    loss.backward()
    assert torch.isfinite(loss) and parts["loss"] == pytest.approx(float(loss))
    assert model.encoder.visual_p2[-1].gate.grad is not None and model.head.stage_proj[0].weight.grad is not None
    assert all(p.grad is None for p in model.encoder.audio.parameters())
    assert not any(k.startswith("encoder.audio.") for k in model.trainable_state())


def test_s4_parity_flag_trains_htsat_and_checkpoints_it():
    model = avs("s4", train_htsat=True).train()
    frames, audio = clip_inputs(1, 5)
    batch = {"frames": frames, "audio": audio, "masks": torch.ones(1, 1, 32, 32)}
    model.loss(batch, model(batch), 0)[0].backward()
    htsat = model.encoder.audio
    assert htsat.htsat.patch_embed.proj.weight.grad is not None and htsat.htsat.layers[0].blocks[0].attn.qkv.weight.grad is not None
    assert not htsat.htsat.spectrogram_extractor.stft.conv_real.weight.requires_grad
    state = model.trainable_state()
    assert "encoder.audio.htsat.patch_embed.proj.weight" in state and not any(k.startswith("encoder.visual.") for k in state)
    assert not htsat.training  # trainable, but bn0 keeps its statistics (eval mode)


def _avqa_batch(b=2, t=5, q=3):
    frames, audio = clip_inputs(b, t)
    negatives, _ = clip_inputs(b, t, seed=9)
    return {"frames": frames, "audio": audio, "negative_frames": negatives, "tokens": torch.randint(0, 20, (q, 14)),
            "answers": torch.randint(0, 5, (q,)), "question_video": torch.tensor([0, 1, 1])}


@pytest.mark.parametrize("negatives", ["frozen", "adapted"])
def test_avqa_negatives_pass(negatives):
    torch.manual_seed(0)
    model = SupervisedAVQA(SupervisedAVQAConfig(size="tiny", segments=5, vocab_size=20, answers=5,
                                                negatives=negatives, grounding_epochs=1)).train()
    batch = _avqa_batch()
    out = model(batch)
    assert out["answer"].shape == (3, 5) and out["match_neg"].shape == (15, 2)
    grounding, _ = model.loss(batch, out, 0)  # the pre-stage: match term only
    full, _ = model.loss(batch, out, 1)
    assert float(full) > float(grounding)
    neg = model.negative_maps(batch["negative_frames"], batch["audio"])
    plain = model.encoder.visual(batch["negative_frames"].flatten(0, 1))
    assert neg.requires_grad == (negatives == "adapted")
    if negatives == "frozen":  # the plain frozen Swin without units (as released)
        assert torch.equal(neg, model._maps(plain, 2))
    else:  # guided by the question video's audio through the units
        assert not torch.equal(neg, model._maps(plain, 2)) or all(u.gate.item() == 0 for u in model.encoder.visual_p1)
    with pytest.raises(UserError, match="negatives='nope'"):
        SupervisedAVQA(SupervisedAVQAConfig(size="tiny", negatives="nope"))


@pytest.mark.slow  # three real-size builds on meta: ~50 s on a loaded 2-core machine
def test_real_size_totals_match_the_released_models():
    rows = {r["task"]: r for r in real_size_totals()}
    # docs/supervised.md §5: S4 594.77 M, MS3 602.85 M (r = 2), AVQA 516.85 M (the paper prints 520.2 M)
    assert rows["s4"]["total"] == 594_766_109 and rows["ms3"]["total"] == 602_853_149
    assert rows["avqa"]["total"] == 516_849_680 and round(rows["avqa"]["total"] / 1e6, 2) == 516.85
    assert 520.2e6 - rows["avqa"]["total"] == pytest.approx(3.35e6, abs=0.01e6)
    # the released S4 requires_grad rule (everything but Swin): 365.99 M
    assert rows["s4"]["total"] - 228_772_549 == 365_993_560
    with torch.device("meta"):
        s4 = SupervisedAVS(SupervisedAVSConfig(preset="s4"))
        ms3 = SupervisedAVS(SupervisedAVSConfig(preset="ms3"))
        qa = SupervisedAVQA(SupervisedAVQAConfig())
    # live trainable (fixed defaults: units with gated audio + live heads, towers frozen)
    assert parameter_totals(s4)["live_trainable"] == 137_500_121
    assert parameter_totals(ms3)["live_trainable"] == 226_743_593
    assert parameter_totals(qa)["live_trainable"] == 253_206_924
    report = parameter_report(s4)
    assert report["encoder.visual"][0] == 0 and report["head"] == (30_230_345, 30_230_345)
