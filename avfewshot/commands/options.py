"""Command-line option helpers shared by the command modules."""
from __future__ import annotations

import argparse
from typing import List


class ListOption(argparse.Action):
    """A multi-value option (``--shots 1 2 4`` or ``--shots 1,2,4``).

    argparse would swallow trailing ``key=value`` overrides into the last list option
    (``--seeds 1 2 train.epochs=1``); they are handed over to the overrides instead.
    """

    def __init__(self, *args, item_type=str, **kwargs):
        self.item_type = item_type
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        items, trailing = [], []
        for value in values:
            if "=" in value:
                trailing.append(value)
                continue
            for part in filter(None, value.split(",")):
                try:
                    items.append(self.item_type(part))
                except ValueError:
                    parser.error(f"{option_string}: {part!r} is not a valid {self.item_type.__name__}")
        if not items:
            parser.error(f"{option_string} needs at least one value")
        setattr(namespace, self.dest, items)
        namespace.trailing_overrides = list(getattr(namespace, "trailing_overrides", None) or []) + trailing


def all_overrides(args) -> List[str]:
    """The ``key=value`` overrides, including those a ``ListOption`` took from the end of its values."""
    return list(getattr(args, "overrides", None) or []) + list(getattr(args, "trailing_overrides", None) or [])
