"""Data layer: annotation readers, media decoding, the decoded-input cache, datasets, synthesis, checks, splits.

Submodules are imported on demand; this package import is cheap.
"""
