"""A client that fails reports the client's own error: each driver against a server that refuses
every request with an OpenAI error envelope, and against a port where nothing listens."""

from __future__ import annotations

import socket

import pytest
from client_install import require_installed
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from harness.run import clients as real_clients
from harness.targets.target import Target
from reference_gateway.launch import RunningServer

BY_NAME = {c.name: c for c in real_clients.CLIENTS}
MESSAGE = "respcheck-test: this server refuses every request"


async def refuse(request):
    return JSONResponse({"error": {"message": MESSAGE, "type": "invalid_request_error",
                                   "param": None, "code": "refused"}}, status_code=400)


@pytest.fixture(scope="module")
def refusing_target():
    app = Starlette(routes=[Route("/v1/{path:path}", refuse, methods=["GET", "POST", "DELETE"])])
    with RunningServer(app, name="refusing server") as server:
        yield Target(name="refusing", base_url=server.base_url, model="m")


@pytest.mark.parametrize("name", real_clients.CLIENT_NAMES)
def test_refused_client_fails_with_the_servers_message_in_its_own_words(name, refusing_target):
    client = BY_NAME[name]
    require_installed(client)
    entry = real_clients.run_client(client, refusing_target, step_deadline_s=60)
    assert entry["status"] == "fail"
    assert entry["steps"][0]["status"] == "fail"
    assert MESSAGE in entry["error"], entry["error"]
    assert entry["error"].startswith("text: ")


@pytest.mark.parametrize("name", ["agents", "openai-node"])
def test_unreachable_server_is_the_sdks_connection_error(name):
    client = BY_NAME[name]
    require_installed(client)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = Target(name="closed", base_url=f"http://127.0.0.1:{port}/v1", model="m")
    entry = real_clients.run_client(client, target, step_deadline_s=30)
    assert entry["status"] == "fail"
    assert "Connection" in entry["error"], entry["error"]
