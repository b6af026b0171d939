"""Waiting for the upstream before serving (reference_gateway/readiness.py and its flags)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from reference_gateway import mock_upstream
from reference_gateway.__main__ import main
from reference_gateway.launch import RunningServer, start_mock_upstream
from reference_gateway.readiness import UpstreamNotReady, wait_for_upstream

MARGIN_S = 2.0


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fake_upstream(models_status, health_status: int = 404, *, key: str | None = None) -> RunningServer:
    """``GET /v1/models`` answers ``models_status(n)`` on its n-th call (0-based), or 401 when
    ``key`` is set and not given; ``GET /health`` answers ``health_status``."""
    calls = []

    async def models(request: Request):
        if key is not None and request.headers.get("authorization") != f"Bearer {key}":
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        calls.append(time.monotonic())
        return JSONResponse({"object": "list", "data": []}, status_code=models_status(len(calls) - 1))

    async def health(request: Request):
        return JSONResponse({}, status_code=health_status)

    app = Starlette(routes=[Route("/v1/models", models), Route("/health", health)])
    app.state.calls = calls
    return RunningServer(app, name="fake upstream")


def test_ready_at_once():
    with start_mock_upstream() as upstream:
        assert wait_for_upstream(upstream.base_url, wait_s=5, interval_s=0.1) == 1


def test_gives_up_at_the_deadline_with_one_clear_line():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    notes = []
    started = time.monotonic()
    with pytest.raises(UpstreamNotReady) as gave_up:
        wait_for_upstream(url, wait_s=0.6, interval_s=0.1, notify=notes.append)
    elapsed = time.monotonic() - started
    assert 0.6 <= elapsed < 0.6 + MARGIN_S
    message = str(gave_up.value)
    assert "\n" not in message
    for part in (url, f"GET {url}/models", "every 0.1 s", "connection refused", "--upstream-wait"):
        assert part in message, part
    attempts = int(message.split(" attempt(s)")[0].rsplit(" ", 1)[1])
    assert 4 <= attempts <= 8  # every 0.1 s for 0.6 s, and one on the deadline
    assert len(notes) == 1 and url in notes[0] and "connection refused" in notes[0]


def test_waits_for_an_upstream_that_starts_late():
    port = closed_port()
    started: list[RunningServer] = []
    timer = threading.Timer(0.5, lambda: started.append(RunningServer(mock_upstream.create_app(), port=port)))
    timer.start()
    try:
        attempts = wait_for_upstream(f"http://127.0.0.1:{port}/v1", wait_s=10, interval_s=0.1)
        assert attempts > 1
    finally:
        timer.join()
        for server in started:
            server.close()


def test_keeps_polling_a_loading_upstream():
    with fake_upstream(lambda n: 503 if n < 3 else 200) as upstream:
        assert wait_for_upstream(upstream.base_url, wait_s=10, interval_s=0.05) == 4


def test_a_rejected_key_gives_up_at_once():
    with fake_upstream(lambda n: 200, key="right") as upstream:
        started = time.monotonic()
        with pytest.raises(UpstreamNotReady) as gave_up:
            wait_for_upstream(upstream.base_url, wait_s=30, interval_s=0.1, api_key="wrong")
        assert time.monotonic() - started < MARGIN_S
        assert "HTTP 401" in str(gave_up.value) and "--upstream-api-key" in str(gave_up.value)
        assert wait_for_upstream(upstream.base_url, wait_s=5, interval_s=0.1, api_key="right") == 1


def test_health_stands_in_for_a_missing_model_list():
    with fake_upstream(lambda n: 404, health_status=200) as upstream:
        assert wait_for_upstream(upstream.base_url, wait_s=5, interval_s=0.1) == 1
    with fake_upstream(lambda n: 404, health_status=404) as upstream:
        with pytest.raises(UpstreamNotReady) as gave_up:
            wait_for_upstream(upstream.base_url, wait_s=0.3, interval_s=0.1)
        assert f"HTTP 404, and GET {upstream.origin}/health answered HTTP 404" in str(gave_up.value)


def test_cli_exits_2_with_the_reason(capsys):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(SystemExit) as exited:
        main(["--upstream", url, "--db", ":memory:", "--upstream-wait", "0.5", "--upstream-poll-interval", "0.1"])
    assert exited.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("python -m reference_gateway: upstream ") and url in last and "--upstream-wait" in last


@pytest.mark.parametrize("flag, value, says", [
    ("--upstream-wait", "-1", "upstream_wait_s"),
    ("--upstream-poll-interval", "0", "upstream_poll_interval_s"),
    ("--stream-timeout", "0", "stream_timeout_s"),
    ("--stream-idle-timeout", "-2", "stream_idle_timeout_s"),
    ("--stream-first-token-timeout", "0", "stream_first_token_timeout_s"),
    ("--upstream-max-line-bytes", "0", "upstream_max_line_bytes"),
    ("--upstream-max-body-bytes", "-5", "upstream_max_body_bytes"),
])
def test_cli_refuses_bad_deadlines(capsys, flag, value, says):
    with pytest.raises(SystemExit) as exited:
        main(["--upstream", "http://127.0.0.1:1/v1", "--db", ":memory:", flag, value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err
