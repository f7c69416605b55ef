"""Device and precision plumbing, on the CPU: every tensor moves with the model, batches follow it, a missing GPU
is a clear error, runs record where and how they computed, and the API leaves process settings alone."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import avfewshot
from avfewshot.engine.build import TowerCache, build_run, resolve_run_config
from avfewshot.engine.device import describe, resolve_device, to_device
from avfewshot.precision import autocast_context, grad_scaler
from avfewshot.errors import UserError

FAST = ["train.epochs=1", "train.batch_size=4", "train.eval_batch_size=8", "train.selection=last"]


def test_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("meta") == torch.device("meta")
    if torch.cuda.is_available():  # pragma: no cover - only a GPU machine
        assert resolve_device("auto").type == "cuda"
    else:
        assert resolve_device("auto") == torch.device("cpu")
        for spec in ("cuda", "cuda:0"):
            with pytest.raises(UserError, match=f"train.device={spec} but this machine has no usable CUDA device"):
                resolve_device(spec)
    with pytest.raises(UserError, match="train.device='gpu' is not valid"):
        resolve_run_config(overrides=["train.device=gpu"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without a GPU")
def test_run_on_missing_gpu_fails_before_anything_is_built(tmp_path, isolated_cache):
    with pytest.raises(UserError, match="no usable CUDA device"):
        avfewshot.run(method="zeroshot", shots=0, results_dir=str(tmp_path), overrides=["train.device=cuda"])
    assert not any(tmp_path.iterdir())


def test_batches_follow_the_model():
    batch = {"frames": torch.zeros(1, 2, 3, 4, 4), "labels": torch.ones(1, 3), "clip_id": ["a"], "index": torch.arange(1)}
    moved = to_device(batch, torch.device("meta"))
    assert all(v.device.type == "meta" for v in moved.values() if torch.is_tensor(v)) and moved["clip_id"] == ["a"]
    assert to_device(batch, torch.device("cpu")) is batch


@pytest.mark.parametrize("method", ["zeroshot", "linear_probe", "coop", "kgcoop", "cocoop", "clip_adapter", "maple", "dgsct"])
def test_every_tensor_of_a_method_moves_with_it(method):
    """A tensor kept as a plain attribute (not a parameter or buffer) would stay behind on ``.to(device)``;
    moving to ``meta`` shows every parameter and buffer follows."""
    towers = TowerCache()  # its own towers: moving them to meta must not touch the process-wide cache
    run = build_run(resolve_run_config(method=method, shots=0, **{"data.feature_cache": False}), data="classes", towers=towers)
    stray = [f"{name}.{attr}" for name, module in run.method.named_modules() for attr, value in vars(module).items()
             if torch.is_tensor(value) and not attr.startswith("_")]
    assert not stray, f"tensors outside the module system: {stray}"
    run.method.to("meta")
    assert {t.device.type for t in [*run.method.parameters(), *run.method.buffers()]} == {"meta"}


def test_precision_helpers():
    assert grad_scaler("cpu", "bf16") is None and grad_scaler("cpu", "fp16") is not None
    with autocast_context("cpu", "bf16"):
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.bfloat16
    with autocast_context("cpu", "fp32"):
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.float32


def test_run_records_device_and_precision(tmp_path):
    cfg = resolve_run_config(task="llp_cls", method="linear_probe", shots=1, results_dir=str(tmp_path),
                             overrides=[*FAST, "train.precision=bf16"])
    metrics = avfewshot.run(cfg=cfg, progress=False)
    env = metrics["environment"]
    assert env["device"] == str(resolve_device("auto")) and env["precision"] == "bf16"
    assert {"denormals", "allocator", "huge_pages", "mmap_threshold_mb", "device_name"} <= set(env)
    saved = (cfg.run_dir() / "config.yaml").read_text()
    assert "precision: bf16" in saved and "device: auto" in saved
    assert describe(torch.device("cpu"))["device"] == "cpu"


def test_api_leaves_process_settings_alone(tmp_path):
    """avfewshot.run(...) must not switch denormal flushing on for the caller's process."""
    code = ("import avfewshot\nfrom avfewshot.runtime import denormals_flushed\n"
            f"avfewshot.run(method='zeroshot', shots=0, results_dir={str(tmp_path)!r}, progress=False)\n"
            "print('flushed' if denormals_flushed() else 'kept')\n")
    env = {**os.environ, "AVFEWSHOT_DENORMALS": "flush"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "kept"
    metrics = json.loads(next(tmp_path.rglob("metrics.json")).read_text())
    assert metrics["environment"]["denormals"] == "kept"


def test_cli_options_are_applied_by_the_command_only(monkeypatch):
    from avfewshot import cli
    from avfewshot.runtime import apply_cli_options

    args = cli.build_parser().parse_args(["--denormals", "keep", "--mmap-threshold-mb", "8", "models", "list"])
    # setenv records the variables' current state, so the values written below are undone after the test
    monkeypatch.setenv("AVFEWSHOT_DENORMALS", "flush")
    monkeypatch.setenv("AVFEWSHOT_MMAP_THRESHOLD_MB", "")
    apply_cli_options(args)
    assert os.environ["AVFEWSHOT_DENORMALS"] == "keep" and os.environ["AVFEWSHOT_MMAP_THRESHOLD_MB"] == "8"
