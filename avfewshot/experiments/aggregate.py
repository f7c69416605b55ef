"""Mean +- std over seeds from the per-run ``metrics.json`` files: one row per (task, method, shots).

Statistics follow CoOp's ``parse_test_res.py``: the spread is ``np.std`` with ddof 0 (the
population std over the seeds that ran), and the optional 95 % interval half-width is
``1.96 * std / sqrt(n)``. Runs of different presets never share a row: the preset is part of
the key and becomes a column when more than one preset is present.

A ``metrics.json`` that cannot be parsed, or lacks a field the table needs, is reported and left
out; it never stops the table. Temporary files of interrupted writes (``.metrics.json.*.tmp``) are
not result files and are not read.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

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
    metric: str
    rows: List[Row]
    problems: List[str]

    @property
    def presets(self) -> List[str]:
        return sorted({r.preset for r in self.rows})

    @property
    def show_preset(self) -> bool:
        return len(self.presets) > 1

    @property
    def secondary_names(self) -> List[str]:
        return sorted({name for r in self.rows for name in r.secondary})

    @property
    def demo(self) -> bool:
        return any(r.demo for r in self.rows)


def aggregate_runs(runs: Sequence[RunResult], metric: str = "accuracy", problems: Optional[List[str]] = None) -> Table:
    """Group runs by (task, preset, method, shots); runs without ``metric`` are reported and left out."""
    problems = list(problems or [])
    groups: Dict[Tuple[str, str, str, int], List[RunResult]] = {}
    for run in runs:
        if metric not in run.test:
            valid = ", ".join(sorted(set(run.test) - NOT_METRICS)) or "none"
            problems.append(f"{run.path}: no test metric {metric!r} (it has: {valid}) (ignored)")
            continue
        groups.setdefault(run.key, []).append(run)
    rows = []
    for (task, preset, method, shots), members in sorted(groups.items()):
        members = sorted(members, key=lambda r: r.seed)
        names = sorted({k for r in members for k in r.test} - NOT_METRICS - {metric})
        secondary = {n: summarise([r.test[n] for r in members if n in r.test]) for n in names}
        rows.append(Row(
            task=task, preset=preset, method=method, shots=shots,
            seeds=[r.seed for r in members],
            main=summarise([r.test[metric] for r in members]),
            secondary=secondary,
            demo=any(r.demo for r in members),
        ))
    return Table(metric=metric, rows=rows, problems=problems)


def aggregate(results_dir: PathLike = "results", metric: str = "accuracy") -> Table:
    collected = collect_runs(results_dir)
    return aggregate_runs(collected.runs, metric, collected.problems)


# -- rendering --------------------------------------------------------------------------------
def _num(x: float, digits: int = 4) -> str:
    return "" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def table_csv(table: Table, ci95: bool = False) -> str:
    header = ["task"] + (["preset"] if table.show_preset else []) + ["method", "shots", "n_seeds", "seeds", "metric", "mean", "std"]
    header += ["ci95"] if ci95 else []
    for name in table.secondary_names:
        header += [f"{name}_mean", f"{name}_std"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for r in table.rows:
        line = [r.task] + ([r.preset] if table.show_preset else [])
        line += [r.method, r.shots, r.main.n, " ".join(map(str, r.seeds)), table.metric, _num(r.main.mean), _num(r.main.std)]
        line += [_num(r.main.ci95)] if ci95 else []
        for name in table.secondary_names:
            s = r.secondary.get(name)
            line += [_num(s.mean), _num(s.std)] if s else ["", ""]
        writer.writerow(line)
    return buf.getvalue()


def _pm(stat: Stat) -> str:
    return f"{stat.mean:.2f} ± {stat.std:.2f}"


def shots_label(shots: int) -> str:
    return "0 (zero-shot)" if shots == 0 else str(shots)


def table_markdown(table: Table, ci95: bool = False) -> str:
    metric = table.metric
    lines = [
        f"Test {metric} (%): mean ± std over seeds (np.std with ddof 0, as CoOp's parse_test_res)"
        + ("; 95% CI = ±1.96·std/√n." if ci95 else "."),
    ]
    if table.demo:
        lines.append("")
        lines.append("**Synthetic demo data with tiny random encoders: these numbers only show that the pipeline works.**")
    lines.append("")
    header = ["task"] + (["preset"] if table.show_preset else []) + ["method", "shots", "seeds", f"{metric} (%)"]
    align = ["---"] * (2 + table.show_preset) + ["---:", "---:", "---:"]
    if ci95:
        header.append("95% CI")
        align.append("---:")
    for name in table.secondary_names:
        header.append(f"{name} (%)")
        align.append("---:")
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(align) + "|")
    for r in table.rows:
        cells = [r.task] + ([r.preset] if table.show_preset else []) + [r.method, shots_label(r.shots), str(r.main.n), _pm(r.main)]
        if ci95:
            cells.append(f"± {r.main.ci95:.2f}")
        for name in table.secondary_names:
            s = r.secondary.get(name)
            cells.append(_pm(s) if s else "")
        lines.append("| " + " | ".join(cells) + " |")
    if not table.rows:
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
