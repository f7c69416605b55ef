"""Fault injection (issue 12, items 1, 2, 4, 6): damaged caches, concurrent and killed sweeps,
TorchScript weights that run code, and output paths that cannot be written.

Each case checks what a user sees: the exit code, a one-line message naming the file / path, no
traceback, no partial file left behind, and results identical to an undisturbed run.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
import torch

from avfewshot.cli import main as cli_main
from avfewshot.data.cache import DecodedCache
from avfewshot.data.media import DecodedClip, MediaSpec
from avfewshot.encoders import checkpoints as ckpt
from avfewshot.encoders import specs
from avfewshot import outputs
from avfewshot.engine import results as res
from avfewshot.errors import UserError
from avfewshot.experiments import aggregate as agg
from avfewshot.experiments import claims
from avfewshot.experiments import sweep as sweep_mod
from avfewshot.methods.features import FeatureStore

REPO = Path(__file__).resolve().parents[1]
MARKER = "SETSTATE-RAN-8f2c"


def cli(*argv: str, timeout: float = 600) -> Tuple[int, str, str]:
    """The CLI in a fresh interpreter: (exit code, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-m", "avfewshot.cli", *argv], env=env, capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def one_line_error(stderr: str, *names: str) -> str:
    """The single 'avfewshot: error:' line of ``stderr``; it must name every ``names``."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("avfewshot: error:")]
    assert len(lines) == 1, stderr
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


def overwrite_tail(path: Path, count: int, byte: bytes = b"\xff") -> None:
    """Same size, different payload: the last ``count`` bytes become ``byte``."""
    raw = bytearray(path.read_bytes())
    raw[-count:] = byte * count
    path.write_bytes(bytes(raw))


# -- 1. integrity of cache entries ---------------------------------------------------------------
SPEC = MediaSpec(num_segments=2, image_size=8, audio_rate=1000)


class _Files:
    """Stands in for MediaFiles: one real file whose identity keys the entry."""

    layout = "raw"

    def __init__(self, path: Path):
        self.path = path

    def paths(self):
        return [self.path]


@pytest.mark.parametrize("damage", ["audio block 0xff", "one frame byte"])
def test_decoded_entry_with_changed_payload_is_logged_deleted_and_recomputed(tmp_path, caplog, damage):
    rng = np.random.default_rng(0)
    clip = DecodedClip(rng.integers(0, 255, (2, 8, 8, 3), dtype=np.uint8),
                       rng.standard_normal((2, 1000)).astype(np.float32), (0, 1))
    media = tmp_path / "clip.mp4"
    media.write_bytes(b"media")
    decodes = []

    def decode(files, spec):
        decodes.append(1)
        return clip

    cache = DecodedCache(tmp_path / "decoded")
    _, key = cache.fetch(_Files(media), SPEC, decode)
    path = cache.path(key)
    size = path.stat().st_size
    if damage == "audio block 0xff":
        overwrite_tail(path, 8000)  # as in the issue: the audio becomes NaN, same size
    else:  # a small change would give silently different numbers
        raw = bytearray(path.read_bytes())
        raw[-8000 - 1] ^= 0x01  # the last frame byte
        path.write_bytes(bytes(raw))
    assert path.stat().st_size == size
    with caplog.at_level(logging.WARNING, logger="avfewshot"):
        got, _ = cache.fetch(_Files(media), SPEC, decode)
    assert len(decodes) == 2 and cache.recovered == 1
    assert np.array_equal(got.frames, clip.frames) and np.array_equal(got.audio, clip.audio)
    warnings = [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
    assert len(warnings) == 1 and "checksum mismatch" in warnings[0]
    again, _ = cache.fetch(_Files(media), SPEC, decode)  # the rewritten entry is used again
    assert len(decodes) == 2 and np.array_equal(again.audio, clip.audio)


class _Backbone:
    def fingerprint(self, tower: str) -> str:
        return f"stub-{tower}"


def test_feature_entry_with_changed_bytes_is_logged_deleted_and_recomputed(tmp_path, caplog):
    values = torch.arange(12, dtype=torch.float32).reshape(2, 2, 3) / 7
    calls = []

    def compute(batch):
        calls.append(1)
        return values.clone()

    batch = {"cache_key": ["k1", "k2"], "frames": torch.zeros(2)}
    FeatureStore(_Backbone(), root=tmp_path).get("image", batch, compute)
    path = next(tmp_path.rglob("k1.pt"))
    raw = path.read_bytes()
    tensor_bytes = values[0].numpy().tobytes()
    assert raw.count(tensor_bytes) == 1
    path.write_bytes(raw.replace(tensor_bytes, b"\xff" * len(tensor_bytes)))  # same size
    fresh = FeatureStore(_Backbone(), root=tmp_path)
    with caplog.at_level(logging.WARNING, logger="avfewshot"):
        out = fresh.get("image", batch, compute)
    assert torch.equal(out, values) and len(calls) == 2 and fresh.misses == 2
    assert [r for r in caplog.records if str(path) in r.getMessage() and "checksum" in r.getMessage()]
    assert torch.equal(FeatureStore(_Backbone(), root=tmp_path).get("image", batch, compute), values) and len(calls) == 2


def _demo_run(results: Path) -> Tuple[dict, str]:
    code, out, err = cli("run", "--task", "llp_cls", "--method", "linear_probe", "--shots", "1", "--seed", "1",
                         "--results", str(results), "--no-progress", "train.epochs=2", "train.threads=1")
    assert code == 0, out + err
    run_dir = results / "llp_cls" / "linear_probe" / "shot1" / "seed1"
    return json.loads((run_dir / res.METRICS_FILE).read_text()), out + err + (run_dir / res.LOG_FILE).read_text()


@pytest.mark.slow
def test_demo_run_on_corrupted_caches_equals_a_clean_run(tmp_path, isolated_cache):
    clean, _ = _demo_run(tmp_path / "clean")
    decoded = sorted((isolated_cache / "decoded").rglob("*.clip"))
    features = sorted((isolated_cache / "features").rglob("*.pt"))
    assert decoded and features
    for path in decoded:
        overwrite_tail(path, 4096)  # audio samples become NaN, same size
    for path in features:  # the tensor's bytes inside the (still valid) zip become NaN
        raw, tensor = path.read_bytes(), torch.load(path, weights_only=True)["tensor"]
        path.write_bytes(raw.replace(tensor.numpy().tobytes(), b"\xff" * tensor.numpy().nbytes))
    again, text = _demo_run(tmp_path / "again")
    assert again["test"] == clean["test"]
    assert any(f"{p} is corrupt (payload checksum mismatch" in text for p in decoded)
    assert any(f"{p} is corrupt (tensor checksum mismatch" in text for p in features)
    assert "nan" not in text.lower()


# -- 2. claimed sweep cells ---------------------------------------------------------------------
def write_lock(run_dir: Path, host: str, pid: int, age: float = 0.0, proc_start=None) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / claims.LOCK_FILE
    lock.write_text(json.dumps({"host": host, "pid": pid, "started": 0.0, "proc_start": proc_start, "token": f"t{pid}"}))
    if age:
        os.utime(lock, (time.time() - age, time.time() - age))
    return lock


def test_claim_rules(tmp_path):
    said: List[str] = []
    here = socket.gethostname()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        alive = write_lock(tmp_path / "a", here, sleeper.pid, proc_start=claims._proc_start(sleeper.pid))
        assert claims.try_claim(tmp_path / "a", 1800, said.append).decision == claims.HELD
        assert alive.exists() and not said
        write_lock(tmp_path / "b", "other-host", 4242, age=60)  # another host, recent heartbeat
        assert claims.try_claim(tmp_path / "b", 1800, said.append).decision == claims.HELD
    finally:
        sleeper.kill()
        sleeper.wait()
    claim = claims.try_claim(tmp_path / "a", 1800, said.append)  # its process is gone now
    assert claim.decision == claims.RUN and f"{here}:{sleeper.pid} is gone" in said[-1]
    assert json.loads(alive.read_text())["pid"] == os.getpid()
    assert claims.try_claim(tmp_path / "a", 1800, said.append).decision == claims.HELD  # we hold it: nobody else
    claim.release()
    assert not alive.exists()
    assert claims.try_claim(tmp_path / "b", 30, said.append).decision == claims.RUN  # no heartbeat for 60 s > 30 s
    assert "gave no sign of life" in said[-1]
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / claims.LOCK_FILE).write_bytes(b"")  # a writer killed right after creating it
    assert claims.try_claim(tmp_path / "c", 1800, said.append).decision == claims.HELD  # could still be writing
    os.utime(tmp_path / "c" / claims.LOCK_FILE, (time.time() - 120, time.time() - 120))
    assert claims.try_claim(tmp_path / "c", 1800, said.append).decision == claims.RUN


def test_a_stale_lock_is_removed_only_if_unchanged(tmp_path):
    lock = write_lock(tmp_path, "other-host", 1, age=9999)
    seen = lock.read_bytes()
    write_lock(tmp_path, "other-host", 2)  # someone else took it over meanwhile
    assert not claims._remove_if_unchanged(lock, seen) and json.loads(lock.read_text())["pid"] == 2
    assert claims._remove_if_unchanged(lock, lock.read_bytes()) and not lock.exists()


def test_heartbeat_keeps_a_long_run_claimed(tmp_path):
    lock = tmp_path / claims.LOCK_FILE
    claim = claims.try_claim(tmp_path, timeout=4.0, say=lambda s: None)  # a heartbeat every second
    created = lock.stat().st_mtime
    time.sleep(5.5)  # longer than the timeout: only the heartbeat keeps the claim fresh
    assert lock.stat().st_mtime - created >= 3.0
    assert claims.stale_reason(claims.read_lock(lock)[0], lock.stat().st_mtime, 4.0) is None
    claim.release()
    assert not lock.exists()


TORCHRUN_SCRIPT = """
import sys
from pathlib import Path
from avfewshot.experiments import claims
import torch.distributed as dist


def say(line):  # one write per line: the two ranks share one pipe (print writes text and newline apart)
    sys.stdout.write(line + "\\n")
    sys.stdout.flush()


run_dir = Path(sys.argv[1])
claim = claims.claim_cell(run_dir, lambda d: False, 60.0, say)
say(f"rank {dist.get_rank()}: {claim.decision} owned={claim.owned} lock={(run_dir / claims.LOCK_FILE).exists()}")
dist.barrier()
claim.release()
dist.barrier()
again = claims.claim_cell(run_dir, lambda d: True, 60.0, say)  # finished meanwhile: every rank reads it back
say(f"rank {dist.get_rank()} again: {again.decision}")
"""


@pytest.mark.slow
def test_under_torchrun_rank_0_claims_for_every_rank(tmp_path):
    import shutil

    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this python")
    script = tmp_path / "claim.py"
    script.write_text(TORCHRUN_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path / "cell")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = sorted(line for line in proc.stdout.splitlines() if line.startswith("rank "))
    assert lines == ["rank 0 again: finished", "rank 0: run owned=True lock=True",
                     "rank 1 again: finished", "rank 1: run owned=False lock=True"], proc.stdout
    assert not (tmp_path / "cell" / claims.LOCK_FILE).exists()


@pytest.fixture
def fake_run(monkeypatch):
    from avfewshot.engine import trainer

    calls = []

    def run(cfg=None, force=False, progress=True, **kw):
        calls.append((cfg.method, cfg.seed))
        metrics = {"task": cfg.task, "method": cfg.method, "shots": cfg.shots, "seed": cfg.seed, "preset": cfg.preset,
                   "test": {"accuracy": float(cfg.seed)}, "total_seconds": 1.0}
        res.write_json(cfg.run_dir() / res.METRICS_FILE, metrics)
        return metrics

    monkeypatch.setattr(trainer, "run_experiment", run)
    monkeypatch.setattr(sweep_mod, "method_is_zero_shot", lambda method, cfg: method.startswith("zeroshot"))
    return calls


def test_sweep_leaves_cells_held_by_live_processes_and_their_temp_files_alone(tmp_path, fake_run):
    sleeper = subprocess.Popen(["sleep", "60"])
    run_dir = tmp_path / "llp_cls" / "coop" / "shot1" / "seed1"
    write_lock(run_dir, socket.gethostname(), sleeper.pid, proc_start=claims._proc_start(sleeper.pid))
    writing = run_dir / ".checkpoint_last.pt.abc123.tmp"  # the live owner is writing it right now
    writing.write_bytes(b"half")
    lines: List[str] = []
    try:
        out = sweep_mod.sweep("llp_cls", ["coop"], [1], [1, 2], results_dir=tmp_path, say=lines.append)
        assert fake_run == [("coop", 2)] and writing.exists() and len(out.elsewhere) == 1
        assert f"being run by {socket.gethostname()}:{sleeper.pid}" in "\n".join(lines)
        assert "1 running in other processes" in "\n".join(lines)
    finally:
        sleeper.kill()
        sleeper.wait()
    lines.clear()
    again = sweep_mod.sweep("llp_cls", ["coop"], [1], [1, 2], results_dir=tmp_path, say=lines.append)
    assert fake_run == [("coop", 2), ("coop", 1)] and not writing.exists() and not again.elsewhere
    assert any("taking over" in line and "is gone" in line for line in lines)
    assert not list(tmp_path.rglob(claims.LOCK_FILE))


E2E_GRID = ["--task", "llp_cls", "--methods", "zeroshot", "linear_probe", "--shots", "1", "--seeds", "1", "2",
            "--no-progress", "train.epochs=4", "train.threads=1"]


def sweep_process(results: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-m", "avfewshot.cli", "sweep", "--results", str(results), *E2E_GRID],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def starts_per_run(results: Path) -> dict:
    """How many times each run folder's run.log shows a run starting, and a first epoch."""
    out = {}
    for log in results.rglob(res.LOG_FILE):
        text = log.read_text()
        starts = sum(1 for line in text.splitlines() if " INFO run " in line and " task=" in line)
        out[str(log.parent.relative_to(results))] = (starts, text.count("INFO epoch 1:"))
    return out


@pytest.fixture(scope="module")
def concurrent_sweep(tmp_path_factory):
    """Two sweep processes started together on one results folder; (folder, their outputs)."""
    results = tmp_path_factory.mktemp("concurrent") / "results"
    procs = [sweep_process(results), sweep_process(results)]
    outputs_ = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs_
    return results, outputs_


@pytest.mark.slow
def test_two_concurrent_sweeps_run_each_cell_exactly_once(concurrent_sweep):
    results, outs = concurrent_sweep
    starts = starts_per_run(results)
    assert sorted(starts) == ["llp_cls/linear_probe/shot1/seed1", "llp_cls/linear_probe/shot1/seed2",
                              "llp_cls/zeroshot/shot0/seed1", "llp_cls/zeroshot/shot0/seed2"]
    assert all(s == 1 for s, _ in starts.values()), starts
    assert all(e == 1 for name, (_, e) in starts.items() if "linear_probe" in name), starts
    ran = [line for out in outs for line in out.splitlines() if line.startswith("[sweep] run ")]
    assert len(ran) == 4 and len({line.split(": ", 1)[1] for line in ran}) == 4
    assert not [p for p in results.rglob("*") if p.name.endswith(".tmp") or p.name == claims.LOCK_FILE]


@pytest.mark.slow
def test_concurrent_sweeps_killed_at_random_points_then_rerun_give_the_same_table(concurrent_sweep, tmp_path):
    reference, _ = concurrent_sweep
    results = tmp_path / "results"
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    first, second = sweep_process(results), sweep_process(results)
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None:  # wait until some cell is under way
        if list(results.rglob(res.LAST_CKPT)) or list(results.rglob(res.METRICS_FILE)):
            break
        time.sleep(0.02)
    time.sleep(rng.uniform(0, 1.5))  # short: on an idle machine a sweep finishes its four cells in seconds
    killed = []
    for proc in (first, second):
        killed.append(proc.poll() is None)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(rng.uniform(0, 0.5))
    assert any(killed), f"random seed {seed}: both sweeps finished before they could be killed"
    assert len(list(results.rglob(res.METRICS_FILE))) < 4, f"random seed {seed}"
    rerun = [sweep_process(results), sweep_process(results)]
    for proc in rerun:
        out = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, f"random seed {seed}\n{out}"
    ref_table, new_table = agg.aggregate(reference), agg.aggregate(results)
    assert not new_table.problems, f"random seed {seed}: {new_table.problems}"
    assert agg.table_csv(new_table, ci95=True) == agg.table_csv(ref_table, ci95=True), f"random seed {seed}"
    for path in reference.rglob(res.METRICS_FILE):
        mine = json.loads((results / path.relative_to(reference)).read_text())
        assert mine["test"] == json.loads(path.read_text())["test"], f"random seed {seed}: {path}"
    assert not [p for p in results.rglob("*") if p.name.endswith(".tmp") or p.name in (claims.LOCK_FILE, res.LAST_CKPT)]


# -- 4. weights that can run code ---------------------------------------------------------------
class SetstatePrints(torch.nn.Module):
    """A TorchScript module whose __setstate__ runs (and prints) when the archive is loaded."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(2))

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, bool]:
        return (self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, bool]) -> None:
        print("SETSTATE-RAN-8f2c")
        self.weight = state[0]
        self.training = state[1]

    def forward(self, x):
        return x * self.weight


@pytest.fixture
def printing_archive(tmp_path) -> Path:
    path = tmp_path / "weights" / "ViT-B-32.pt"
    path.parent.mkdir()
    torch.jit.save(torch.jit.script(SetstatePrints()), str(path))
    return path


def test_torchscript_that_runs_code_is_refused_unless_trusted(printing_archive, capfd):
    with pytest.raises(UserError) as info:
        ckpt.read_state_dict(printing_archive)
    message = str(info.value)
    assert str(printing_archive) in message and "model.trust_torchscript=true" in message and "\n" not in message
    assert "weights_only=False" not in message
    assert MARKER not in capfd.readouterr().out
    state = ckpt.read_state_dict(printing_archive, trust_torchscript=True)  # the user opted in: it runs
    assert MARKER in capfd.readouterr().out and torch.equal(state["weight"], torch.ones(2))


def test_torchscript_with_a_published_digest_loads(printing_archive, monkeypatch, capfd):
    """The stand-in gets registered as a published file, as OpenAI's ViT-B-32.pt is in the table."""
    table = specs.catalogue().clip_checkpoints["openai"]
    assert table["ViT-B-32"].torchscript_sha256 == table["ViT-B-32"].source.split("/")[-2]
    digest = ckpt.file_sha256(printing_archive)
    assert digest not in ckpt.published_torchscript_digests()
    monkeypatch.setitem(table, "ViT-B-32", specs.ClipCheckpoint(**{**table["ViT-B-32"].__dict__, "torchscript_sha256": digest}))
    assert ckpt.published_torchscript_digests()[digest] == "CLIP ViT-B-32 openai"
    state = ckpt.read_state_dict(printing_archive)
    assert MARKER in capfd.readouterr().out and torch.equal(state["weight"], torch.ones(2))


@pytest.mark.slow
def test_run_with_untrusted_torchscript_weights_is_one_line_and_prints_nothing(printing_archive, tmp_path):
    code, out, err = cli("run", "--task", "llp_cls", "--method", "zeroshot", "--shots", "0", "--results",
                         str(tmp_path / "r"), "--no-progress", f"model.clip_weights={printing_archive}")
    assert code == 2 and MARKER not in out + err
    one_line_error(err, printing_archive, "model.trust_torchscript=true")


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_unreadable_weights_files_are_one_line_errors(tmp_path, printing_archive, damage):
    raw = printing_archive.read_bytes()
    body = raw[: len(raw) // 2] if damage == "truncated" else b""
    for name in ("x.safetensors", "x.pt", "x.bin"):
        path = tmp_path / name
        path.write_bytes(body if name != "x.safetensors" else body or b"\x08\x00\x00\x00\x00\x00\x00\x00{")
        with pytest.raises(UserError) as info:
            ckpt.read_state_dict(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
        assert "weights_only=False" not in str(info.value)


# -- 6. output paths ------------------------------------------------------------------------------
@pytest.fixture
def small_fs(tmp_path):
    """A 64 KiB tmpfs (root only); None where mounting is not possible (the cases then inject the errno)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True).returncode:
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def make_read_only(mount: Path) -> None:
    assert subprocess.run(["mount", "-o", "remount,ro", str(mount)], capture_output=True).returncode == 0


def fill(mount: Path, leave_pages: int) -> None:
    """Fill the tmpfs until ``leave_pages`` 4 KiB pages are free."""
    free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
    (mount / "filler").write_bytes(b"x" * (free - leave_pages * 4096))


def run_cli_in_process(capsys, *argv: str) -> Tuple[int, str]:
    code = cli_main(list(argv))
    captured = capsys.readouterr()
    return code, captured.err


def output_commands(target: Path, shared_data: Path) -> dict:
    results = target.parent / "results-in"
    res.write_json(results / "llp_cls" / "coop" / "shot1" / "seed1" / res.METRICS_FILE,
                   {"task": "llp_cls", "method": "coop", "shots": 1, "seed": 1, "preset": "paper", "demo": False,
                    "main_metric": "accuracy", "test": {"accuracy": 50.0}})
    return {
        "splits make": ["splits", "make", "--dataset", "ave", "--root", str(shared_data / "AVE"), "--shots", "1",
                        "--seeds", "1", "--out", str(target / "splits")],
        "data check": ["data", "check", "--dataset", "ave", "--root", str(shared_data / "AVE"), "--report",
                       str(target / "check.json")],
        "data synth": ["data", "synth", "--dataset", "ave", "--root", str(target / "synth")],
        "plot": ["plot", "--results", str(results), "--out", str(target / "fewshot.png")],
        "aggregate": ["aggregate", "--results", str(results), "--out-prefix", str(target / "summary")],
    }


@pytest.mark.parametrize("command", ["splits make", "data check", "data synth", "plot", "aggregate"])
def test_a_file_where_the_output_folder_should_be(tmp_path, shared_data, capsys, command):
    blocker = tmp_path / "out"
    blocker.write_text("a file, not a folder")
    code, err = run_cli_in_process(capsys, *output_commands(blocker, shared_data)[command])
    assert code == 2
    assert "is a file" in one_line_error(err, blocker)
    assert blocker.read_text() == "a file, not a folder"


@pytest.mark.parametrize("command", ["splits make", "data check", "data synth", "plot", "aggregate"])
def test_a_read_only_output_folder(tmp_path, shared_data, capsys, small_fs, monkeypatch, command):
    target = small_fs or tmp_path / "ro"
    target.mkdir(exist_ok=True)
    argv = output_commands(target, shared_data)[command]
    if small_fs is not None:
        make_read_only(small_fs)
    else:  # no mount: creating anything under the target fails as on a read-only filesystem
        real_mkstemp, real_mkdir, real_open = outputs.tempfile.mkstemp, Path.mkdir, os.open

        def refuse(real, where):
            def wrapper(*args, **kwargs):
                if str(where(args, kwargs)).startswith(str(target)):
                    raise OSError(errno.EROFS, "Read-only file system", str(where(args, kwargs)))
                return real(*args, **kwargs)
            return wrapper

        monkeypatch.setattr(outputs.tempfile, "mkstemp", refuse(real_mkstemp, lambda a, k: k.get("dir", "")))
        monkeypatch.setattr(Path, "mkdir", refuse(real_mkdir, lambda a, k: a[0]))
        monkeypatch.setattr(os, "open", refuse(real_open, lambda a, k: a[0]))
    code, err = run_cli_in_process(capsys, *argv)
    assert code == 2
    assert "read-only" in one_line_error(err, target)
    assert not [p for p in target.rglob("*") if p.name != "filler"]


@pytest.mark.parametrize("command", ["splits make", "data check", "data synth", "plot", "aggregate"])
def test_a_full_disk_leaves_no_partial_file(tmp_path, shared_data, capsys, small_fs, monkeypatch, command):
    target = small_fs or tmp_path / "full"
    target.mkdir(exist_ok=True)
    argv = output_commands(target, shared_data)[command]
    if command == "plot":  # a figure smaller than one page would fit
        argv = argv[:-1] + [str(target / "fewshot.svg")]
    if small_fs is not None:
        fill(small_fs, leave_pages=1)  # the up-front probe fits, the real output does not
    else:  # no mount: every atomic write fails at its flush, after part of the file was written
        def full(fd):
            raise OSError(errno.ENOSPC, "No space left on device")

        def synth_fills_the_disk(dataset, root, **kwargs):
            (Path(root) / "video").mkdir(parents=True)
            (Path(root) / "video" / "a.mp4").write_bytes(b"half an mp4")
            raise OSError(errno.ENOSPC, "No space left on device", str(Path(root) / "video" / "b.mp4"))

        monkeypatch.setattr(res.os, "fsync", full)
        monkeypatch.setattr("avfewshot.data.synth.make_dataset", synth_fills_the_disk)
    code, err = run_cli_in_process(capsys, *argv)
    assert code == 2
    assert "no space left" in one_line_error(err, target)
    assert not [p for p in target.rglob("*") if p.name != "filler" and p.is_file()]
    if command == "data synth":  # the half-written dataset is gone, the folder this command created too
        assert not (target / "synth").exists()


def test_check_output_dir_creates_and_names_what(tmp_path):
    made = outputs.check_output_dir(tmp_path / "a" / "b", "--results")
    assert made.is_dir() and not list(made.iterdir())
    assert outputs.check_output_dir(tmp_path / "c" / "d", "--out", create=False) == tmp_path / "c" / "d"
    assert not (tmp_path / "c").exists()
    (tmp_path / "f").write_text("")
    with pytest.raises(outputs.OutputError, match=r"--results .*/f/x cannot be created: .*/f is a file"):
        outputs.check_output_dir(tmp_path / "f" / "x", "--results")
