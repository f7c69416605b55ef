"""Shared fixtures: the real annotation files, a socket blocker, isolated caches."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AVFEWSHOT_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = SHARED / "data"
    if not root.is_dir():
        pytest.skip(f"real annotation files not found at {root} (set AVFEWSHOT_SHARED)")
    return root


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    root = SHARED / "golden"
    if not root.is_dir():
        pytest.skip(f"golden vectors not found at {root} (set AVFEWSHOT_SHARED)")
    return root


class _NetworkBlocked(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every test runs with sockets that refuse to connect anywhere but loopback / unix sockets."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1") or self.family == socket.AF_UNIX):
            return real_connect(self, address)
        raise _NetworkBlocked(f"test tried to reach the network: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    yield


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Caches go to a per-session temporary folder, never the user's ~/.cache."""
    root = tmp_path_factory.getbasetemp() / "avfewshot-cache"
    monkeypatch.setenv("AVFEWSHOT_CACHE", str(root))
    yield root


@pytest.fixture(scope="session")
def demo_results(tmp_path_factory) -> Path:
    """One results folder for the session's demo runs (test_demo_towers.py, test_precision_demo.py): a run with
    the same configuration happens once and later tests read its finished result (``run`` skips finished runs)."""
    return tmp_path_factory.mktemp("demo-results")
