"""Checkpoint loading: full-size round-trips in the released layouts, safe unpickling, missing files.

The round-trips build CLAP (HTS-AT tiny + RoBERTa-base) and CLIP ViT-B-32 at full size with random
weights, write them exactly as the released files are laid out, load them back through the toolkit
and require bit-identical outputs.
"""
from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from avfewshot.encoders import checkpoints as ckpt
from avfewshot.encoders.clap_towers import AudioTower, ClapTextTower, build_clap_model
from avfewshot.encoders.clip_towers import ClipTextTower, ImageTower, build_clip_model
from avfewshot.errors import MissingCheckpointError, UserError

from helpers.bpe import encoder_env


def released_clap_layout(model, epoch: int = 45) -> dict:
    """The 630k-*.pt layout: DDP 'module.' prefixes, the old position_ids buffer, numpy scalars."""
    state = {f"module.{k}": v.clone() for k, v in model.state_dict().items()}
    max_pos = model.text_branch.embeddings.position_embeddings.num_embeddings
    state["module.text_branch.embeddings.position_ids"] = torch.arange(max_pos).unsqueeze(0)
    return {"epoch": np.int64(epoch), "name": "random-roundtrip", "state_dict": state, "lr": np.float64(1e-4)}


def clap_outputs(build, tokenizer, wave):
    audio = AudioTower(build)
    text = ClapTextTower(build, tokenizer)
    ids, mask = text.tokenize(["The sounds of dog barking", "The sounds of a church bell ringing"])
    with torch.no_grad():
        return audio(wave), text(ids, mask), build.model.logit_scale_a.detach().clone()


# -- CLAP, full size -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def full_clap(tmp_path_factory):
    root = tmp_path_factory.mktemp("clap-full")
    with encoder_env(root):
        (root / "weights").mkdir()
        reference = build_clap_model("HTSAT-tiny-fusion", "none", "clap")
        # a tokenizer with roberta-base's vocabulary size: the tiny BPE's files padded out is not
        # possible, so ids are synthetic here (the tokenizer path is tested in test_tokenizers.py)
        path = root / "weights" / "630k-audioset-fusion-best.pt"
        torch.save(released_clap_layout(reference.model), path)
        # by path into the unfused architecture (the DG-SCT way): fusion weights are dropped
        unfused = build_clap_model("HTSAT-tiny", str(path), "clap")
        yield root, reference, path, unfused


class SyntheticRobertaTokenizer:
    """Deterministic ids in roberta-base's range; stands in for the real 50k vocabulary files."""

    vocab_size = 50265
    folder = Path("synthetic")

    def __call__(self, texts):
        ids = torch.full((len(texts), 77), 1, dtype=torch.long)
        mask = torch.zeros((len(texts), 77), dtype=torch.long)
        for i, text in enumerate(texts):
            body = [4 + (sum(map(ord, w)) * 7919) % 50000 for w in text.split()]
            seq = [0] + body + [2]
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
        return ids, mask


@pytest.mark.slow
def test_clap_released_layout_roundtrip_fused_and_unfused(full_clap, monkeypatch):
    root, reference, path, unfused = full_clap
    monkeypatch.setenv("AVFEWSHOT_WEIGHTS", str(root / "weights"))
    tok = SyntheticRobertaTokenizer()
    wave = torch.randn(1, 48000, generator=torch.Generator().manual_seed(0))
    expected = clap_outputs(reference, tok, wave)

    # by tag into the fused architecture: every key, fusion branch included, loads strictly
    fused = build_clap_model("HTSAT-tiny-fusion", "630k-audioset-fusion-best", "clap")
    assert fused.weights.path == path
    got = clap_outputs(fused, tok, wave)
    for e, g in zip(expected, got):
        assert torch.equal(e, g)

    assert not any("fusion_model" in k or "mel_conv2d" in k for k in unfused.model.state_dict())
    got = clap_outputs(unfused, tok, wave)
    for e, g in zip(expected, got):
        assert torch.equal(e, g)
    # every shared tensor was really loaded (not left at a coincidental init)
    ref_state = reference.model.state_dict()
    for k, v in unfused.model.state_dict().items():
        assert torch.equal(v, ref_state[k]), k


@pytest.mark.slow
def test_clap_modules_match_laion_clap_model_and_its_forward(full_clap, monkeypatch):
    """Our module tree has exactly the keys of clap_module.CLAP, and CLAP's own forward gives our numbers."""
    root, reference, path, unfused = full_clap
    from avfewshot.encoders.clap_import import import_clap_module
    from avfewshot.encoders.clap_towers import roberta_config

    clap_module = import_clap_module()
    from clap_module import model as clap_model_py
    from transformers import RobertaModel

    arch_text = reference.arch.text

    class OfflineRoberta:
        @staticmethod
        def from_pretrained(name, *args, **kwargs):
            assert name == "roberta-base"
            return RobertaModel(roberta_config(arch_text))

    monkeypatch.setattr(clap_model_py, "RobertaModel", OfflineRoberta)
    cfg = copy.deepcopy(clap_module.factory._MODEL_CONFIGS["HTSAT-tiny"])
    cfg["text_cfg"]["model_type"] = "roberta"
    official = clap_module.CLAP(**cfg, enable_fusion=False, fusion_type="None").eval()
    ours = unfused.model.state_dict()
    theirs = official.state_dict()
    assert sorted(ours) == sorted(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)
    official.load_state_dict(ours, strict=True)

    tok = SyntheticRobertaTokenizer()
    wave = torch.randn(1, 48000, generator=torch.Generator().manual_seed(1))
    audio, text, _ = clap_outputs(unfused, tok, wave)
    ids, mask = tok(["The sounds of dog barking", "The sounds of a church bell ringing"])
    with torch.no_grad():
        padded = AudioTower(unfused).fill(wave)  # CLAP's repeatpad of a 1-s clip to 10 s
        official_audio = official.audio_projection(
            official.encode_audio({"waveform": padded}, device="cpu")["embedding"])
        official_text = official.encode_text({"input_ids": ids, "attention_mask": mask}, device="cpu")
    assert torch.allclose(audio, official_audio, atol=1e-5, rtol=1e-4)  # faster kernels: equal to rounding
    assert torch.equal(text, official_text)


def test_unfused_checkpoint_refused_by_fused_architecture(tmp_path, monkeypatch):
    monkeypatch.setenv("AVFEWSHOT_WEIGHTS", str(tmp_path))
    tiny = build_clap_model("tiny", "none")
    path = tmp_path / "unfused.pt"
    torch.save(released_clap_layout(tiny.model), path)
    with pytest.raises(UserError, match="unfused"):
        build_clap_model("HTSAT-tiny-fusion", str(path))


def test_tiny_clap_roundtrip_and_frontend_tensors(tmp_path):
    """Released layout on the tiny preset; a 'computed' front-end keeps its own mel matrix."""
    ref = build_clap_model("tiny", "none")
    state = released_clap_layout(ref.model)
    state["state_dict"]["module.audio_branch.logmel_extractor.melW"] = torch.full_like(
        state["state_dict"]["module.audio_branch.logmel_extractor.melW"], 0.5)
    path = tmp_path / "tiny-clap.pt"
    torch.save(state, path)
    loaded = build_clap_model("tiny", str(path))
    for k, v in ref.model.state_dict().items():
        assert torch.equal(v, loaded.model.state_dict()[k]), k


@pytest.fixture
def small_64mel_arch(monkeypatch):
    """A small architecture with the real 64 mel bins, so the 48/32 kHz front-ends fit it."""
    from avfewshot.encoders import specs

    tiny = specs.clap_arch("tiny")
    audio = dict(tiny.audio, spec_size=256, mel_bins=64, embed_dim=8, num_heads=[1, 1, 1, 1])
    arch = specs.ClapArch("test-64mel", "test only", audio, tiny.text, tiny.joint_dim, "clap")
    monkeypatch.setitem(specs.catalogue().clap_archs._items, arch.name, arch)
    return arch.name


def test_dgsct_compat_inherits_checkpoint_mel_matrix_and_dgsct_does_not(tmp_path, small_64mel_arch):
    ref = build_clap_model(small_64mel_arch, "none", "clap")
    path = tmp_path / "clap.pt"
    torch.save(released_clap_layout(ref.model), path)
    compat = build_clap_model(small_64mel_arch, str(path), "dgsct-compat")
    clean = build_clap_model(small_64mel_arch, str(path), "dgsct")
    mel48 = ref.model.audio_branch.logmel_extractor.melW
    assert torch.equal(compat.model.audio_branch.logmel_extractor.melW, mel48)
    assert not torch.allclose(clean.model.audio_branch.logmel_extractor.melW, mel48)
    assert compat.frontend.sample_rate == clean.frontend.sample_rate == 32000
    # random init under dgsct-compat holds what a CLAP checkpoint would: the 48 kHz matrix
    random_compat = build_clap_model(small_64mel_arch, "none", "dgsct-compat")
    assert torch.equal(random_compat.model.audio_branch.logmel_extractor.melW, mel48)


def test_fused_checkpoints_get_htk_mels(tmp_path, small_64mel_arch):
    """CLAP's fused models were trained on torchaudio HTK mels (no area norm), unfused on Slaney."""
    from avfewshot.encoders.clap_towers import htk_mel_matrix, slaney_mel_matrix
    from avfewshot.encoders import specs

    clap_fe = specs.catalogue().frontends.get("clap")
    plain = build_clap_model(small_64mel_arch, "none", "clap")
    assert plain.mel_scale == "slaney"
    assert torch.allclose(plain.model.audio_branch.logmel_extractor.melW, slaney_mel_matrix(clap_fe))
    state = released_clap_layout(plain.model)
    state["state_dict"]["module.audio_branch.patch_embed.fusion_model.x.weight"] = torch.zeros(1)
    path = tmp_path / "fused.pt"
    torch.save(state, path)
    from_fused = build_clap_model(small_64mel_arch, str(path), "clap")
    assert from_fused.mel_scale == "htk"
    assert torch.equal(from_fused.model.audio_branch.logmel_extractor.melW, htk_mel_matrix(clap_fe))


def test_incompatible_frontend_is_refused():
    with pytest.raises(UserError, match="front-ends that fit"):
        build_clap_model("tiny", "none", "clap")


def test_mismatched_checkpoint_lists_missing_and_unexpected_keys(tmp_path):
    tiny = build_clap_model("tiny", "none")
    state = released_clap_layout(tiny.model)
    del state["state_dict"]["module.audio_projection.0.weight"]
    state["state_dict"]["module.something_else.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pt"
    torch.save(state, path)
    with pytest.raises(UserError) as err:
        build_clap_model("tiny", str(path))
    msg = str(err.value)
    assert "missing keys (1): audio_projection.0.weight" in msg
    assert "unexpected keys (1): something_else.weight" in msg
    assert str(path) in msg


# -- CLIP ------------------------------------------------------------------------------------
def fp16_exact_(model) -> None:
    """Make every weight exactly representable in fp16, so an OpenAI-style fp16 file loses nothing."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())


def openai_style_state_dict(model) -> dict:
    """OpenAI's layout: open_clip CLIP keys, fp16 matrices, and the three metadata entries."""
    state = {}
    for k, v in model.state_dict().items():
        state[k] = v.half() if v.ndim >= 2 or k.endswith(("in_proj_bias", ".bias")) else v.clone()
    grid = model.visual.grid_size[0]
    state["input_resolution"] = torch.tensor(grid * model.visual.patch_size[0])
    state["context_length"] = torch.tensor(model.context_length)
    state["vocab_size"] = torch.tensor(model.vocab_size)
    return state


def clip_outputs(model, images, texts):
    image, text = ImageTower(model), ClipTextTower(model)
    with torch.no_grad():
        return image(images), text(text.tokenize(texts)), model.logit_scale.detach().clone()


@pytest.fixture(scope="module")
def full_clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip-full")
    with encoder_env(root):
        model, _, _ = build_clip_model("ViT-B-32-quickgelu", "none")
        fp16_exact_(model)
        images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        expected = clip_outputs(model, images, ["a photo of a dog.", "a photo of a church bell."])
        yield root, model, images, expected


@pytest.mark.slow
def test_clip_openclip_bin_and_safetensors_roundtrip(full_clip):
    from safetensors.torch import save_file

    root, model, images, expected = full_clip
    state = model.state_dict()
    bin_path = root / "open_clip_pytorch_model.bin"
    torch.save(state, bin_path)
    st_path = root / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(st_path))
    for path in (bin_path, st_path):
        loaded, resolved, _ = build_clip_model("ViT-B-32-quickgelu", str(path))
        assert resolved.path == path
        got = clip_outputs(loaded, images, ["a photo of a dog.", "a photo of a church bell."])
        for e, g in zip(expected, got):
            assert torch.equal(e, g), path.name


@pytest.mark.slow
def test_clip_openai_state_dict_by_tag_forces_quickgelu(full_clip, monkeypatch):
    root, model, images, expected = full_clip
    weights = root / "weights"
    weights.mkdir(exist_ok=True)
    torch.save(openai_style_state_dict(model), weights / "ViT-B-32-openai.pt")
    monkeypatch.setenv("AVFEWSHOT_WEIGHTS", str(weights))
    # the plain ViT-B-32 config (nn.GELU) with the openai tag must still run QuickGELU
    loaded, resolved, quick_gelu = build_clip_model("ViT-B-32", "openai")
    assert resolved.path == weights / "ViT-B-32-openai.pt" and quick_gelu
    got = clip_outputs(loaded, images, ["a photo of a dog.", "a photo of a church bell."])
    for e, g in zip(expected, got):
        assert torch.equal(e, g)


def test_clip_openai_jit_archive_tiny(tmp_path):
    """A trusted TorchScript archive (OpenAI's .pt format) is read via torch.jit, with QuickGELU forced;
    an archive with no published digest is refused unless trusted (tests/test_faults.py has the rest)."""
    model, _, _ = build_clip_model("tiny", "none")
    fp16_exact_(model)

    class Archive(torch.nn.Module):
        def __init__(self, clip):
            super().__init__()
            for name, child in clip.named_children():
                setattr(self, name, child)
            for name, p in clip.named_parameters(recurse=False):
                self.register_parameter(name, p)
            self.register_buffer("input_resolution", torch.tensor(64))
            self.register_buffer("context_length", torch.tensor(77))
            self.register_buffer("vocab_size", torch.tensor(49408))

        def forward(self, x):
            return x * self.logit_scale

    path = tmp_path / "tiny-openai.pt"
    traced = torch.jit.trace(Archive(model).eval(), torch.ones(1))
    torch.jit.save(traced, str(path))
    assert ckpt.is_torchscript_archive(path)
    with pytest.raises(UserError, match="model.trust_torchscript=true"):
        build_clip_model("tiny", str(path))
    loaded, _, quick_gelu = build_clip_model("tiny", str(path), trust_torchscript=True)
    assert quick_gelu
    model_q, _, _ = build_clip_model("tiny", "none")
    # expected: the same weights in a QuickGELU model
    from open_clip.model import CLIP
    from avfewshot.encoders import specs

    cfg = specs.clip_arch("tiny").model_cfg()
    cfg["quick_gelu"] = True
    expected_model = CLIP(**cfg).eval()
    expected_model.load_state_dict(model.state_dict())
    images = torch.randn(2, 3, 64, 64)
    texts = ["a photo of a dog.", "a cat"]
    for e, g in zip(clip_outputs(expected_model, images, texts), clip_outputs(loaded, images, texts)):
        assert torch.equal(e, g)


# -- safe unpickling -------------------------------------------------------------------------
class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_checkpoint_with_arbitrary_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Payload()}, path)
    with pytest.raises(UserError, match="weights_only=True"):
        ckpt.read_state_dict(path)


def test_numpy1_scalar_names_are_allowed(tmp_path):
    """Released files were pickled under numpy 1.x ('numpy.core.multiarray.scalar')."""
    path = tmp_path / "np1.pt"
    torch.save({"epoch": np.int64(7), "loss": np.float32(0.5), "state_dict": {"w": torch.ones(2)}}, path,
               _use_new_zipfile_serialization=False)
    raw = path.read_bytes()
    assert b"numpy._core.multiarray" in raw or b"numpy.core.multiarray" in raw
    path.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    obj = ckpt.read_state_dict(path)
    assert int(obj["epoch"]) == 7 and float(obj["loss"]) == 0.5
    assert torch.equal(obj["state_dict"]["w"], torch.ones(2))


def test_key_cleanup():
    state = {"module.a.weight": 1, "module.text_branch.embeddings.position_ids": 2,
             "module.audio_branch.patch_embed.fusion_model.local_att.0.weight": 3,
             "module.audio_branch.patch_embed.mel_conv2d.bias": 4}
    assert ckpt.clean_clap_state(state, fused_model=False) == {"a.weight": 1}
    assert set(ckpt.clean_clap_state(state, fused_model=True)) == {
        "a.weight", "audio_branch.patch_embed.fusion_model.local_att.0.weight", "audio_branch.patch_embed.mel_conv2d.bias"}
    assert ckpt.checkpoint_is_fused(state)


# -- missing files ---------------------------------------------------------------------------
@pytest.mark.parametrize("arch,weights,expected_name", [
    ("clap", "630k-audioset-fusion-best", "630k-audioset-fusion-best.pt"),
    ("clap", "630k-best", "630k-best.pt"),
    ("clip", "openai", "ViT-B-32-openai.pt"),
])
def test_missing_checkpoint_names_path_and_source(tmp_path, monkeypatch, arch, weights, expected_name):
    monkeypatch.setenv("AVFEWSHOT_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    from avfewshot.encoders import build_backbone

    kwargs = dict(clip_arch="tiny", clip_weights="none", clap_arch="tiny", clap_weights="none")
    if arch == "clap":
        kwargs.update(clap_arch="HTSAT-tiny", clap_weights=weights, audio_frontend="clap")
    else:
        kwargs.update(clip_arch="ViT-B-32", clip_weights=weights)
    start = time.monotonic()
    with pytest.raises(MissingCheckpointError) as err:
        build_backbone(**kwargs)
    msg = str(err.value)
    assert str(tmp_path / expected_name) in msg
    assert "https://" in msg
    assert time.monotonic() - start < 30  # generous: it must not wait on anything


def test_missing_direct_path_and_unknown_tag(tmp_path):
    with pytest.raises(MissingCheckpointError, match=str(tmp_path / "nope.pt")):
        ckpt.resolve_clap_weights(str(tmp_path / "nope.pt"))
    with pytest.raises(UserError, match="630k-audioset-best"):
        ckpt.resolve_clap_weights("630k-typo")
    with pytest.raises(UserError, match="openai"):
        ckpt.resolve_clip_weights("ViT-B-16", "opneai")
