"""Import laion-clap's ``clap_module`` without its package ``__init__``.

``import laion_clap`` builds three hub tokenizers at import time (it hangs or silently degrades
offline), so the toolkit never imports it. Its ``clap_module`` subpackage only needs the
``laion_clap`` folder on ``sys.path``; that is done once, here, and nowhere else.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType

from ..errors import UserError

_LOCK = threading.Lock()


def laion_clap_dir() -> Path:
    """The installed ``laion_clap`` folder, found without importing the package."""
    spec = importlib.util.find_spec("laion_clap")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("laion-clap is not installed: pip install --no-deps laion-clap==1.1.7 "
                        "(the toolkit uses only its clap_module model code)")
    return Path(list(spec.submodule_search_locations)[0])


def import_clap_module() -> ModuleType:
    """Return ``clap_module`` (with ``clap_module.htsat`` and ``clap_module.model`` loaded)."""
    with _LOCK:
        if "clap_module" not in sys.modules:
            folder = str(laion_clap_dir())
            if folder not in sys.path:
                sys.path.append(folder)  # appended: never shadows anything already importable
        module = importlib.import_module("clap_module")
        importlib.import_module("clap_module.htsat")
        importlib.import_module("clap_module.model")
        return module
