"""Demo test accuracy of every few-shot method in fp32 and bf16 (issue 13's acceptance table).

For each method: the demo main job's settings (``--recipes runners``: ``runners/<method>.yaml`` plus the demo
layer), one task (default ``ave``: 480 scored test segments; on the video-level tasks one clip is 2 points and
a 16-shot run can move by more than 5 points when the training arithmetic changes slightly), 16 shots, one seed, trained and tested three times: fp32; ``train.precision=bf16`` with the
frozen towers in fp32; ``train.precision=bf16 model.frozen_dtype=bf16``. Prints a markdown table and writes
it, with every run's accuracy and recorded precision, as JSON next to the results.

    PYTHONPATH=$PWD python scripts/precision_demo_table.py [RESULTS] [--methods M ...] [--task T] [--seed S]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METHODS = ("zeroshot", "linear_probe", "coop", "kgcoop", "cocoop", "clip_adapter", "maple", "dgsct")
SETTINGS = {
    "fp32": ["train.precision=fp32", "model.frozen_dtype=fp32"],
    "bf16 (frozen fp32)": ["train.precision=bf16", "model.frozen_dtype=fp32"],
    "bf16 (frozen bf16)": ["train.precision=bf16", "model.frozen_dtype=bf16"],
}

SLUGS = {"fp32": "fp32", "bf16 (frozen fp32)": "bf16-frozen-fp32", "bf16 (frozen bf16)": "bf16-frozen-bf16"}


def demo_run(method: str, setting: str, results: Path, shots: int = 16, seed: int = 1, task: str = "ave") -> dict:
    """One demo run; returns its metrics dict."""
    import avfewshot
    from avfewshot.api import make_config

    recipe = REPO / "runners" / f"{method}.yaml"
    cfg = make_config(str(recipe) if recipe.is_file() else None, SETTINGS[setting], task=task, method=method,
                      shots=0 if method == "zeroshot" else shots, seed=seed,
                      results_dir=str(results / SLUGS[setting]))
    return avfewshot.run(cfg=cfg, progress=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="results/precision_demo")
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--task", default="ave", choices=["ave", "ave_cls", "llp_cls"])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    results = Path(args.results)
    rows = {}
    for method in args.methods:
        rows[method] = {}
        for setting in SETTINGS:
            metrics = demo_run(method, setting, results / args.task, seed=args.seed, task=args.task)
            rows[method][setting] = {"accuracy": metrics["test"]["accuracy"],
                                     "precision": metrics["environment"]["precision"]}
            print(f"[{method} / {setting}] test accuracy {metrics['test']['accuracy']:.2f}", flush=True)
    header = "| method | " + " | ".join(SETTINGS) + " | max |Δ| |"
    lines = [header, "|" + "---|" * (len(SETTINGS) + 2)]
    for method, by in rows.items():
        accs = [by[s]["accuracy"] for s in SETTINGS]
        delta = max(abs(a - accs[0]) for a in accs[1:])
        lines.append(f"| {method} | " + " | ".join(f"{a:.2f}" for a in accs) + f" | {delta:.2f} |")
    print("\n".join(lines))
    results.mkdir(parents=True, exist_ok=True)
    (results / "precision_demo_table.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
