"""The engine end to end on the embedded demo: result files, skip / force, resume, frozen towers."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

import avfewshot
from avfewshot.api import make_config
from avfewshot.engine import results as res
from avfewshot.engine import trainer

FAST = ["train.epochs=3", "train.batch_size=4", "train.eval_batch_size=8", "train.selection=last"]


def _cfg(tmp_path, method="linear_probe", shots=2, overrides=()):
    return make_config(task="llp_cls", method=method, shots=shots, seed=1, results_dir=str(tmp_path), overrides=[*FAST, *overrides])


def test_run_writes_result_files(tmp_path):
    cfg = _cfg(tmp_path)
    metrics = avfewshot.run(cfg=cfg, progress=False)
    run_dir = tmp_path / "llp_cls" / "linear_probe" / "shot2" / "seed1"
    assert {p.name for p in run_dir.iterdir()} >= {"metrics.json", "config.yaml", "run.log", "trainable.pt"}
    assert not (run_dir / res.LAST_CKPT).exists()  # removed once finished
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["test"] == metrics["test"] and saved["demo"] is True
    assert 0.0 <= saved["test"]["accuracy"] <= 100.0 and "hit_rate" in saved["test"]
    from avfewshot.runtime import denormals_flushed, loaded_allocator

    env = saved["environment"]
    assert env["allocator"] == loaded_allocator() and env["threads"] == str(torch.get_num_threads())
    assert env["denormals"] == ("flushed" if denormals_flushed() else "kept")
    assert saved["num_train_clips"] == 12  # 6 demo classes x 2 shots
    assert len(saved["history"]) == 3
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["train"]["epochs"] == 3 and config["method_args"]["fusion"] == "confidence"  # resolved method options
    state = torch.load(run_dir / "trainable.pt", weights_only=True)["state"]
    assert state and not any(k.startswith("backbone.") for k in state)
    assert sum(v.numel() for v in state.values()) == saved["trainable_parameters"]
    assert "test metrics" in (run_dir / "run.log").read_text()


def test_finished_run_is_skipped_unless_forced(tmp_path, capsys):
    cfg = _cfg(tmp_path, overrides=["train.epochs=1"])
    first = avfewshot.run(cfg=cfg, progress=False)
    run_dir = cfg.run_dir()
    stamp = (run_dir / "metrics.json").stat().st_mtime_ns
    again = avfewshot.run(cfg=_cfg(tmp_path, overrides=["train.epochs=1"]), progress=False)
    assert again["test"] == first["test"] and (run_dir / "metrics.json").stat().st_mtime_ns == stamp
    assert "skipping" in capsys.readouterr().out
    avfewshot.run(cfg=_cfg(tmp_path, overrides=["train.epochs=1"]), force=True, progress=False)
    assert (run_dir / "metrics.json").stat().st_mtime_ns != stamp


def test_killed_run_resumes_to_identical_metrics(tmp_path, monkeypatch):
    straight = avfewshot.run(cfg=_cfg(tmp_path / "a"), progress=False)

    real_epoch = trainer.train_one_epoch
    calls = {"n": 0}

    def dies_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as if the process were killed during epoch 2
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_one_epoch", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        avfewshot.run(cfg=_cfg(tmp_path / "b"), progress=False)
    run_dir = tmp_path / "b" / "llp_cls" / "linear_probe" / "shot2" / "seed1"
    assert (run_dir / res.LAST_CKPT).exists() and not (run_dir / "metrics.json").exists()
    assert res.load_torch(run_dir / res.LAST_CKPT)["epoch"] == 1
    monkeypatch.setattr(trainer, "train_one_epoch", real_epoch)
    resumed = avfewshot.run(cfg=_cfg(tmp_path / "b"), progress=False)
    assert resumed["test"] == straight["test"]
    assert resumed["history"] == straight["history"]
    a = torch.load(tmp_path / "a" / "llp_cls" / "linear_probe" / "shot2" / "seed1" / "trainable.pt", weights_only=True)["state"]
    b = torch.load(run_dir / "trainable.pt", weights_only=True)["state"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_touches_no_frozen_weight(tmp_path):
    from avfewshot.engine.build import build_run

    cfg = _cfg(tmp_path)
    run = build_run(cfg, data="train")
    backbone, data, method = run.backbone, run.data, run.method
    frozen = {k: v.clone() for k, v in backbone.state_dict().items()}
    trainable = {k: v.clone() for k, v in method.trainable_state().items()}
    opt = trainer.make_optimizer(method.trainable_parameters(), cfg)
    trainer.train_one_epoch(method, data.train, opt, cfg, epoch=0, progress=False)
    assert all(not m.training for m in backbone.modules())  # method.train() never reaches the towers
    assert all(p.grad is None and not p.requires_grad for p in backbone.parameters())
    assert all(torch.equal(v, backbone.state_dict()[k]) for k, v in frozen.items())
    assert any(not torch.equal(v, method.trainable_state()[k]) for k, v in trainable.items())


def test_selection_on_test_needs_its_explicit_name(tmp_path):
    from avfewshot.errors import UserError

    with pytest.raises(UserError, match="best_on_test_UNSAFE"):
        avfewshot.run(cfg=_cfg(tmp_path, overrides=["train.selection=test"]), progress=False)


def test_load_results_and_api(tmp_path):
    avfewshot.run(cfg=_cfg(tmp_path, overrides=["train.epochs=1"]), progress=False)
    found = avfewshot.load_results(tmp_path)
    assert len(found) == 1 and found[0]["method"] == "linear_probe" and found[0]["run_dir"].endswith("seed1")


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_optimizers_are_fused_and_step_like_the_per_tensor_loop(tmp_path, name):
    cfg = _cfg(tmp_path)
    cfg.train.optimizer = name
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(7))]
    copies = [torch.nn.Parameter(p.detach().clone()) for p in params]
    initial = [p.detach().clone() for p in params]
    fused = trainer.make_optimizer(params, cfg)
    assert fused.param_groups[0]["fused"] is True
    loop_class = type(fused)
    loop = loop_class(copies, **{k: v for k, v in fused.defaults.items() if k in ("lr", "weight_decay", "momentum")},
                      foreach=False)
    for _ in range(3):
        for p, q in zip(params, copies):
            g = torch.randn_like(p)
            p.grad, q.grad = g.clone(), g.clone()
        fused.step()
        loop.step()
    assert all(torch.allclose(p, q, rtol=1e-6, atol=1e-7) for p, q in zip(params, copies))
    assert all(not torch.allclose(p, p0) for p, p0 in zip(params, initial))  # the steps moved them
