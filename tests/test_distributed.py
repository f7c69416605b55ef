"""Two CPU processes under torchrun give the metrics of one process with the same global batch."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ARGS = ["run", "--task", "llp_cls", "--method", "linear_probe", "--shots", "2", "--no-progress",
        "train.epochs=2", "train.batch_size=4", "train.eval_batch_size=4", "train.threads=1"]


def _metrics(results: Path) -> dict:
    return json.loads((results / "llp_cls" / "linear_probe" / "shot2" / "seed1" / "metrics.json").read_text())


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this python")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    one = subprocess.run([sys.executable, "-m", "avfewshot.cli", *ARGS, "--results", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "avfewshot.cli", *ARGS,
                          "--results", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = _metrics(tmp_path / "one"), _metrics(tmp_path / "two")
    assert a["environment"]["processes"] == "1" and b["environment"]["processes"] == "2"
    for env_ in (a["environment"], b["environment"]):  # gloo on the CPU, the default precision
        assert env_["device"] == "cpu" and env_["precision"] == "fp32"
    assert a["test"] == b["test"]
    assert a["num_train_clips"] == b["num_train_clips"] == 12
    for ha, hb in zip(a["history"], b["history"]):
        assert ha["epoch"] == hb["epoch"] and ha["select_score"] == hb["select_score"]
        assert hb["loss"] == pytest.approx(ha["loss"], rel=1e-5)  # epoch losses reduced over the processes
    assert two.stdout.count("test accuracy") == 1  # one process reports and writes
