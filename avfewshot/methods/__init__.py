"""Methods: one small module each, registered by name in ``METHODS`` and run by the shared engine."""
from .base import METHODS, Method, MethodConfig, Scores, build_method, method_config_class  # noqa: F401
