"""``avfewshot bench NAME``: run one benchmark module ``avfewshot.bench.<name>`` (its ``main(args)``)."""
from __future__ import annotations

import importlib

BENCHMARKS = {
    "data": "cold-decode vs warm-cache throughput on the synthetic LLP set",
    "zeroshot": "zero-shot evaluation throughput on the demo and time outside the encoders",
    "dgsct": "real-size DG-SCT training step time, peak memory and achieved GFLOP/s",
    "baselines": "CoOp / CLIP-Adapter epoch time with and without the feature cache; CoCoOp truncation",
    "supervised": "real-size supervised AVE / AVVP training step (B=1, T=2): time, peak memory, FLOPs",
}


def add_commands(sub) -> None:
    p = sub.add_parser("bench", help="run a benchmark and print its figures")
    p.add_argument("name", choices=sorted(BENCHMARKS), help="; ".join(f"{k}: {v}" for k, v in BENCHMARKS.items()))
    p.add_argument("--repeats", type=int, default=None, help="measured repetitions (benchmark default if unset)")
    p.add_argument("--out", default=None, help="also write the figures as JSON to this file")
    p.add_argument("--variants", nargs="+", default=None, metavar="LABEL",
                   help="dgsct only: measure these variants (default: all; plain, tcmalloc, lean)")
    p.add_argument("--precision", nargs="+", default=None, choices=("fp32", "bf16", "fp16"),
                   help="measure at these precisions (autocast + frozen towers stored in that dtype; default fp32); "
                        "dgsct reports each against fp32 when both are given")
    p.add_argument("--warmup", type=int, default=None,
                   help="dgsct only: untimed steps before the timed ones (default 4: tcmalloc's steady state)")
    p.add_argument("--no-flops", action="store_true",
                   help="dgsct only: skip the FLOP count (one more step under the counter) on a busy machine")
    p.add_argument("--breakdown", action="store_true",
                   help="dgsct only: one more step under torch.profiler; operators' self time by kind (matmul, "
                        "normalisation, copies, elementwise, ...) and each kind's ratio against fp32")
    p.add_argument("--rounds", type=int, default=None,
                   help="dgsct only: measure each precision N times, the order reversed every other round "
                        "(fp32 bf16, bf16 fp32, ...), and pool them (default 1)")
    p.add_argument("--device", default="cpu",
                   help="dgsct only: cpu (default) | cuda | cuda:N (a one-line error when there is no GPU)")
    p.add_argument("--work-dir", default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--task", default=None, choices=("ave", "avvp"), help="supervised only: which runner (default ave)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    module = importlib.import_module(f"avfewshot.bench.{args.name}")
    return int(module.main(args) or 0)
