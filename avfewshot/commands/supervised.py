"""``avfewshot supervised``: the fully supervised runners (AVE, AVVP, AVS S4 / MS3, AVQA) on the shared engine."""
from __future__ import annotations

from .options import ListOption, all_overrides

TASK_HELP = "ave (CMBS) | avvp (MGN) | avs_s4 | avs_ms3 (TPAVI) | avqa (ST-AVQA)"


def add_commands(sub) -> None:
    p = sub.add_parser("supervised", help="train and evaluate a fully supervised runner (resumes; skips finished runs)")
    p.add_argument("--task", required=True, help=TASK_HELP)
    p.add_argument("--data-root", default=None, help="dataset root; omit to run the tiny configuration on the task's synthetic demo")
    p.add_argument("--preset", default=None, help="tiny (default without --data-root) | official (real size, released recipe)")
    p.add_argument("--seed", type=int, default=None, help="training seed (default 1)")
    p.add_argument("--seeds", nargs="+", action=ListOption, item_type=int, default=None,
                   help="run several seeds one after another (--seeds 1 2 3 or 1,2,3)")
    p.add_argument("--results", "--results-dir", dest="results", default=None, help="results folder (default results/)")
    p.add_argument("--force", action="store_true", help="run again even if the run is finished")
    p.add_argument("--no-progress", action="store_true", help="no per-epoch lines")
    p.add_argument("--params", action="store_true", help="print trainable / total parameters per module (meta device) and exit")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.lr=0.001 model.double_sigmoid=true")
    p.set_defaults(func=_supervised)


def _supervised(args) -> int:
    from ..api import make_supervised_config, run_supervised
    from ..errors import UserError

    if args.seed is not None and args.seeds:
        raise UserError("give --seed or --seeds, not both")
    explicit = {"task": args.task, "preset": args.preset, "data.root": args.data_root, "results_dir": args.results}
    if args.params:
        from ..engine.supervised_params import supervised_parameter_lines

        if args.preset is None:
            explicit["preset"] = "official"
        cfg = make_supervised_config(overrides=all_overrides(args), **explicit)
        print("\n".join(supervised_parameter_lines(cfg)))
        return 0
    for seed in args.seeds or [args.seed]:
        run_supervised(overrides=all_overrides(args), force=args.force, progress=not args.no_progress, seed=seed, **explicit)
    return 0
