"""Input checks shared by the metric modules: every bad array becomes a one-line UserError naming the argument."""
from __future__ import annotations

from typing import Any

import numpy as np

from avfewshot.errors import UserError


def as_numpy(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, possibly on GPU or requiring grad
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def check_ndim(array: np.ndarray, ndim: int, name: str, shape_text: str) -> None:
    if array.ndim != ndim:
        raise UserError(f"metrics: `{name}` must have shape {shape_text}, got shape {tuple(array.shape)}")


def check_integer(array: np.ndarray, name: str) -> None:
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_)):
        raise UserError(
            f"metrics: `{name}` must hold integer class indices, got dtype {array.dtype}; "
            "take the argmax of the scores first"
        )


def check_binary(array: np.ndarray, name: str) -> None:
    if array.size and not np.isin(array, (0, 1)).all():
        raise UserError(
            f"metrics: `{name}` must hold only 0 and 1, found values such as "
            f"{np.unique(array[~np.isin(array, (0, 1))])[:3].tolist()}; binarise it first "
            "(for 0/255 mask images use mask > 0)"
        )


def check_same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise UserError(
            f"metrics: `{name_a}` and `{name_b}` must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def check_not_empty(count: int, what: str) -> None:
    if count == 0:
        raise UserError(f"metrics: there is nothing to score ({what}); pass at least one item")
