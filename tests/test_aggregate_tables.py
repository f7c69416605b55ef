"""The aggregated tables, byte for byte: CSV and Markdown against files written by the pre-pandas code.

The expected files in ``tests/data/aggregate/`` were produced by the hand-written ``csv``/``statistics``
version of ``avfewshot.experiments.aggregate`` (commit before the pandas port) from the fixture below;
the pandas version must reproduce them exactly (same means, np.std ddof 0, columns, rounding, CI95).
Regenerate only on a deliberate format change: ``python tests/test_aggregate_tables.py --regenerate``.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from avfewshot.engine import results as res
from avfewshot.experiments import aggregate as agg

EXPECTED = Path(__file__).resolve().parent / "data" / "aggregate"
CASES = [  # (fixture, metric, ci95)
    ("single", "accuracy", False),
    ("single", "accuracy", True),
    ("multi", "accuracy", False),
    ("multi", "accuracy", True),
    ("multi", "hit_rate", True),
]


def _write(root: Path, task: str, method: str, shots: int, seed: int, test: dict, preset: str = "paper",
           demo: bool = False) -> None:
    data = {"task": task, "method": method, "shots": shots, "seed": seed, "preset": preset, "demo": demo,
            "main_metric": "accuracy", "test": {**test, "num_clips": 37}, "total_seconds": 1.5}
    res.write_json(root / preset / task / method / f"shot{shots}" / f"seed{seed}" / res.METRICS_FILE, data)


def build_fixture(root: Path, kind: str) -> Path:
    """Several fake run folders with awkward numbers: uneven seeds, secondary metrics missing in some runs,
    zero-shot rows, a corrupt file; ``multi`` adds a second preset, a demo run and a run without accuracy."""
    rng = np.random.default_rng(11 if kind == "single" else 12)
    for task, methods in (("llp_cls", ("coop", "dgsct", "zeroshot")), ("ave", ("clip_adapter", "maple"))):
        for method in methods:
            for shots in ((0,) if method == "zeroshot" else (1, 4, 16)):
                for seed in range(1, 2 + (shots + len(method)) % 3):  # 1 to 3 seeds
                    test = {"accuracy": float(rng.uniform(5, 95))}
                    if task == "llp_cls" and seed != 2:
                        test["hit_rate"] = float(rng.uniform(5, 95))  # seed 2 lacks it: n differs per column
                    if method == "maple":
                        test["foreground_accuracy"] = 100.0 / 3 + seed  # repeating decimals
                    _write(root, task, method, shots, seed, test)
    bad = root / "paper" / "ave" / "coop" / "shot2" / "seed1" / res.METRICS_FILE
    bad.parent.mkdir(parents=True)
    bad.write_text('{"task": "ave", "meth')
    if kind == "multi":
        for seed, acc in ((1, 70.125), (2, 71.875), (3, 2.675)):  # 2.675 sits on a rounding edge in binary
            _write(root, "ave", "dgsct", 16, seed, {"accuracy": acc, "hit_rate": acc / 2}, preset="dgsct-official")
        _write(root, "ave", "dgsct", 16, 1, {"accuracy": 0.0}, preset="demo", demo=True)
        _write(root, "ave", "dgsct", 16, 2, {"hit_rate": 1.0}, preset="demo", demo=True)  # no accuracy
    return root


def render(root: Path, metric: str, ci95: bool):
    table = agg.aggregate(root, metric)
    return table, agg.table_csv(table, ci95), agg.table_markdown(table, ci95)


def expected_name(kind: str, metric: str, ci95: bool) -> str:
    return f"{kind}_{metric}{'_ci95' if ci95 else ''}"


@pytest.mark.parametrize("kind,metric,ci95", CASES)
def test_tables_match_the_pre_pandas_output(tmp_path, kind, metric, ci95):
    root = build_fixture(tmp_path / "results", kind)
    _, csv_text, md_text = render(root, metric, ci95)
    name = expected_name(kind, metric, ci95)
    assert csv_text == (EXPECTED / f"{name}.csv").read_text()
    assert md_text == (EXPECTED / f"{name}.md").read_text()

    csv_path, md_path = agg.write_tables(agg.aggregate(root, metric), tmp_path / "out" / "table.md", ci95)
    assert (csv_path.name, md_path.name) == ("table.csv", "table.md")
    assert csv_path.read_text() == csv_text and md_path.read_text() == md_text


def test_no_finished_run_gives_the_empty_tables(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / res.METRICS_FILE).write_text("{")
    _write(tmp_path, "ave", "coop", 1, 1, {"f1": 2.0})  # lacks the main metric
    table = agg.aggregate(tmp_path)
    assert table.rows == [] and len(table.problems) == 2 and not table.demo
    assert agg.table_csv(table, ci95=True) == "task,method,shots,n_seeds,seeds,metric,mean,std,ci95\n"
    assert agg.table_markdown(table).endswith(
        "| task | method | shots | seeds | accuracy (%) |\n|---|---|---:|---:|---:|\n\n(no finished runs)\n\n"
        "2 result file(s) were ignored; see the output of `avfewshot aggregate`.\n")


def test_frame_holds_the_unrounded_statistics(tmp_path):
    root = build_fixture(tmp_path / "results", "multi")
    table = agg.aggregate(root)
    frame = table.frame
    assert list(frame.columns[:8]) == ["task", "preset", "method", "shots", "n_seeds", "seeds", "metric", "mean"]
    assert len(frame) == len(table.rows)
    official = frame[(frame.preset == "dgsct-official")].iloc[0]
    values = [70.125, 71.875, 2.675]
    assert official["mean"] == np.mean(values) and official["std"] == np.std(values, ddof=0)
    assert official["ci95"] == pytest.approx(1.96 * np.std(values) / math.sqrt(3))
    assert official["seeds"] == "1 2 3" and official["n_seeds"] == 3
    assert official["hit_rate_mean"] == pytest.approx(np.mean(values) / 2)
    for row, (_, rec) in zip(table.rows, frame.iterrows()):
        assert (row.task, row.preset, row.method, row.shots, row.main.n) == (
            rec.task, rec.preset, rec.method, rec.shots, rec.n_seeds)
        assert row.main.mean == rec["mean"] and row.main.std == rec["std"]


def test_load_results_as_frame(tmp_path):
    from avfewshot.api import load_results

    root = build_fixture(tmp_path / "results", "single")
    (root / "paper" / "ave" / "coop" / "shot2" / "seed1" / res.METRICS_FILE).unlink()  # load_results reads every file
    records = load_results(root)
    frame = load_results(root, as_frame=True)
    assert len(frame) == len(records) > 10
    assert {"task", "method", "shots", "seed", "run_dir", "test.accuracy", "test.hit_rate"} <= set(frame.columns)
    first = records[0]
    assert frame.iloc[0]["test.accuracy"] == first["test"]["accuracy"] and frame.iloc[0]["run_dir"] == first["run_dir"]
    assert frame["test.hit_rate"].isna().sum() == sum("hit_rate" not in r["test"] for r in records)
    empty = load_results(tmp_path / "nothing", as_frame=True)
    assert len(empty) == 0


def _regenerate() -> None:
    import tempfile

    EXPECTED.mkdir(parents=True, exist_ok=True)
    for kind, metric, ci95 in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            _, csv_text, md_text = render(build_fixture(Path(tmp) / "results", kind), metric, ci95)
        name = expected_name(kind, metric, ci95)
        (EXPECTED / f"{name}.csv").write_text(csv_text)
        (EXPECTED / f"{name}.md").write_text(md_text)
        print(f"wrote {EXPECTED / name}.csv/.md")


if __name__ == "__main__" and "--regenerate" in sys.argv:
    _regenerate()
