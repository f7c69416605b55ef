"""Nothing waits on the network: building works with sockets blocked, with or without HF_HUB_OFFLINE."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import socket

from avfewshot.encoders import build_backbone


def test_socket_guard_is_active():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(RuntimeError, match="network"):
            s.connect(("1.1.1.1", 443))
    finally:
        s.close()


def test_build_without_hf_offline_and_sockets_blocked(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    bb = build_backbone(clip_arch="tiny", clip_weights="none", clap_arch="tiny", clap_weights="none")
    ids, mask = bb.clap_text.tokenize(["The sounds of dog"])
    assert bb.clap_text(ids, mask).shape == (1, 64)


def test_import_does_not_touch_laion_clap_package(tmp_path):
    """In a fresh interpreter: importing the package (and building) never imports top-level laion_clap."""
    code = textwrap.dedent(f"""
        import os, sys, socket
        os.environ.pop("HF_HUB_OFFLINE", None)
        os.environ["AVFEWSHOT_CACHE"] = {str(tmp_path)!r}
        def refuse(*a, **k):
            raise RuntimeError("network")
        socket.socket.connect = refuse
        import avfewshot.encoders
        assert "torch" not in sys.modules, "import avfewshot.encoders must stay light"
        assert "laion_clap" not in sys.modules
        from avfewshot.encoders import build_backbone
        build_backbone(clip_arch="tiny", clip_weights="none", clap_arch="tiny", clap_weights="none")
        assert "clap_module" in sys.modules
        bad = [m for m in sys.modules if m == "laion_clap" or m.startswith("laion_clap.")]
        assert not bad, bad
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
