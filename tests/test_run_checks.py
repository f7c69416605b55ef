"""One builder, and every bad input caught while the configuration is resolved: names, options, ranges, the
data root (before any tower is built or media decoded), and a resume that checks its checkpoint."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import avfewshot
from avfewshot import cli
from avfewshot.engine import results as res
from avfewshot.engine import trainer
from avfewshot.engine.build import TowerCache, resolve_run_config

FAST = ["train.epochs=3", "train.batch_size=4", "train.eval_batch_size=8", "train.selection=last"]


def _cfg(tmp_path, overrides=()):
    return resolve_run_config(task="llp_cls", method="linear_probe", shots=2, seed=1, results_dir=str(tmp_path),
                              overrides=[*FAST, *overrides])


@pytest.mark.parametrize("argv, named", [
    (["run", "--method", "nosuch"], "unknown method 'nosuch'; valid methods: "),
    (["run", "--task", "nosuch"], "unknown task 'nosuch'; valid tasks: "),
    (["run", "--method", "coop", "method.n_ctxx=4"], "unknown option method.n_ctxx for method 'coop'"),
    (["run", "--method", "coop", "method.n_ctx=four"], "method.n_ctx: expected an integer"),
    (["run", "--method", "coop", "method.class_token_position=top"], "method.class_token_position='top' is not valid"),
    (["run", "train.lr=.nan"], "train.lr=nan must be a finite number"),
    (["run", "train.lr=-1"], "train.lr=-1.0 is out of range; it must be > 0.0"),
    (["run", "train.batch_size=0"], "train.batch_size=0 is out of range; it must be >= 1"),
    (["run", "data.num_workers=-1"], "data.num_workers=-1 is out of range; it must be >= 0"),
    (["run", "--shots", "-1"], "shots=-1 is out of range; it must be >= 0"),
    (["run", "--method", "coop", "train.epochs=0"], "train.epochs=0: method 'coop' trains at 16 shots"),
    (["run", "train.optimizer=adamx"], "train.optimizer='adamx' is not valid; choose from adam, adamw, sgd"),
    (["run", "--config", "{tmp}"], "is a folder; give a YAML file"),
    (["run", "--data-root", "{tmp}/missing"], "data.root {tmp}/missing does not exist"),
    (["run", "--data-root", "{tmp}/file.txt"], "data.root {tmp}/file.txt is not a folder"),
    (["run", "--data-root", "{tmp}"], "has no llp annotation file AVVP_train.csv"),
    (["sweep", "--dry-run", "--methods", "coop", "--shots", "1", "--seeds", "1", "method.n_ctxx=4"], "method.n_ctxx"),
])
def test_bad_input_is_one_line_before_anything_is_built(argv, named, tmp_path, capsys, monkeypatch):
    from avfewshot.data import synth
    from avfewshot.engine import build

    def never(*_args, **_kwargs):
        raise AssertionError("something was built before the configuration was checked")

    monkeypatch.setattr(build.TowerCache, "get", never)  # towers
    monkeypatch.setattr(synth, "ensure_demo", never)  # the demo data
    (tmp_path / "file.txt").write_text("x")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert cli.main(argv + ["--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("avfewshot: error: ") and "\n" not in err and "Traceback" not in err
    assert named.replace("{tmp}", str(tmp_path)) in err
    assert not (tmp_path / "results").exists()  # and no run folder was made


def test_unknown_method_from_a_fresh_process_names_the_choices(tmp_path):
    """What a user sees: exit code 2, one line, no traceback, and no tower or data was built (empty cache)."""
    env = {"AVFEWSHOT_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "avfewshot.cli", "run", "--method", "nosuch"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "valid methods: " in proc.stderr
    assert "kgcoop" in proc.stderr  # discovered from its file alone
    assert not (tmp_path / "cache").exists()


def test_overrides_may_follow_any_option(tmp_path):
    args, extra = cli.build_parser().parse_known_args(["run", "--results", "r", "train.lr=0.1", "--seed", "2", "method.x=1"])
    assert extra == ["method.x=1"] or extra == []  # argparse keeps what it can; main() collects the rest
    assert cli.main(["run", "--results", str(tmp_path), "train.lr=-5"]) == 2  # the override was read, not rejected


def test_build_method_and_params_need_no_root(capsys):
    method = avfewshot.build_method("coop", task="ave")  # the demo's AVE classes + background
    assert method.task.name == "ave" and method.class_names[-1] == "background"
    assert cli.main(["params", "--method", "coop", "--task", "ave"]) == 0
    out = capsys.readouterr().out
    assert "coop on ave" in out and "TOTAL" in out


def test_tower_cache_lifetime():
    cfg = resolve_run_config(shots=0, method="zeroshot")
    towers = TowerCache()
    a = towers.get(cfg.model)
    assert towers.get(cfg.model) is a and len(towers) == 1
    other = resolve_run_config(shots=0, method="zeroshot", overrides=["model.image_norm=imagenet"])
    b = towers.get(other.model)
    assert b is not a and len(towers) == 1  # capacity 1: the older towers were released
    towers.clear()
    assert len(towers) == 0


# -- resume that checks ------------------------------------------------------------------------
def _interrupted(tmp_path, monkeypatch, overrides=()):
    """A run killed during epoch 2: its checkpoint_last.pt holds epoch 1."""
    real_epoch = trainer.train_one_epoch
    calls = {"n": 0}

    def dies_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_one_epoch", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        avfewshot.run(cfg=_cfg(tmp_path, overrides), progress=False)
    monkeypatch.setattr(trainer, "train_one_epoch", real_epoch)
    return _cfg(tmp_path, overrides).run_dir()


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    return avfewshot.run(cfg=_cfg(tmp_path_factory.mktemp("straight")), progress=False)


@pytest.mark.parametrize("damage", ["empty", "truncated", "foreign", "wrong_shapes"])
def test_damaged_checkpoint_is_set_aside_and_the_run_restarts(damage, tmp_path, monkeypatch, straight, capsys):
    run_dir = _interrupted(tmp_path, monkeypatch)
    ckpt = run_dir / res.LAST_CKPT
    good = ckpt.read_bytes()
    if damage == "empty":
        ckpt.write_bytes(b"")
    elif damage == "truncated":
        ckpt.write_bytes(good[: len(good) // 2])
    elif damage == "foreign":
        torch.save({"model": torch.zeros(3)}, ckpt)
    else:
        saved = res.load_torch(ckpt)
        saved["state"] = {k: torch.zeros(1) for k in saved["state"]}
        torch.save(saved, ckpt)
    metrics = avfewshot.run(cfg=_cfg(tmp_path), progress=False)
    out = capsys.readouterr().out
    assert "WARNING" in out and "starting the run from scratch" in out
    assert len(list(run_dir.glob(f"{res.LAST_CKPT}.bad-*"))) == 1  # kept for a look, out of the way
    assert metrics["test"] == straight["test"] and metrics["history"] == straight["history"]


def test_checkpoint_of_another_configuration_is_an_error_naming_the_keys(tmp_path, monkeypatch, straight):
    from avfewshot.errors import UserError

    run_dir = _interrupted(tmp_path, monkeypatch)
    config_before = (run_dir / res.CONFIG_FILE).read_text()
    with pytest.raises(UserError, match=r"different configuration \(train.lr, train.optimizer differ\).*--force"):
        avfewshot.run(cfg=_cfg(tmp_path, ["train.lr=0.5", "train.optimizer=sgd"]), progress=False)
    assert (run_dir / res.CONFIG_FILE).read_text() == config_before  # config.yaml untouched by the refused run
    assert (run_dir / res.LAST_CKPT).exists()
    resumed = avfewshot.run(cfg=_cfg(tmp_path), progress=False)  # the same settings resume it
    assert resumed["test"] == straight["test"] and resumed["history"] == straight["history"]
    forced = avfewshot.run(cfg=_cfg(tmp_path, ["train.lr=0.5", "train.optimizer=sgd"]), force=True, progress=False)
    assert forced["history"] != straight["history"]


# -- method hooks: a gradient-surgery method needs no engine change ------------------------------
def test_backward_and_param_group_hooks(tmp_path):
    from avfewshot.engine.build import build_run
    from avfewshot.methods.linear_probe import LinearProbe

    calls = {"backward": 0}

    class SurgeryProbe(LinearProbe):
        """ProGrad-like: the gradient of the audio head is replaced by its projection on a fixed direction."""

        def optimizer_param_groups(self, train_cfg):
            audio = list(self.audio_head.parameters())
            rest = [p for p in self.trainable_parameters() if all(p is not q for q in audio)]
            return [{"params": rest}, {"params": audio, "lr": 0.0}]

        def backward(self, loss, parts):
            calls["backward"] += 1
            grads = torch.autograd.grad(loss, self.trainable_parameters())
            for p, g in zip(self.trainable_parameters(), grads):
                p.grad = g.clone()

    run = build_run(_cfg(tmp_path), data="train")
    method = SurgeryProbe(run.backbone, run.task, run.class_names, run.method.cfg)
    before = {k: v.clone() for k, v in method.trainable_state().items()}
    optimizer = trainer.make_optimizer(method.optimizer_param_groups(run.cfg.train), run.cfg)
    assert [g["lr"] for g in optimizer.param_groups] == [run.cfg.train.lr, 0.0]
    trainer.train_one_epoch(method, run.data.train, optimizer, run.cfg, epoch=0, progress=False)
    after = method.trainable_state()
    assert calls["backward"] >= 1
    assert torch.equal(before["audio_head.weight"], after["audio_head.weight"])  # lr 0 in its own group
    assert not torch.equal(before["visual_head.weight"], after["visual_head.weight"])
