"""CPU run-time settings: denormal flushing reaches every worker thread when set first."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True,
                          env=environment, timeout=120)


def test_configure_first_flushes_denormals_on_every_thread():
    proc = run_python("from avfewshot.runtime import configure, denormals_flushed\n"
                      "configure(); print(denormals_flushed())")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True" and "RuntimeWarning" not in proc.stderr


def test_late_configure_warns_and_keep_leaves_denormals_alone():
    late = run_python("import torch\n"
                      "torch.bmm(torch.randn(256, 64, 64), torch.randn(256, 64, 24))  # starts the worker threads\n"
                      "from avfewshot.runtime import configure\nconfigure()")
    assert late.returncode == 0, late.stderr
    assert "denormal flushing is off on some torch worker threads" in late.stderr
    keep = run_python("from avfewshot.runtime import configure, denormals_flushed\n"
                      "configure(); print(denormals_flushed())", AVFEWSHOT_DENORMALS="keep")
    assert keep.stdout.strip() == "False"
    bad = run_python("from avfewshot.runtime import configure\nconfigure()", AVFEWSHOT_DENORMALS="sometimes")
    assert bad.returncode != 0 and "AVFEWSHOT_DENORMALS='sometimes'" in bad.stderr


def test_cli_reports_a_bad_allocator_setting_in_one_line():
    proc = run_python("import sys\nfrom avfewshot.cli import main\nsys.exit(main(['models', 'list']))",
                      AVFEWSHOT_MMAP_THRESHOLD_MB="lots")
    assert proc.returncode == 2
    assert "avfewshot: error: AVFEWSHOT_MMAP_THRESHOLD_MB='lots': give a whole number" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_mmap_threshold_range_is_checked():
    from avfewshot.runtime import set_mmap_threshold

    with pytest.raises(ValueError, match="1..32 MB"):
        set_mmap_threshold(64)


def test_huge_pages_are_requested_before_torch_loads_and_late_requests_warn():
    early = run_python("import os\nfrom avfewshot.runtime import configure\nconfigure(huge_pages=True)\n"
                       "import torch\nprint(os.environ.get('THP_MEM_ALLOC_ENABLE'))")
    assert early.returncode == 0 and early.stdout.strip() == "1" and "RuntimeWarning" not in early.stderr
    late = run_python("import torch\nfrom avfewshot.runtime import configure\nconfigure()",
                      AVFEWSHOT_HUGE_PAGES="1")
    assert late.returncode == 0 and "huge pages were requested after torch was imported" in late.stderr


def tcmalloc_installed() -> bool:
    from avfewshot.errors import UserError
    from avfewshot.runtime import find_allocator

    try:
        find_allocator("tcmalloc")
    except UserError:
        return False
    return True


@pytest.mark.skipif(not tcmalloc_installed(),
                    reason="libtcmalloc-minimal4 is not installed (scripts/setup_env.sh installs it where it can)")
def test_cli_restarts_itself_once_with_the_requested_allocator():
    code = ("import sys\nfrom avfewshot import runtime\nprint('start', runtime.loaded_allocator(), flush=True)\n"
            "from avfewshot.cli import main\nsys.argv = ['avfewshot', 'models', 'list']\nsys.exit(main())")
    proc = run_python(code, AVFEWSHOT_ALLOCATOR="tcmalloc")
    assert proc.returncode == 0, proc.stderr
    starts = [line for line in proc.stdout.splitlines() if line.startswith("start ")]
    assert starts == ["start system", "start tcmalloc"]  # once without, then the restarted process with it
    assert "weights folder" in proc.stdout
    plain = run_python(code)
    assert [line for line in plain.stdout.splitlines() if line.startswith("start ")] == ["start system"]


def test_allocator_settings_are_checked_and_explained(monkeypatch):
    from avfewshot import runtime
    from avfewshot.errors import UserError

    bad = run_python("import sys\nfrom avfewshot.cli import main\nsys.exit(main(['models', 'list']))",
                     AVFEWSHOT_ALLOCATOR="jemalloc")
    assert bad.returncode == 2 and "AVFEWSHOT_ALLOCATOR='jemalloc': valid are system, tcmalloc" in bad.stderr
    expected = {"PATH": "/bin", "AVFEWSHOT_ALLOCATOR": "system", "LD_PRELOAD": "libother.so"}
    started_with_tcmalloc = {"PATH": "/bin", "LD_PRELOAD": "libtcmalloc_minimal.so.4 libother.so"}
    assert runtime.allocator_environment("system", started_with_tcmalloc) == expected
    monkeypatch.setitem(runtime.ALLOCATORS, "tcmalloc", (("no_such_allocator_xyz",), "the-package"))
    with pytest.raises(UserError, match="libno_such_allocator_xyz.so was not found.*install the-package"):
        runtime.allocator_environment("tcmalloc", {})


@pytest.mark.skipif(not tcmalloc_installed(), reason="libtcmalloc-minimal4 is not installed")
def test_allocator_environment_preloads_the_library_and_keeps_freed_pages():
    from avfewshot import runtime

    env = runtime.allocator_environment("tcmalloc", {"LD_PRELOAD": "libother.so"})
    first, *rest = env["LD_PRELOAD"].split()
    assert "tcmalloc" in first and rest == ["libother.so"]
    assert env["TCMALLOC_RELEASE_RATE"] == "0" and env["AVFEWSHOT_ALLOCATOR"] == "tcmalloc"
    code = "from avfewshot.runtime import loaded_allocator; print(loaded_allocator())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert proc.stdout.strip() == "tcmalloc", proc.stderr
