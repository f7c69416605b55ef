"""``avfewshot data synth`` and ``avfewshot data check`` (heavy imports happen in the handlers)."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ..data.facts import DATASETS, MEDIA_LAYOUTS, SYNTH_LAYOUTS


def add_commands(sub: "argparse._SubParsersAction") -> None:
    data = sub.add_parser("data", help="synthesise or check a dataset root")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION")

    synth = data_sub.add_parser(
        "synth",
        help="write a synthetic dataset (official annotation formats + small mp4s)",
        description="Write annotation files in the official format of DATASET and small mp4 files whose "
        "colours and tones carry the labels; also writes manifest.json with the true per-second labels.",
    )
    synth.add_argument("--dataset", required=True, choices=DATASETS)
    synth.add_argument("--root", required=True, help="output folder (created)")
    synth.add_argument("--classes", type=int, default=None, help="use the first N classes (default 4)")
    synth.add_argument("--clips-per-class", type=int, default=2, help="training clips per class (default 2)")
    synth.add_argument("--eval-clips-per-class", type=int, default=None,
                       help="val / test clips per class (default: a quarter of --clips-per-class, at least 1)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--layout", choices=SYNTH_LAYOUTS, default="raw",
                       help="raw: video/<id>.mp4; dgsct: frames/<id>/%%08d.jpg + wave/<id>.npy; both")
    synth.add_argument("--wav", action="store_true", help="also write audio/<id>.wav beside each video (LLP style)")
    synth.set_defaults(func=_synth)

    check = data_sub.add_parser(
        "check",
        help="verify a dataset root against its annotations",
        description="Read the annotations, decode every clip's media and report missing, unreadable, "
        "truncated or too-short media, missing audio streams, odd frame counts and malformed rows. "
        "Exits with 1 when the root is not usable.",
    )
    check.add_argument("--dataset", required=True, choices=DATASETS)
    check.add_argument("--root", required=True, help="dataset root (annotation files + media)")
    check.add_argument("--layout", choices=MEDIA_LAYOUTS, default="raw")
    check.add_argument("--report", default=None, help="also write the report as JSON to this file")
    check.add_argument("--tolerate", type=float, default=0.0,
                       help="fraction of clips with bad media still considered usable (default 0)")
    check.add_argument("--pad-short", action="store_true", help="accept clips shorter than 10 s (padded) as usable")
    check.set_defaults(func=_check)
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])


def _synth(args: argparse.Namespace) -> int:
    from ..data.synth import make_dataset
    from ..outputs import check_output_dir, output_error

    root = Path(args.root)
    existed = root.exists()
    was_empty = not existed or (root.is_dir() and not any(root.iterdir()))
    check_output_dir(root, "--root")
    try:
        manifest = make_dataset(
            args.dataset, args.root, classes=args.classes, clips_per_class=args.clips_per_class,
            seed=args.seed, layout=args.layout, eval_clips_per_class=args.eval_clips_per_class, wav=args.wav,
        )
    except OSError as exc:  # e.g. the disk filled up while writing media: leave no half dataset behind
        if not existed:
            shutil.rmtree(root, ignore_errors=True)
        elif was_empty:
            for child in list(root.iterdir()):
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
        raise output_error(exc, args.root, "data synth --root") from None
    splits = {}
    for clip in manifest["clips"]:
        splits[clip["split"]] = splits.get(clip["split"], 0) + 1
    counts = ", ".join(f"{n} {s}" for s, n in splits.items())
    print(f"wrote synthetic {args.dataset} to {args.root}: {len(manifest['clips'])} clips ({counts}); "
          f"true labels in {args.root}/manifest.json")
    return 0


def _check(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..data.check import CHECK_SPEC, check_root

    spec = replace(CHECK_SPEC, pad_short=args.pad_short)
    if args.report:  # before minutes of decoding
        from ..outputs import check_output_file

        check_output_file(args.report, "--report")
    report = check_root(args.dataset, args.root, args.layout, spec, tolerate=args.tolerate, progress=True)
    print(report.format())
    if args.report:
        path = report.write_json(args.report, "--report")
        print(f"report written to {path}")
    return 0 if report.usable else 1
