"""Tasks: which dataset a task reads, its label space, how scores become predictions, its metrics.

Every module of this package registers its tasks in ``TASKS``; ``get_task`` discovers them.
"""
from .base import TASKS, TaskSpec, discover_tasks, get_task  # noqa: F401
