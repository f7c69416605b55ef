"""Default locations. Everything is overridable; nothing defaults to a path inside the repository
except the project folders (splits/, results/) that a recipe names relative to it.

The data files (prompt templates, class-name files, demo recipes) are found from any working
directory: inside an installed wheel (``avfewshot/_resources/``, see setup.py), else in the checkout
(``prompts/``, ``runners/demo/``), which is where an editable install reads them.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Optional

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


def _resources_root():
    return resources.files("avfewshot._resources")


def packaged_dir(name: str) -> Optional[Path]:
    """``avfewshot/_resources/<name>`` of an installed wheel; None in a checkout (the folder is not there)."""
    folder = _resources_root() / name
    return folder if isinstance(folder, Path) and folder.is_dir() else None


def runners_dir() -> Path:
    """Recipes: $AVFEWSHOT_RUNNERS, else the checkout's runners/ folder (a wheel ships only runners/demo/)."""
    env = os.environ.get("AVFEWSHOT_RUNNERS")
    return Path(env) if env else PROJECT_DIR / "runners"


def demo_recipe(method: str) -> Optional[Path]:
    """The demo's recipe for ``method`` (learning rates for the tiny random towers), None if it has none:
    $AVFEWSHOT_RUNNERS/demo/<method>.yaml, else the one shipped in the wheel, else runners/demo/ of the checkout."""
    env = os.environ.get("AVFEWSHOT_RUNNERS")
    folder = Path(env) / "demo" if env else (packaged_dir("demo_recipes") or PROJECT_DIR / "runners" / "demo")
    path = folder / f"{method}.yaml"
    return path if path.is_file() else None


def prompts_dir() -> Path:
    """Prompt templates and class-name files: $AVFEWSHOT_PROMPTS, else the wheel's copy, else the checkout's prompts/."""
    env = os.environ.get("AVFEWSHOT_PROMPTS")
    return Path(env) if env else (packaged_dir("prompts") or PROJECT_DIR / "prompts")
