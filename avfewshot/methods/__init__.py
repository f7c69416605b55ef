"""Methods: one small module each, registered by name in ``METHODS`` and run by the shared engine.

Every module of this package is imported by ``discover_methods()``, so a new method is one new file.
"""
from .base import (  # noqa: F401
    METHODS, Method, MethodConfig, Scores, build_method, discover_methods, get_method_class, make_method_config,
)
