"""``avfewshot supervised --task avs_s4 | avs_ms3 | avqa`` on the tiny adapted encoder and the synthetic demos: each beats
its trivial baseline (all-background masks, the majority answer), a killed S4 run resumes to identical metrics, and
the stand-in fast path still runs (CPU, one thread). Split from test_supervised_runner.py so the two run in parallel
shards."""
from __future__ import annotations

import pytest

from avfewshot.engine import results as res
from avfewshot.engine import supervised_runner as runner

from helpers.supervised_runs import die_in_epoch, one_thread, run_supervised  # noqa: F401 (one_thread: autouse)


@pytest.fixture(scope="module")
def s4_straight(tmp_path_factory):
    return run_supervised(tmp_path_factory.mktemp("s4"), "avs_s4")


@pytest.mark.slow
def test_tiny_avs_s4_beats_all_background(s4_straight):
    m = s4_straight
    base = m["baseline"]["test"]["all_background"]
    assert base["miou"] < 0.2 and m["test"]["miou"] > base["miou"] + 0.05 and m["beats_baselines"]
    assert m["test"]["f_score"] > base["f_score"] + 0.05
    assert m["val_score"] == max(h["val"]["miou"] for h in m["history"]) and m["encoder"] == "adapted-tiny"


@pytest.mark.slow
def test_killed_avs_run_resumes_to_identical_metrics(tmp_path, monkeypatch, s4_straight):
    real = die_in_epoch(monkeypatch, 4)  # as if the process were killed during epoch 4
    with pytest.raises(KeyboardInterrupt):
        run_supervised(tmp_path, "avs_s4")
    run_dir = tmp_path / "avs_s4" / "dgsct_supervised" / "tiny" / "seed1"
    assert res.load_torch(run_dir / res.LAST_CKPT)["epoch"] == 3 and not (run_dir / res.METRICS_FILE).exists()
    monkeypatch.setattr(runner, "seed_everything", real)
    resumed = run_supervised(tmp_path, "avs_s4")
    assert resumed["test"] == s4_straight["test"] and resumed["history"] == s4_straight["history"]
    assert not (run_dir / res.LAST_CKPT).exists() and (run_dir / res.FINAL_CKPT).exists()
    assert (run_dir / "config.yaml").read_text().startswith("task: avs_s4")


@pytest.mark.slow
def test_tiny_avs_ms3_beats_all_background(tmp_path):
    m = run_supervised(tmp_path, "avs_ms3")
    base = m["baseline"]["test"]["all_background"]
    assert m["test"]["miou"] > base["miou"] + 0.05 and m["test"]["f_score"] > base["f_score"] + 0.05


@pytest.mark.slow
def test_tiny_avqa_beats_the_majority_answer(tmp_path):
    m = run_supervised(tmp_path, "avqa")
    assert m["test"]["Overall"] > m["baseline"]["test"]["majority"]["Overall"] + 15
    assert {"Audio", "Visual", "Audio-Visual"} <= set(m["test"]) and m["best_epoch"] > 1  # after the pre-stage
    assert m["encoder"] == "adapted-tiny" and m["history"][0]["train"]["loss"] < 1.0  # pre-stage: match term only


@pytest.mark.slow
def test_standin_fast_path_still_runs(tmp_path):
    m = run_supervised(tmp_path, "avs_ms3", "model.encoder=standin")
    base = m["baseline"]["test"]["all_background"]
    assert m["encoder"] == "standin" and m["test"]["miou"] > base["miou"] + 0.05
