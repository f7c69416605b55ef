"""Mean +- std over seeds from the per-run ``metrics.json`` files: one row per (task, method, shots),
built as a pandas DataFrame (``Table.frame``) from which the CSV and Markdown tables are written.

Statistics follow CoOp's ``parse_test_res.py``: the spread is ``np.std`` with ddof 0 (the
population std over the seeds that ran), and the optional 95 % interval half-width is
``1.96 * std / sqrt(n)``. Runs of different presets never share a row: the preset is part of
the key and becomes a column when more than one preset is present.

A ``metrics.json`` that cannot be parsed, or lacks a field the table needs, is reported and left
out; it never stops the table. Temporary files of interrupted writes (``.metrics.json.*.tmp``) are
not result files and are not read.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from ..outputs import check_output_file, write_text_atomic
from ..engine.results import METRICS_FILE
from ..errors import UserError

PathLike = Union[str, Path]
CI95_Z = 1.96
#: entries of ``metrics["test"]`` that are counts, not metrics
NOT_METRICS = frozenset({"num_clips"})


@dataclass(frozen=True)
class RunResult:
    """One finished run, as read from its metrics.json."""

    path: Path
    task: str
    method: str
    shots: int
    seed: int
    preset: str
    demo: bool
    test: Dict[str, float]

    @property
    def key(self) -> Tuple[str, str, str, int]:
        return (self.task, self.preset, self.method, self.shots)


@dataclass
class Collected:
    runs: List[RunResult] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)  # one line per ignored file


def _parse_run(path: Path) -> RunResult:
    """Parse one metrics.json; raises ValueError naming what is wrong."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno}); the file is corrupt or partial") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("does not hold a JSON object")
    expected = {"task": str, "method": str, "shots": int, "seed": int, "test": dict}
    for key, typ in expected.items():
        if key not in data:
            raise ValueError(f"has no {key!r} field; the run did not finish writing it")
        if not isinstance(data[key], typ) or isinstance(data[key], bool):
            raise ValueError(f"field {key!r} is {data[key]!r}, expected {typ.__name__}")
    test = {k: float(v) for k, v in data["test"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return RunResult(
        path=path,
        task=data["task"],
        method=data["method"],
        shots=data["shots"],
        seed=data["seed"],
        preset=str(data.get("preset") or "paper"),
        demo=bool(data.get("demo", False)),
        test=test,
    )


def metrics_files(results_dir: PathLike) -> List[Path]:
    """Every ``metrics.json`` below ``results_dir`` (temporary write files are named differently)."""
    root = Path(results_dir)
    return sorted(p for p in root.rglob(METRICS_FILE) if p.is_file())


def collect_runs(results_dir: PathLike) -> Collected:
    """Read every finished run below ``results_dir``; bad files go to ``problems``, not exceptions."""
    root = Path(results_dir)
    if not root.is_dir():
        raise UserError(f"results folder {root} does not exist; run `avfewshot sweep` or `avfewshot run` first, or pass --results")
    out = Collected()
    seen: Dict[Tuple, Path] = {}
    for path in metrics_files(root):
        try:
            run = _parse_run(path)
        except ValueError as exc:
            out.problems.append(f"{path}: {exc} (ignored)")
            continue
        ident = (*run.key, run.seed)
        if ident in seen:
            out.problems.append(f"{path}: same task/preset/method/shots/seed as {seen[ident]} (ignored; keep one copy)")
            continue
        seen[ident] = path
        out.runs.append(run)
    return out


# -- statistics -------------------------------------------------------------------------------
KEY = ["task", "preset", "method", "shots"]
TEST_PREFIX = "test."  # metric columns of runs_frame, named as in ``avfewshot.load_results(as_frame=True)``


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float  # np.std, ddof 0
    n: int

    @property
    def ci95(self) -> float:
        """Half-width of the normal 95 % interval of the mean: 1.96 * std / sqrt(n)."""
        return CI95_Z * self.std / math.sqrt(self.n) if self.n else float("nan")


def summarise(values: Sequence[float]) -> Stat:
    arr = np.asarray(values, dtype=np.float64)
    return Stat(float(arr.mean()), float(arr.std(ddof=0)), int(arr.size))


def _mean(values: pd.Series) -> float:
    arr = values.dropna().to_numpy(np.float64)
    return float(arr.mean()) if arr.size else math.nan


def _std(values: pd.Series) -> float:
    arr = values.dropna().to_numpy(np.float64)
    return float(arr.std(ddof=0)) if arr.size else math.nan


def _join_seeds(seeds: pd.Series) -> str:
    return " ".join(str(int(s)) for s in seeds)


@dataclass
class Row:
    task: str
    preset: str
    method: str
    shots: int
    seeds: List[int]
    main: Stat
    secondary: Dict[str, Stat]
    demo: bool

    @property
    def zero_shot(self) -> bool:
        return self.shots == 0


@dataclass
class Table:
    """The aggregated table. ``frame`` holds it (one row per task/preset/method/shots, unrounded):
    columns ``task preset method shots n_seeds seeds metric mean std ci95``, then ``<name>_mean``,
    ``<name>_std`` and ``<name>_n`` per secondary metric, then ``demo``."""

    metric: str
    frame: pd.DataFrame
    problems: List[str]
    secondary_names: List[str] = field(default_factory=list)

    @property
    def rows(self) -> List[Row]:
        out = []
        for rec in self.frame.to_dict("records"):
            secondary = {name: Stat(rec[f"{name}_mean"], rec[f"{name}_std"], int(rec[f"{name}_n"]))
                         for name in self.secondary_names if rec[f"{name}_n"] > 0}
            out.append(Row(task=rec["task"], preset=rec["preset"], method=rec["method"], shots=int(rec["shots"]),
                           seeds=[int(s) for s in rec["seeds"].split()],
                           main=Stat(rec["mean"], rec["std"], int(rec["n_seeds"])),
                           secondary=secondary, demo=bool(rec["demo"])))
        return out

    @property
    def presets(self) -> List[str]:
        return sorted(set(self.frame["preset"]))

    @property
    def show_preset(self) -> bool:
        return len(self.presets) > 1

    @property
    def demo(self) -> bool:
        return bool(self.frame["demo"].any())


def runs_frame(runs: Sequence[RunResult]) -> pd.DataFrame:
    """One row per run: task, preset, method, shots, seed, demo and a ``test.<name>`` column per test
    metric (NaN where a run lacks it)."""
    records = [{"task": r.task, "preset": r.preset, "method": r.method, "shots": r.shots, "seed": r.seed, "demo": r.demo,
                **{TEST_PREFIX + k: v for k, v in r.test.items() if k not in NOT_METRICS}} for r in runs]
    frame = pd.DataFrame.from_records(records, columns=None if records else KEY + ["seed", "demo"])
    return frame.astype({"shots": "int64", "seed": "int64", "demo": "bool"})


def _summary_columns(metric: str, names: Sequence[str]) -> List[str]:
    cols = KEY + ["n_seeds", "seeds", "metric", "mean", "std", "ci95"]
    return cols + [f"{n}_{s}" for n in names for s in ("mean", "std", "n")] + ["demo"]


def summary_frame(runs: pd.DataFrame, metric: str) -> Tuple[pd.DataFrame, List[str]]:
    """Group a runs_frame holding ``metric`` in every row by (task, preset, method, shots); mean, np.std
    (ddof 0) and the CI95 half-width of the metric, mean/std/count of every other metric."""
    main = TEST_PREFIX + metric
    names = sorted(c[len(TEST_PREFIX):] for c in runs.columns if c.startswith(TEST_PREFIX) and c != main)
    if runs.empty:
        return pd.DataFrame(columns=_summary_columns(metric, names)), names
    # seed order inside a group fixes the order of the sums, so the statistics match summarise() bit for bit
    grouped = runs.sort_values(KEY + ["seed"], kind="stable").groupby(KEY, sort=True)
    frame = grouped.agg(n_seeds=("seed", "size"), seeds=("seed", _join_seeds), mean=(main, _mean), std=(main, _std))
    frame.insert(2, "metric", metric)
    frame["ci95"] = CI95_Z * frame["std"] / np.sqrt(frame["n_seeds"])
    for name in names:
        col = TEST_PREFIX + name
        frame[f"{name}_mean"] = grouped[col].agg(_mean)
        frame[f"{name}_std"] = grouped[col].agg(_std)
        frame[f"{name}_n"] = grouped[col].count()
    frame["demo"] = grouped["demo"].any()
    return frame.reset_index()[_summary_columns(metric, names)], names


def aggregate_runs(runs: Sequence[RunResult], metric: str = "accuracy", problems: Optional[List[str]] = None) -> Table:
    """Group runs by (task, preset, method, shots); runs without ``metric`` are reported and left out."""
    problems = list(problems or [])
    kept = []
    for run in runs:
        if metric not in run.test:
            valid = ", ".join(sorted(set(run.test) - NOT_METRICS)) or "none"
            problems.append(f"{run.path}: no test metric {metric!r} (it has: {valid}) (ignored)")
            continue
        kept.append(run)
    frame, names = summary_frame(runs_frame(kept), metric)
    present = [n for n in names if (frame[f"{n}_n"] > 0).any()]
    return Table(metric=metric, frame=frame, problems=problems, secondary_names=present)


def aggregate(results_dir: PathLike = "results", metric: str = "accuracy") -> Table:
    """The table of every finished run below ``results_dir``; ``.frame`` is its DataFrame."""
    collected = collect_runs(results_dir)
    return aggregate_runs(collected.runs, metric, collected.problems)


# -- rendering --------------------------------------------------------------------------------
def _num(x: float, digits: int = 4) -> str:
    return "" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def _pm(mean: float, std: float) -> str:
    return "" if math.isnan(mean) else f"{mean:.2f} ± {std:.2f}"


def shots_label(shots: int) -> str:
    if shots < 0:  # a fully supervised run (``avfewshot supervised``): the whole training split
        return "all (supervised)"
    return "0 (zero-shot)" if shots == 0 else str(shots)


def table_csv(table: Table, ci95: bool = False) -> str:
    cols = ["task"] + (["preset"] if table.show_preset else []) + ["method", "shots", "n_seeds", "seeds", "metric", "mean", "std"]
    cols += ["ci95"] if ci95 else []
    cols += [f"{name}_{s}" for name in table.secondary_names for s in ("mean", "std")]
    out = table.frame[cols].copy()
    for col in cols:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].map(_num)
    return out.to_csv(index=False, lineterminator="\n")


def _markdown_grid(header: List[str], align: List[str], cells: pd.DataFrame) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False, name=None)]
    return lines


def table_markdown(table: Table, ci95: bool = False) -> str:
    metric, frame = table.metric, table.frame
    lines = [
        f"Test {metric} (%): mean ± std over seeds (np.std with ddof 0, as CoOp's parse_test_res)"
        + ("; 95% CI = ±1.96·std/√n." if ci95 else "."),
    ]
    if table.demo:
        lines.append("")
        lines.append("**Synthetic demo data with the tiny demo encoders: these numbers only show that the pipeline works.**")
    lines.append("")
    cells = pd.DataFrame({"task": frame["task"]})
    if table.show_preset:
        cells["preset"] = frame["preset"]
    cells["method"] = frame["method"]
    cells["shots"] = frame["shots"].map(shots_label)
    cells["seeds"] = frame["n_seeds"].map(str)
    cells[f"{metric} (%)"] = [_pm(m, s) for m, s in zip(frame["mean"], frame["std"])]
    if ci95:
        cells["95% CI"] = frame["ci95"].map(lambda x: f"± {x:.2f}")
    for name in table.secondary_names:
        cells[f"{name} (%)"] = [_pm(m, s) for m, s in zip(frame[f"{name}_mean"], frame[f"{name}_std"])]
    align = ["---"] * (2 + table.show_preset) + ["---:"] * (len(cells.columns) - 2 - table.show_preset)
    lines += _markdown_grid(list(cells.columns), align, cells.astype(str))
    if frame.empty:
        lines.append("")
        lines.append("(no finished runs)")
    if table.problems:
        lines.append("")
        lines.append(f"{len(table.problems)} result file(s) were ignored; see the output of `avfewshot aggregate`.")
    return "\n".join(lines) + "\n"


def write_tables(table: Table, out_prefix: PathLike, ci95: bool = False) -> Tuple[Path, Path]:
    """Write ``<prefix>.csv`` and ``<prefix>.md`` atomically; returns both paths."""
    prefix = Path(out_prefix)
    if prefix.suffix in (".csv", ".md"):
        prefix = prefix.with_suffix("")
    csv_path, md_path = prefix.with_name(prefix.name + ".csv"), prefix.with_name(prefix.name + ".md")
    check_output_file(csv_path, "table file")
    write_text_atomic(csv_path, table_csv(table, ci95), "table file")
    try:
        write_text_atomic(md_path, table_markdown(table, ci95), "table file")
    except UserError:  # both tables or neither: a CSV without its Markdown twin would look complete
        csv_path.unlink(missing_ok=True)
        raise
    return csv_path, md_path
