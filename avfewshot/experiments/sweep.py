"""Run a (task x method x shots x seed) grid in-process, with one progress display over the grid.

Each cell is one ``engine.trainer.run_experiment`` call, so the engine's per-run rules apply: a finished run
(its ``metrics.json`` exists) is skipped, an interrupted one resumes from its last checkpoint.
A failing run is reported and the sweep goes on; the failures are listed at the end.

Several sweeps may share one results folder (on one machine, or on several over a shared
filesystem, e.g. a Slurm array: runners/slurm_sweep.sh): each cell is claimed before it runs
(:mod:`.claims`), so the processes divide the grid and no cell runs twice. A cell another live
process holds is skipped (``wait=True`` waits for it); a claim whose process is gone is taken over.

Zero-shot methods (``Method.zero_shot = True``) have nothing to train, so a few-shot grid would
only repeat the same evaluation once per shot count. They run once per seed at ``shots=0`` instead.

A trained method runs at every requested shot count; asking for shot 0 evaluates it at its
initialisation (with ``init=BUNDLE``: the zero-shot transfer of a pretraining bundle).

Layers of one cell's config, lowest first: defaults -> preset -> recipe (``config``, or the
method's file in ``recipes_dir``) -> ``schedule[method][shots]`` -> the grid keys (task, method,
shots, seed, preset, data root, results folder) -> ``overrides``.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

from ..engine import results as res
from ..errors import UserError
from . import claims

PathLike = Union[str, Path]
ANY_METHOD = "*"  # schedule entries for every method
ANY_DATASET = "*"  # data root for every dataset


@dataclass(frozen=True)
class SweepJob:
    task: str
    method: str
    shots: int
    seed: int

    @property
    def label(self) -> str:
        shots = "zero-shot" if self.shots == 0 else f"{self.shots}-shot"
        return f"{self.task} / {self.method} / {shots} / seed {self.seed}"


@dataclass
class RunFailure:
    job: SweepJob
    error: str
    run_dir: Optional[Path]


class SweepResults(list):
    """The metrics of every finished cell (a plain list of dicts), plus what did not finish."""

    def __init__(self, metrics: Iterable[Dict] = (), failures: Sequence[RunFailure] = (), skipped: int = 0,
                 elsewhere: Sequence[SweepJob] = ()):
        super().__init__(metrics)
        self.failures: List[RunFailure] = list(failures)
        self.skipped = skipped
        self.elsewhere: List[SweepJob] = list(elsewhere)  # cells other processes were still running


# -- the grid ---------------------------------------------------------------------------------
def _as_list(value: Union[str, int, Sequence], name: str) -> List:
    items = [value] if isinstance(value, (str, int)) else list(value)
    if not items:
        raise UserError(f"sweep: give at least one value for {name}")
    return list(dict.fromkeys(items))  # drop repeats, keep order


def expand_grid(tasks: Sequence[str], methods: Sequence[str], shots: Sequence[int], seeds: Sequence[int],
                is_zero_shot: Callable[[str], bool]) -> List[SweepJob]:
    """Every cell, in (task, method, shots, seed) order; zero-shot methods only at shots 0."""
    bad = [k for k in shots if not isinstance(k, int) or k < 0]
    if bad:
        raise UserError(f"sweep: shot counts must be integers >= 0, got {bad}")
    jobs: List[SweepJob] = []
    for task in tasks:
        for method in methods:
            shot_list = [0] if is_zero_shot(method) else list(shots)
            for k in shot_list:
                for seed in seeds:
                    jobs.append(SweepJob(task, method, k, seed))
    return list(dict.fromkeys(jobs))


def load_schedule(path: Optional[PathLike]) -> Dict[str, Dict[int, Dict[str, Any]]]:
    """``{method or "*": {shots: {dotted.key: value}}}`` from a YAML file (see runners/paper_schedule.yaml)."""
    if path is None:
        return {}
    from ..config import read_yaml_mapping

    data = read_yaml_mapping(path, "schedule file", "a mapping of method names (or '*') to {shots: {key: value}}")
    out: Dict[str, Dict[int, Dict[str, Any]]] = {}
    for method, by_shots in data.items():
        if not isinstance(by_shots, dict):
            raise UserError(f"schedule file {path}, method {method!r}: expected a mapping of shot counts to config keys")
        for shots, keys in by_shots.items():
            if not isinstance(shots, int) or not isinstance(keys, dict):
                raise UserError(f"schedule file {path}, method {method!r}, entry {shots!r}: "
                                "expected `<shots>: {key: value, ...}` with an integer shot count")
            out.setdefault(str(method), {})[shots] = _flatten(keys)
    return out


def _flatten(mapping: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# -- zero-shot detection ----------------------------------------------------------------------
def method_is_zero_shot(method: str, cfg=None) -> bool:
    """Whether ``method`` has nothing to train: its class attribute ``Method.zero_shot``."""
    from ..methods import get_method_class

    return bool(get_method_class(method).zero_shot)


# -- progress ---------------------------------------------------------------------------------
def format_duration(seconds: float) -> str:
    seconds = int(round(max(0.0, seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


@dataclass
class GridProgress:
    """Counts and an ETA over the whole grid, from the durations of the runs that finished."""

    jobs: List[SweepJob]
    started: float = field(default_factory=time.time)
    durations: Dict[SweepJob, float] = field(default_factory=dict)
    done: int = 0
    failed: int = 0
    skipped: int = 0
    elsewhere: int = 0  # cells another process holds

    def record(self, job: SweepJob, seconds: Optional[float]) -> None:
        if seconds is not None and seconds > 0:
            self.durations[job] = seconds

    def estimate(self, job: SweepJob) -> Optional[float]:
        """Mean duration of finished runs alike: same method and shots, else same method, else all."""
        for alike in (lambda j: (j.method, j.shots) == (job.method, job.shots), lambda j: j.method == job.method, lambda j: True):
            times = [t for j, t in self.durations.items() if alike(j)]
            if times:
                return sum(times) / len(times)
        return None

    def eta(self, remaining: Sequence[SweepJob]) -> Optional[float]:
        estimates = [self.estimate(j) for j in remaining]
        if any(e is None for e in estimates):
            return None
        return sum(estimates)

    def line(self, remaining: Sequence[SweepJob]) -> str:
        total = len(self.jobs)
        finished = self.done + self.skipped
        eta = self.eta(remaining)
        parts = [f"{finished}/{total} finished"]
        if self.skipped:
            parts.append(f"{self.skipped} already done")
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.elsewhere:
            parts.append(f"{self.elsewhere} running elsewhere")
        parts.append(f"elapsed {format_duration(time.time() - self.started)}")
        parts.append(f"ETA {format_duration(eta)}" if eta is not None else "ETA after the first finished run")
        return "[sweep] " + " · ".join(parts)


# -- the sweep --------------------------------------------------------------------------------
DataRoots = Union[None, PathLike, Dict[str, PathLike]]


def root_for_task(task: str, data_root: DataRoots) -> Optional[str]:
    """One root for every task, or ``{dataset: root}`` (tasks on AVE and on LLP read different roots)."""
    if data_root is None or not isinstance(data_root, dict):
        return None if data_root is None else str(data_root)
    from ..tasks import get_task

    try:
        dataset = get_task(task).dataset
    except KeyError as exc:
        raise UserError(str(exc.args[0])) from None
    root = data_root.get(dataset, data_root.get(ANY_DATASET))
    if root is None:
        raise UserError(f"no data root for dataset {dataset!r} (task {task!r}); give --data-root {dataset}=DIR")
    return str(root)


def _job_config(job: SweepJob, recipe: Optional[PathLike], schedule, preset, data_root: DataRoots, results_dir, overrides):
    from ..engine.build import resolve_run_config

    layer: Dict[str, Any] = {}
    for who in (ANY_METHOD, job.method):
        layer.update(schedule.get(who, {}).get(job.shots, {}))
    layer.update({"task": job.task, "method": job.method, "shots": job.shots, "seed": job.seed, "preset": preset,
                  "data.root": root_for_task(job.task, data_root), "results_dir": str(results_dir)})
    return resolve_run_config(recipe, list(overrides), **layer)


def _recipe_for(method: str, config: Optional[PathLike], recipes_dir: Optional[PathLike]) -> Optional[PathLike]:
    if config is not None and recipes_dir is not None:
        raise UserError("sweep: give either --config (one recipe for every method) or --recipes (one file per method), not both")
    if recipes_dir is None:
        return config
    folder = Path(recipes_dir)
    if not folder.is_dir():
        raise UserError(f"--recipes {folder} is not a folder of <method>.yaml recipe files")
    path = folder / f"{method}.yaml"
    return path if path.exists() else None


def plan_sweep(tasks, methods, shots, seeds, preset=None, config=None, overrides=(), data_root=None,
               results_dir: PathLike = "results", recipes_dir=None, schedule=None):
    """Expand the grid and resolve every cell's config up front (a typo fails before any run).

    Returns ``[(job, cfg), ...]``.
    """
    tasks, methods = _as_list(tasks, "tasks"), _as_list(methods, "methods")
    shots, seeds = _as_list(shots, "shots"), _as_list(seeds, "seeds")
    schedule_map = load_schedule(schedule) if not isinstance(schedule, dict) else schedule
    overrides = list(overrides or ())

    def zero_shot(method: str) -> bool:
        probe = SweepJob(tasks[0], method, 0, seeds[0])
        cfg = _job_config(probe, _recipe_for(method, config, recipes_dir), schedule_map, preset, data_root, results_dir, overrides)
        return method_is_zero_shot(method, cfg)

    jobs = expand_grid(tasks, methods, shots, seeds, zero_shot)
    return [(job, _job_config(job, _recipe_for(job.method, config, recipes_dir), schedule_map, preset, data_root,
                              results_dir, overrides)) for job in jobs]


def run_planned(plan, progress: bool = True, say: Callable[[str], None] = print, wait: bool = False,
                claim_timeout: float = claims.DEFAULT_TIMEOUT, poll_seconds: float = 10.0) -> SweepResults:
    """Run planned cells in order; finished ones are read back, failures are collected.

    A cell another live process has claimed is left to it (``wait=True``: come back until it is
    finished or its claim is stale); ``claim_timeout``: seconds without a heartbeat that make another
    host's claim stale."""
    from ..engine.distributed import is_main_process

    if not is_main_process():
        say = lambda _msg: None  # noqa: E731
    jobs = [job for job, _ in plan]
    tracker = GridProgress(jobs)
    metrics: List[Dict] = []
    failures: List[RunFailure] = []
    say(f"[sweep] {len(jobs)} runs: {len({j.task for j in jobs})} task(s) × {len({j.method for j in jobs})} method(s); "
        f"results in {plan[0][1].results_dir if plan else '-'}")
    pending = list(enumerate(plan))
    while True:
        held = []
        for index, (job, cfg) in pending:
            state = _run_cell(index, job, cfg, jobs, tracker, metrics, failures, progress, say, claim_timeout)
            if state == claims.HELD:
                held.append((index, (job, cfg)))
        if not held or not wait:
            break
        tracker.elsewhere = 0
        time.sleep(poll_seconds)
        pending = held
    elsewhere = [job for _, (job, _) in held]
    say(_summary(tracker, failures, elsewhere))
    return SweepResults(metrics, failures, tracker.skipped, elsewhere)


def _read_finished(job: SweepJob, run_dir: Path, tracker: GridProgress, metrics: List[Dict], failures: List[RunFailure]):
    try:
        finished = res.read_json(run_dir / res.METRICS_FILE)
    except ValueError as exc:
        failures.append(RunFailure(job, f"{run_dir / res.METRICS_FILE} is not valid JSON ({exc}); delete it to run again", run_dir))
        tracker.failed += 1
        return
    metrics.append(finished)
    tracker.skipped += 1
    tracker.record(job, (finished or {}).get("total_seconds"))


def _run_cell(index, job, cfg, jobs, tracker, metrics, failures, progress, say, claim_timeout) -> str:
    """Run one cell unless it is finished or another process holds it; returns what happened."""
    from ..engine.trainer import run_experiment

    run_dir = cfg.run_dir()
    if res.is_finished(run_dir):
        _read_finished(job, run_dir, tracker, metrics, failures)
        return claims.FINISHED
    claim = claims.claim_cell(run_dir, res.is_finished, claim_timeout, say)
    if claim.decision == claims.FINISHED:
        _read_finished(job, run_dir, tracker, metrics, failures)
        return claims.FINISHED
    if claim.decision == claims.HELD:
        tracker.elsewhere += 1
        who = claim.holder.describe() if claim.holder else "another process"
        say(f"[sweep] {job.label}: being run by {who}; leaving it to that process")
        return claims.HELD
    with claim:
        if claim.owned:
            claims.remove_orphan_temp_files(run_dir)
        resume = " (resuming)" if (run_dir / res.LAST_CKPT).exists() else ""
        say(f"{tracker.line(jobs[index:])}\n[sweep] run {index + 1}/{len(jobs)}: {job.label}{resume}")
        t0 = time.time()
        try:
            result = run_experiment(cfg, progress=progress)
        except Exception as exc:  # noqa: BLE001 - one failing run must not stop the grid
            detail = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
            failures.append(RunFailure(job, detail, run_dir))
            tracker.failed += 1
            say(f"[sweep] FAILED {job.label}: {detail}")
            if not isinstance(exc, UserError):
                say(traceback.format_exc().rstrip())
            return "failed"
    tracker.done += 1
    tracker.record(job, time.time() - t0)
    metrics.append(result)
    return claims.RUN


def _summary(tracker: GridProgress, failures: Sequence[RunFailure], elsewhere: Sequence[SweepJob] = ()) -> str:
    lines = [f"[sweep] done in {format_duration(time.time() - tracker.started)}: {tracker.done} ran, "
             f"{tracker.skipped} already finished, {len(failures)} failed"
             + (f", {len(elsewhere)} running in other processes" if elsewhere else "") + f" (of {len(tracker.jobs)})"]
    for f in failures:
        where = f" (log: {f.run_dir / res.LOG_FILE})" if f.run_dir and (f.run_dir / res.LOG_FILE).exists() else ""
        lines.append(f"[sweep]   FAILED {f.job.label}: {f.error}{where}")
    if failures:
        lines.append("[sweep] fix the cause and run the same command again: finished runs are skipped, the rest resume")
    if elsewhere:
        lines.append("[sweep] the cells other processes run are not in this table; aggregate when they finish "
                     "(or use --wait); a cell whose process died is taken over by the next sweep")
    return "\n".join(lines)


def sweep(tasks: Union[str, Sequence[str]], methods: Union[str, Sequence[str]], shots: Sequence[int] = (1, 2, 4, 8, 16),
          seeds: Sequence[int] = (1, 2, 3), preset: Optional[str] = None, config: Optional[PathLike] = None,
          overrides: Sequence[str] = (), data_root: DataRoots = None, results_dir: PathLike = "results",
          progress: bool = True, recipes_dir: Optional[PathLike] = None, schedule: Optional[PathLike] = None,
          say: Callable[[str], None] = print, wait: bool = False,
          claim_timeout: float = claims.DEFAULT_TIMEOUT) -> SweepResults:
    """Run every missing cell of the grid; returns the metrics of every finished cell (a list).

    ``data_root`` is one folder for every task or ``{dataset: folder}`` (e.g. ``{"ave": ..., "llp": ...}``);
    None runs on the embedded demo. The returned list also has ``.failures`` (cells that raised) and ``.skipped`` (cells that were
    already finished) and ``.elsewhere`` (cells other sweep processes on the same folder were running).
    ``progress`` controls the per-run progress bars; the grid progress lines are always printed through ``say``.
    ``wait`` and ``claim_timeout``: see :func:`run_planned`.
    """
    plan = plan_sweep(tasks, methods, shots, seeds, preset, config, overrides, data_root, results_dir, recipes_dir, schedule)
    return run_planned(plan, progress=progress, say=say, wait=wait, claim_timeout=claim_timeout)


def describe_plan(plan) -> str:
    """One line per cell with its state: finished, partial (will resume) or to run."""
    lines = []
    for job, cfg in plan:
        run_dir = cfg.run_dir()
        holder = claims.holder_of(run_dir)
        if res.is_finished(run_dir):
            state = "finished"
        elif holder is not None:
            state = f"running ({holder.describe()})"
        elif (run_dir / res.LAST_CKPT).exists():
            state = "partial, will resume"
        else:
            state = "to run"
        lines.append(f"{job.label:<48} {state:<22} {run_dir}")
    return "\n".join(lines)
