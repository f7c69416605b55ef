"""The baseline zoo on the tiny towers: identities with zero-shot, training, caching, MaPLe re-implementations."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from avfewshot.errors import UserError
from avfewshot.methods import build_method
from avfewshot.methods.base import make_method_config
from avfewshot.methods.features import FeatureStore
from avfewshot.tasks import get_task
from helpers.bpe import encoder_env

TINY = dict(clip_arch="tiny", clip_weights="none", clap_arch="tiny", clap_weights="none")
BASELINES = ("coop", "cocoop", "clip_adapter", "maple")


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    from avfewshot.encoders import build_backbone

    with encoder_env(tmp_path_factory.mktemp("baselines")):
        yield build_backbone(**TINY)


@pytest.fixture(scope="module")
def task():
    return get_task("ave")


@pytest.fixture(scope="module")
def names(task):
    return task.class_list(["dog barking", "church_bell", "Frying (food)"])


@pytest.fixture(scope="module")
def batch(backbone):
    g = torch.Generator().manual_seed(0)
    b, t = 2, 2
    return {
        "frames": torch.randn(b, t, 3, backbone.image_size, backbone.image_size, generator=g),
        "audio": 0.1 * torch.randn(b, t, backbone.audio_rate, generator=g),
        "segment_labels": torch.tensor([[0, 3], [2, 1]]),
        "labels": torch.tensor([[1.0, 0, 0], [0, 1.0, 1.0]]),
        "cache_key": ["clip-a", "clip-b"],
        "index": torch.arange(b),
    }


@pytest.fixture(scope="module")
def zeroshot(backbone, task, names, batch):
    with torch.no_grad():
        return build_method("zeroshot", backbone, task, names)(batch)


@pytest.fixture(scope="module")
def memory_store(backbone):
    return FeatureStore(backbone, on_disk=False)


def run(method, batch):
    with torch.no_grad():
        return method.eval()(batch)


def test_registered_with_their_config_dataclasses(backbone, task, names):
    import avfewshot.methods.clip_adapter, avfewshot.methods.cocoop, avfewshot.methods.coop, avfewshot.methods.maple  # noqa: F401,E401

    for name in BASELINES:
        cfg = make_method_config(name, {})
        assert dataclasses.is_dataclass(cfg) and cfg.fusion == "confidence"
    with pytest.raises(UserError, match="unknown option"):
        make_method_config("coop", {"n_context": 3})
    with pytest.raises(UserError, match="branches"):
        build_method("coop", backbone, task, names, {"branches": ["visual", "depth"]})


def test_coop_from_template_phrases_equals_zero_shot(backbone, task, names, batch, zeroshot):
    coop = build_method("coop", backbone, task, names, {"ctx_init": "a photo of a"})
    out = run(coop, batch)
    assert out.fused.shape == (2, 2, len(names))
    assert torch.equal(out.visual, zeroshot.visual)
    assert torch.equal(out.audio, zeroshot.audio)  # CoOp-A starts from "The sounds of" by default
    assert torch.equal(out.fused, zeroshot.fused)


def test_coop_default_is_random_sixteen_tokens(backbone, task, names):
    coop = build_method("coop", backbone, task, names)
    learner = coop.visual_branch.prompt_learner
    assert learner.n_ctx == 16 and learner.ctx_init == ""
    groups = coop.parameter_groups()
    assert groups == {"visual": 16 * backbone.clip_text.width, "audio": 3 * backbone.clap_text.width}


def test_cocoop_with_zero_meta_net_equals_coop(backbone, task, names, batch):
    coop = build_method("coop", backbone, task, names, {"ctx_init": "a photo of a"})
    cocoop = build_method("cocoop", backbone, task, names)
    for branch in (cocoop.visual_branch, cocoop.audio_branch):
        torch.nn.init.zeros_(branch.meta_net.linear2.weight)
        torch.nn.init.zeros_(branch.meta_net.linear2.bias)
    a, b = run(coop, batch), run(cocoop, batch)
    torch.testing.assert_close(b.visual, a.visual, atol=1e-5, rtol=0)
    torch.testing.assert_close(b.audio, a.audio, atol=1e-5, rtol=0)


def test_cocoop_truncation_and_chunking_leave_logits_unchanged(backbone, task, names, batch):
    torch.manual_seed(3)
    full = build_method("cocoop", backbone, task, names, {"truncate_text": False, "chunk_size": 0})
    short = build_method("cocoop", backbone, task, names, {"truncate_text": True, "chunk_size": 5})
    short.load_trainable_state(full.trainable_state())
    a, b = run(full, batch), run(short, batch)
    assert short.visual_branch.prompt_learner.max_length() < full.visual_branch.prompt_learner.max_length()
    torch.testing.assert_close(b.visual, a.visual, atol=1e-5, rtol=0)
    torch.testing.assert_close(b.audio, a.audio, atol=1e-5, rtol=0)
    # the meta-net really conditions: two different features give two different prompt sets
    branch = full.visual_branch
    with torch.no_grad():
        text = branch.prompt_learner(branch.meta_net(torch.nn.functional.normalize(torch.randn(2, backbone.image.output_dim), dim=-1)))
    assert text.shape[:2] == (2, len(names)) and not torch.allclose(text[0], text[1])


def test_cocoop_clip_conditioning(backbone, task, names, batch):
    out = run(build_method("cocoop", backbone, task, names, {"conditioning": "clip"}), batch)
    assert out.visual.shape == (2, 2, len(names))
    with pytest.raises(UserError, match="conditioning"):
        build_method("cocoop", backbone, task, names, {"conditioning": "video"})


def test_clip_adapter_ratio_zero_equals_zero_shot(backbone, task, names, batch, zeroshot):
    method = build_method("clip_adapter", backbone, task, names, {"ratio": 0.0, "audio_ratio": 0.0})
    out = run(method, batch)
    assert torch.equal(out.visual, zeroshot.visual) and torch.equal(out.audio, zeroshot.audio)
    default = build_method("clip_adapter", backbone, task, names)
    dim_v, dim_a = backbone.image.output_dim, backbone.audio.output_dim
    assert default.parameter_groups() == {"visual": 2 * dim_v * dim_v // 4, "audio": 2 * dim_a * dim_a // 4}
    both = build_method("clip_adapter", backbone, task, names, {"text_adapter": True})
    assert both.parameter_groups()["visual"] == 2 * default.parameter_groups()["visual"]


def test_clip_adapter_reads_no_tower_once_features_are_cached(backbone, task, names, batch, monkeypatch):
    method = build_method("clip_adapter", backbone, task, names)
    method.features = FeatureStore(backbone, on_disk=False)
    first = run(method, batch)
    assert method.features.misses == 4  # 2 clips x (image, audio)

    def refuse(*args, **kwargs):
        raise AssertionError("a frozen tower ran although everything is cached")

    for tower in ("image", "audio", "clip_text", "clap_text"):
        monkeypatch.setattr(getattr(backbone, tower), "forward", refuse)
    again = run(method, batch)
    assert torch.equal(again.fused, first.fused)
    assert method.features.hits == 4


def test_cache_policies(backbone, task, names):
    assert build_method("coop", backbone, task, names).cacheable_features == ("image", "audio")
    assert build_method("cocoop", backbone, task, names).cacheable_features == ("image", "audio")
    assert build_method("maple", backbone, task, names).cacheable_features == ()
    visual_only = build_method("maple", backbone, task, names, {"branches": ["visual"]})
    assert visual_only.cacheable_features == ("audio",)  # the zero-shot audio branch reads untouched towers
    assert visual_only.parameter_groups()["audio"] == 0


def test_coop_features_from_cache_equal_fresh_ones(backbone, task, names, batch):
    method = build_method("coop", backbone, task, names)
    fresh = run(method, batch)
    method.features = FeatureStore(backbone, on_disk=False)
    run(method, batch)
    cached = run(method, batch)
    assert method.features.hits == 4
    assert torch.equal(cached.fused, fresh.fused)


def test_maple_paths_without_prompts_reproduce_the_towers(backbone, batch):
    from avfewshot.methods.maple import htsat_with_prompts, vit_with_prompts

    frames = batch["frames"].flatten(0, 1)
    wave = batch["audio"].flatten(0, 1)
    with torch.no_grad():
        torch.testing.assert_close(vit_with_prompts(backbone.image, frames, []), backbone.image(frames), atol=1e-6, rtol=0)
        empty = {b: torch.zeros(0, blk.dim) for b, blk in enumerate(blk for s in backbone.audio.stages for blk in s.blocks)}
        torch.testing.assert_close(htsat_with_prompts(backbone.audio, wave, empty), backbone.audio(wave), atol=1e-5, rtol=0)
        torch.testing.assert_close(htsat_with_prompts(backbone.audio, wave, {}), backbone.audio(wave), atol=0, rtol=0)


def test_maple_prompts_reach_the_towers(backbone, task, names, batch, zeroshot):
    maple = build_method("maple", backbone, task, names)
    v, a = maple.visual_branch, maple.audio_branch
    assert v.depth == 4 and len(v.couplings) == 4 and len(v.deep_text) == 3  # capped at the tiny towers
    assert [c.out_features for c in a.couplings] == [16, 32]  # text depth 2 -> HTS-AT blocks 0, 1
    with torch.no_grad():
        # text side: without deep prompts MaPLe's text is the literal template
        assert torch.equal(v.prompt_learner(), maple.encode_clip_prompts())
        out = maple(batch)
    assert out.visual.shape == zeroshot.visual.shape
    assert not torch.allclose(out.visual, zeroshot.visual) and not torch.allclose(out.audio, zeroshot.audio)
    last = build_method("maple", backbone, task, names, {"audio_last_stage_only": True})
    assert last.audio_branch.start == 3 and [c.out_features for c in last.audio_branch.couplings] == [128]


@pytest.mark.parametrize("name", BASELINES)
def test_training_changes_only_the_methods_own_parameters(backbone, task, names, batch, memory_store, name):
    torch.manual_seed(0)
    method = build_method(name, backbone, task, names)
    if method.cacheable_features:
        method.features = memory_store  # the towers' outputs are frozen: compute them once
    frozen = {k: v.clone() for k, v in backbone.state_dict().items()}
    params = method.trainable_parameters()
    assert params and all(not p.requires_grad for p in backbone.parameters())
    before = {k: v.clone() for k, v in method.trainable_state().items()}
    optimizer = torch.optim.SGD(params, lr=0.5)
    method.train()
    losses = []
    for _ in range(3):
        scores = method(batch)
        loss, parts = method.loss(batch, scores, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert all(torch.isfinite(torch.tensor(losses)))
    after = method.trainable_state()
    assert set(after) == set(before) and after
    changed = [k for k in after if not torch.equal(after[k], before[k])]
    assert changed, "no trainable tensor moved"
    assert all(torch.equal(v, frozen[k]) for k, v in backbone.state_dict().items())
    assert not backbone.training and not backbone.audio.training
    assert set(method.parameter_groups()) == {"visual", "audio"}
    assert sum(method.parameter_groups().values()) == sum(p.numel() for p in params)


def test_maple_official_projection_init_copies_one_linear(backbone, task, names):
    torch.manual_seed(0)
    official = build_method("maple", backbone, task, names, {"projection_init": "official"}).visual_branch.couplings
    torch.manual_seed(0)
    default = build_method("maple", backbone, task, names).visual_branch.couplings
    assert len(official) == len(default) == 4  # depth capped at the tiny towers' 4 layers: F_0 + 3 compound
    for f in official[2:]:  # F_1..F_3 start identical, as the official _get_clones of one initialised Linear
        assert torch.equal(f.weight, official[1].weight) and torch.equal(f.bias, official[1].bias)
        assert f.weight.data_ptr() != official[1].weight.data_ptr()  # separate parameters, trained separately
    assert not torch.equal(official[0].weight, official[1].weight)  # F_0 (the official ``proj``) is its own
    for i in range(1, 4):
        for j in range(i):
            assert not torch.equal(default[i].weight, default[j].weight)
    with pytest.raises(UserError, match="projection_init"):
        build_method("maple", backbone, task, names, {"projection_init": "cloned"})


def test_maple_recipe_uses_the_official_projection_init():
    from avfewshot.engine.build import resolve_run_config
    from avfewshot.paths import runners_dir

    cfg = resolve_run_config(runners_dir() / "maple.yaml", method="maple", demo_layers=False)
    assert cfg.method_args["projection_init"] == "official"
