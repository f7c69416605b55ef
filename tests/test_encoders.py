"""Tiny presets of the real architectures: towers, block-wise forwards, frozen behaviour."""
from __future__ import annotations

import torch
import pytest

from avfewshot.encoders import ModelConfig, build_backbone
from avfewshot.errors import UserError

from helpers.bpe import encoder_env

TINY = dict(clip_arch="tiny", clip_weights="none", clap_arch="tiny", clap_weights="none")


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    with encoder_env(tmp_path_factory.mktemp("encoders")):
        yield build_backbone(ModelConfig(**TINY))


@pytest.fixture(scope="module")
def inputs(backbone):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(3, 3, backbone.image_size, backbone.image_size, generator=g)
    wave = torch.randn(3, backbone.audio_rate, generator=g) * 0.1
    return images, wave


def test_tiny_backbone_runs_all_four_towers(backbone, inputs):
    images, wave = inputs
    with torch.no_grad():
        v = backbone.image(images)
        a = backbone.audio(wave)
        t_clip = backbone.clip_text(backbone.clip_text.tokenize(["a photo of a dog.", "a photo of a cat."]))
        ids, mask = backbone.clap_text.tokenize(["The sounds of dog", "The sounds of Church bell"])
        t_clap = backbone.clap_text(ids, mask)
    assert v.shape == (3, 64) and a.shape == (3, 64) and t_clip.shape == (2, 64) and t_clap.shape == (2, 64)
    for out in (v, a, t_clip, t_clap):
        assert torch.isfinite(out).all()
    assert not torch.allclose(t_clip[0], t_clip[1]) and not torch.allclose(t_clap[0], t_clap[1])
    assert not torch.allclose(a[0], a[1])
    assert backbone.image_size == 64 and backbone.audio_rate == 16000
    assert float(backbone.clip_logit_scale.exp()) == pytest.approx(1 / 0.07, rel=1e-5)
    assert float(backbone.clap_logit_scale.exp()) == pytest.approx(1 / 0.07, rel=1e-5)


def test_image_blockwise_equals_tower_and_open_clip(backbone, inputs):
    images, _ = inputs
    tower = backbone.image
    with torch.no_grad():
        x = tower.embed(images)
        assert x.shape == (3, tower.num_tokens, tower.width)
        for i in range(len(tower.blocks)):
            x = x + tower.attention_part(i, x)
            x = x + tower.mlp_part(i, x)
        blockwise = tower.head(x)
        assert torch.equal(blockwise, tower(images))
        assert torch.equal(tower(images), tower.visual(images))  # open_clip's own forward


def test_clip_text_embeddings_path_equals_ids_path(backbone):
    text = backbone.clip_text
    ids = text.tokenize(["a photo of a dog.", "a photo of a race car."])
    assert ids.shape == (2, 77) and int(ids[0, 0]) == 49406
    with torch.no_grad():
        via_embeddings = text.encode_embeddings(text.token_embedding(ids), ids.argmax(-1))
        assert torch.equal(via_embeddings, text(ids))


def test_audio_blockwise_equals_tower_and_htsat(backbone, inputs):
    _, wave = inputs
    tower = backbone.audio
    with torch.no_grad():
        img = tower.frontend(wave)
        assert img.shape == (3, 1, 128, 128)
        x = tower.embed(img)
        widths = []
        for stage in tower.stages:
            for block in stage.blocks:
                x, _ = block(x)
            widths.append(x.shape[-1])
            if stage.downsample is not None:
                x = stage.downsample(x)
        emb = tower.head(x)
        assert widths == [16, 32, 64, 128] and emb.shape == (3, 128)
        # the tower's faster kernels (FFT STFT, fused window attention) agree to float rounding
        assert torch.allclose(tower.project(emb), tower(wave), atol=1e-5, rtol=1e-4)
        # laion-clap's own HTS-AT forward on the looped clip gives the same embedding
        official = tower.branch({"waveform": tower.fill(wave)}, device="cpu")["embedding"]
        assert torch.allclose(official, emb, atol=1e-5, rtol=1e-4)


def test_audio_fill_loops_and_repeat_pads():
    from avfewshot.encoders.clap_towers import AudioTower

    class Spec:
        fill = "loop"
        name = "x"

    tower = AudioTower.__new__(AudioTower)
    torch.nn.Module.__init__(tower)
    tower.spec, tower.clip_samples = Spec(), 10
    wave = torch.arange(4.0).unsqueeze(0)
    assert tower.fill(wave).tolist() == [[0, 1, 2, 3, 0, 1, 2, 3, 0, 1]]
    Spec.fill = "repeatpad"
    assert tower.fill(wave).tolist() == [[0, 1, 2, 3, 0, 1, 2, 3, 0, 0]]
    with pytest.raises(UserError, match="longer"):
        tower.fill(torch.zeros(1, 11))


def test_clap_text_embeddings_path_is_bit_identical_to_ids_path(backbone):
    text = backbone.clap_text
    ids, mask = text.tokenize(["The sounds of dog barking", "The sounds of a helicopter"])
    assert int(ids[0, 0]) == 0 and int(mask[0].sum()) < 77 and int(ids[0, -1]) == 1
    with torch.no_grad():
        via_ids = text.text_branch(input_ids=ids, attention_mask=mask).pooler_output  # CLAP's encode_text
        assert torch.equal(text.text_projection(via_ids), text(ids, mask))
        assert torch.equal(text.encode_embeddings(text.word_embeddings(ids), mask), text(ids, mask))


def test_frozen_towers_stay_in_eval_and_get_no_gradient(backbone, inputs):
    images, wave = inputs
    with torch.no_grad():
        before = backbone.audio(wave), backbone.image(images)
    backbone.train()
    parent = torch.nn.Module()
    parent.backbone = backbone
    parent.train(True)  # what an engine does to the method that holds the backbone
    assert all(not m.training for m in backbone.modules())
    assert not any(p.requires_grad for p in backbone.parameters())
    for tower in (backbone.image, backbone.audio, backbone.clip_text, backbone.clap_text):
        tower.train(True)
        assert not tower.training
    with torch.no_grad():
        after1 = backbone.audio(wave), backbone.image(images)
        after2 = backbone.audio(wave), backbone.image(images)
    for b, x, y in zip(before, after1, after2):
        assert torch.equal(b, x) and torch.equal(x, y)
    bn = backbone.audio.branch.bn0
    assert int(bn.num_batches_tracked) == 0  # BatchNorm statistics never moved
    # a trainable input still receives gradient through the frozen tower
    x = torch.zeros(1, 3, 64, 64, requires_grad=True)
    backbone.image(x).sum().backward()
    assert x.grad is not None and all(p.grad is None for p in backbone.parameters())


def test_fingerprints_cover_weights_and_preprocessing(backbone, tmp_path, monkeypatch):
    prints = {t: backbone.fingerprint(t) for t in ("image", "clip_text", "audio", "clap_text")}
    assert len(set(prints.values())) == 4
    assert "norm=clip" in prints["image"] and "16000 Hz" in prints["audio"]
    with pytest.raises(KeyError, match="valid towers"):
        backbone.fingerprint("video")
    other = build_backbone(ModelConfig(**TINY, image_norm="imagenet"))
    assert other.fingerprint("image") != prints["image"]
    assert other.fingerprint("audio") == prints["audio"]  # same seed, same weights, same front-end
    assert other.image.image_mean == (0.485, 0.456, 0.406)


def test_random_init_is_reproducible_and_leaves_global_rng_alone(backbone, inputs):
    images, _ = inputs
    state = torch.random.get_rng_state()
    again = build_backbone(**TINY)
    assert torch.equal(torch.random.get_rng_state(), state)
    with torch.no_grad():
        assert torch.equal(again.image(images), backbone.image(images))


def test_config_errors_list_valid_choices():
    with pytest.raises(UserError, match="tiny"):
        build_backbone(**dict(TINY, clap_arch="HTSAT-huge"))
    with pytest.raises(UserError, match="ViT-B-32"):
        build_backbone(**dict(TINY, clip_arch="ViT-X"))
    with pytest.raises(UserError, match="valid: "):
        build_backbone(**TINY, not_a_field=1)
    with pytest.raises(UserError, match="front-ends that fit"):
        build_backbone(**dict(TINY, audio_frontend="dgsct"))


def test_architecture_table_matches_the_released_models():
    from avfewshot.encoders import specs

    full = specs.clap_arch("HTSAT-tiny")
    assert full.audio_width == 768 and full.max_frames == 1024 and not full.fused
    assert specs.clap_arch("HTSAT-tiny-fusion").fused
    assert full.text["vocab_size"] == 50265 and full.text["max_position_embeddings"] == 514
    fe = specs.catalogue().frontends
    assert fe.get("clap").frames == 1001 and fe.get("dgsct").frames == 1001
    assert fe.get("tiny").frames <= specs.clap_arch("tiny").max_frames
    names = specs.catalogue().clap_checkpoints.names()
    assert names == ["630k-audioset-best", "630k-audioset-fusion-best", "630k-best", "630k-fusion-best", "demo"]
    assert specs.clap_checkpoint("demo").built == "demo" and specs.clip_checkpoint("tiny", "demo").built == "demo"
    assert specs.clip_checkpoint("ViT-B-16-quickgelu", "openai").quick_gelu
    cfg = specs.clip_arch("ViT-B-32-quickgelu").model_cfg()
    assert cfg["quick_gelu"] and cfg["vision_cfg"]["patch_size"] == 32


def test_models_list_shows_where_weights_are_expected(tmp_path, monkeypatch, capsys):
    from avfewshot.cli import main

    monkeypatch.setenv("AVFEWSHOT_WEIGHTS", str(tmp_path))
    (tmp_path / "630k-best.pt").write_bytes(b"x")
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert f"630k-best                    unfused  present  {tmp_path / '630k-best.pt'}" in out
    assert str(tmp_path / "630k-audioset-fusion-best.pt") in out and "MISSING" in out
    assert "HTSAT-tiny" in out and "ViT-B-32" in out and "dgsct-compat" in out
