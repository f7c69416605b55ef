"""``avfewshot supervised`` / ``avfewshot.run_supervised``: run folders, selection on validation, early stop, resume
after a kill to identical metrics, one-line errors, parameter counts, and the tiny configuration of every task
beating its trivial baseline on the synthetic demo (CPU, one thread)."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import avfewshot
from avfewshot.cli import main
from avfewshot.engine import results as res
from avfewshot.engine import supervised_runner as runner
from avfewshot.engine.supervised_config import resolve_supervised_config
from avfewshot.errors import UserError

from helpers.supervised_runs import die_in_epoch, one_thread, run_supervised  # noqa: F401 (one_thread: autouse)


# -- a fake task run: the runner's rules without media -----------------------------------------
class FakeTaskRun:
    """Linear regression scored by -MSE; ``val_scores`` forces the validation curve when given."""

    main_metric = "score"
    first_selectable_epoch = 0

    def __init__(self, cfg, val_scores=None):
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(64, 4, generator=g), torch.randn(64, 1, generator=g)
        self.model = _Linear()
        self.counts, self.data_files, self.device = {"train": 64, "val": 64, "test": 64}, [], torch.device("cpu")
        self.val_scores, self.calls = val_scores, 0

    def train_batches(self, seed):
        order = torch.randperm(64, generator=torch.Generator().manual_seed(seed))
        for i in range(0, 64, 16):
            yield order[i : i + 16]

    def step(self, idx, epoch):
        loss = ((self.model.lin(self.x[idx]) - self.y[idx]) ** 2).mean()
        return loss, {"loss": float(loss.detach())}

    def evaluate(self, split):
        if split == "val" and self.val_scores is not None:
            self.calls += 1
            return {"score": self.val_scores[self.calls - 1]}
        return {"score": -float(((self.model.lin(self.x) - self.y) ** 2).mean())}

    def baselines(self, split):
        return {"zero": {"score": -float((self.y ** 2).mean())}}


class _Linear(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)  # the real build_task_run seeds the model's initialisation
        self.lin = nn.Linear(4, 1)

    def trainable_parameters(self):
        return list(self.parameters())

    def trainable_state(self):
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    def load_trainable_state(self, state):
        self.load_state_dict(state)


def _fake(monkeypatch, val_scores=None):
    made = []

    def build(cfg, root=None):
        made.append(FakeTaskRun(cfg, val_scores))
        return made[-1]

    monkeypatch.setattr(runner, "build_task_run", build)
    monkeypatch.setattr(runner, "data_root", lambda cfg: None)
    return made


def test_selection_on_validation_restores_the_best_epoch_and_early_stops(tmp_path, monkeypatch):
    made = _fake(monkeypatch, val_scores=[1.0, 3.0, 2.0, 3.0, 1.0, 0.5, 9.0])
    metrics = run_supervised(tmp_path, "avs_s4", "train.epochs=7", "train.early_stop=3")
    assert metrics["best_epoch"] == 2 and metrics["val_score"] == 3.0  # a tie keeps the earlier epoch
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3, 4, 5]  # 3 epochs without gain: stop
    saved = torch.load(tmp_path / "avs_s4" / "dgsct_supervised" / "tiny" / "seed1" / res.FINAL_CKPT, weights_only=True)
    assert all(torch.equal(saved["state"][k], v) for k, v in made[-1].model.trainable_state().items())
    assert metrics["shots"] == -1 and metrics["method"] == "dgsct_supervised" and "zero" in metrics["baseline"]["test"]


def test_test_split_selection_needs_its_unsafe_name(tmp_path):
    with pytest.raises(UserError, match="best_on_test_UNSAFE"):
        resolve_supervised_config({"task": "ave"}, {"train.selection": "test"})


def test_finished_runs_are_skipped_and_forced_runs_start_over(tmp_path, monkeypatch, capsys):
    _fake(monkeypatch)
    first = run_supervised(tmp_path, "avqa", "train.epochs=2")
    again = run_supervised(tmp_path, "avqa", "train.epochs=2")
    assert again == json.loads(json.dumps(first)) and "skipping" in capsys.readouterr().out
    forced = run_supervised(tmp_path, "avqa", "train.epochs=2", force=True)
    assert forced["test"] == first["test"]
    found = avfewshot.load_results(tmp_path)
    assert len(found) == 1 and found[0]["task"] == "avqa"
    from avfewshot.experiments.aggregate import aggregate

    table = aggregate(tmp_path, metric="score")
    assert table.frame["method"].tolist() == ["dgsct_supervised"]


def test_a_checkpoint_of_another_configuration_is_refused(tmp_path, monkeypatch):
    _fake(monkeypatch)
    real = die_in_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        run_supervised(tmp_path, "avqa", "train.epochs=3")
    monkeypatch.setattr(runner, "seed_everything", real)
    with pytest.raises(UserError, match="train.lr"):
        run_supervised(tmp_path, "avqa", "train.epochs=3", "train.lr=0.1")


# -- one-line errors ---------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["supervised", "--task", "nope"], "unknown supervised task 'nope'"),
    (["supervised", "--task", "avs_ms3", "--preset", "nope"], "unknown supervised preset 'nope'"),
    (["supervised", "--task", "avqa", "model.encoder=standin", "model.size=real"], "model.encoder=standin is the tiny"),
    (["supervised", "--task", "ave", "train.epochs=0"], "train.epochs=0 is out of range"),
    (["supervised", "--task", "ave", "model.nope=1"], "unknown config key 'model.nope'"),
])
def test_bad_input_is_a_one_line_error(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_missing_data_root_files_are_one_line_errors(tmp_path, capsys):
    assert main(["supervised", "--task", "ave", "--data-root", str(tmp_path / "none"), "--results", str(tmp_path)]) == 2
    assert "is not a folder" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    for task, name in (("avs_s4", "s4_meta_data.csv"), ("avqa", "avqa-train.json"), ("ave", "empty")):
        assert main(["supervised", "--task", task, "--preset", "tiny", "--data-root", str(empty),
                     "--results", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err.strip()
        assert name in err and len(err.splitlines()) == 1, err


@pytest.mark.slow  # ~10 s idle, ~30 s on a loaded machine (imports timm, builds on meta)
def test_params_reports_trainable_and_total_per_module(capsys):
    assert main(["supervised", "--params", "--task", "ave", "model.size=tiny"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert rows["encoder.visual"][0] == "0" and rows["head"][0] == rows["head"][1]
    trainable, total = (int(v.replace(",", "")) for v in rows["TOTAL"])
    assert 0 < trainable < total
    assert main(["supervised", "--params", "--task", "avs_ms3"]) == 0
    out = capsys.readouterr().out
    assert "602,853,149" in out and "live trainable (fixed defaults, what the optimiser updates): 226,743,593" in out


# -- the tiny AVE / AVVP configurations on the synthetic demos (AVS / AVQA: test_supervised_avs_avqa_runner.py)
@pytest.mark.slow
def test_tiny_ave_beats_the_majority_class(tmp_path):
    m = run_supervised(tmp_path, "ave")
    assert m["test"]["accuracy"] > m["baseline"]["test"]["majority"]["accuracy"] + 10
    assert m["val_score"] > 60 and m["encoder"] == "adapted-tiny"


@pytest.mark.slow
def test_tiny_avvp_beats_the_majority_class_and_the_empty_predictor(tmp_path):
    m = run_supervised(tmp_path, "avvp")
    base, main = m["baseline"]["test"], "segment_type_at_av"
    assert m["history"][-1]["train"]["loss"] < m["history"][0]["train"]["loss"] - 0.3
    assert m["test"][main] > base["majority"][main] + 10
    assert m["test"][main] > base["empty"][main] and m["beats_baselines"]
    for key in ("segment_audio", "segment_visual", "segment_audio_visual", "event_type_at_av"):
        assert 0.0 <= m["test"][key] <= 100.0


def test_seeds_sweep_into_their_own_run_folders(tmp_path, monkeypatch):
    _fake(monkeypatch)
    assert main(["supervised", "--task", "avqa", "--results", str(tmp_path), "--no-progress", "train.epochs=1",
                 "train.threads=1", "--seeds", "1", "2"]) == 0
    found = sorted(r["seed"] for r in avfewshot.load_results(tmp_path))
    assert found == [1, 2] and (tmp_path / "avqa" / "dgsct_supervised" / "tiny" / "seed2" / "config.yaml").exists()
    # overrides may also follow the seeds (argparse would read them as more seeds)
    assert main(["supervised", "--task", "avqa", "--results", str(tmp_path / "after"), "--no-progress",
                 "--seeds", "3", "train.epochs=1", "train.threads=1"]) == 0
    assert [r["seed"] for r in avfewshot.load_results(tmp_path / "after")] == [3]
    assert "epochs: 1" in (tmp_path / "after" / "avqa" / "dgsct_supervised" / "tiny" / "seed3" / "config.yaml").read_text()


def test_presets_default_by_task_and_data_root(tmp_path):
    assert resolve_supervised_config({"task": "ave"}).preset == "tiny"
    assert resolve_supervised_config({"task": "ave", "data.root": str(tmp_path)}).preset == "official"
    assert resolve_supervised_config({"task": "ave", "data.root": str(tmp_path)}).model.size == "real"
    official = resolve_supervised_config({"task": "avqa", "data.root": str(tmp_path)})
    assert official.preset == "official" and official.model.size == "real" and official.train.lr == 1e-4
    assert resolve_supervised_config({"task": "avs_s4", "data.root": str(tmp_path)}).train.epochs == 15


def test_precision_and_device_settings_reach_therun_supervised(tmp_path, monkeypatch):
    _fake(monkeypatch)
    m = run_supervised(tmp_path, "avqa", "train.epochs=1", "train.precision=bf16")
    assert m["environment"]["precision"] == "bf16" and m["environment"]["device"] == "cpu"
    with pytest.raises(UserError, match="train.device"):
        resolve_supervised_config({"task": "ave"}, {"train.device": "tpu"})
