"""Tiny heads on synthetic data (frozen stand-in encoder, CPU) beat the trivial baselines."""
from __future__ import annotations

import pytest
import torch

from avfewshot.data.synth.avqa import make_avqa
from avfewshot.data.synth.avsbench import make_avsbench
from avfewshot.supervised_heads.tiny import run_tiny_avqa, run_tiny_avs


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.parametrize("subset", ["s4", "ms3"])
def test_tiny_avs_beats_all_background(tmp_path, subset):
    make_avsbench(tmp_path, subset, categories=3, clips_per_category=4, eval_clips_per_category=2, seed=0)
    scores = run_tiny_avs(tmp_path, subset, epochs=10, seed=0)
    assert scores["baseline_miou"] < 0.2  # all-background: IoU 0 on every frame with an object
    assert scores["miou"] > scores["baseline_miou"] + 0.05
    assert scores["f_score"] > scores["baseline_f_score"] + 0.1


@pytest.mark.slow
def test_tiny_avqa_beats_the_majority_answer(tmp_path):
    make_avqa(tmp_path, videos={"train": 40, "val": 2, "test": 16}, questions_per_video=6, seed=0)
    result = run_tiny_avqa(tmp_path, grounding_epochs=3, epochs=30, seed=0)
    assert result["accuracy"]["Overall"] > result["baseline"]["Overall"] + 15
    assert {"Audio", "Visual", "Audio-Visual"} <= set(result["accuracy"])
