"""``avfewshot sweep``, ``aggregate``, ``plot`` and ``pretrain`` (nothing heavy is imported here)."""
from __future__ import annotations

import sys

from .options import ListOption as _ListOption
from .options import all_overrides as _overrides


def add_commands(sub) -> None:
    v = sub.add_parser("viz", help="DG-SCT attention maps over frames and spectrograms, or t-SNE of the features")
    v.add_argument("kind", choices=["attention", "tsne"])
    v.add_argument("--run", required=True, help="a finished dgsct run folder (results/<task>/dgsct/shot<K>/seed<S>)")
    v.add_argument("--out", required=True, help="output image (.png or .pdf)")
    v.add_argument("--clips", type=int, nargs="*", default=[0, 1], help="test-clip indices (attention)")
    v.add_argument("--data-root", default=None, help="dataset root, if not the run's")
    v.set_defaults(func=_viz)
    p = sub.add_parser(
        "sweep",
        help="run a task x method x shots x seed grid (skips finished runs, resumes interrupted ones)",
        description="Run every missing cell of the grid in this process. Zero-shot methods run once per seed at "
                    "0 shots. A failing run is reported and the sweep goes on; the exit code is 1 if any failed.",
    )
    p.add_argument("--task", "--tasks", dest="tasks", nargs="+", action=_ListOption, default=["llp_cls"],
                   help="task(s): ave ave_cls llp_cls (default llp_cls)")
    p.add_argument("--methods", nargs="+", action=_ListOption, required=True, help="registered method names")
    p.add_argument("--shots", nargs="+", action=_ListOption, item_type=int, default=[1, 2, 4, 8, 16],
                   help="shot counts (default 1 2 4 8 16)")
    p.add_argument("--seeds", nargs="+", action=_ListOption, item_type=int, default=[1, 2, 3], help="seeds (default 1 2 3)")
    p.add_argument("--preset", default=None, help="paper (default) | dgsct-official")
    p.add_argument("--config", default=None, help="one recipe YAML for every method")
    p.add_argument("--recipes", default=None, metavar="DIR", help="a folder of <method>.yaml recipes (e.g. runners/)")
    p.add_argument("--schedule", default=None, metavar="FILE",
                   help="YAML of per-(method, shots) keys, e.g. epochs per shot count (runners/paper_schedule.yaml)")
    p.add_argument("--data-root", action="append", default=None, metavar="[DATASET=]DIR",
                   help="dataset root, or one per dataset (--data-root ave=/data/AVE --data-root llp=/data/LLP); "
                        "omit to run on the embedded demo")
    p.add_argument("--results", default="results", help="results folder (default results/)")
    p.add_argument("--init", default=None, help="start every run from this pretraining bundle")
    p.add_argument("--log", choices=["tensorboard"], default=None, help="also log every run to TensorBoard (off by default)")
    p.add_argument("--dry-run", action="store_true", help="list the grid and the state of each run, run nothing")
    p.add_argument("--no-progress", action="store_true", help="no per-run progress bars (grid progress lines stay)")
    p.add_argument("--wait", action="store_true",
                   help="with other sweeps on the same --results: wait for the cells they run (default: leave them)")
    p.add_argument("--claim-timeout", type=float, default=None, metavar="SECONDS",
                   help="a cell claimed by a process on another host that gave no sign of life for this long is "
                        "taken over (default 1800)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every run, e.g. train.epochs=5")
    p.set_defaults(func=_sweep)

    a = sub.add_parser("aggregate", help="mean ± std over seeds of every finished run: a CSV and a Markdown table")
    a.add_argument("--results", default="results", help="results folder to scan (default results/)")
    a.add_argument("--out-prefix", default=None, metavar="FILE",
                   help="write FILE.csv and FILE.md (default <results>/summary)")
    a.add_argument("--metric", default="accuracy", help="test metric of the main column (default accuracy)")
    a.add_argument("--ci95", action="store_true", help="add the 95%% interval half-width 1.96·std/√n")
    a.set_defaults(func=_aggregate)

    q = sub.add_parser("plot", help="shot-vs-accuracy curves (one panel per task, mean ± std band, zero-shot references)")
    q.add_argument("--results", default="results", help="results folder to scan (default results/)")
    q.add_argument("--out", required=True, help="figure file: .png, .pdf or .svg")
    q.add_argument("--metric", default="accuracy", help="test metric on the y axis (default accuracy)")
    q.add_argument("--tasks", nargs="+", action=_ListOption, default=None, help="panels to draw (default: every task found)")
    q.add_argument("--title", default=None, help="figure title")
    q.set_defaults(func=_plot)

    t = sub.add_parser("pretrain", help="pretrain a method on the full VGG-Sound 40K train split and save a transfer bundle")
    t.add_argument("--dataset", default="vggsound40k", help="pretraining dataset (vggsound40k)")
    t.add_argument("--data-root", default=None, help="dataset root; omit for the synthetic VGG-Sound 40K demo")
    t.add_argument("--method", default="dgsct", help="method to pretrain (default dgsct)")
    t.add_argument("--out", default=None, metavar="BUNDLE", help="bundle file (default bundles/<method>_<dataset>_seed<S>.pt)")
    t.add_argument("--seed", type=int, default=None, help="training seed (default 1)")
    t.add_argument("--preset", default=None, help="paper (default) | dgsct-official")
    t.add_argument("--config", default=None, help="a recipe YAML file")
    t.add_argument("--results", default="results/pretrain", help="folder of the pretraining run (default results/pretrain)")
    t.add_argument("--log", choices=["tensorboard"], default=None, help="also log to TensorBoard (off by default)")
    t.add_argument("--force", action="store_true", help="train again even if the pretraining run is finished")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=5")
    t.set_defaults(func=_pretrain)


def _sweep(args) -> int:
    from ..errors import UserError
    from ..experiments.claims import DEFAULT_TIMEOUT
    from ..experiments.sweep import describe_plan, plan_sweep, run_planned

    overrides = _overrides(args) + ([f"init={args.init}"] if args.init else []) + _log_overrides(args)
    plan = plan_sweep(args.tasks, args.methods, args.shots, args.seeds, preset=args.preset, config=args.config,
                      overrides=overrides, data_root=_data_roots(args.data_root), results_dir=args.results,
                      recipes_dir=args.recipes, schedule=args.schedule)
    if args.dry_run:
        print(describe_plan(plan))
        return 0
    timeout = DEFAULT_TIMEOUT if args.claim_timeout is None else args.claim_timeout
    if not timeout > 0:
        raise UserError(f"--claim-timeout must be a number of seconds > 0, got {args.claim_timeout}")
    results = run_planned(plan, progress=not args.no_progress, wait=args.wait, claim_timeout=timeout)
    return 1 if results.failures else 0


def _log_overrides(args) -> list:
    return [f"log=[{args.log}]"] if getattr(args, "log", None) else []


def _data_roots(values):
    """``["DIR"]`` -> "DIR"; ``["ave=A", "llp=B"]`` -> {"ave": "A", "llp": "B"} (a bare DIR is the fallback)."""
    if not values:
        return None
    if len(values) == 1 and "=" not in values[0]:
        return values[0]
    roots = {}
    for value in values:
        dataset, sep, folder = value.partition("=")
        roots[dataset.strip().lower() if sep else "*"] = folder if sep else value
    return roots


def _aggregate(args) -> int:
    from pathlib import Path

    from ..experiments.aggregate import aggregate, table_markdown, write_tables

    table = aggregate(args.results, args.metric)
    for problem in table.problems:
        print(f"avfewshot aggregate: {problem}", file=sys.stderr)
    if not table.rows:
        print(f"avfewshot aggregate: no finished run with a test {args.metric!r} under {args.results}", file=sys.stderr)
        return 1
    prefix = args.out_prefix or Path(args.results) / "summary"
    csv_path, md_path = write_tables(table, prefix, ci95=args.ci95)
    print(table_markdown(table, ci95=args.ci95))
    print(f"[avfewshot] wrote {csv_path} and {md_path}")
    return 0


def _plot(args) -> int:
    from ..outputs import check_output_file
    from ..experiments.aggregate import aggregate
    from ..experiments.plot import FORMATS, plot_table, save_figure

    if args.out.rsplit(".", 1)[-1].lower() in FORMATS:  # (a bad extension is reported by save_figure)
        check_output_file(args.out, "--out")
    table = aggregate(args.results, args.metric)
    for problem in table.problems:
        print(f"avfewshot plot: {problem}", file=sys.stderr)
    out = save_figure(plot_table(table, args.tasks, args.title), args.out)
    print(f"[avfewshot] wrote {out}")
    return 0


def _pretrain(args) -> int:
    from ..experiments.pretrain import pretrain

    pretrain(dataset=args.dataset, method=args.method, data_root=args.data_root, out=args.out, config=args.config,
             overrides=_overrides(args) + _log_overrides(args), seed=args.seed, preset=args.preset, results_dir=args.results,
             progress=not args.no_progress, force=args.force)
    return 0


def _viz(args) -> int:
    from ..experiments.viz import run_viz

    print(f"[avfewshot] wrote {run_viz(args.kind, args.run, args.out, args.clips, args.data_root)}")
    return 0
