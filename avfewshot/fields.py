"""Declared constraints on configuration fields, checked when a configuration is resolved (``config.check_fields``).

Light on purpose (standard library only): every typed config uses them, the run config and the model config
below it included.
"""
from __future__ import annotations

from dataclasses import field
from typing import Any, Optional


def choice(default: Any, *choices: Any) -> Any:
    """A field whose value must be one of ``choices`` (each item, for a list field)."""
    if callable(default):
        return field(default_factory=default, metadata={"choices": choices})
    return field(default=default, metadata={"choices": choices})


def bounded(default: Any, low: Optional[float] = None, high: Optional[float] = None, above: Optional[float] = None) -> Any:
    """A numeric field with a range: ``low <= value <= high``, ``value > above``; floats must be finite."""
    return field(default=default, metadata={"low": low, "high": high, "above": above})
