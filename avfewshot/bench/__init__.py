"""Benchmarks (``avfewshot bench NAME``): each prints figures and ratios; none is a unit test."""
