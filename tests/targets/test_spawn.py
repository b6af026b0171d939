"""Spawned-server lifecycle (harness/targets/spawn.py) with a fake server command."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from harness.targets.spawn import SpawnedServer, SpawnError, free_port


def _gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (reaped, or a zombie waiting for its reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _server(argv, tmp_path, port, **kw) -> SpawnedServer:
    return SpawnedServer(argv, ready_url=f"http://127.0.0.1:{port}/v1/models",
                         log_path=tmp_path / "logs" / "fake.log", name="fake", **kw)


def test_ready_then_stopped(fake_server_argv, tmp_path):
    port = free_port()
    with _server(fake_server_argv(port, "ok"), tmp_path, port, start_timeout_s=20) as server:
        assert server.ready_after_s is not None and server.ready_after_s < 20
        r = httpx.get(f"http://127.0.0.1:{port}/v1/models", trust_env=False)
        assert r.json()["data"][0]["id"] == "fake"
        pid = server.pid
    assert _gone(pid)
    log = (tmp_path / "logs" / "fake.log").read_text()
    assert log.startswith("# respcheck: starting fake: ") and "mode ok" in log


def test_readiness_timeout_is_one_line_naming_the_log(fake_server_argv, tmp_path):
    port = free_port()
    server = _server(fake_server_argv(port, "never"), tmp_path, port, start_timeout_s=1.5)
    started = time.monotonic()
    with pytest.raises(SpawnError) as info:
        server.start()
    assert time.monotonic() - started < 10
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("fake was not ready within 1.5 s (GET http://127.0.0.1:")
    assert f"see {tmp_path / 'logs' / 'fake.log'}" in msg
    assert _gone(server.pid)  # torn down, not left running


def test_early_exit_names_the_code_the_log_and_its_last_line(fake_server_argv, tmp_path):
    port = free_port()
    with pytest.raises(SpawnError) as info:
        _server(fake_server_argv(port, "exit"), tmp_path, port, start_timeout_s=20).start()
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("fake exited with code 3 before it was ready; see ")
    assert str(tmp_path / "logs" / "fake.log") in msg
    assert "boom: the fake server gave up" in msg


def test_command_not_found(tmp_path):
    with pytest.raises(SpawnError, match=r"could not be started .*; see .*fake\.log"):
        _server([str(tmp_path / "no-such-binary")], tmp_path, 1).start()


def test_teardown_kills_the_whole_process_group(fake_server_argv, tmp_path):
    """The server ignores SIGTERM and has a child that ignores it too: after the grace
    period both get SIGKILL (the group), and close() returns."""
    port = free_port()
    pidfile = tmp_path / "pids"
    server = _server(fake_server_argv(port, "stubborn", str(pidfile)), tmp_path, port,
                     start_timeout_s=20, grace_s=0.5).start()
    parent, child = map(int, pidfile.read_text().split())
    assert parent == server.pid and not _gone(child)
    assert os.getpgid(child) == server.pid
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while not (_gone(parent) and _gone(child)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(parent) and _gone(child)
    server.close()  # idempotent
