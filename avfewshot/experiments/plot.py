"""Shot-vs-accuracy curves in the style of the paper's few-shot figure.

One panel per task; one line per method (mean over seeds, with a +-std band); the x axis is the
number of shots per class on a log2 scale (ticks at the shot counts that ran); zero-shot results
(rows at 0 shots: zero-shot methods, or a method evaluated from its pretraining bundle) are
horizontal dashed reference lines in the method's colour.

Drawing uses matplotlib's object-oriented API on an Agg canvas (no pyplot, no global backend
change), so it works headless and inside notebooks alike.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ..outputs import check_output_file, write_atomic
from ..errors import UserError
from .aggregate import Row, Table, aggregate

PathLike = Union[str, Path]
FORMATS = ("png", "pdf", "svg")
DEFAULT_SHOT_TICKS = (1, 2, 4, 8, 16)
PRETRAINING_TASKS = ("vggsound40k",)
TASK_TITLES = {
    "ave": "AVE: event localisation (per second)",
    "ave_cls": "AVE: video classification",
    "llp_cls": "LLP: video classification",
    "vggsound40k": "VGG-Sound 40K",
}


def _series_name(row: Row, show_preset: bool) -> str:
    return f"{row.method} [{row.preset}]" if show_preset else row.method


def zero_shot_label(name: str) -> str:
    return name if name.startswith("zeroshot") else f"{name} (zero-shot)"


def _colours(names: Sequence[str]) -> Dict[str, Tuple[float, ...]]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def plot_table(table: Table, tasks: Optional[Sequence[str]] = None, title: Optional[str] = None):
    """A matplotlib ``Figure`` of the table (one axes per task, in ``fig.axes`` order of ``tasks``).

    By default every task found except pretraining ones (their single full-data run is no curve).
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullLocator

    if tasks is None:  # pretraining runs are not few-shot curves: drawn only when asked for
        rows = [r for r in table.rows if r.task not in PRETRAINING_TASKS]
    else:
        rows = [r for r in table.rows if r.task in tasks]
    task_names = list(tasks) if tasks else sorted({r.task for r in rows})
    task_names = [t for t in task_names if any(r.task == t for r in rows)]
    if not task_names:
        raise UserError("nothing to plot: no finished run" + (f" for task(s) {', '.join(tasks)}" if tasks else ""))
    series = sorted({_series_name(r, table.show_preset) for r in rows})
    colours = _colours(series)

    ncols = min(3, len(task_names))
    nrows = -(-len(task_names) // ncols)
    fig = Figure(figsize=(max(6.4, 4.6 * ncols), 3.8 * nrows + 1.2), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    metric_label = f"test {table.metric} (%)"
    reference_labels = set()
    for ax, task in zip(axes, task_names):
        task_rows = [r for r in rows if r.task == task]
        shots = sorted({r.shots for r in task_rows if r.shots > 0}) or list(DEFAULT_SHOT_TICKS)
        for name in series:
            mine = sorted((r for r in task_rows if _series_name(r, table.show_preset) == name), key=lambda r: r.shots)
            colour = colours[name]
            for r in (r for r in mine if r.zero_shot or r.shots < 0):  # supervised runs (shots -1): a reference line too
                label = zero_shot_label(name) if r.zero_shot else f"{name} (supervised)"
                reference_labels.add(label)
                ax.axhline(r.main.mean, color=colour, linestyle="--", linewidth=1.6, label=label)
                if r.main.std > 0:
                    ax.axhspan(r.main.mean - r.main.std, r.main.mean + r.main.std, color=colour, alpha=0.08, linewidth=0)
            few = [r for r in mine if r.shots > 0]
            if not few:
                continue
            x = [r.shots for r in few]
            y = [r.main.mean for r in few]
            sd = [r.main.std for r in few]
            ax.plot(x, y, color=colour, marker="o", linewidth=2, markersize=5, label=name)
            if len(few) > 1:
                ax.fill_between(x, [m - s for m, s in zip(y, sd)], [m + s for m, s in zip(y, sd)], color=colour, alpha=0.18, linewidth=0)
            else:  # a band needs two points: show the spread as an error bar
                ax.errorbar(x, y, yerr=sd, color=colour, capsize=4, linewidth=1.2, fmt="none")
        ax.set_ylim(*_y_limits(task_rows))
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(shots))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(shots, [str(s) for s in shots])
        ax.set_xlim(shots[0] / 1.35, shots[-1] * 1.35)
        ax.set_xlabel("shots per class (log₂ scale)")
        ax.set_ylabel(metric_label)
        ax.set_title(TASK_TITLES.get(task, task))
        ax.grid(True, axis="y", alpha=0.3)
    for ax in axes[len(task_names):]:
        ax.set_visible(False)

    handles: Dict[str, object] = {}
    for ax in axes[: len(task_names)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    order = sorted(handles, key=lambda label: (label not in reference_labels, label))
    fig.legend([handles[k] for k in order], order, loc="outside lower center", ncol=min(3 if ncols == 1 else 4, len(order)), frameon=False)
    heading = title or f"Few-shot test {table.metric}: mean ± std over seeds"
    if table.demo:
        heading += " (synthetic demo: pipeline check only)"
    fig.suptitle(heading)
    return fig


def _y_limits(rows: Sequence[Row], min_span: float = 10.0) -> Tuple[float, float]:
    """Every mean +- std in view, at least ``min_span`` points tall (flat curves are not blown up), about [0, 100]."""
    lo = min(r.main.mean - r.main.std for r in rows)
    hi = max(r.main.mean + r.main.std for r in rows)
    pad = max((min_span - (hi - lo)) / 2, 0.0) + 0.05 * max(hi - lo, min_span)
    lo, hi = lo - pad, hi + pad
    edge = 0.03 * (hi - lo)  # a line at exactly 0 % or 100 % stays visible off the frame
    if lo < -edge:
        lo, hi = -edge, hi - lo - edge
    if hi > 100 + edge:
        lo, hi = max(-edge, lo - (hi - 100 - edge)), 100 + edge
    return lo, hi


def save_figure(fig, out: PathLike) -> Path:
    """Write the figure atomically; the format comes from the file extension."""
    out = Path(out)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise UserError(f"--out {out}: unsupported figure format {out.suffix!r}; use one of .{', .'.join(FORMATS)}")
    check_output_file(out, "figure file")
    return write_atomic(out, lambda handle: fig.savefig(handle, format=fmt, dpi=150, bbox_inches="tight"), "figure file")


def plot_results(results_dir: PathLike = "results", out: PathLike = "fewshot.png", metric: str = "accuracy",
                 tasks: Optional[Sequence[str]] = None) -> Tuple[Path, Table]:
    """Aggregate ``results_dir`` and draw it to ``out``; returns the file and the table that was drawn."""
    table = aggregate(results_dir, metric)
    fig = plot_table(table, tasks)
    return save_figure(fig, out), table


def panel_titles(fig) -> List[str]:
    """Titles of the visible panels (for tests and scripted checks)."""
    return [ax.get_title() for ax in fig.axes if ax.get_visible()]
