"""Command-line front end: parses arguments, then calls into the library.

Each area of the library contributes its sub-commands through an ``add_commands(subparsers)``
function in a module of ``avfewshot/commands/``; those modules import nothing heavy at import time, so
``avfewshot --help`` is instant and never touches torch or the network.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

# Modules that contribute sub-commands, in help order.
COMMAND_MODULES = [
    "avfewshot.commands.run",          # run, params
    "avfewshot.commands.supervised",   # supervised
    "avfewshot.commands.experiments",  # sweep, aggregate, plot, pretrain, viz
    "avfewshot.commands.data",         # data synth|check
    "avfewshot.commands.splits",       # splits make
    "avfewshot.commands.models",       # models list
    "avfewshot.commands.bench",        # bench <name>
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avfewshot",
        description="Few-shot and zero-shot audio-visual prompt learning on frozen CLIP + CLAP.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"avfewshot {__version__}")
    from .runtime import add_cli_options

    add_cli_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


# Third-party deprecation notices that a user can do nothing about (timm's old import path inside
# laion-clap's HTS-AT, torch.meshgrid's indexing default inside its window attention).
QUIET_WARNINGS = ("Importing from timm.models.layers is deprecated", "torch.meshgrid: in an upcoming release")


def main(argv: Optional[List[str]] = None) -> int:
    import warnings

    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # `key=value` overrides may follow any option (argparse stops collecting them at an option)
        if hasattr(args, "overrides") and all("=" in item and not item.startswith("-") for item in extra):
            args.overrides = list(args.overrides or []) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .errors import UserError
    from .runtime import adopt_allocator, apply_cli_options, configure

    apply_cli_options(args)
    try:
        if argv is None:  # a real command line: may restart itself with the requested allocator
            adopt_allocator(list(sys.orig_argv))
        configure()  # before any torch work: OpenMP workers inherit the denormal setting
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"avfewshot: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("avfewshot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
