"""Helpers for encoder tests: tokenizer folders and a module-scoped environment."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator

import pytest


def write_degenerate_tokenizer(folder: Path) -> Path:
    """What laion-clap's offline fallback amounts to: only the five special tokens, no merges."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return folder


@contextlib.contextmanager
def encoder_env(root: Path) -> Iterator[Path]:
    """Cache and weights under ``root`` for module-scoped fixtures (function fixtures are not active yet)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AVFEWSHOT_CACHE", str(root / "cache"))
        mp.setenv("AVFEWSHOT_WEIGHTS", str(root / "weights"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield root
