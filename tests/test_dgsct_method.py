"""The registered ``dgsct`` method: training behaviour, switches, hand-computed losses, presets, transfer."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from avfewshot.config import PRESETS
from avfewshot.encoders import ModelConfig, build_backbone
from avfewshot.errors import UserError
from avfewshot.methods import build_method
from avfewshot.methods.dgsct import DGSCTConfig, official_weighting
from avfewshot.tasks import get_task

from helpers.bpe import encoder_env

TINY = dict(clip_arch="tiny", clip_weights="none", clap_arch="tiny", clap_weights="none")
CLASSES = ["dog bark", "Frying_(food)", "speech", "car"]
OFFICIAL_ARGS = {k.split(".", 1)[1]: v for k, v in PRESETS["dgsct-official"].items() if k.startswith("method.")}


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    with encoder_env(tmp_path_factory.mktemp("dgsct")):
        yield build_backbone(ModelConfig(**TINY))


def make(backbone, task="llp_cls", seed=0, **args):
    spec = get_task(task)
    torch.manual_seed(seed)
    return build_method("dgsct", backbone, spec, spec.class_list(CLASSES), args)


def make_batch(backbone, b=1, seed=1, task="llp_cls"):
    g = torch.Generator().manual_seed(seed)
    size = backbone.image_size
    labels = torch.zeros(b, len(CLASSES))
    for i in range(b):
        labels[i, i % len(CLASSES)] = 1.0
    seg = torch.randint(0, len(CLASSES) + 1, (b, 10), generator=g)
    return {
        "frames": torch.randn(b, 10, 3, size, size, generator=g),
        "audio": 0.1 * torch.randn(b, 10, backbone.audio_rate, generator=g),
        "labels": labels,
        "segment_labels": seg,
    }


def open_gates(method, value=0.5):
    with torch.no_grad():
        for name, p in method.encoders.named_parameters():
            if name.endswith(("gate", "exchange_gate")):
                p.fill_(value)


def unit_keys(method):
    return {k for k in method.state_dict() if k.startswith("encoders.")}


# -- initialisation and training --------------------------------------------------------------
def test_per_segment_embeddings_equal_the_frozen_towers_at_init(backbone):
    method = make(backbone)
    batch = make_batch(backbone)
    frames, audio = batch["frames"].flatten(0, 1), batch["audio"].flatten(0, 1)
    for training in (True, False):
        method.train(training)
        with torch.no_grad():
            out = method.encoders(frames, audio)
            assert torch.equal(out.image, backbone.image(frames))
            assert torch.equal(out.audio, backbone.audio(audio))


def test_modulation_weights_come_from_the_task_unless_set(backbone):
    assert make(backbone, "ave").modulation == (0.2, 0.05, 0.01)
    assert make(backbone, "ave_cls").modulation == (0.2, 0.05, 0.05)
    assert make(backbone, "llp_cls").modulation == (0.2, 0.05, 0.05)
    assert DGSCTConfig().modulation("vggsound40k") == (0.3, 0.01, 0.05)
    method = make(backbone, "ave", gamma=0.3)
    assert method.modulation == (0.2, 0.05, 0.3)
    assert method.encoders.visual_p1[0].config.gamma == 0.3 and method.encoders.audio_p2[3].config.alpha == 0.2


def test_gates_open_first_then_every_adapter_parameter_changes_and_nothing_frozen(backbone):
    method = make(backbone)
    batch = make_batch(backbone)
    frozen = {k: v.clone() for k, v in backbone.state_dict().items()}
    start = {n: p.detach().clone() for n, p in method.named_parameters() if p.requires_grad}
    opt = torch.optim.Adam(method.trainable_parameters(), lr=1e-2)

    def step():
        method.train()
        loss, _ = method.loss(batch, method(batch), 0)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    changed = {n for n, p in method.named_parameters() if p.requires_grad and not torch.equal(p, start[n])}
    unit_changed = {n for n in changed if n.startswith("encoders.")}
    assert unit_changed and all(n.endswith(".gate") for n in unit_changed)  # only the output gates move first
    assert {n for n in start if n.startswith("encoders.") and n.endswith(".gate")} == unit_changed
    for _ in range(2):
        step()
    unchanged = [n for n, p in method.named_parameters() if p.requires_grad and torch.equal(p, start[n])]
    assert unchanged == []
    assert all(torch.equal(v, frozen[k]) for k, v in backbone.state_dict().items())
    assert all(not p.requires_grad for p in backbone.parameters())


# -- switches ---------------------------------------------------------------------------------
PART_NAMES = {
    "channel": ("channel_guide", "channel_self", "channel_squeeze", "channel_excite"),
    "spatial": ("spatial_self", "spatial_guide", "spatial_score"),
    "temporal": ("temporal_score",),
    "latent_exchange": ("latent_tokens", "exchange_gate"),
}


@pytest.mark.parametrize("switch", sorted(PART_NAMES))
def test_each_unit_switch_removes_exactly_its_parameters(backbone, switch):
    full, part = unit_keys(make(backbone)), unit_keys(make(backbone, **{switch: False}))
    removed = full - part
    assert part <= full and removed
    assert all(k.split(".")[3] in PART_NAMES[switch] for k in removed)
    assert {k for k in full if k.split(".")[3] in PART_NAMES[switch]} == removed


@pytest.mark.parametrize("switch,weight", [("spatial", "beta"), ("temporal", "gamma"), ("latent_exchange", None)])
def test_each_unit_switch_removes_exactly_its_effect(backbone, switch, weight):
    """Off equals on with the part's weight at 0 (latent exchange: its gate at 0)."""
    batch = make_batch(backbone)
    full = make(backbone, **({weight: 0.0} if weight else {}))
    open_gates(full)
    if weight is None:
        with torch.no_grad():
            for name, p in full.encoders.named_parameters():
                if name.endswith("exchange_gate"):
                    p.zero_()
    part = make(backbone, **{switch: False})
    part.load_trainable_state({k: v for k, v in full.trainable_state().items() if k in part.trainable_state()})
    full.eval(), part.eval()
    with torch.no_grad():
        ref, got = full(batch), part(batch)
        assert torch.allclose(got.fused, ref.fused, atol=1e-5, rtol=1e-5)
        open_gates(full)  # with its weight restored the part matters
        if weight is None:
            assert not torch.allclose(full(batch).fused, got.fused, atol=1e-5)


def test_channel_switch_changes_the_output(backbone):
    batch = make_batch(backbone)
    full, part = make(backbone), make(backbone, channel=False)
    open_gates(full)
    part.load_trainable_state({k: v for k, v in full.trainable_state().items() if k in part.trainable_state()})
    full.eval(), part.eval()
    with torch.no_grad():
        assert not torch.allclose(full(batch).fused, part(batch).fused, atol=1e-4)


def test_rnn_temporal_mode_builds_a_recurrent_unit(backbone):
    method = make(backbone, temporal_mode="rnn")
    assert any(".temporal_rnn." in k for k in method.state_dict())
    batch = make_batch(backbone)
    loss, _ = method.loss(batch, method(batch), 0)
    assert torch.isfinite(loss)


# -- the objective ----------------------------------------------------------------------------
def hand_scores(method, batch):
    """Logits recomputed by hand from the adapted encoders and the text branches."""
    b = batch["frames"].shape[0]
    out = method.encoders(batch["frames"].flatten(0, 1), batch["audio"].flatten(0, 1))

    def clip_adapter(adapter, x):
        w1, w2 = adapter.fc[0].weight, adapter.fc[2].weight
        return 0.2 * torch.relu(torch.relu(x @ w1.t()) @ w2.t()) + 0.8 * x

    text = clip_adapter(method.text_adapter, method.prompt_learner())
    v = clip_adapter(method.image_adapter, out.image)
    v, text = v / v.norm(dim=-1, keepdim=True), text / text.norm(dim=-1, keepdim=True)
    l_v = backbone_scale(method) * v @ text.t()
    a = out.audio / out.audio.norm(dim=-1, keepdim=True)
    l_a = method.audio_scale() * a @ method.clap_text.t()
    return l_v.view(b, 10, -1), l_a.view(b, 10, -1), out


def backbone_scale(method):
    return method.backbone.clip_logit_scale.exp()


def test_paper_loss_equals_the_hand_computed_value(backbone):
    method = make(backbone)
    open_gates(method)
    method.eval()
    batch = make_batch(backbone, b=2)
    with torch.no_grad():
        scores = method(batch)
        loss, parts = method.loss(batch, scores, 0)
        l_v, l_a, _ = hand_scores(method, batch)
    assert torch.allclose(scores.visual, l_v, atol=1e-5) and torch.allclose(scores.audio, l_a, atol=1e-5)
    # clip task: mean over segments; y = top softmax probability of each branch; w1 = y_v / (y_v + y_a)
    total = 0.0
    for i in range(2):
        cv, ca = l_v[i].mean(0).double(), l_a[i].mean(0).double()
        k = int(batch["labels"][i].argmax())
        yv, ya = torch.softmax(cv, 0).max(), torch.softmax(ca, 0).max()
        w1 = yv / (yv + ya)
        total += w1 * -torch.log_softmax(cv, 0)[k] + (1 - w1) * -torch.log_softmax(ca, 0)[k]
    assert math.isclose(float(loss), float(total / 2), rel_tol=1e-5)
    assert "w_v" in parts and method.av_head is None  # paper preset: no contrastive term by default


@pytest.mark.parametrize("task", ["llp_cls", "ave_cls", "ave"])
def test_official_loss_equals_the_hand_computed_value(backbone, task):
    method = make(backbone, task, **OFFICIAL_ARGS)
    assert method.objective == "official" and method.av_head is not None
    open_gates(method)
    method.eval()
    batch = make_batch(backbone, b=2, task=task)
    epoch = 3  # 0-based in the engine -> e = 4
    with torch.no_grad():
        scores = method(batch)
        loss, parts = method.loss(batch, scores, epoch)
        l_v, l_a, out = hand_scores(method, batch)
        fused = 2 * l_v + 2 * l_a
        assert torch.allclose(scores.fused, fused, atol=1e-4)
        if task == "ave":
            k = len(CLASSES) + 1
            target = F.one_hot(batch["segment_labels"], k).double()
            l_e = -(target * torch.log_softmax(fused.double(), -1)).sum(-1).mean()
        else:
            target = batch["labels"].double()
            l_e = -(target * torch.log_softmax(fused.double().mean(1), -1)).sum(-1).mean()
        fc = method.av_head.fc_a1
        a = (out.audio @ fc.weight.t() + fc.bias).view(2, 10, -1).mean(1).double()
        v = out.image.view(2, 10, -1).mean(1).double()
        a, v = a / a.norm(dim=-1, keepdim=True), v / v.norm(dim=-1, keepdim=True)
        eye = torch.arange(2)
        l_ai = F.cross_entropy(100 * a @ v.t(), eye)
        l_ia = F.cross_entropy(100 * v @ a.t(), eye)
    e, s = 4.0, l_e + l_ai + l_ia
    if task == "ave":
        expected = 500 * l_e + 2 * l_ai + 1.5 * l_ia
    elif task == "ave_cls":
        expected = (l_e / (e + s) + 1 / e) * l_e + (l_ai / (e + s) + 1 / e) * l_ai + (l_ia / e + s + 1 / e) * l_ia
    else:
        expected = (l_e / (e + s) + 1 / e) * l_e + (l_ai / (e + s) + 1 / e) * l_ai + (l_ia / (e + s) + 1 / e) * l_ia
    assert math.isclose(float(loss), float(expected), rel_tol=1e-4)
    assert math.isclose(parts["loss_event"], float(l_e), rel_tol=1e-4)


def test_official_weighting_rules():
    one = torch.tensor(1.0)
    assert float(official_weighting("ave", "official", 10, one, one, one)) == 503.5
    assert float(official_weighting("ave", "official", 11, one, one, one)) == 8.5
    # llp: w = 1/(1+3) + 1 = 1.25 each at e = 1
    assert float(official_weighting("llp_cls", "official", 1, one, one, one)) == pytest.approx(3.75)
    # ave_cls bug: w3 = 1/1 + 3 + 1 = 5
    assert float(official_weighting("ave_cls", "official", 1, one, one, one)) == pytest.approx(1.25 + 1.25 + 5)
    assert float(official_weighting("ave_cls", "official_fixed", 1, one, one, one)) == pytest.approx(3.75)


def test_unknown_options_are_clear_errors(backbone):
    with pytest.raises(UserError, match="ctx_init"):
        make(backbone, ctx_init="nonsense")
    with pytest.raises(UserError, match="objective"):
        make(backbone, objective="nonsense")


@pytest.mark.parametrize("preset", ["paper", "dgsct-official"])
@pytest.mark.parametrize("task", ["ave", "ave_cls", "llp_cls"])
def test_both_presets_train_all_three_tasks(backbone, preset, task):
    args = {k.split(".", 1)[1]: v for k, v in PRESETS[preset].items() if k.startswith("method.")}
    method = make(backbone, task, **args)
    batch = make_batch(backbone, task=task)
    method.train()
    scores = method(batch)
    k = len(CLASSES) + (1 if task == "ave" else 0)
    assert scores.fused.shape == (1, 10, k)
    loss, _ = method.loss(batch, scores, 0)
    loss.backward()
    assert torch.isfinite(loss) and method.encoders.audio_p1[0].gate.grad is not None


# -- transfer and counts ----------------------------------------------------------------------
def test_transferable_state_is_class_agnostic_and_includes_the_context(backbone):
    from avfewshot.engine.bundles import transferable_state

    method = make(backbone, "vggsound40k", **OFFICIAL_ARGS)
    state, dropped = transferable_state(method)
    assert "prompt_learner.ctx" in state and "av_head.fc_a1.weight" in state
    assert any(k.startswith("image_adapter.") for k in state) and any(k.startswith("text_adapter.") for k in state)
    assert set(unit_keys(method)) <= set(state)
    assert dropped == []
    target = make(backbone, "ave", **OFFICIAL_ARGS)  # other classes, with background
    target.load_state_dict(state, strict=False)
    assert torch.equal(target.prompt_learner.ctx, method.prompt_learner.ctx)


def test_parameter_groups_add_up_to_the_trainable_count(backbone):
    method = make(backbone)
    groups = method.parameter_groups()
    assert sum(groups.values()) == sum(p.numel() for p in method.trainable_parameters())
    assert "text context" in groups and groups["text context"] == 4 * backbone.clip_text.width
    assert any(k.startswith("A2V") for k in groups) and any(k.startswith("V2A") for k in groups)
