"""``avfewshot bench dgsct``: real-size DG-SCT training step on CPU: time, peak memory, achieved GFLOP/s.

The model is what the released few-shot code trains (dgsct-official preset: ViT-B/32 + HTS-AT-tiny,
ImageNet normalisation, 32 kHz one-second audio looped to 10 s, sum fusion, raw CLAP scale, the
audio-visual contrastive term and the LLP loss weighting), built with random weights; the batch is
2 videos x 10 segments of LLP classification (25 classes). The measurement runs in a fresh
subprocess so that its peak resident memory (``VmHWM``) is the model's alone. In that process:

1. a matmul peak: a loop of large fp32 ``torch.mm`` (the machine's attainable GEMM rate), measured
   before and after the steps, the larger one kept;
2. ``--warmup`` warm-up steps (four by default), then ``--repeats`` timed training steps (forward, loss,
   backward, clipping, Adam) and two eval forwards; medians are reported;
3. the peak RSS so far;
4. the FLOPs of one training step counted by ``torch.utils.flop_counter.FlopCounterMode``;
5. with ``--breakdown``, one more step under ``torch.profiler``: operators' self time summed by kind
   (matrix products, normalisation, copies, elementwise, ...; ``op_kinds``), and against fp32 each
   kind's ratio: where a precision's gain comes from and what bounds it.

``--rounds N`` repeats every measurement N times, the precisions' order reversed every other round
(fp32 bf16, bf16 fp32, ...), and pools them: on a shared machine whose speed drifts over minutes a
single fp32-then-bf16 pair can move the ratio by 0.1 either way; the per-round ratios are printed too.

Three variants run, each in its own process (``VARIANTS``): the default method with the C library's
malloc ("plain"), the same with tcmalloc preloaded ("tcmalloc": no page faults on recycled large
blocks, see ``avfewshot.runtime``), and "lean": tcmalloc plus ``method.checkpoint=units`` (each
DG-SCT unit recomputed in backward: identical outputs, lower peak memory, a few more FLOPs). A
variant whose allocator is not installed is reported and skipped. All run with denormal flushing
on, as the CLI does.

``--precision fp32 bf16`` measures each variant at each precision, each in its own process:
``train.precision`` and ``model.frozen_dtype`` set to it (frozen towers stored in that dtype),
forward and loss under ``autocast_context`` (``avfewshot/precision.py``), the matmul peak measured for
that dtype. Before the first step each process saves the fused logits of one eval forward on the
freshly built model (same seed, so the same weights up to the storage dtype); the parent reports
their relative error against fp32 (Frobenius norm of the difference over that of fp32) and the
step-time and peak-memory ratios against fp32.

Printed next to the anchor measured with the released code on this 2-core machine (27.0 s per step,
2.27 TFLOP per step, 84 GFLOP/s, 7.6 s eval forward, 16.3 GB peak RSS, 320 GFLOP/s matmul peak) and the
targets (at most half the step time and memory, at least 50 % of the measured matmul peak).
No file is read: where roberta-base's tokenizer files are missing a stand-in vocabulary of the same
size is written to the scratch folder (the prompts' ids do not matter for speed).
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

from .op_kinds import kind_ratios, profile_kinds, report_kind_ratios, report_kinds

ANCHOR = {"step_seconds": 27.0, "step_tflop": 2.27, "gflops": 84.0, "eval_seconds": 7.6, "peak_rss_gb": 16.3,
          "matmul_peak_gflops": 320.0}
ROBERTA_VOCAB = 50265
#: measured variants: label -> (method options, runtime settings). "plain" is the default method and
#: allocator; "tcmalloc" preloads tcmalloc; "lean" adds unit checkpointing (avfewshot.runtime, README).
VARIANTS: Dict[str, Tuple[Dict[str, object], Dict[str, object]]] = {
    "plain": ({}, {}),
    "tcmalloc": ({}, {"allocator": "tcmalloc"}),
    "lean": ({"checkpoint": "units"}, {"allocator": "tcmalloc"}),
}
#: documented bound (docs/design.md) on the relative error of a bf16 eval forward's fused logits against fp32 on the
#: same random weights at real size: measured 1.3e-2 and, with the towers' LayerNorms reading bf16, 1.6e-2
LOGITS_BOUND = {"bf16": 3e-2, "fp16": 1e-2}
WARMUP_STEPS = 4  # tcmalloc reaches its steady state (no page faults) after four steps


def write_standin_roberta_tokenizer(folder: Path, vocab_size: int = ROBERTA_VOCAB) -> Path:
    """A byte-level BPE vocabulary of roberta-base's size without merges (every byte is a token)."""
    folder.mkdir(parents=True, exist_ok=True)
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = {}, 0
    for byte in range(256):  # GPT-2's reversible byte -> visible character table
        if byte in printable:
            codes[byte] = chr(byte)
        else:
            codes[byte] = chr(256 + extra)
            extra += 1
    vocab = {tok: i for i, tok in enumerate(["<s>", "<pad>", "</s>", "<unk>"])}
    for byte in range(256):
        vocab.setdefault(codes[byte], len(vocab))
    while len(vocab) < vocab_size - 1:
        vocab[f"<standin_{len(vocab)}>"] = len(vocab)
    vocab["<mask>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return folder


def matmul_peak(seconds: float = 3.0, n: int = 2048, dtype=None, device: str = "cpu") -> float:
    """GFLOP/s of repeated (n x n) @ (n x n) products in ``dtype`` (default fp32) on ``device``."""
    import torch

    dtype = dtype or torch.float32
    a, b = torch.randn(n, n).to(device, dtype), torch.randn(n, n).to(device, dtype)
    out = torch.empty(n, n, dtype=dtype, device=device)
    for _ in range(2):
        torch.mm(a, b, out=out)
    synchronize(device)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        torch.mm(a, b, out=out)
        synchronize(device)
        count += 1
    return 2.0 * n ** 3 * count / (time.perf_counter() - started) / 1e9


def synchronize(device) -> None:
    """Wait for queued GPU work (timings on CUDA); nothing on the CPU."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_gb(device) -> float:
    """Peak resident memory of the process on the CPU; peak allocated GPU memory on CUDA."""
    import torch

    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return peak_rss_gb()


def peak_rss_gb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e9
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def build(work_dir: Path, method_args: Optional[Dict] = None, precision: str = "fp32", device: str = "cpu"):
    """(method, batch) at real size with random weights, dgsct-official preset, LLP classification;
    frozen towers stored in ``precision``'s dtype; method and batch on ``device``."""
    import torch

    from ..encoders import specs
    from ..encoders.tokenizers import expected_tokenizer_location
    from ..engine.build import TowerCache, build_run, resolve_run_config
    from ..precision import frozen_dtype_for

    explicit = {"method": "dgsct", "task": "llp_cls", "preset": "dgsct-official", "seed": 0,
                "model.clip_weights": "none", "model.clap_weights": "none", "data.feature_cache": False,
                "train.precision": precision, "model.frozen_dtype": frozen_dtype_for(precision),
                "train.device": device}
    explicit.update({f"method.{k}": v for k, v in (method_args or {}).items()})
    cfg = resolve_run_config(demo_layers=False, **explicit)
    _, folder = expected_tokenizer_location(specs.clap_arch(cfg.model.clap_arch).text)
    if not ((folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()):
        cfg.model.clap_tokenizer = str(write_standin_roberta_tokenizer(work_dir / "roberta-standin"))
    run = build_run(cfg, data="none", towers=TowerCache())
    method, backbone, names = run.method, run.backbone, run.class_names
    g = torch.Generator().manual_seed(0)
    b, t = 2, 10
    labels = torch.zeros(b, len(names))
    labels[0, 1] = labels[1, 2] = 1.0
    batch = {
        "frames": torch.randn(b, t, 3, backbone.image_size, backbone.image_size, generator=g),
        "audio": 0.1 * torch.randn(b, t, backbone.audio_rate, generator=g),
        "labels": labels,
        "segment_labels": torch.full((b, t), -1, dtype=torch.long),
    }
    from ..engine.device import resolve_device, to_device

    target = resolve_device(device)
    return method.to(target), to_device(batch, target), cfg


def child(work_dir: str, repeats: int, method_args_json: str = "{}", runtime_json: str = "{}",
          precision: str = "fp32", device: str = "cpu", warmup: str = str(WARMUP_STEPS),
          flops: str = "1", breakdown: str = "0") -> Dict[str, object]:
    """The measurement (runs in its own process; see the module docstring)."""
    from ..runtime import configure, denormals_flushed, loaded_allocator

    runtime = json.loads(runtime_json)
    runtime.pop("allocator", None)  # chosen by the parent through the environment
    configure(**runtime)  # first: OpenMP workers inherit the denormal setting
    import torch

    from ..engine.device import resolve_device
    from ..engine.trainer import make_optimizer
    from ..precision import autocast_context, dtype_of

    dtype = dtype_of(precision)
    target = resolve_device(device)
    peak = matmul_peak(dtype=dtype, device=target)
    started = time.perf_counter()
    method, batch, cfg = build(Path(work_dir), json.loads(method_args_json), precision, device)
    build_seconds = time.perf_counter() - started
    params = method.trainable_parameters()
    optimizer = make_optimizer(params, cfg)

    def autocast():
        return autocast_context(target.type, precision)

    method.eval()
    with torch.no_grad(), autocast():  # the untrained model's logits: compared across precisions by the parent
        torch.save(method(batch).fused.float().cpu(), Path(work_dir) / f"fused-{precision}.pt")

    def train_step() -> float:
        method.train()
        with autocast():
            scores = method(batch)
            loss, _ = method.loss(batch, scores, 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip, foreach=True)
        optimizer.step()
        synchronize(target)
        return float(loss.detach())

    t0 = time.perf_counter()
    warmup_steps = max(1, int(warmup))
    for _ in range(warmup_steps):
        train_step()
    warmup = (time.perf_counter() - t0) / warmup_steps
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        train_step()
        times.append(time.perf_counter() - t0)
    method.eval()
    eval_times = []
    with torch.no_grad(), autocast():
        for _ in range(2):
            t0 = time.perf_counter()
            method(batch)
            synchronize(target)
            eval_times.append(time.perf_counter() - t0)
    rss = peak_memory_gb(target)

    # the peak again at the end; the larger of the two is used (conservative on a machine whose speed drifts)
    peak = max(peak, matmul_peak(dtype=dtype, device=target))
    from torch.utils.flop_counter import FlopCounterMode

    step = statistics.median(times)
    count_flops, flops = flops == "1", 0
    if count_flops:
        counter = FlopCounterMode(display=False)
        with counter:
            train_step()
        flops = counter.get_total_flops()
    gflops = flops / step / 1e9
    kinds = profile_kinds(train_step, target.type) if breakdown == "1" else None
    figures = {
        "benchmark": "dgsct",
        "precision": precision,
        "device": str(target),
        "model": f"{cfg.model.clip_arch} + {cfg.model.clap_arch}, random weights, preset dgsct-official",
        "batch": "llp_cls, 2 videos x 10 segments",
        "threads": torch.get_num_threads(),
        "runtime": {"denormals_flushed": denormals_flushed(), "allocator": loaded_allocator(), **runtime},
        "trainable_parameters": int(sum(p.numel() for p in params)),
        "build_seconds": round(build_seconds, 1),
        "warmup_step_seconds": round(warmup, 2),
        "step_seconds_each": [round(x, 2) for x in times],
        "step_seconds": round(step, 2),
        "eval_seconds": round(statistics.median(eval_times), 2),
        "peak_rss_gb": round(rss, 2),  # on CUDA: the peak allocated GPU memory
        "peak_memory_gb": round(rss, 2),
        "step_tflop": round(flops / 1e12, 3),
        "gflops": round(gflops, 1),
        "matmul_peak_gflops": round(peak, 1),
        "fraction_of_peak": round(gflops / peak, 3),
    }
    if kinds is not None:
        figures["time_by_kind"] = {kind: round(seconds, 3) for kind, seconds in kinds.items()}
    return figures


def report(fig: Dict[str, object]) -> str:
    a = ANCHOR
    lines = [
        f"DG-SCT training step ({fig['model']}; {fig['batch']}; {fig['threads']} threads; "
        f"precision {fig.get('precision', 'fp32')})",
        f"  trainable parameters   {fig['trainable_parameters']:,}",
        f"  step time (median)     {fig['step_seconds']:.2f} s   each {fig['step_seconds_each']}   "
        f"anchor {a['step_seconds']} s -> ratio {fig['step_seconds'] / a['step_seconds']:.2f} (target <= 0.50)",
        f"  eval forward           {fig['eval_seconds']:.2f} s   anchor {a['eval_seconds']} s -> ratio "
        f"{fig['eval_seconds'] / a['eval_seconds']:.2f}",
        f"  peak {'RSS       ' if fig.get('device', 'cpu') == 'cpu' else 'GPU memory'}        {fig['peak_rss_gb']:.2f} GB  anchor {a['peak_rss_gb']} GB -> ratio "
        f"{fig['peak_rss_gb'] / a['peak_rss_gb']:.2f} (target <= 0.50)",
        f"  FLOP per step          {fig['step_tflop']:.3f} TFLOP  anchor {a['step_tflop']} TFLOP",
        f"  achieved               {fig['gflops']:.1f} GFLOP/s = {100 * fig['fraction_of_peak']:.1f} % of the measured "
        f"{fig['matmul_peak_gflops']:.0f} GFLOP/s matmul peak (anchor {a['gflops']:.0f} GFLOP/s, "
        f"{100 * a['gflops'] / a['matmul_peak_gflops']:.0f} %; target >= 50 %)",
    ]
    if "time_by_kind" in fig:
        lines.append(report_kinds(fig["time_by_kind"]))
    return "\n".join(lines)


def run(work_dir: Path, repeats: int = 3, method_args: Optional[Dict] = None, runtime: Optional[Dict] = None,
        precision: str = "fp32", device: str = "cpu", warmup: int = WARMUP_STEPS, flops: bool = True,
        breakdown: bool = False) -> Dict[str, object]:
    """Run ``child`` in a fresh interpreter (with the variant's allocator) and return its figures."""
    from ..runtime import allocator_environment

    runtime = dict(runtime or {})
    env = allocator_environment(runtime.get("allocator", "system"))
    code = ("import json, sys; from avfewshot.bench.dgsct import child; "
            "print('AVFEWSHOT_BENCH ' + json.dumps(child(*sys.argv[1:2], int(sys.argv[2]), *sys.argv[3:])))")
    proc = subprocess.run([sys.executable, "-c", code, str(work_dir), str(repeats), json.dumps(method_args or {}),
                           json.dumps(runtime), precision, device, str(warmup), "1" if flops else "0",
                           "1" if breakdown else "0"],
                          capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("AVFEWSHOT_BENCH "):
            return json.loads(line[len("AVFEWSHOT_BENCH "):])
    raise RuntimeError(f"the benchmark process failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def main(args) -> int:
    from ..errors import UserError

    repeats = args.repeats if getattr(args, "repeats", None) else 3
    labels = list(getattr(args, "variants", None) or VARIANTS)
    unknown = [label for label in labels if label not in VARIANTS]
    if unknown:
        raise UserError(f"bench dgsct --variants: unknown {', '.join(unknown)}; valid: {', '.join(VARIANTS)}")
    precisions = list(getattr(args, "precision", None) or ["fp32"])
    from ..precision import dtype_of

    for precision in precisions:
        dtype_of(precision)
    device = getattr(args, "device", None) or "cpu"
    warmup = getattr(args, "warmup", None) or WARMUP_STEPS
    flops = not getattr(args, "no_flops", False)
    breakdown = bool(getattr(args, "breakdown", False))
    rounds = 1 if getattr(args, "rounds", None) is None else args.rounds
    if rounds < 1:
        raise UserError(f"bench dgsct --rounds {rounds}: give 1 or more (2 measures fp32 bf16, then bf16 fp32)")
    from ..engine.device import resolve_device

    if resolve_device(device).type not in ("cpu", "cuda"):  # a one-line error without a GPU, before any work
        raise UserError(f"bench dgsct --device {device}: choose cpu, cuda or cuda:N")
    work = getattr(args, "work_dir", None)
    figures = {}
    with tempfile.TemporaryDirectory(prefix="avfewshot-bench-dgsct-") as temp:
        work_dir = Path(work) if work else Path(temp)
        work_dir.mkdir(parents=True, exist_ok=True)
        for label in labels:
            method_args, runtime = VARIANTS[label]
            runs = measure_rounds(label, precisions, rounds, lambda p: run(
                work_dir, repeats, method_args, runtime, p, device, warmup, flops, breakdown))
            for precision, measured in runs.items():
                key = label if precisions == ["fp32"] else f"{label}/{precision}"
                figures[key] = pool_rounds(measured)
                if len(measured) > 1:
                    print(f"[{key}: {len(measured)} rounds pooled]")
                    print(report(figures[key]))
            for precision in runs:
                comparison = compare_to_fp32(figures, label, precision, work_dir)
                if comparison:
                    key = f"{label}/{precision}"
                    figures[key]["against_fp32"] = comparison
                    print(f"[{key} against {label}/fp32]")
                    print(report_comparison(comparison))
    out = getattr(args, "out", None)
    if out:
        Path(out).write_text(json.dumps({"variants": figures, "anchor": ANCHOR}, indent=2))
    return 0


def measure_rounds(label: str, precisions, rounds: int, measure) -> Dict[str, list]:
    """``measure(precision)`` for each precision, ``rounds`` times, the order reversed every other round
    (fp32 bf16, bf16 fp32, ...: a shared machine's drift falls on both alike). Figures per precision, in
    round order; a variant whose allocator is missing is reported and left out."""
    from ..errors import UserError

    runs: Dict[str, list] = {p: [] for p in precisions}
    for r in range(rounds):
        for precision in (precisions if r % 2 == 0 else precisions[::-1]):
            key = label if precisions == ["fp32"] else f"{label}/{precision}"
            tag = f", round {r + 1} of {rounds}" if rounds > 1 else ""
            try:
                fig = measure(precision)
            except UserError as exc:  # e.g. tcmalloc not installed
                print(f"[{key}: skipped: {exc}]")
                return {}
            method_args, runtime = VARIANTS[label]
            print(f"[{key}{tag}: method options {method_args or 'defaults'}, runtime {runtime or 'defaults'}]")
            print(report(fig))
            runs[precision].append(fig)
    return runs


def pool_rounds(figs: list) -> Dict[str, object]:
    """One precision's figures over several rounds: step times pooled (median of all), eval the median of
    the rounds' medians, peak memory and matmul peak the largest, time by kind the median per kind."""
    if len(figs) == 1:
        return figs[0]
    out = dict(figs[0])
    each = [t for f in figs for t in f["step_seconds_each"]]
    out["step_seconds_each"] = each
    out["step_seconds"] = round(statistics.median(each), 2)
    out["step_seconds_by_round"] = [f["step_seconds"] for f in figs]
    out["eval_seconds"] = round(statistics.median(f["eval_seconds"] for f in figs), 2)
    for key in ("peak_rss_gb", "peak_memory_gb", "matmul_peak_gflops"):
        out[key] = max(f[key] for f in figs)
    out["warmup_step_seconds"] = round(statistics.median(f["warmup_step_seconds"] for f in figs), 2)
    out["gflops"] = round(out["step_tflop"] * 1e3 / out["step_seconds"], 1)
    out["fraction_of_peak"] = round(out["gflops"] / out["matmul_peak_gflops"], 3)
    if all("time_by_kind" in f for f in figs):
        out["time_by_kind"] = {k: round(statistics.median(f["time_by_kind"][k] for f in figs), 3)
                               for k in figs[0]["time_by_kind"]}
    out["rounds"] = len(figs)
    return out


def logits_relative_error(work_dir: Path, precision: str) -> Optional[float]:
    """||fused_p - fused_fp32|| / ||fused_fp32|| of the untrained model's eval logits (same weights)."""
    import torch

    ref, got = work_dir / "fused-fp32.pt", work_dir / f"fused-{precision}.pt"
    if not (ref.is_file() and got.is_file()):
        return None
    a, b = torch.load(ref), torch.load(got)
    return float((b - a).norm() / a.norm().clamp_min(1e-30))


def compare_to_fp32(figures: Dict[str, Dict], label: str, precision: str, work_dir: Path) -> Dict[str, float]:
    """Ratios of a low-precision run to the fp32 run of the same variant (measured in this invocation)."""
    base = figures.get(f"{label}/fp32")
    got = figures.get(f"{label}/{precision}")
    if precision == "fp32" or base is None or got is None:
        return {}
    out = {"step_ratio": round(got["step_seconds"] / base["step_seconds"], 3),
           "eval_ratio": round(got["eval_seconds"] / base["eval_seconds"], 3),
           "peak_rss_ratio": round(got["peak_rss_gb"] / base["peak_rss_gb"], 3)}
    if "step_seconds_by_round" in base and "step_seconds_by_round" in got:
        out["step_ratio_by_round"] = [round(g / b, 3) for g, b in zip(got["step_seconds_by_round"],
                                                                      base["step_seconds_by_round"])]
    if "time_by_kind" in base and "time_by_kind" in got:
        out["kind_ratios"] = {k: round(r, 3) for k, r in kind_ratios(got["time_by_kind"], base["time_by_kind"]).items()}
    error = logits_relative_error(work_dir, precision)
    if error is not None:
        out["fused_logits_relative_error"] = round(error, 5)
        if precision in LOGITS_BOUND:
            out["logits_bound"] = LOGITS_BOUND[precision]
    return out


def report_comparison(c: Dict[str, float]) -> str:
    rounds = ""
    if "step_ratio_by_round" in c:
        rounds = "; by round " + ", ".join(f"x{r:.2f}" for r in c["step_ratio_by_round"])
    text = (f"  against fp32           step x{c['step_ratio']:.2f} (target <= 0.50{rounds}), eval x{c['eval_ratio']:.2f}, "
            f"peak RSS x{c['peak_rss_ratio']:.2f} (target <= 0.75)")
    if "fused_logits_relative_error" in c:
        text += f", fused logits relative error {c['fused_logits_relative_error']:.2e}"
        if "logits_bound" in c:
            text += f" (bound {c['logits_bound']:.0e})"
    if "kind_ratios" in c:
        text += "\n" + report_kind_ratios(c["kind_ratios"])
    return text
