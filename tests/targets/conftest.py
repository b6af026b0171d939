"""Fixtures for the target-profile tests: a fake server command, an isolated model cache."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

FAKE_SERVER = Path(__file__).with_name("fake_server.py")


@pytest.fixture
def fake_server_argv():
    """argv of the fake server for a port and mode (see fake_server.py)."""
    def argv(port: int, mode: str, *extra: str) -> list[str]:
        return [sys.executable, str(FAKE_SERVER), str(port), mode, *extra]
    return argv


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """$RESPCHECK_CACHE pointed at a fresh folder, so no test touches ~/.cache."""
    path = tmp_path / "cache"
    monkeypatch.setenv("RESPCHECK_CACHE", str(path))
    return path


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
