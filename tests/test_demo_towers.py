"""The demo towers pretrained on the synthetic concept world, and the guard for collapsed text features."""
from __future__ import annotations

import logging

import pytest
import torch

from avfewshot.encoders import ModelConfig, build_backbone
from avfewshot.encoders import checkpoints as ckpt
from avfewshot.encoders import demo_towers
from avfewshot.methods import build_method
from avfewshot.methods.text_check import text_feature_report
from avfewshot.prompts import read_class_file
from avfewshot.tasks.base import get_task

RANDOM = dict(clip_arch="tiny", clip_weights="none", clap_arch="tiny", clap_weights="none")
DEMO = dict(clip_arch="tiny", clip_weights="demo", clap_arch="tiny", clap_weights="demo")


# -- the guard ---------------------------------------------------------------------------------
def test_report_flags_identical_features_and_names_the_closest_pair():
    names = ["a", "b", "c", "d"]
    distinct = text_feature_report(torch.eye(4, 8), names, "visual")
    assert not distinct["collapsed"] and distinct["max_cosine"] == pytest.approx(0.0, abs=1e-6)
    assert distinct["effective_rank"] == pytest.approx(4.0, rel=1e-6)
    same = torch.ones(4, 8) + 1e-5 * torch.eye(4, 8)
    same[3] += 0.5 * torch.eye(4, 8)[3]  # c and d differ most; a, b, c are the same vector
    collapsed = text_feature_report(same, names, "audio")
    assert collapsed["collapsed"] and collapsed["tower"] == "CLAP" and collapsed["max_cosine"] > 0.999
    assert set(collapsed["closest"]) < {"a", "b", "c"}


def test_a_collapsed_clap_text_tower_warns_naming_the_branch(caplog):
    """Today's random tiny CLAP pools every prompt at <s> to the same vector: the audio branch is flagged."""
    backbone = build_backbone(ModelConfig(**RANDOM))
    task = get_task("llp_cls")
    with caplog.at_level(logging.WARNING, logger="avfewshot"):
        method = build_method("zeroshot", backbone, task, task.class_list(read_class_file("llp")))
    reports = {r["branch"]: r for r in method.text_feature_report()}
    assert reports["audio"]["collapsed"] and reports["audio"]["max_cosine"] > 0.999
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    audio = [w for w in warnings if "audio branch" in w]
    assert audio and "CLAP" in audio[0] and "tokenizer" in audio[0]
    assert reports["audio"]["closest"][0] in audio[0]
    # a method that learns its prompts checks the fixed ones when built
    coop = build_method("coop", backbone, task, task.class_list(read_class_file("llp")))
    assert {r["branch"] for r in coop.text_feature_report()} == {"visual", "audio"}


# -- building --------------------------------------------------------------------------------
@pytest.mark.slow
def test_builds_are_byte_identical_for_a_seed_and_load_through_the_checkpoint_code(tmp_path, monkeypatch):
    monkeypatch.setattr(demo_towers, "STEPS", {"clip": 3, "clap": 3})
    monkeypatch.setattr(demo_towers, "POOL_PER_CONCEPT", {"clip": 2, "clap": 2})
    first = demo_towers.build_demo_towers(tmp_path / "one", seed=3)
    second = demo_towers.build_demo_towers(tmp_path / "two", seed=3)
    other = demo_towers.build_demo_towers(tmp_path / "three", seed=4)
    for tower in ("clip", "clap"):
        assert first[tower].read_bytes() == second[tower].read_bytes()
        assert first[tower].read_bytes() != other[tower].read_bytes()
    # released layouts: an open_clip state dict, and CLAP's {"state_dict": {"module.…": …}}
    clip_state = ckpt.read_state_dict(first["clip"])
    assert "visual.proj" in clip_state and "logit_scale" in clip_state
    clap_file = ckpt.read_state_dict(first["clap"])
    assert all(k.startswith("module.") for k in clap_file["state_dict"])
    bb = build_backbone(ModelConfig(clip_arch="tiny", clip_weights=str(first["clip"]), clap_arch="tiny",
                                    clap_weights=str(first["clap"])))
    assert torch.equal(bb.clip_logit_scale, clip_state["logit_scale"])


def test_demo_tag_resolves_to_the_cache_and_is_listed(capsys, monkeypatch, tmp_path):
    from avfewshot.commands.models import list_models

    monkeypatch.setenv("AVFEWSHOT_CACHE", str(tmp_path))  # an empty cache: the demo towers are not built yet
    list_models(None)
    out = capsys.readouterr().out
    assert "demo" in out and "built on first use" in out


@pytest.mark.slow
def test_pretrained_demo_towers_give_distinct_class_prompt_features():
    backbone = build_backbone(ModelConfig(**DEMO))  # built once per session into the session cache
    for classes, task in (("llp", "llp_cls"), ("ave", "ave")):
        spec = get_task(task)
        method = build_method("zeroshot", backbone, spec, spec.class_list(read_class_file(classes)))
        for report in method.text_feature_report():
            assert report["max_cosine"] < 0.9, report
            assert not report["collapsed"]


# -- the acceptance list: zero-shot is above chance but below ceiling, 16 shots beat it ----------------
TASK_CLASSES = {"llp_cls": "llp", "ave_cls": "ave", "ave": "ave"}


def _chance(task: str) -> float:
    spec = get_task(task)
    return 100.0 / len(spec.class_list(read_class_file(TASK_CLASSES[task])))


def _demo_run(results, task: str, method: str, shots: int, overrides=()) -> dict:
    import avfewshot
    from avfewshot.api import make_config

    # one torch thread: on a loaded 2-core machine (CI, the test suite) two threads spin and cost 3-5x the CPU
    cfg = make_config(overrides=["train.threads=1", *overrides], task=task, method=method, shots=shots, seed=1,
                      results_dir=str(results))
    return avfewshot.run(cfg=cfg, progress=False)


@pytest.fixture
def shared_cache(demo_results):
    """The session's demo results folder, so each run happens once (the demo data, the towers and the feature
    cache are shared by the session's cache; test_precision_demo.py reads the fp32 runs made here)."""
    return demo_results


@pytest.mark.slow
@pytest.mark.parametrize("task", ["llp_cls", "ave_cls", "ave"])
def test_zero_shot_on_the_demo_is_above_chance_and_below_ceiling(shared_cache, task):
    """The pretrained towers know the demo's classes: CLIP alone and CLAP alone beat chance, fused zero-shot by
    at least 10 points; the demo's domain shift keeps it well below 100, so few-shot adaptation has headroom.
    The check of the class prompts is recorded in metrics.json."""
    chance = _chance(task)
    for method in ("zeroshot_clip", "zeroshot_clap", "zeroshot"):
        metrics = _demo_run(shared_cache, task, method, 0)
        accuracy = metrics["test"]["accuracy"]
        assert accuracy > chance + (10.0 if method == "zeroshot" else 0.0), (method, accuracy)
        assert accuracy < 85.0, (method, accuracy)
        checks = metrics["text_feature_check"]
        assert checks and all(not c["collapsed"] and c["max_cosine"] < 0.9 for c in checks)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["llp_cls", "ave_cls", "ave"])
def test_sixteen_shot_dgsct_beats_fused_zero_shot(shared_cache, task):
    zero = _demo_run(shared_cache, task, "zeroshot", 0)["test"]["accuracy"]
    metrics = _demo_run(shared_cache, task, "dgsct", 16)
    assert metrics["test"]["accuracy"] > zero + 5.0, (metrics["test"]["accuracy"], zero)
    if task == "llp_cls":  # the main job: the audio branch learns
        losses = [entry["loss_a"] for entry in metrics["history"]]
        assert losses[-1] <= 0.7 * losses[0], losses


@pytest.mark.slow
@pytest.mark.parametrize("method", ["coop", "linear_probe"])
def test_sixteen_shot_prompt_learning_and_probe_beat_fused_zero_shot_on_ave_cls(shared_cache, method):
    """On one task (the others are in the README's table, with the command that reproduces them)."""
    zero = _demo_run(shared_cache, "ave_cls", "zeroshot", 0)["test"]["accuracy"]
    accuracy = _demo_run(shared_cache, "ave_cls", method, 16)["test"]["accuracy"]
    assert accuracy > zero + 5.0, (method, accuracy, zero)
