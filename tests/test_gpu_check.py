"""scripts/gpu_check.sh on a machine without a GPU, and the avfewshot command lines it runs on one."""
from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import torch

from avfewshot.cli import build_parser, main

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


def script_invocations():
    """The argument lists of the script's ``avfewshot.cli`` calls, shell variables replaced by values."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    calls = []
    for line in text.splitlines():
        if "-m avfewshot.cli" not in line:
            continue
        line = re.sub(r'"\$\(\[.*?\)"', "model.frozen_dtype=bf16", line)  # the $( ... ) choice of frozen dtype
        line = line.replace("$precision", "bf16").replace("$out", "/tmp/out")
        words = shlex.split(line.split("-m avfewshot.cli", 1)[1])
        calls.append([w for w in words if w not in ("\\",)])
    return calls


def test_the_script_runs_the_demo_and_the_bench_with_options_the_cli_accepts():
    calls = script_invocations()
    assert [c[0] for c in calls] == ["run", "bench"]
    parser = build_parser()
    for argv in calls:
        args, extra = parser.parse_known_args(argv)
        assert all("=" in item for item in extra), extra  # only key=value overrides are left over
        assert args.func
    bench = parser.parse_known_args(calls[1])[0]
    assert bench.device == "cuda" and bench.precision == ["fp32", "bf16"] and bench.name == "dgsct"
    run, extra = parser.parse_known_args(calls[0])
    assert "train.device=cuda" in run.overrides + extra


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_the_script_says_so_and_exits_0():
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA device" in proc.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_bench_dgsct_on_cuda_without_a_gpu_is_a_one_line_error(capsys):
    assert main(["bench", "dgsct", "--device", "cuda", "--variants", "plain"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no usable CUDA device" in err
