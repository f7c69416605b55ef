"""``avfewshot run`` and ``avfewshot params``."""
from __future__ import annotations


def add_run_arguments(p) -> None:
    p.add_argument("--task", default=None, help="ave | ave_cls | llp_cls (default llp_cls)")
    p.add_argument("--method", default=None, help="a registered method (default dgsct)")
    p.add_argument("--shots", type=int, default=None, help="k shots per class; 0 = zero-shot (no training)")
    p.add_argument("--seed", type=int, default=None, help="split and training seed (default 1)")
    p.add_argument("--preset", default=None, help="paper (default) | dgsct-official")
    p.add_argument("--config", default=None, help="a recipe YAML file (layered over the preset)")
    p.add_argument("--data-root", default=None, help="dataset root; omit to run on the embedded demo")
    p.add_argument("--results", default=None, help="results folder (default results/)")
    p.add_argument("--init", default=None, help="start from a pretraining bundle (zero-shot transfer)")
    p.add_argument("--log", choices=["tensorboard"], default=None, help="also log to TensorBoard (off by default)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.lr=0.002 method.n_ctx=4")


def explicit_from_args(args) -> dict:
    mapping = {
        "task": args.task, "method": args.method, "shots": args.shots, "seed": args.seed,
        "preset": args.preset, "data.root": args.data_root, "results_dir": args.results, "init": args.init,
        "log": [args.log] if getattr(args, "log", None) else None,
    }
    return {k: v for k, v in mapping.items() if v is not None}


def add_commands(sub) -> None:
    p = sub.add_parser("run", help="train and evaluate one method on one task (resumes; skips finished runs)")
    add_run_arguments(p)
    p.add_argument("--force", action="store_true", help="run again even if the run is finished")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)

    q = sub.add_parser("params", help="trainable and total parameter counts by module, at real size, random weights")
    q.add_argument("--method", required=True)
    q.add_argument("--task", default="llp_cls")
    q.add_argument("--preset", default="paper")
    q.add_argument("--clip-arch", default=None, help="override the preset's CLIP architecture (e.g. ViT-B-16)")
    q.add_argument("--depth", type=int, default=2, help="module-name depth of the breakdown")
    q.add_argument("overrides", nargs="*", metavar="key=value")
    q.set_defaults(func=_params)


def _run(args) -> int:
    from ..api import run

    run(config=args.config, overrides=args.overrides, force=args.force, progress=not args.no_progress, **explicit_from_args(args))
    return 0


def _params(args) -> int:
    from ..engine.params import print_parameter_table

    print_parameter_table(args.method, args.task, args.preset, args.clip_arch, args.overrides, args.depth)
    return 0
