"""Data files that ship inside the wheel (read through ``avfewshot.paths``, never imported).

In the git checkout this package is empty: the files live in the top-level ``prompts/`` and
``runners/demo/`` folders. ``setup.py`` maps them here when a wheel is built, as
``avfewshot/_resources/prompts/`` and ``avfewshot/_resources/demo_recipes/``.
"""
