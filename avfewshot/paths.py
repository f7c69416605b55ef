"""Default locations. Everything is overridable; nothing defaults to a path inside the repository
except the project folders (splits/, results/, prompts/) that a recipe names relative to it."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent  # the checkout (prompts/, splits/, runners/ live here)


def cache_root() -> Path:
    """Root for caches, the demo data and user weights: $AVFEWSHOT_CACHE, else $XDG_CACHE_HOME/avfewshot."""
    env = os.environ.get("AVFEWSHOT_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "avfewshot"


def weights_dir() -> Path:
    """Where released checkpoints are expected: $AVFEWSHOT_WEIGHTS, else <cache_root>/weights."""
    env = os.environ.get("AVFEWSHOT_WEIGHTS")
    return Path(env).expanduser() if env else cache_root() / "weights"


def built_weights_dir() -> Path:
    """Where weights built on first use (the demo towers) go: <cache_root>/built-weights."""
    return cache_root() / "built-weights"


def decoded_cache_dir() -> Path:
    return cache_root() / "decoded"


def feature_cache_dir() -> Path:
    return cache_root() / "features"


def demo_dir() -> Path:
    return cache_root() / "demo"


def runners_dir() -> Path:
    """Recipes: $AVFEWSHOT_RUNNERS, else the project's runners/ folder."""
    env = os.environ.get("AVFEWSHOT_RUNNERS")
    return Path(env) if env else PROJECT_DIR / "runners"


def prompts_dir() -> Path:
    env = os.environ.get("AVFEWSHOT_PROMPTS")
    return Path(env) if env else PROJECT_DIR / "prompts"
