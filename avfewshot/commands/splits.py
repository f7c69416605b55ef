"""``avfewshot splits make``: write k-shot split files (imports the generator only when run)."""
from __future__ import annotations

import argparse

from ..data.facts import DATASETS

PROTOCOLS = ("coop", "dgsct")


def add_commands(sub: "argparse._SubParsersAction") -> None:
    splits = sub.add_parser("splits", help="k-shot split files")
    splits_sub = splits.add_subparsers(dest="splits_command", metavar="ACTION")
    make = splits_sub.add_parser(
        "make",
        help="write <out>/<dataset>/<protocol>/shot_<K>-seed_<S>.json",
        description="Draw k-shot train and validation subsets from a dataset's annotation files "
        "(no media needed) and write one JSON file per shot count and seed.",
    )
    make.add_argument("--dataset", required=True, choices=DATASETS)
    make.add_argument("--root", required=True, help="folder holding the annotation files "
                      "(for vggsound: the folder of vggsound.csv or the csv itself)")
    make.add_argument("--shots", type=int, nargs="+", default=[1, 2, 4, 8, 16], metavar="K")
    make.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], metavar="S")
    make.add_argument("--protocol", choices=PROTOCOLS, default="coop",
                      help="coop: seeded random sample per class (default); "
                      "dgsct: first K rows per class in file order (official rule)")
    make.add_argument("--out", default="splits", help="output folder (default: ./splits)")
    make.add_argument("--allow-fewer", action="store_true",
                      help="keep classes with fewer clips than asked and record the shortfall")
    make.set_defaults(func=_make)
    splits.set_defaults(func=lambda args: (splits.print_help(), 2)[1])


def _make(args: argparse.Namespace) -> int:
    from ..data.splits import load_split, make_splits
    from ..outputs import check_output_dir

    check_output_dir(args.out, "--out", create=False)
    paths = make_splits(
        args.dataset, args.root, args.shots, args.seeds,
        protocol=args.protocol, out_dir=args.out, allow_fewer=args.allow_fewer,
    )
    for path in paths:
        split = load_split(path)
        short = f", {len(split['shortfalls'])} shortfall(s)" if split["shortfalls"] else ""
        print(f"wrote {path}: {len(split['train'])} train + {len(split['val'])} val clips{short}")
    return 0
