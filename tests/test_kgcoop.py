"""KgCoOp, the worked example of docs/adding_a_method.md: one file, discovered, CoOp exactly at lambda = 0."""
from __future__ import annotations

import pytest
import torch

from avfewshot.methods import build_method, discover_methods
from avfewshot.tasks import get_task
from helpers.bpe import encoder_env

TINY = dict(clip_arch="tiny", clip_weights="none", clap_arch="tiny", clap_weights="none")
SAME = {"ctx_init": "a photo of a", "audio_ctx_init": "The sounds of"}


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    from avfewshot.encoders import build_backbone

    with encoder_env(tmp_path_factory.mktemp("kgcoop")):
        yield build_backbone(**TINY)


@pytest.fixture(scope="module")
def setup(backbone):
    task = get_task("llp_cls")
    names = task.class_list(["Dog", "Frying_(food)", "Cello"])
    g = torch.Generator().manual_seed(0)
    batch = {
        "frames": torch.randn(2, 2, 3, backbone.image_size, backbone.image_size, generator=g),
        "audio": 0.1 * torch.randn(2, 2, backbone.audio_rate, generator=g),
        "labels": torch.tensor([[1.0, 0, 0], [0, 1.0, 1.0]]),
        "segment_labels": torch.full((2, 2), -1),
        "cache_key": ["a", "b"],
        "index": torch.arange(2),
    }
    return task, names, batch


def one_step(method, batch):
    """Loss, then the trainable tensors after one SGD step on it."""
    optimizer = torch.optim.SGD(method.trainable_parameters(), lr=0.5)
    method.train()
    scores = method(batch)
    loss, parts = method.loss(batch, scores, 0)
    optimizer.zero_grad()
    method.backward(loss, parts)
    optimizer.step()
    return loss.detach(), parts, method.trainable_state()


def test_registered_by_discovery_alone():
    assert "kgcoop" in discover_methods().names()


def test_lambda_zero_is_coop_exactly(backbone, setup):
    task, names, batch = setup
    torch.manual_seed(3)
    coop = build_method("coop", backbone, task, names, SAME)
    torch.manual_seed(3)
    kg = build_method("kgcoop", backbone, task, names, {**SAME, "weight": 0.0})
    for step in range(2):
        loss_c, _, state_c = one_step(coop, batch)
        loss_k, parts_k, state_k = one_step(kg, batch)
        assert torch.equal(loss_c, loss_k)
        assert state_c.keys() == state_k.keys()
        assert all(torch.equal(state_c[k], state_k[k]) for k in state_c)
    # at initialisation the learned prompts are the hand-crafted ones; after a CoOp step they have moved away,
    # so the second step's term is positive, and weighted by zero it changed nothing
    assert parts_k["consistency"] > 0


def test_consistency_term(backbone, setup):
    task, names, batch = setup
    torch.manual_seed(3)
    kg = build_method("kgcoop", backbone, task, names, {**SAME, "weight": 8.0})
    with torch.no_grad():  # at initialisation both learned prompts equal the hand-crafted ones
        assert kg.consistency(kg(batch)).abs() < 1e-5
    kg.cfg.weight = 0.0
    one_step(kg, batch)  # move the contexts away from the templates
    kg.cfg.weight = 8.0
    kg.eval()
    with torch.no_grad():
        scores = kg(batch)
        base, _ = super(type(kg), kg).loss(batch, scores, 0)
        loss, parts = kg.loss(batch, scores, 0)
        # by hand: 1 - mean cosine per branch, against the frozen encodings of the templates
        expect = 0.0
        for side, encode in (("visual", kg.encode_clip_prompts), ("audio", kg.encode_clap_prompts)):
            learned = torch.nn.functional.normalize(scores.extras[f"{side}_text"], dim=-1)
            anchor = torch.nn.functional.normalize(encode(), dim=-1)
            expect += float(1 - (learned * anchor).sum(-1).mean())
    assert parts["consistency"] == pytest.approx(expect, abs=1e-6)
    assert expect > 1e-6 and float(loss) == pytest.approx(float(base) + 8.0 * expect, rel=1e-6)
    # the term pulls the learned context: its gradient is not zero
    kg.train()
    kg.zero_grad()
    kg.consistency(kg(batch)).backward()
    assert kg.visual_branch.prompt_learner.ctx.grad.abs().sum() > 0


def test_option_checked_by_name():
    from avfewshot.engine.build import resolve_run_config
    from avfewshot.errors import UserError

    with pytest.raises(UserError, match="method.weight=-1.0 is out of range"):
        resolve_run_config(method="kgcoop", overrides=["method.weight=-1"])


@pytest.mark.slow
def test_runs_in_the_demo_sweep(tmp_path):
    """The demo sweep's recipes (runners/demo_fewshot.sh uses --recipes runners) run KgCoOp through the engine."""
    import avfewshot
    from avfewshot.engine.build import build_run

    out = avfewshot.sweep("llp_cls", ["kgcoop"], shots=[1], seeds=[1], results_dir=tmp_path, recipes_dir="runners",
                          overrides=["train.epochs=2", "train.batch_size=8", "train.warmup_epochs=0"], progress=False,
                          say=lambda _line: None)
    assert not out.failures and len(out) == 1
    metrics = out[0]
    assert metrics["method"] == "kgcoop" and len(metrics["history"]) == 2
    assert all("consistency" in epoch for epoch in metrics["history"])
    assert metrics["history"][1]["consistency"] > 0  # the learned prompts moved away from the templates, and are pulled back
    run = build_run(avfewshot.api.make_config(task="llp_cls", method="kgcoop", shots=1, config="runners/kgcoop.yaml"), data="classes")
    assert run.method.cfg.weight == 8.0 and run.method.cfg.ctx_init == "a photo of a"  # the recipe reached the method
