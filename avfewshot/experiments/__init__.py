"""The experiment workflow over many runs: sweeps, aggregated tables, plots, pretraining bundles.

Each module has one job and imports nothing heavy at import time:

- ``sweep``: run a (task x method x shots x seed) grid in-process, skipping finished runs.
- ``aggregate``: mean +- std over seeds from the per-run ``metrics.json`` files (CSV + Markdown).
- ``plot``: shot-vs-accuracy curves in the style of the paper's few-shot figure.
- ``viz``: DG-SCT attention maps and t-SNE of features with / without the adapters.
- ``pretrain``: train a method on the full VGG-Sound 40K train split and write its bundle.
- (bundles and the TensorBoard writer live in ``avfewshot.engine``)
"""
