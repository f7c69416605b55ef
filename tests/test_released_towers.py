"""model.frozen_towers=released: HTS-AT and RoBERTa in training mode as the released DG-SCT train() leaves
them (SpecAugment, drop-path, bn0 batch statistics with running updates, RoBERTa dropout with the CLAP
prompts re-encoded every step); seeded, off by default."""
from __future__ import annotations

import pytest
import torch

import avfewshot
from avfewshot.api import make_config
from avfewshot.encoders import ModelConfig, build_backbone
from avfewshot.errors import UserError
from avfewshot.methods import build_method
from avfewshot.tasks import get_task

from helpers.bpe import encoder_env

TINY = dict(clip_arch="tiny", clip_weights="none", clap_arch="tiny", clap_weights="none")
CLASSES = ["dog bark", "Frying_(food)", "speech", "car"]


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    with encoder_env(tmp_path_factory.mktemp("released")):
        yield {mode: build_backbone(ModelConfig(**TINY, frozen_towers=mode)) for mode in ("eval", "released")}


def dgsct(backbone, **args):
    task = get_task("llp_cls")
    torch.manual_seed(0)
    return build_method("dgsct", backbone, task, task.class_list(CLASSES), args)


def batch_for(backbone, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {
        "frames": torch.randn(2, 10, 3, backbone.image_size, backbone.image_size, generator=g),
        "audio": 0.1 * torch.randn(2, 10, backbone.audio_rate, generator=g),
        "labels": torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]),
        "segment_labels": torch.zeros(2, 10, dtype=torch.long),
    }


def tower_modes(backbone):
    return {"htsat": backbone.audio.branch.training, "bn0": backbone.audio.branch.bn0.training,
            "spec_augment": backbone.audio.branch.spec_augmenter.training,
            "roberta": backbone.clap_text.text_branch.training, "vit": backbone.image.training,
            "clip_text": backbone.clip_text.training}


def test_default_is_eval_and_released_follows_train_mode_for_the_clap_towers(backbones):
    assert ModelConfig().frozen_towers == "eval"
    plain = dgsct(backbones["eval"]).train()
    assert not any(tower_modes(backbones["eval"]).values())
    assert plain.image_adapter.training  # the method's own modules do train
    released = dgsct(backbones["released"]).train()
    modes = tower_modes(backbones["released"])
    assert modes == {"htsat": True, "bn0": True, "spec_augment": True, "roberta": True, "vit": False, "clip_text": False}
    assert all(not p.requires_grad for p in backbones["released"].parameters())  # still frozen
    released.eval()
    assert not any(tower_modes(backbones["released"]).values())


def test_released_training_mode_effects(backbones):
    bb = backbones["released"]
    method = dgsct(bb)
    audio = bb.audio
    wave = 0.1 * torch.randn(4, bb.audio_rate, generator=torch.Generator().manual_seed(3))
    method.eval()
    with torch.no_grad():
        frozen_img = audio.frontend(wave)
    stats = bb.audio.branch.bn0.running_mean.clone()
    method.train()
    with torch.no_grad():
        torch.manual_seed(7)
        first = audio.frontend(wave)
        torch.manual_seed(7)
        again = audio.frontend(wave)
    assert torch.equal(first, again)  # seeded
    assert not torch.equal(bb.audio.branch.bn0.running_mean, stats)  # running statistics updated, as released
    assert (first == 0).sum() > (frozen_img == 0).sum()  # SpecAugment's zeroed stripes
    drop_paths = [blk.drop_path for stage in audio.stages for blk in stage.blocks if hasattr(blk.drop_path, "drop_prob")]
    assert drop_paths and all(d.training for d in drop_paths) and max(d.drop_prob for d in drop_paths) > 0
    # RoBERTa dropout: the CLAP prompts are re-encoded at every training step, not the cached eval features
    torch.manual_seed(1)
    step_a = method.clap_text_features()
    torch.manual_seed(2)
    step_b = method.clap_text_features()
    assert not torch.allclose(step_a, step_b) and not torch.allclose(step_a, method.clap_text)
    method.eval()
    assert method.clap_text_features() is method.clap_text
    # the drifted statistics belong to the method's state (checkpoints and resume carry them)
    state = method.trainable_state()
    assert torch.equal(state["tower_statistics.0.running_mean"], bb.audio.branch.bn0.running_mean)
    # a new method starts from the statistics the towers were built with
    fresh = dgsct(bb)
    assert torch.equal(fresh.tower_statistics[0].running_mean, stats)


def test_released_training_step_is_seeded_and_differs_from_eval_mode(backbones):
    def step_loss(backbone, seed):
        method = dgsct(backbone).train()
        torch.manual_seed(seed)
        scores = method(batch_for(backbone))
        return float(method.loss(batch_for(backbone), scores, 0)[0].detach())

    released = [step_loss(backbones["released"], s) for s in (5, 5, 6)]
    assert released[0] == released[1] and released[0] != released[2]
    plain = [step_loss(backbones["eval"], s) for s in (5, 6)]
    assert plain[0] == plain[1] != released[0]  # eval towers: nothing random in a step


def test_released_towers_are_dgsct_only_and_refuse_recomputed_steps(backbones):
    task = get_task("llp_cls")
    coop = build_method("coop", backbones["released"], task, task.class_list(CLASSES), {})
    with pytest.raises(UserError, match="frozen_towers"):
        coop.train()
    coop.eval()  # evaluation is fine
    with pytest.raises(UserError, match="checkpoint"):
        dgsct(backbones["released"], checkpoint="steps")
    with pytest.raises(UserError, match="frozen_towers"):
        build_backbone(ModelConfig(**TINY, frozen_towers="train"))


@pytest.mark.slow
def test_two_seeded_demo_runs_give_identical_metrics(tmp_path):
    """The acceptance check on the embedded demo (tiny towers): same seed, same metrics and history."""
    fast = ["train.epochs=1", "train.batch_size=4", "train.eval_batch_size=8", "train.selection=last",
            "model.frozen_towers=released"]

    def run(where):
        cfg = make_config(task="llp_cls", method="dgsct", shots=1, seed=3, results_dir=str(tmp_path / where),
                          overrides=fast)
        return avfewshot.run(cfg=cfg, progress=False)

    first, second = run("a"), run("b")
    assert first["test"] == second["test"] and first["history"] == second["history"]
    saved = torch.load(tmp_path / "a" / "llp_cls" / "dgsct" / "shot1" / "seed3" / "trainable.pt", weights_only=True)
    assert "tower_statistics.0.running_mean" in saved["state"]
