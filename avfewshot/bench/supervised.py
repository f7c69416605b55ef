"""``avfewshot bench supervised``: one real-size supervised training step on CPU (B = 1 video, T = 2 segments).

The model is the supervised AVE runner (Swin-V2-L + HTS-AT AudioSet, 48 DG-SCT units, CMBS head) or
the AVVP one (MGN head), built with random weights; nothing is read. In a fresh subprocess (so that the
peak resident memory is the model's alone): the matmul peak (``bench.dgsct.matmul_peak``), one warm-up
step, ``--repeats`` timed steps (forward, loss, backward, Adam), one eval forward, the peak RSS and the
FLOPs of one step (``torch.utils.flop_counter``).

The released code's step cannot be built here: it needs timm 0.6.12, which does not import on Python
3.11, plus CUDA-only calls. Its cost is compared by FLOPs instead: docs/supervised.md §7 measured 1,089
forward GFLOPs and 2,537 forward + backward GFLOPs per 10-segment AVE video, i.e. per segment 108.9 and
253.7 (the units, towers and the 10-s audio tiling all scale with the segments; the head is negligible).
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import Dict

#: released per-segment cost of the AVE model (docs/supervised.md §7: 1,089 / 2,537 GFLOPs per 10-segment video)
RELEASED_GFLOP_PER_SEGMENT = {"forward": 108.9, "train_step": 253.7}
SEGMENTS = 2


def _batch(task: str, model):
    import torch

    size = model.encoder.size
    g = torch.Generator().manual_seed(0)
    batch = {"frames": torch.randn(1, SEGMENTS, 3, size.visual.img_size, size.visual.img_size, generator=g),
             "audio": 0.1 * torch.randn(1, SEGMENTS, size.audio.sample_rate, generator=g)}
    if task == "ave":
        batch["segment_labels"] = torch.tensor([[3, 28]])
    else:
        batch["labels"] = torch.zeros(1, 25)
        batch["labels"][0, 3] = 1
    return batch


def child(task: str, repeats: int, size: str = "real") -> Dict[str, object]:
    """The measurement (in its own process); ``size="tiny"`` checks the code path in seconds."""
    from ..runtime import configure

    configure()
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ..supervised.ave import SupervisedAVE, SupervisedAVEConfig
    from ..supervised.avvp import SupervisedAVVP, SupervisedAVVPConfig
    from ..supervised.model import parameter_totals
    from .dgsct import matmul_peak, peak_rss_gb

    peak = matmul_peak()
    torch.manual_seed(0)
    started = time.perf_counter()
    model = (SupervisedAVE(SupervisedAVEConfig(size=size, segments=SEGMENTS)) if task == "ave"
             else SupervisedAVVP(SupervisedAVVPConfig(size=size, segments=SEGMENTS)))
    build_seconds = time.perf_counter() - started
    batch = _batch(task, model)
    params = model.trainable_parameters()
    optimizer = torch.optim.Adam(params, lr=1e-4)

    def step() -> None:
        model.train()
        loss, _ = model.loss(batch, model(batch), 1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    model.eval()
    with torch.no_grad():
        t0 = time.perf_counter()
        model(batch)
        eval_seconds = time.perf_counter() - t0
    rss = peak_rss_gb()
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    flops = counter.get_total_flops()
    with torch.no_grad(), FlopCounterMode(display=False) as forward_counter:
        model.eval()
        model(batch)
    peak = max(peak, matmul_peak())
    seconds = statistics.median(times)
    return {
        "benchmark": "supervised", "task": task, "size": size,
        "batch": f"1 video x {SEGMENTS} segments, random weights",
        "threads": torch.get_num_threads(), "parameters": parameter_totals(model),
        "build_seconds": round(build_seconds, 1), "step_seconds_each": [round(x, 1) for x in times],
        "step_seconds": round(seconds, 1), "eval_seconds": round(eval_seconds, 1), "peak_rss_gb": round(rss, 2),
        "step_gflop": round(flops / 1e9, 1), "forward_gflop": round(forward_counter.get_total_flops() / 1e9, 1),
        "gflops": round(flops / seconds / 1e9, 1), "matmul_peak_gflops": round(peak, 1),
        "fraction_of_peak": round(flops / seconds / 1e9 / peak, 3),
    }


def report(fig: Dict[str, object]) -> str:
    released = {k: v * SEGMENTS for k, v in RELEASED_GFLOP_PER_SEGMENT.items()}
    return "\n".join([
        f"supervised {fig['task']} training step ({fig['batch']}; {fig['threads']} threads)",
        f"  parameters             {fig['parameters']['live_trainable']:,} trainable of {fig['parameters']['total']:,}",
        f"  step time (median)     {fig['step_seconds']} s   each {fig['step_seconds_each']}",
        f"  eval forward           {fig['eval_seconds']} s",
        f"  peak RSS               {fig['peak_rss_gb']} GB",
        f"  FLOP per step          {fig['step_gflop']} GFLOP (released AVE code, same shape: {released['train_step']:.0f})",
        f"  FLOP per forward       {fig['forward_gflop']} GFLOP (released: {released['forward']:.0f})",
        f"  achieved               {fig['gflops']} GFLOP/s = {100 * fig['fraction_of_peak']:.1f} % of the measured "
        f"{fig['matmul_peak_gflops']:.0f} GFLOP/s matmul peak",
        "  released code's step: not buildable here (timm 0.6.12 does not import on Python 3.11; CUDA-only calls)",
    ])


def main(args) -> int:
    from ..errors import UserError

    task = getattr(args, "task", None) or "ave"
    if task not in ("ave", "avvp"):
        raise UserError(f"bench supervised --task {task!r}: valid are ave, avvp")
    repeats = args.repeats if getattr(args, "repeats", None) else 2
    code = ("import json, sys; from avfewshot.bench.supervised import child; "
            "print('AVFEWSHOT_BENCH ' + json.dumps(child(sys.argv[1], int(sys.argv[2]))))")
    proc = subprocess.run([sys.executable, "-c", code, task, str(repeats)], capture_output=True, text=True)
    figures = None
    for line in proc.stdout.splitlines():
        if line.startswith("AVFEWSHOT_BENCH "):
            figures = json.loads(line[len("AVFEWSHOT_BENCH "):])
    if figures is None:
        raise RuntimeError(f"the benchmark process failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    print(report(figures))
    out = getattr(args, "out", None)
    if out:
        from pathlib import Path

        Path(out).write_text(json.dumps(figures, indent=2))
    return 0
