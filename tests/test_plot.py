"""Shot-vs-accuracy figure: one panel per task, a line + std band per method, zero-shot reference lines."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avfewshot.cli import main as cli_main
from avfewshot.engine import results as res
from avfewshot.errors import UserError
from avfewshot.experiments.aggregate import aggregate
from avfewshot.experiments.plot import panel_titles, plot_results, plot_table, save_figure

SHOTS = (1, 4, 16)


def _write(root: Path, task: str, method: str, shots: int, seed: int, accuracy: float) -> None:
    res.write_json(root / task / method / f"shot{shots}" / f"seed{seed}" / res.METRICS_FILE, {
        "task": task, "method": method, "shots": shots, "seed": seed, "preset": "paper", "demo": True,
        "test": {"accuracy": accuracy, "num_clips": 8},
    })


@pytest.fixture
def results(tmp_path) -> Path:
    root = tmp_path / "results"
    for task, base in (("llp_cls", 30.0), ("ave", 60.0)):
        for seed in (1, 2):
            _write(root, task, "zeroshot", 0, seed, base)
            _write(root, task, "dgsct", 0, seed, base + 2 + seed)  # zero-shot transfer from a bundle
            for k in SHOTS:
                _write(root, task, "coop", k, seed, base + k + seed)
                _write(root, task, "dgsct", k, seed, base + 2 * k + seed)
    return root


def test_png_has_expected_panels_axes_and_lines(results, tmp_path):
    out, table = plot_results(results, tmp_path / "fig" / "fewshot.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert not list(out.parent.glob(".*tmp"))

    fig = plot_table(table)
    assert panel_titles(fig) == ["AVE: event localisation (per second)", "LLP: video classification"]
    for ax, base in zip(fig.axes, (60.0, 30.0)):
        assert ax.get_xlabel() == "shots per class (log₂ scale)"
        assert ax.get_ylabel() == "test accuracy (%)"
        assert ax.get_xscale() == "log"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "4", "16"]
        curves = {line.get_label(): line for line in ax.lines if line.get_linestyle() == "-"}
        refs = {line.get_label(): line for line in ax.lines if line.get_linestyle() == "--"}
        assert sorted(curves) == ["coop", "dgsct"]
        assert list(curves["coop"].get_xdata()) == list(SHOTS)
        # mean over seeds 1 and 2 of base + k + seed
        assert np.allclose(curves["coop"].get_ydata(), [base + k + 1.5 for k in SHOTS])
        assert sorted(refs) == ["dgsct (zero-shot)", "zeroshot"]
        assert np.allclose(refs["zeroshot"].get_ydata(), base)
        assert np.allclose(refs["dgsct (zero-shot)"].get_ydata(), base + 3.5)
        assert len(ax.collections) >= 2  # the std bands of the two curves
    legend_labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend_labels == ["dgsct (zero-shot)", "zeroshot", "coop", "dgsct"]
    assert "mean ± std" in fig.get_suptitle() and "demo" in fig.get_suptitle()


def test_task_filter_and_errors(results, tmp_path):
    _write(results, "vggsound40k", "dgsct", 16, 1, 20.0)  # a pretraining run: in the table, not in the default figure
    table = aggregate(results)
    assert panel_titles(plot_table(table)) == ["AVE: event localisation (per second)", "LLP: video classification"]
    assert panel_titles(plot_table(table, tasks=["vggsound40k"])) == ["VGG-Sound 40K"]
    fig = plot_table(table, tasks=["llp_cls"])
    assert panel_titles(fig) == ["LLP: video classification"]
    with pytest.raises(UserError, match="nothing to plot"):
        plot_table(table, tasks=["ave_cls"])
    with pytest.raises(UserError, match="unsupported figure format"):
        save_figure(fig, tmp_path / "x.jpg")


def test_plot_command_writes_pdf(results, tmp_path, capsys):
    out = tmp_path / "curves.pdf"
    assert cli_main(["plot", "--results", str(results), "--out", str(out), "--tasks", "ave"]) == 0
    assert out.read_bytes()[:5] == b"%PDF-" and str(out) in capsys.readouterr().out
