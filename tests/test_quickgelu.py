"""QuickGELU is decided from the weights: OpenAI-format state dicts given by path (.pt or .safetensors) run
QuickGELU even under the plain architecture name; a file of unknown provenance is refused, not guessed."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from avfewshot.encoders import specs
from avfewshot.encoders.checkpoints import ResolvedWeights
from avfewshot.encoders.clip_activation import choose_quick_gelu
from avfewshot.encoders.clip_towers import ClipTextTower, ImageTower, build_clip_model
from avfewshot.errors import UserError

from helpers.bpe import encoder_env

TEXTS = ["a photo of a dog.", "a photo of a church bell."]


def openai_format(model) -> dict:
    """The layout of OpenAI's released state dict: open_clip's keys plus its three metadata entries."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["input_resolution"] = torch.tensor(model.visual.image_size[0])
    state["context_length"] = torch.tensor(model.context_length)
    state["vocab_size"] = torch.tensor(model.vocab_size)
    return state


def save(state: dict, path: Path) -> Path:
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path


def features(model, images):
    image, text = ImageTower(model), ClipTextTower(model)
    with torch.no_grad():
        return image(images), text(text.tokenize(TEXTS))


def quick_twin(arch: str, state: dict):
    """The same weights in the architecture's config with QuickGELU switched on explicitly."""
    from open_clip.model import CLIP

    cfg = specs.clip_arch(arch).model_cfg()
    cfg["quick_gelu"] = True
    model = CLIP(**cfg).eval()
    model.load_state_dict({k: v for k, v in state.items() if k not in ("input_resolution", "context_length", "vocab_size")})
    return model


# -- the decision table ------------------------------------------------------------------------
def test_decision_rules(tmp_path):
    plain = save({"visual.proj": torch.zeros(2, 2)}, tmp_path / "mystery.pt")
    by_path = ResolvedWeights(str(plain), plain)
    meta = ("visual.proj", "input_resolution", "context_length", "vocab_size")
    assert choose_quick_gelu("ViT-B-32", "auto", by_path, meta) is True
    assert choose_quick_gelu("ViT-B-32", "auto", by_path, (), is_torchscript=True) is True
    assert choose_quick_gelu("ViT-B-16-quickgelu", "auto", by_path, ()) is True  # explicit architecture
    assert choose_quick_gelu("ViT-B-32", "gelu", by_path, ()) is False  # explicit activation
    assert choose_quick_gelu("ViT-B-32", "quickgelu", by_path, ()) is True
    assert choose_quick_gelu("ViT-B-32", "auto", ResolvedWeights("none", None), ()) is False  # random init
    assert choose_quick_gelu("tiny", "auto", by_path, ()) is False  # no OpenAI weights exist for it
    with pytest.raises(UserError) as err:
        choose_quick_gelu("ViT-B-16", "auto", by_path, ("visual.proj",))
    msg = str(err.value)
    assert "\n" not in msg and str(plain) in msg
    assert "model.clip_arch=ViT-B-16-quickgelu" in msg and "model.clip_activation=gelu" in msg
    with pytest.raises(UserError, match="contradicts"):
        choose_quick_gelu("ViT-B-32-quickgelu", "gelu", by_path, ())
    with pytest.raises(UserError, match="clip_activation"):
        choose_quick_gelu("ViT-B-32", "swish", by_path, ())


def test_safetensors_metadata_and_known_locations_count_as_evidence(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    path = tmp_path / "converted.safetensors"
    save_file({"visual.proj": torch.zeros(2, 2)}, str(path), metadata={"source": "openai/clip-vit-base-patch32"})
    assert choose_quick_gelu("ViT-B-32", "auto", ResolvedWeights(str(path), path), ("visual.proj",)) is True
    hub = tmp_path / "hub" / "models--timm--vit_base_patch16_clip_224.openai" / "snapshots" / "abc"
    hub.mkdir(parents=True)
    cached = save({"visual.proj": torch.zeros(2, 2)}, hub / "open_clip_pytorch_model.bin")
    assert choose_quick_gelu("ViT-B-16", "auto", ResolvedWeights(str(cached), cached), ("visual.proj",)) is True
    monkeypatch.setenv("AVFEWSHOT_WEIGHTS", str(tmp_path / "weights"))
    (tmp_path / "weights").mkdir()
    named = save({"visual.proj": torch.zeros(2, 2)}, tmp_path / "weights" / "ViT-B-32-openai.safetensors")
    assert choose_quick_gelu("ViT-B-32", "auto", ResolvedWeights(str(named), named), ("visual.proj",)) is True


# -- real loads ------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_tiny_openai_format_file_runs_quickgelu(tmp_path, suffix):
    with encoder_env(tmp_path):
        model, _, quick = build_clip_model("tiny", "none")
        assert not quick
        state = openai_format(model)
        path = save(state, tmp_path / f"tiny-openai{suffix}")
        loaded, _, quick = build_clip_model("tiny", str(path))
        assert quick
        images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        for want, got in zip(features(quick_twin("tiny", state), images), features(loaded, images)):
            assert torch.equal(want, got)
        gelu = features(model, images)[0]
        assert not torch.allclose(gelu, features(loaded, images)[0])  # the activation matters on these weights


@pytest.fixture(scope="module")
def b32(tmp_path_factory):
    root = tmp_path_factory.mktemp("b32")
    with encoder_env(root):
        model, _, quick = build_clip_model("ViT-B-32-quickgelu", "none")
        assert quick
        yield root, model


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_b32_openai_state_dict_by_path_under_the_plain_name(b32, suffix):
    root, reference = b32
    with encoder_env(root):
        state = openai_format(reference)
        path = save(state, root / f"clip-b32{suffix}")
        loaded, _, quick = build_clip_model("ViT-B-32", str(path))  # the plain name: exact GELU in the config
        assert quick
        images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
        want = features(reference, images)
        for w, g in zip(want, features(loaded, images)):
            assert torch.equal(w, g)
        # the same tensors without OpenAI's metadata: refused under the plain name, never run with GELU silently
        bare = save({k: v for k, v in state.items() if k not in ("input_resolution", "context_length", "vocab_size")},
                    root / f"clip-b32-bare{suffix}")
        with pytest.raises(UserError, match="ViT-B-32-quickgelu"):
            build_clip_model("ViT-B-32", str(bare))
        explicit, _, quick = build_clip_model("ViT-B-32-quickgelu", str(bare))
        assert quick and torch.equal(features(explicit, images)[0], want[0])
        gelu, _, quick = build_clip_model("ViT-B-32", str(bare), activation="gelu")
        assert not quick and not torch.allclose(features(gelu, images)[0], want[0], atol=1e-4)
        path.unlink()
        bare.unlink()
