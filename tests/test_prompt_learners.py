"""Prompt learners (CLIP and CLAP), CoCoOp meta-net, CLIP-Adapter: assembly, identities, real-size counts."""
from __future__ import annotations

import pytest
import torch

from avfewshot.errors import UserError
from avfewshot.methods.prompt_learners import (
    ClapPromptLearner,
    ClipAdapter,
    ClipPromptLearner,
    MetaNet,
    count_parameters,
    template_prefix,
)
from helpers.bpe import encoder_env

TINY = dict(clip_arch="tiny", clip_weights="none", clap_arch="tiny", clap_weights="none")
NAMES = ["dog barking", "church_bell", "Frying (food)", "background"]


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    from avfewshot.encoders import build_backbone

    with encoder_env(tmp_path_factory.mktemp("prompt_learners")):
        yield build_backbone(**TINY)


def clip_literal(backbone, template="a photo of a {}."):
    text = backbone.clip_text
    return text(text.tokenize([template.format(n.replace("_", " ")) for n in NAMES]))


def clap_literal(backbone, template="The sounds of {}"):
    text = backbone.clap_text
    ids, mask = text.tokenize([template.format(n.replace("_", " ")) for n in NAMES])
    return text(ids, mask)


def test_template_prefix():
    assert template_prefix("a photo of a {}.") == "a photo of a"
    assert template_prefix("The sounds of {}") == "The sounds of"


def test_clip_context_from_phrase_equals_literal_prompt(backbone):
    learner = ClipPromptLearner(backbone.clip_text, NAMES, ctx_init="a photo of a", n_ctx=None)
    assert learner.n_ctx == 4 and learner.ctx.shape == (4, backbone.clip_text.width)
    with torch.no_grad():
        assert torch.equal(learner(), clip_literal(backbone))
    literal_ids = backbone.clip_text.tokenize([f"a photo of a {n.replace('_', ' ')}." for n in NAMES])
    keep = torch.ones_like(literal_ids, dtype=torch.bool)
    keep[:, 1:5] = False
    assert torch.equal(learner.ids[keep], literal_ids[keep])  # same name/tail/EOT tokens everywhere else


def test_clap_context_from_phrase_equals_literal_prompt(backbone):
    learner = ClapPromptLearner(backbone.clap_text, NAMES, ctx_init="The sounds of", n_ctx=None)
    assert learner.n_ctx == 3 and learner.ctx.shape == (3, backbone.clap_text.width)
    with torch.no_grad():
        assert torch.equal(learner(), clap_literal(backbone))
    ids, mask = backbone.clap_text.tokenize([f"The sounds of {n.replace('_', ' ')}" for n in NAMES])
    assert torch.equal(learner.lengths, mask.sum(dim=1))
    assert torch.equal(learner.ids[:, 4:], ids[:, 4:])
    assert torch.equal(learner.attention_mask(torch.arange(len(NAMES))), mask)


def test_truncation_leaves_features_unchanged(backbone):
    for cls, tower, phrase in ((ClipPromptLearner, backbone.clip_text, "a photo of a"),
                               (ClapPromptLearner, backbone.clap_text, "The sounds of")):
        full = cls(tower, NAMES, ctx_init=phrase, n_ctx=None)
        short = cls(tower, NAMES, ctx_init=phrase, n_ctx=None, truncate=True)
        assert short.max_length() == int(full.lengths.max()) < full.ids.shape[1]
        with torch.no_grad():
            torch.testing.assert_close(short(), full(), atol=1e-5, rtol=0)


def test_random_init_statistics_and_csc_shape(backbone):
    torch.manual_seed(0)
    generic = ClipPromptLearner(backbone.clip_text, NAMES, n_ctx=16)
    assert generic.ctx.shape == (16, backbone.clip_text.width)
    assert abs(float(generic.ctx.detach().std()) - 0.02) < 0.003
    csc = ClipPromptLearner(backbone.clip_text, NAMES, n_ctx=4, csc=True)
    assert csc.ctx.shape == (len(NAMES), 4, backbone.clip_text.width)
    assert count_parameters(csc) == len(NAMES) * 4 * backbone.clip_text.width
    # every class really uses its own context: changing class 0's context changes class 0 only
    with torch.no_grad():
        before = csc()
        csc.ctx[0] += 1.0
        after = csc()
    assert not torch.allclose(before[0], after[0])
    torch.testing.assert_close(before[1:], after[1:], atol=0, rtol=0)


@pytest.mark.parametrize("position", ["end", "middle", "front"])
def test_class_token_positions(backbone, position):
    tok = backbone.clip_text.tokenizer
    learner = ClipPromptLearner(backbone.clip_text, NAMES, n_ctx=4, class_token_position=position)
    name = tok.encode("dog barking")
    row = learner.ids[0].tolist()
    slots = learner.ctx_slots[0].tolist()
    expected = {"end": [1, 2, 3, 4], "middle": [1, 2, 3 + len(name), 4 + len(name)],
                "front": [1 + len(name), 2 + len(name), 3 + len(name), 4 + len(name)]}[position]
    assert slots == expected
    name_start = {"end": 5, "middle": 3, "front": 1}[position]
    assert row[name_start: name_start + len(name)] == name
    assert row[int(learner.lengths[0]) - 1] == tok.eot_token_id
    assert row[int(learner.lengths[0]) - 2] == tok.encode(".")[0]
    with torch.no_grad():
        out = learner()
    assert out.shape == (len(NAMES), backbone.clip_text.text_projection.shape[1])


def test_per_sample_shift_and_chunking(backbone):
    learner = ClapPromptLearner(backbone.clap_text, NAMES, ctx_init="The sounds of", n_ctx=None, chunk_size=3)
    with torch.no_grad():
        plain = learner()
        zero = learner(torch.zeros(2, learner.width))
        shift = torch.randn(2, learner.width) * 0.1
        chunked = learner(shift)
        learner.chunk_size = 0
        whole = learner(shift)
    assert zero.shape == (2, len(NAMES), plain.shape[1])
    torch.testing.assert_close(zero[1], plain, atol=1e-6, rtol=0)
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)
    assert not torch.allclose(whole[0], whole[1])


def test_phrase_longer_than_context_keeps_the_rest_fixed(backbone):
    # MaPLe: 2 learned tokens from "a photo", "of a" stays fixed -> still the literal prompt
    learner = ClipPromptLearner(backbone.clip_text, NAMES, ctx_init="a photo of a", n_ctx=2)
    assert learner.n_ctx == 2 and learner.ctx_slots[0].tolist() == [1, 2]
    with torch.no_grad():
        assert torch.equal(learner(), clip_literal(backbone))
        deep = [torch.zeros(2, learner.width)]
        assert not torch.allclose(learner(deep=deep), learner())
    clap = ClapPromptLearner(backbone.clap_text, NAMES, ctx_init="The sounds of", n_ctx=2)
    with torch.no_grad():
        assert torch.equal(clap(), clap_literal(backbone))
        assert not torch.allclose(clap(deep=[torch.zeros(2, clap.width)]), clap())


def test_deep_prompts_equal_to_the_hidden_state_are_a_no_op_for_clap(backbone):
    """Hooks overwrite the slots entering layer 1; writing what is already there changes nothing."""
    learner = ClapPromptLearner(backbone.clap_text, NAMES[:1], ctx_init="The sounds of", n_ctx=None)
    captured = {}
    layer1 = backbone.clap_text.text_branch.encoder.layer[1]
    def capture(module, args):
        captured["h"] = args[0].detach().clone()

    handle = layer1.register_forward_pre_hook(capture)
    with torch.no_grad():
        plain = learner()
    handle.remove()
    with torch.no_grad():
        same = learner(deep=[captured["h"][0, 1:4]])
    torch.testing.assert_close(same, plain, atol=1e-6, rtol=0)


def test_bad_options_raise(backbone):
    with pytest.raises(UserError, match="class_token_position"):
        ClipPromptLearner(backbone.clip_text, NAMES, class_token_position="start")
    with pytest.raises(UserError, match="longer than ctx_init"):
        ClipPromptLearner(backbone.clip_text, NAMES, ctx_init="a photo", n_ctx=5)
    with pytest.raises(UserError, match="class_token_position=end"):
        ClipPromptLearner(backbone.clip_text, NAMES, ctx_init="a photo of a", n_ctx=2, class_token_position="front")
    with pytest.raises(UserError, match="more than the text tower"):
        ClipPromptLearner(backbone.clip_text, ["dog " * 80], n_ctx=4)


def test_clip_adapter_module():
    adapter = ClipAdapter(512, reduction=4, ratio=0.2)
    assert count_parameters(adapter) == 131_072
    assert all(m.bias is None for m in adapter.fc if isinstance(m, torch.nn.Linear))
    x = torch.randn(3, 512)
    res = adapter.residual(x)
    assert (res >= 0).all()  # the final ReLU
    torch.testing.assert_close(adapter(x), 0.2 * res + 0.8 * x)
    assert torch.equal(ClipAdapter(512, ratio=0.0)(x), x)
    with pytest.raises(UserError):
        ClipAdapter(510, reduction=4)


def test_meta_net_shapes():
    net = MetaNet(512, 512)
    assert (net.linear1.in_features, net.linear1.out_features, net.linear2.out_features) == (512, 32, 512)
    assert count_parameters(net) == 33_312
    assert count_parameters(MetaNet(512, 768)) == 512 * 32 + 32 + 32 * 768 + 768


def test_real_size_clip_parameter_counts():
    """ViT-B/16 widths (text 512, vision 768, output 512), built on the meta device (no weights)."""
    from avfewshot.encoders.clip_towers import ClipTextTower, ImageTower, build_clip_model
    from avfewshot.methods.clip_adapter import AdapterBranch
    from avfewshot.methods.cocoop import ConditionalPromptBranch
    from avfewshot.methods.maple import MaPLeVisual

    with torch.device("meta"):
        model, _, _ = build_clip_model("ViT-B-16", "none")
    text, image = ClipTextTower(model), ImageTower(model)
    assert (text.width, image.width, image.output_dim) == (512, 768, 512)
    names = [f"class {i}" for i in range(29)]
    with torch.device("meta"):
        coop = ClipPromptLearner(text, names, n_ctx=16)
        coop4 = ClipPromptLearner(text, names, ctx_init="a photo of a", n_ctx=None)
        csc = ClipPromptLearner(text, names, n_ctx=16, csc=True)
        cocoop = ConditionalPromptBranch(ClipPromptLearner(text, names, ctx_init="a photo of a", n_ctx=None), image.output_dim)
        adapter = AdapterBranch(torch.zeros(29, image.output_dim), 0.2, 4, False)
        maple = MaPLeVisual(ClipPromptLearner(text, names, ctx_init="a photo of a", n_ctx=2), 9, image.width)
    assert count_parameters(coop) == 8_192
    assert count_parameters(coop4) == 2_048
    assert count_parameters(csc) == 237_568
    assert count_parameters(cocoop) == 35_360
    assert count_parameters(adapter) == 131_072
    assert count_parameters(maple) == 3_555_072
