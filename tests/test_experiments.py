"""Experiment workflow: aggregation over seeds, the sweep grid (with a fake run), bundles, TensorBoard helper."""
from __future__ import annotations

import csv
import io
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from avfewshot.cli import main as cli_main
from avfewshot.engine import results as res
from avfewshot.errors import MissingCheckpointError, UserError
from avfewshot.experiments import aggregate as agg
from avfewshot.experiments import sweep as sweep_mod


def write_metrics(root: Path, task: str, method: str, shots: int, seed: int, accuracy: float, preset: str = "paper",
                  **extra_test) -> Path:
    run_dir = root / task / method / f"shot{shots}" / f"seed{seed}"
    data = {"task": task, "method": method, "shots": shots, "seed": seed, "preset": preset, "demo": False,
            "main_metric": "accuracy", "test": {"accuracy": accuracy, "num_clips": 10, **extra_test},
            "total_seconds": 2.0, "trainable_parameters": 0 if shots == 0 else 100}
    res.write_json(run_dir / res.METRICS_FILE, data)
    return run_dir


# -- aggregate --------------------------------------------------------------------------------
def test_mean_std_ci_by_hand(tmp_path):
    for seed, acc, hit in [(1, 30.0, 50.0), (2, 33.0, 60.0), (3, 36.0, 70.0)]:
        write_metrics(tmp_path, "llp_cls", "coop", 4, seed, acc, hit_rate=hit)
    write_metrics(tmp_path, "llp_cls", "zeroshot", 0, 1, 25.0, hit_rate=40.0)
    table = agg.aggregate(tmp_path)
    assert [(r.method, r.shots) for r in table.rows] == [("coop", 4), ("zeroshot", 0)]
    coop = table.rows[0]
    assert coop.seeds == [1, 2, 3] and coop.main.n == 3
    assert coop.main.mean == pytest.approx(33.0)
    assert coop.main.std == pytest.approx(math.sqrt(6.0))  # ddof 0: sqrt(((-3)^2 + 0 + 3^2) / 3)
    assert coop.main.ci95 == pytest.approx(1.96 * math.sqrt(6.0) / math.sqrt(3))
    assert coop.secondary["hit_rate"].mean == pytest.approx(60.0)
    assert coop.secondary["hit_rate"].std == pytest.approx(np.std([50, 60, 70]))
    assert "num_clips" not in coop.secondary

    rows = list(csv.DictReader(io.StringIO(agg.table_csv(table, ci95=True))))
    assert rows[0]["method"] == "coop" and rows[0]["n_seeds"] == "3" and rows[0]["seeds"] == "1 2 3"
    assert float(rows[0]["mean"]) == pytest.approx(33.0) and float(rows[0]["std"]) == pytest.approx(2.4495, abs=1e-4)
    assert float(rows[0]["ci95"]) == pytest.approx(1.96 * math.sqrt(2.0), abs=1e-4)
    assert float(rows[0]["hit_rate_mean"]) == pytest.approx(60.0)
    assert "preset" not in rows[0]  # one preset only

    md = agg.table_markdown(table, ci95=True)
    assert "| llp_cls | coop | 4 | 3 | 33.00 ± 2.45 | ± 2.77 | 60.00 ± 8.16 |" in md
    assert "| llp_cls | zeroshot | 0 (zero-shot) | 1 | 25.00 ± 0.00 | ± 0.00 | 40.00 ± 0.00 |" in md
    assert "ddof 0" in md


def test_corrupt_partial_and_temp_files_are_reported_not_fatal(tmp_path):
    write_metrics(tmp_path, "ave", "coop", 1, 1, 60.0)
    write_metrics(tmp_path, "ave", "coop", 1, 2, 62.0)
    corrupt = tmp_path / "ave" / "coop" / "shot1" / "seed3" / "metrics.json"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_text('{"task": "ave", "method": "coop", "sho')  # a truncated file
    partial = tmp_path / "ave" / "coop" / "shot2" / "seed1" / "metrics.json"
    partial.parent.mkdir(parents=True)
    partial.write_text(json.dumps({"task": "ave", "method": "coop", "shots": 2, "seed": 1}))  # no "test"
    no_metric = write_metrics(tmp_path, "ave", "coop", 4, 1, 1.0)
    data = json.loads((no_metric / "metrics.json").read_text())
    data["test"] = {"foreground_accuracy": 3.0}
    (no_metric / "metrics.json").write_text(json.dumps(data))
    temp = tmp_path / "ave" / "coop" / "shot8" / "seed1" / ".metrics.json.abc123.tmp"
    temp.parent.mkdir(parents=True)
    temp.write_text('{"half')

    table = agg.aggregate(tmp_path)
    assert [(r.shots, r.main.n, r.main.mean) for r in table.rows] == [(1, 2, 61.0)]
    problems = "\n".join(table.problems)
    assert len(table.problems) == 3
    assert str(corrupt) in problems and "not valid JSON" in problems
    assert str(partial) in problems and "'test'" in problems
    assert "no test metric 'accuracy'" in problems and "foreground_accuracy" in problems
    assert ".tmp" not in problems
    assert "3 result file(s) were ignored" in agg.table_markdown(table)


def test_presets_are_kept_apart(tmp_path):
    write_metrics(tmp_path / "a", "ave", "dgsct", 16, 1, 70.0, preset="paper")
    write_metrics(tmp_path / "b", "ave", "dgsct", 16, 1, 72.0, preset="dgsct-official")
    table = agg.aggregate(tmp_path)
    assert table.show_preset
    assert sorted((r.preset, r.main.mean) for r in table.rows) == [("dgsct-official", 72.0), ("paper", 70.0)]
    assert "preset" in agg.table_csv(table).splitlines()[0]


def test_duplicate_runs_are_reported(tmp_path):
    write_metrics(tmp_path / "a", "ave", "coop", 1, 1, 10.0)
    write_metrics(tmp_path / "b", "ave", "coop", 1, 1, 90.0)
    table = agg.aggregate(tmp_path)
    assert table.rows[0].main.n == 1 and len(table.problems) == 1 and "keep one copy" in table.problems[0]


def test_aggregate_command_writes_csv_and_markdown(tmp_path, capsys):
    for seed, acc in [(1, 40.0), (2, 44.0)]:
        write_metrics(tmp_path, "ave_cls", "maple", 2, seed, acc)
    (tmp_path / "ave_cls" / "maple" / "shot2" / "seed9").mkdir(parents=True)
    (tmp_path / "ave_cls" / "maple" / "shot2" / "seed9" / "metrics.json").write_text("{")
    out = tmp_path / "tables" / "fewshot"
    assert cli_main(["aggregate", "--results", str(tmp_path), "--out-prefix", str(out), "--ci95"]) == 0
    captured = capsys.readouterr()
    assert "| ave_cls | maple | 2 | 2 | 42.00 ± 2.00 | ± 2.77 |" in captured.out
    assert "seed9" in captured.err
    assert (tmp_path / "tables" / "fewshot.md").read_text().count("| ave_cls | maple |") == 1
    rows = list(csv.DictReader((tmp_path / "tables" / "fewshot.csv").open()))
    assert len(rows) == 1 and float(rows[0]["mean"]) == 42.0
    assert not list((tmp_path / "tables").glob(".*tmp"))
    assert cli_main(["aggregate", "--results", str(tmp_path / "tables")]) == 1  # nothing finished there


# -- sweep (fake run) -------------------------------------------------------------------------
@pytest.fixture
def fake_run(monkeypatch):
    """Replace the engine's run by a recorder that writes metrics.json; (task, method, shots, seed) in ``fail`` raise."""
    from avfewshot.engine import trainer

    calls, fail = [], set()

    def run(cfg=None, force=False, progress=True, **kw):
        key = (cfg.task, cfg.method, cfg.shots, cfg.seed)
        calls.append(key)
        if key in fail:
            raise RuntimeError(f"boom in {key}")
        metrics = {"task": cfg.task, "method": cfg.method, "shots": cfg.shots, "seed": cfg.seed, "preset": cfg.preset,
                   "test": {"accuracy": 10.0 * cfg.shots + cfg.seed}, "epochs": cfg.train.epochs, "total_seconds": 1.0}
        res.write_json(cfg.run_dir() / res.METRICS_FILE, metrics)
        return metrics

    monkeypatch.setattr(trainer, "run_experiment", run)
    monkeypatch.setattr(sweep_mod, "method_is_zero_shot", lambda method, cfg: method.startswith("zeroshot"))
    return calls, fail


def test_grid_expansion_zero_shot_methods_run_once_per_seed():
    jobs = sweep_mod.expand_grid(["llp_cls"], ["zeroshot", "coop"], [1, 4], [1, 2], lambda m: m == "zeroshot")
    assert [(j.method, j.shots, j.seed) for j in jobs] == [
        ("zeroshot", 0, 1), ("zeroshot", 0, 2),
        ("coop", 1, 1), ("coop", 1, 2), ("coop", 4, 1), ("coop", 4, 2),
    ]
    with pytest.raises(UserError, match=">= 0"):
        sweep_mod.expand_grid(["ave"], ["coop"], [-1], [1], lambda m: False)


def test_sweep_skips_finished_continues_past_failure(tmp_path, fake_run):
    calls, fail = fake_run
    write_metrics(tmp_path, "llp_cls", "coop", 1, 1, 77.0)  # already finished
    fail.add(("llp_cls", "coop", 2, 1))
    stale = tmp_path / "llp_cls" / "coop" / "shot2" / "seed2" / ".checkpoint_last.pt.x1y2.tmp"  # left by a SIGKILL
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a checkpoint")
    lines = []
    out = sweep_mod.sweep("llp_cls", ["zeroshot", "coop"], [1, 2], [1, 2], results_dir=tmp_path, say=lines.append,
                          overrides=["train.epochs=3"])
    assert calls == [("llp_cls", "zeroshot", 0, 1), ("llp_cls", "zeroshot", 0, 2),
                     ("llp_cls", "coop", 1, 2), ("llp_cls", "coop", 2, 1), ("llp_cls", "coop", 2, 2)]
    assert out.skipped == 1 and len(out) == 5  # 4 ran + 1 read back; the failed one has no metrics
    assert [f.job.label for f in out.failures] == ["llp_cls / coop / 2-shot / seed 1"]
    assert "boom" in out.failures[0].error
    assert any(m["test"]["accuracy"] == 77.0 for m in out)  # the finished run was read back, not rerun
    text = "\n".join(lines)
    assert "ETA" in text and "1 failed" in text and "FAILED llp_cls / coop / 2-shot / seed 1" in text
    assert all(m.get("epochs", 3) == 3 for m in out)
    assert not stale.exists()

    calls.clear()
    fail.clear()
    again = sweep_mod.sweep("llp_cls", ["zeroshot", "coop"], [1, 2], [1, 2], results_dir=tmp_path, say=lambda s: None)
    assert calls == [("llp_cls", "coop", 2, 1)] and not again.failures and again.skipped == 5


def test_sweep_command_exit_code_and_dry_run(tmp_path, fake_run, capsys):
    calls, fail = fake_run
    fail.add(("ave", "coop", 1, 2))
    args = ["sweep", "--task", "ave", "--methods", "coop", "--shots", "1", "--seeds", "1", "2", "--results", str(tmp_path)]
    assert cli_main(args + ["--dry-run"]) == 0
    assert calls == [] and capsys.readouterr().out.count("to run") == 2
    assert cli_main(args + ["train.epochs=2"]) == 1
    assert calls == [("ave", "coop", 1, 1), ("ave", "coop", 1, 2)]
    fail.clear()
    assert cli_main(args) == 0
    assert "finished" in (cli_main(args + ["--dry-run"]) == 0 and capsys.readouterr().out)


def test_schedule_and_recipe_layers(tmp_path, fake_run, monkeypatch):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    monkeypatch.setenv("AVFEWSHOT_RUNNERS", str(tmp_path / "no-runners"))  # no demo-recipe layer here
    (recipes / "coop.yaml").write_text("train:\n  epochs: 9\n  lr: 0.01\n")
    schedule = tmp_path / "schedule.yaml"
    schedule.write_text("coop:\n  1: {train.epochs: 50}\n'*':\n  2: {train: {batch_size: 3}}\n")
    plan = sweep_mod.plan_sweep("ave", ["coop", "zeroshot"], [1, 2], [1], results_dir=tmp_path / "r",
                                recipes_dir=recipes, schedule=schedule, overrides=["train.lr=0.5"])
    cfgs = {(j.method, j.shots): c for j, c in plan}
    assert cfgs[("coop", 1)].train.epochs == 50  # schedule beats recipe
    assert cfgs[("coop", 2)].train.epochs == 9 and cfgs[("coop", 2)].train.batch_size == 3
    assert cfgs[("coop", 1)].train.lr == 0.5  # command-line override beats everything
    assert cfgs[("zeroshot", 0)].train.epochs == 20  # no recipe file for zeroshot: defaults
    with pytest.raises(UserError, match="either --config"):
        sweep_mod.plan_sweep("ave", ["coop"], [1], [1], config=recipes / "coop.yaml", recipes_dir=recipes)
    with pytest.raises(UserError, match="unknown config key"):
        sweep_mod.plan_sweep("ave", ["coop"], [1], [1], overrides=["train.nope=1"])


def test_data_root_per_dataset(tmp_path, fake_run, shared_data):
    from avfewshot.commands.experiments import _data_roots

    ave, llp = str(shared_data / "AVE"), str(shared_data / "LLP")
    roots = _data_roots([f"ave={ave}", f"llp={llp}"])
    assert roots == {"ave": ave, "llp": llp}
    plan = sweep_mod.plan_sweep(["ave", "ave_cls", "llp_cls"], ["coop"], [1], [1], data_root=roots, results_dir=tmp_path)
    assert [(j.task, c.data.root, c.demo) for j, c in plan] == [
        ("ave", ave, False), ("ave_cls", ave, False), ("llp_cls", llp, False)]
    with pytest.raises(UserError, match="--data-root llp=DIR"):
        sweep_mod.plan_sweep(["llp_cls"], ["coop"], [1], [1], data_root={"ave": ave})
    with pytest.raises(UserError, match="has no llp annotation file"):  # a root of the wrong dataset, found up front
        sweep_mod.plan_sweep(["llp_cls"], ["coop"], [1], [1], data_root={"llp": ave})
    assert _data_roots(["/data"]) == "/data" and _data_roots(None) is None


def test_zero_shot_detection_from_the_class_attribute(monkeypatch):
    from avfewshot.methods.base import METHODS, Method

    class Declared(Method):
        zero_shot = True

    class Trained(Method):
        pass

    monkeypatch.setitem(METHODS._items, "fake_declared", Declared)
    monkeypatch.setitem(METHODS._items, "fake_trained", Trained)
    assert sweep_mod.method_is_zero_shot("fake_declared") is True
    assert sweep_mod.method_is_zero_shot("fake_trained") is False
    assert sweep_mod.method_is_zero_shot("zeroshot_clap") is True and sweep_mod.method_is_zero_shot("linear_probe") is False
    with pytest.raises(UserError, match="unknown method"):
        sweep_mod.method_is_zero_shot("no_such_method")


def test_eta_uses_finished_durations():
    jobs = [sweep_mod.SweepJob("ave", "coop", k, 1) for k in (1, 2, 4)]
    tracker = sweep_mod.GridProgress(jobs)
    assert tracker.eta(jobs) is None
    tracker.record(jobs[0], 10.0)
    assert tracker.eta(jobs[1:]) == pytest.approx(20.0)
    tracker.record(jobs[1], 30.0)
    assert tracker.estimate(jobs[1]) == 30.0 and tracker.estimate(jobs[2]) == 20.0
    assert sweep_mod.format_duration(3725) == "1h02m" and sweep_mod.format_duration(65) == "1m05s"


# -- bundles ----------------------------------------------------------------------------------
def _fake_method_class():
    import torch
    from torch import nn

    from avfewshot.methods.base import Method, MethodConfig, Scores

    @dataclass
    class FakeConfig(MethodConfig):
        width: int = 8

    class FakePrompted(Method):
        """A shared context and an adapter (transfer), a per-class head (does not)."""

        name = "fake_prompted"
        Config = FakeConfig

        def __init__(self, backbone, task, class_names, cfg):
            super().__init__(backbone, task, class_names, cfg)
            self.ctx = nn.Parameter(torch.randn(4, cfg.width))
            self.adapter = nn.Linear(cfg.width, cfg.width)
            self.head = nn.Linear(cfg.width, len(class_names))
            self.register_buffer("class_text", torch.randn(len(class_names), cfg.width))

        def forward(self, batch):
            x = self.adapter(batch["x"] + self.ctx.mean(0))
            return Scores(fused=self.head(x))

    return FakePrompted, FakeConfig


def _build(cls, config_cls, n_classes, task_name="ave", width=8, seed=0):
    import torch

    from avfewshot.tasks import get_task

    torch.manual_seed(seed)
    task = get_task(task_name)
    return cls(None, task, task.class_list([f"class {i}" for i in range(n_classes)]), config_cls(width=width))


def test_bundle_round_trip_transfers_only_class_independent_state(tmp_path):
    import torch

    from avfewshot.config import RunConfig
    from avfewshot.engine.bundles import BUNDLE_FORMAT, load_bundle_into, save_bundle

    cls, config_cls = _fake_method_class()
    source = _build(cls, config_cls, n_classes=6, seed=1)  # 6 events + background
    rng_before = torch.random.get_rng_state()
    path = save_bundle(tmp_path / "b" / "bundle.pt", source, RunConfig(task="vggsound40k", method="fake_prompted"),
                       source.class_names, extra={"val_score": 51.5})
    assert torch.equal(rng_before, torch.random.get_rng_state())  # the transfer probe left the RNG alone
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == BUNDLE_FORMAT and raw["method"] == "fake_prompted"
    assert sorted(raw["state"]) == ["adapter.bias", "adapter.weight", "ctx"]
    assert raw["dropped"] == ["class_text", "head.bias", "head.weight"]
    assert raw["class_names"][-1] == "background" and len(raw["class_names"]) == 7
    assert raw["config"]["task"] == "vggsound40k" and raw["extra"]["val_score"] == 51.5
    assert raw["architecture"]["shapes"]["ctx"] == [4, 8] and raw["architecture"]["method_options"]["width"] == 8
    assert "torch" in raw["versions"] and "avfewshot" in raw["versions"]
    assert not list(path.parent.glob(".*tmp"))

    target = _build(cls, config_cls, n_classes=3, seed=2)
    head_before = target.head.weight.detach().clone()
    messages = []
    report = load_bundle_into(target, path, say=messages.append)
    assert torch.equal(target.ctx, source.ctx) and torch.equal(target.adapter.weight, source.adapter.weight)
    assert torch.equal(target.head.weight, head_before)  # class-dependent: kept at the target's init
    assert report.loaded == ["adapter.bias", "adapter.weight", "ctx"]
    assert report.left_at_init == ["class_text", "head.bias", "head.weight"]
    assert "left at initialisation" in messages[0] and "7 classes" in messages[0]


def test_bundle_errors_are_clear(tmp_path):
    import torch

    from avfewshot.config import RunConfig
    from avfewshot.engine.bundles import load_bundle_into, save_bundle

    cls, config_cls = _fake_method_class()
    source = _build(cls, config_cls, n_classes=4)
    path = save_bundle(tmp_path / "bundle.pt", source, RunConfig(), source.class_names)

    wider = _build(cls, config_cls, n_classes=4, width=16)
    with pytest.raises(UserError, match=r"does not fit.*ctx: shape \[4, 8\] in the bundle, \[4, 16\] here.*width: bundle 8 vs run 16"):
        load_bundle_into(wider, path, say=lambda s: None)
    assert wider.ctx.shape == (4, 16)

    class Other(cls):
        name = "other_method"

    other = Other(None, source.task, source.class_names, config_cls())
    with pytest.raises(UserError, match="pretrained with method 'fake_prompted'.*--method fake_prompted"):
        load_bundle_into(other, path, say=lambda s: None)
    with pytest.raises(MissingCheckpointError, match="does not exist"):
        load_bundle_into(source, tmp_path / "missing.pt", say=lambda s: None)
    torch.save({"method": "fake_prompted", "state": source.trainable_state()}, tmp_path / "trainable.pt")
    with pytest.raises(UserError, match="not an avfewshot pretraining bundle"):
        load_bundle_into(source, tmp_path / "trainable.pt", say=lambda s: None)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="not a readable avfewshot bundle"):
        load_bundle_into(source, tmp_path / "junk.pt", say=lambda s: None)


def test_bundle_respects_transferable_state_and_shape_rule_fallback(tmp_path):
    from avfewshot.config import RunConfig
    from avfewshot.engine.bundles import class_dependent_keys, save_bundle, transferable_state

    cls, config_cls = _fake_method_class()

    class OnlyContext(cls):
        def transferable_state(self):
            return {"ctx": self.ctx.detach()}

    method = OnlyContext(None, _build(cls, config_cls, 2).task, ["a", "b", "background"], config_cls())
    state, dropped = transferable_state(method)
    assert list(state) == ["ctx"] and "adapter.weight" in dropped

    class NotRebuildable(cls):
        def __init__(self, n_classes):  # a different constructor: the shape rule decides
            from avfewshot.tasks import get_task

            task = get_task("llp_cls")
            super().__init__(None, task, [f"c{i}" for i in range(n_classes)], config_cls(width=8))

    assert class_dependent_keys(NotRebuildable(5)) == {"head.weight", "head.bias", "class_text"}

    class NothingTransfers(cls):
        def transferable_state(self):
            return {}

    empty = NothingTransfers(None, method.task, ["a", "b", "background"], config_cls())
    with pytest.raises(UserError, match="nothing that transfers"):
        save_bundle(tmp_path / "x.pt", empty, RunConfig(), empty.class_names)


# -- TensorBoard ------------------------------------------------------------------------------
def test_tensorboard_writer_is_none_without_tensorboard(tmp_path, monkeypatch):
    from avfewshot.engine import tensorboard as tb

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails like a missing package
    messages = []
    assert tb.tensorboard_writer(tmp_path, say=messages.append) is None
    assert "pip install tensorboard" in messages[0]
    tb.log_scalars(None, {"loss": 1.0}, step=1)  # a None writer is accepted everywhere
    tb.close_writer(None)
    assert tb.tensorboard_enabled(["TensorBoard"]) and not tb.tensorboard_enabled([])


# -- end to end on the demo, killed mid-way -----------------------------------------------------
# Keys the demo needs today beyond the defaults (remove once the demo preset carries them).
DEMO_KEYS: list = []  # the demo needs no extra settings
E2E_KEYS = ["train.epochs=4", "train.threads=1", *DEMO_KEYS]
E2E_GRID = ["--task", "llp_cls", "--methods", "zeroshot", "linear_probe", "--shots", "1", "--seeds", "1", "2",
            "--no-progress", *E2E_KEYS]


def _sweep_process(results: Path):
    import os
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-m", "avfewshot.cli", "sweep", "--results", str(results), *E2E_GRID],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc) -> str:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return out


@pytest.mark.slow
def test_demo_sweep_killed_and_restarted_gives_the_same_table(tmp_path):
    import signal
    import time

    import torch

    reference = tmp_path / "reference"  # uninterrupted, in this process (saves one interpreter start-up)
    threads = torch.get_num_threads()
    try:
        done = sweep_mod.sweep("llp_cls", ["zeroshot", "linear_probe"], [1], [1, 2], overrides=E2E_KEYS,
                               results_dir=reference, progress=False, say=lambda s: None)
    finally:
        torch.set_num_threads(threads)
    assert len(done) == 4 and not done.failures

    killed = tmp_path / "killed"
    proc = _sweep_process(killed)
    deadline = time.time() + 240
    while proc.poll() is None and time.time() < deadline:
        mid_training = list(killed.rglob(res.LAST_CKPT))
        if mid_training or len(list(killed.rglob(res.METRICS_FILE))) >= 3:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(list(killed.rglob(res.METRICS_FILE))) < 4  # it really was interrupted
    out = _finish(_sweep_process(killed))
    assert "already done" in out

    ref_table, new_table = agg.aggregate(reference), agg.aggregate(killed)
    assert not new_table.problems and not ref_table.problems
    assert agg.table_csv(new_table, ci95=True) == agg.table_csv(ref_table, ci95=True)
    assert [(r.method, r.shots, r.main.n) for r in new_table.rows] == [("linear_probe", 1, 2), ("zeroshot", 0, 2)]
    for path in reference.rglob(res.METRICS_FILE):
        mine = json.loads((killed / path.relative_to(reference)).read_text())
        assert mine["test"] == json.loads(path.read_text())["test"]
    assert not [p for p in killed.rglob("*") if p.name.endswith(".tmp") or p.name == res.LAST_CKPT]
