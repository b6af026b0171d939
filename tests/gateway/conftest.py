"""Servers for the gateway's tests: real uvicorn servers on 127.0.0.1, started by launch.py."""

from __future__ import annotations

import glob
import itertools
import json
import os
import shutil
import socket
import subprocess
import tempfile

import httpx
import jsonschema
import psycopg
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from reference_gateway.config import GatewayConfig
from reference_gateway.launch import start_embedded, start_gateway

CLIENT_TIMEOUT_S = 5.0
PG_START_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def target():
    with start_embedded() as embedded:
        yield embedded


@pytest.fixture
def client(target):
    with httpx.Client(base_url=target.base_url, timeout=CLIENT_TIMEOUT_S) as c:
        yield c


@pytest.fixture
def make_gateway(target):
    """Another gateway in front of the same mock upstream, with its own config fields."""
    started = []

    def make(**fields):
        server = start_gateway(GatewayConfig(upstream_url=target.upstream.base_url, **fields))
        started.append(server)
        return httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT_S)

    yield make
    for server in started:
        server.close()


def _parse_sse(body: str) -> list[tuple[str | None, str]]:
    """(event name, data) per frame; deliberately simple and independent of harness/core/sse.py."""
    frames = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        frames.append((name, "\n".join(data)))
    return frames


def _stream(client: httpx.Client, body: dict) -> tuple[httpx.Response, str, list[dict]]:
    with client.stream("POST", "/responses", json={**body, "stream": True}) as response:
        text = response.read().decode()
    frames = _parse_sse(text)
    events = [json.loads(data) for name, data in frames if data != "[DONE]"]
    for (name, _), event in zip(frames, events):
        assert name == event["type"], f"event: line {name!r} disagrees with JSON type {event['type']!r}"
    return response, text, events


@pytest.fixture
def parse_sse():
    return _parse_sse


@pytest.fixture
def stream():
    """``stream(client, body) -> (response, raw body, events)`` for a streamed create."""
    return _stream


RESPONSE_SCHEMA = Response.model_json_schema()
EVENT_ADAPTER = TypeAdapter(ResponseStreamEvent)
DELTA_DONE = {  # delta event -> (done event, field of the done event)
    "response.output_text.delta": ("response.output_text.done", "text"),
    "response.reasoning_text.delta": ("response.reasoning_text.done", "text"),
    "response.function_call_arguments.delta": ("response.function_call_arguments.done", "arguments"),
}


def _as_the_sdk_types_it(obj: dict) -> dict:
    """``obj`` with a failed response's ``error.code`` put inside the SDK's ``ResponseError``
    enum once it is checked to be a non-empty string. OpenAI's service itself sends codes
    outside that enum there (recorded: ``insufficient_quota``, shared/fixtures/openai-recorded/
    openai-error.1), and the gateway sends the code of its ``error`` event (translate.fail)."""
    error = obj.get("error")
    if not isinstance(error, dict) or "code" not in error:
        return obj
    assert isinstance(error["code"], str) and error["code"], error
    return {**obj, "error": {**error, "code": "server_error"}}


def _validate_response(obj: dict) -> dict:
    typed = _as_the_sdk_types_it(obj)
    Response.model_validate(typed)
    jsonschema.Draft202012Validator(RESPONSE_SCHEMA).validate(typed)
    return obj


def _check_events(events: list[dict]) -> dict:
    """Every event against the SDK's union, plus an independent grammar check: sequence numbers,
    one item open at a time, dense output_index, deltas accumulating to .done values and to the
    terminal response's items. Returns the terminal response."""
    for event in events:
        if event["type"] == "response.failed":
            EVENT_ADAPTER.validate_python({**event, "response": _as_the_sdk_types_it(event["response"])})
        elif event["type"] != "error":  # nested on the wire, flat in the SDK (README: the wire wins)
            EVENT_ADAPTER.validate_python(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    terminal = events[-1]
    assert terminal["type"] in ("response.completed", "response.incomplete", "response.failed")
    assert terminal["type"] == f"response.{terminal['response']['status']}"
    open_item, done_items, acc = None, [], ""
    for event in events[2:-1]:
        kind = event["type"]
        if kind == "response.output_item.added":
            assert open_item is None, "two items open at once"
            assert event["output_index"] == len(done_items)
            open_item, acc = event["item"], ""
            assert open_item["status"] == "in_progress"
        elif kind == "response.output_item.done":
            assert open_item is not None and event["item"]["id"] == open_item["id"]
            assert event["output_index"] == len(done_items)
            done_items.append(event["item"])
            open_item = None
        elif kind == "error":
            continue
        else:
            assert open_item is not None, f"{kind} outside an item"
            assert event["item_id"] == open_item["id"] and event["output_index"] == len(done_items)
            if kind in DELTA_DONE:
                acc += event["delta"]
            for done, key in DELTA_DONE.values():
                if kind == done:
                    assert event[key] == acc
    final = terminal["response"]
    if terminal["type"] != "response.failed":
        assert open_item is None
        assert final["output"] == done_items
    _validate_response(final)
    return final


@pytest.fixture
def validate():
    """``validate(response_object)``: the SDK's pydantic model and its JSON schema."""
    return _validate_response


@pytest.fixture
def check_events():
    """``check_events(events) -> terminal response`` (see ``_check_events``)."""
    return _check_events


# -- a real PostgreSQL server, for the store tests (test_store_postgres.py says how) --------------
def _pg_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, bin_dir: str) -> None:
        self.bin_dir = bin_dir
        self.dir = tempfile.mkdtemp(prefix="respcheck-pg-")  # under /tmp: reachable by postgres
        self.data = os.path.join(self.dir, "data")
        self.port = _free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise RuntimeError("running as root and no runuser to start PostgreSQL as 'postgres'")
            self.as_user = [runuser, "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.dir}"
                   " -c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", self.data, "-o", options, "-l", os.path.join(self.dir, "server.log"),
                  "-w", "-t", str(PG_START_TIMEOUT_S), "start")
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._names = itertools.count()

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run([*self.as_user, os.path.join(self.bin_dir, tool), *args], capture_output=True,
                              text=True, timeout=PG_START_TIMEOUT_S + 30)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-1500:]}")

    def new_database(self) -> str:
        name = f"respcheck_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    bin_dir = _pg_bin()
    if bin_dir is None:
        reason = ("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb); "
                  "install Debian's 'postgresql' package to run the Postgres store tests")
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    server = PostgresServer(bin_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (it was free a moment ago)."""
    return _free_port()
