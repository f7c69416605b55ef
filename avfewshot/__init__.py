"""avfewshot: few-shot and zero-shot audio-visual prompt learning on frozen CLIP + CLAP.

Importing the package is cheap and has no side effects; the public API is loaded lazily.
"""
__version__ = "0.1.0"

_API = {"run", "load_results", "build_method", "sweep", "run_supervised", "make_supervised_config"}


def __getattr__(name):  # PEP 562: keep ``import avfewshot`` free of torch imports
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'avfewshot' has no attribute {name!r}")
