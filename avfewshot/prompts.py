"""Prompt templates and class-name files (data, not code), read from ``paths.prompts_dir()``: the copy shipped
in the wheel, the checkout's ``prompts/`` folder, or ``$AVFEWSHOT_PROMPTS``."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from .errors import UserError
from .paths import prompts_dir


@lru_cache(maxsize=None)
def _templates(folder: str) -> Dict:
    path = Path(folder) / "templates.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"prompt templates not found at {path} (set $AVFEWSHOT_PROMPTS to the prompts/ folder)") from None
    for branch in ("clip", "clap"):
        if branch not in data or "{}" not in data[branch].get("template", ""):
            raise UserError(f"{path}: '{branch}.template' must exist and contain '{{}}'")
    return data


def templates(folder: Optional[Path] = None) -> Dict:
    return _templates(str(folder or prompts_dir()))


def style_name(name: str, style: str) -> str:
    if style == "raw":
        return name
    if style == "spaces":
        return name.replace("_", " ")
    raise UserError(f"unknown class-name style {style!r}; valid: raw, spaces")


def class_prompts(class_names: List[str], branch: str, template: Optional[str] = None, style: Optional[str] = None) -> List[str]:
    """Fill the branch's template ("clip" or "clap") with every class name."""
    spec = templates()[branch]
    template = template or spec["template"]
    style = style or spec.get("name_style", "spaces")
    return [template.format(style_name(n, style)) for n in class_names]


def background_name() -> str:
    return templates().get("background_name", "background")


def read_class_file(name: str) -> List[str]:
    path = prompts_dir() / "classnames" / f"{name}.txt"
    if not path.exists():
        raise UserError(f"class-name file {path} does not exist")
    return [line.rstrip("\n") for line in path.read_text().splitlines() if line.strip()]
