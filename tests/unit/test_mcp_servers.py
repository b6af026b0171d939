"""The deterministic MCP servers (harness/targets/mcp_servers.py), driven by the mcp 2.x client over
Streamable HTTP on 127.0.0.1. Each test is bounded by CLIENT_TIMEOUT_S per client operation."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from harness.targets.mcp_servers import (
    SEARCH_DEFAULT_RESULTS,
    SEARCH_MAX_RESULTS,
    SLOW_TOOL_MAX_SECONDS,
    UNAUTHORIZED_ERROR_CODE,
    call_tool,
    fake_search_results,
    list_tools,
    start_search_server,
    start_tools_server,
)

CLIENT_TIMEOUT_S = 5.0
# close() must not wait for uvicorn's graceful-shutdown timeout, even with a call in flight.
PROMPT_CLOSE_S = 1.5
# A fresh interpreter importing the harness and mcp on a loaded 2-core machine.
SUBPROCESS_DEADLINE_S = 15.0


@pytest.fixture(scope="module")
def tools_server():
    with start_tools_server() as server:
        yield server


@pytest.fixture(scope="module")
def search_server():
    with start_search_server() as server:
        yield server


@pytest.fixture
def fresh_tools_server():
    """For tests that count what arrives: nothing else has talked to it."""
    with start_tools_server() as server:
        yield server


# -- listing ------------------------------------------------------------------------------
async def test_tools_server_lists_its_tools_with_schemas(tools_server):
    assert tools_server.url == f"http://127.0.0.1:{tools_server.port}/mcp"
    tools = {tool["name"]: tool for tool in await list_tools(tools_server.url, timeout_s=CLIENT_TIMEOUT_S)}
    assert sorted(tools) == ["add", "echo", "fail", "slow"]
    expected_properties = {"add": {"a": "integer", "b": "integer"}, "echo": {"text": "string"},
                           "fail": {"reason": "string"}, "slow": {"seconds": "number"}}
    for name, properties in expected_properties.items():
        schema = tools[name]["input_schema"]
        assert tools[name]["description"]
        assert schema["type"] == "object"
        assert schema["required"] == list(properties)
        assert {prop: spec["type"] for prop, spec in schema["properties"].items()} == properties
        assert all(spec["description"] for spec in schema["properties"].values())


async def test_search_server_lists_search(search_server):
    (tool,) = await list_tools(search_server.url, timeout_s=CLIENT_TIMEOUT_S)
    assert tool["name"] == "search"
    schema = tool["input_schema"]
    assert schema["required"] == ["query"]
    assert schema["properties"]["query"]["type"] == "string"
    assert schema["properties"]["max_results"]["type"] == "integer"
    assert schema["properties"]["max_results"]["default"] == SEARCH_DEFAULT_RESULTS


# -- calls --------------------------------------------------------------------------------
async def test_add_and_echo_answer_exactly(tools_server):
    assert await call_tool(tools_server.url, "add", {"a": 2, "b": 3}, timeout_s=CLIENT_TIMEOUT_S) == (False, "5")
    assert await call_tool(tools_server.url, "add", {"a": -7, "b": 2**40}, timeout_s=CLIENT_TIMEOUT_S) == (
        False,
        str(2**40 - 7),
    )
    text = 'héllo "world"\n  {x}  '
    assert await call_tool(tools_server.url, "echo", {"text": text}, timeout_s=CLIENT_TIMEOUT_S) == (False, text)


async def test_fail_is_a_tool_error_naming_the_reason(tools_server):
    is_error, text = await call_tool(tools_server.url, "fail", {"reason": "disk on fire"}, timeout_s=CLIENT_TIMEOUT_S)
    assert is_error is True
    assert "disk on fire" in text


async def test_bad_arguments_are_a_tool_error(tools_server):
    is_error, text = await call_tool(tools_server.url, "add", {"a": "two"}, timeout_s=CLIENT_TIMEOUT_S)
    assert is_error is True
    assert "invalid arguments" in text and "b" in text


async def test_unknown_tool_is_a_protocol_error(tools_server):
    with pytest.raises(MCPError) as caught:
        await call_tool(tools_server.url, "nope", {}, timeout_s=CLIENT_TIMEOUT_S)
    assert "Unknown tool: nope" in caught.value.message


async def test_slow_sleeps_then_answers_done(tools_server):
    started = time.monotonic()
    assert await call_tool(tools_server.url, "slow", {"seconds": 0.3}, timeout_s=CLIENT_TIMEOUT_S) == (False, "done")
    assert time.monotonic() - started >= 0.3


async def test_slow_outlasts_a_client_deadline(tools_server):
    assert SLOW_TOOL_MAX_SECONDS > 1.0
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await call_tool(tools_server.url, "slow", {"seconds": 60}, timeout_s=0.5)
    assert time.monotonic() - started < 0.5 + 1.0


async def test_legacy_handshake_works_too(tools_server):
    """A client that only speaks initialize + Mcp-Session-Id (the pre-2026 era) is served."""
    assert await call_tool(tools_server.url, "add", {"a": 1, "b": 1}, timeout_s=CLIENT_TIMEOUT_S, mode="legacy") == (
        False,
        "2",
    )


async def test_json_response_mode():
    with start_tools_server(json_response=True) as server:
        for mode in ("auto", "legacy"):
            assert await call_tool(server.url, "echo", {"text": mode}, timeout_s=CLIENT_TIMEOUT_S, mode=mode) == (
                False,
                mode,
            )


# -- search -------------------------------------------------------------------------------
async def _search(url: str, arguments: dict) -> list[dict]:
    is_error, text = await call_tool(url, "search", arguments, timeout_s=CLIENT_TIMEOUT_S)
    assert is_error is False, text
    return json.loads(text)


async def test_search_is_deterministic(search_server):
    first = await _search(search_server.url, {"query": "weather in Paris"})
    again = await _search(search_server.url, {"query": "weather in Paris"})
    other = await _search(search_server.url, {"query": "weather in Rome"})
    assert first == again == fake_search_results("weather in Paris")
    assert len(first) == SEARCH_DEFAULT_RESULTS
    assert {r["url"] for r in first}.isdisjoint({r["url"] for r in other})
    for result in first + other:
        assert set(result) == {"title", "url", "snippet"}
        assert result["url"].startswith("https://example.com/")
    assert len({r["url"] for r in first}) == len(first)


async def test_search_max_results(search_server):
    assert len(await _search(search_server.url, {"query": "q", "max_results": 1})) == 1
    most = await _search(search_server.url, {"query": "q", "max_results": SEARCH_MAX_RESULTS})
    assert len(most) == SEARCH_MAX_RESULTS
    is_error, _ = await call_tool(
        search_server.url, "search", {"query": "q", "max_results": SEARCH_MAX_RESULTS + 1}, timeout_s=CLIENT_TIMEOUT_S
    )
    assert is_error is True


def test_fake_search_results_urls_for_odd_queries():
    for query in ("", "   ", "ÜBER straße!", "a" * 500, "../../etc/passwd?x=1#y"):
        for result in fake_search_results(query, max_results=2):
            assert result["url"].startswith("https://example.com/")
            assert httpx2.URL(result["url"]).host == "example.com"
            assert not any(c in result["url"][len("https://example.com/"):] for c in "?#. ")


# -- counters -----------------------------------------------------------------------------
async def test_calls_and_list_tools_count(fresh_tools_server):
    server = fresh_tools_server
    assert server.calls == [] and server.list_tools_count == 0
    await list_tools(server.url, timeout_s=CLIENT_TIMEOUT_S)
    await list_tools(server.url, timeout_s=CLIENT_TIMEOUT_S)
    assert server.list_tools_count == 2
    await call_tool(server.url, "fail", {"reason": "r"}, timeout_s=CLIENT_TIMEOUT_S)
    await call_tool(server.url, "echo", {"text": "t"}, timeout_s=CLIENT_TIMEOUT_S)
    assert server.calls == [("fail", {"reason": "r"}), ("echo", {"text": "t"})]
    server.calls.clear()  # a snapshot: changing it changes nothing on the server
    assert len(server.calls) == 2


async def test_sdk_lists_tools_after_first_successful_call(fresh_tools_server):
    """Pins the mcp 2.x client behaviour the module docstring warns gateway authors about."""
    server = fresh_tools_server
    await call_tool(server.url, "fail", {"reason": "r"}, timeout_s=CLIENT_TIMEOUT_S)
    assert server.list_tools_count == 0  # a tool error is not validated, so no listing
    await call_tool(server.url, "add", {"a": 1, "b": 2}, timeout_s=CLIENT_TIMEOUT_S)
    assert server.list_tools_count == 1


def test_calls_are_safe_to_read_from_another_thread(fresh_tools_server):
    server = fresh_tools_server
    errors: list[BaseException] = []

    def caller(i: int) -> None:
        try:
            asyncio.run(call_tool(server.url, "echo", {"text": str(i)}, timeout_s=CLIENT_TIMEOUT_S))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(CLIENT_TIMEOUT_S * 2)
    assert not errors
    assert sorted(args["text"] for _, args in server.calls) == ["0", "1", "2", "3"]


# -- bearer -------------------------------------------------------------------------------
async def test_require_bearer():
    with start_tools_server(require_bearer="s3cret") as server:
        good = {"Authorization": "Bearer s3cret"}
        assert await call_tool(server.url, "add", {"a": 1, "b": 2}, timeout_s=CLIENT_TIMEOUT_S, headers=good) == (
            False,
            "3",
        )
        assert server.rejected_count == 0
        for headers in (None, {"Authorization": "Bearer wrong"}):
            with pytest.raises(MCPError) as caught:
                await list_tools(server.url, timeout_s=CLIENT_TIMEOUT_S, headers=headers)
            assert caught.value.code == UNAUTHORIZED_ERROR_CODE
            assert "bearer" in caught.value.message.lower()
        assert server.rejected_count >= 2
        assert [name for name, _ in server.calls] == ["add"]


# -- lifetime -----------------------------------------------------------------------------
async def test_close_frees_the_port():
    server = start_tools_server()
    port = server.port
    await call_tool(server.url, "echo", {"text": "x"}, timeout_s=CLIENT_TIMEOUT_S)
    server.close()
    with pytest.raises(httpx2.TransportError):
        await list_tools(server.url, timeout_s=CLIENT_TIMEOUT_S)
    with start_tools_server(port=port) as again:
        assert again.port == port
        assert await call_tool(again.url, "echo", {"text": "y"}, timeout_s=CLIENT_TIMEOUT_S) == (False, "y")
        assert again.calls == [("echo", {"text": "y"})]


def test_close_is_prompt_with_a_slow_call_in_flight():
    server = start_tools_server()
    outcome: list[object] = []

    def caller() -> None:
        try:
            outcome.append(asyncio.run(call_tool(server.url, "slow", {"seconds": 30}, timeout_s=CLIENT_TIMEOUT_S)))
        except BaseException as exc:  # a dropped connection is fine too
            outcome.append(exc)

    thread = threading.Thread(target=caller)
    thread.start()
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    while not server.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.calls == [("slow", {"seconds": 30})]
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < PROMPT_CLOSE_S
    thread.join(CLIENT_TIMEOUT_S)
    assert not thread.is_alive()
    # The sleeping call is woken by close() and answers; a dropped connection would be fine too.
    assert outcome and (outcome[0] == (True, "slow: interrupted, the server is shutting down")
                        or isinstance(outcome[0], Exception))


async def test_two_servers_at_once_do_not_interfere(fresh_tools_server, search_server):
    before = search_server.calls
    other = start_tools_server()
    with other:
        assert other.port != fresh_tools_server.port
        assert await call_tool(other.url, "add", {"a": 10, "b": 1}, timeout_s=CLIENT_TIMEOUT_S) == (False, "11")
        assert await call_tool(fresh_tools_server.url, "echo", {"text": "a"}, timeout_s=CLIENT_TIMEOUT_S) == (
            False,
            "a",
        )
        await _search(search_server.url, {"query": "both"})
    assert other.calls == [("add", {"a": 10, "b": 1})]
    assert fresh_tools_server.calls == [("echo", {"text": "a"})]
    assert search_server.calls == before + [("search", {"query": "both"})]


def test_start_fails_clearly_on_a_taken_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(RuntimeError, match="respcheck-tools"):
            start_tools_server(port=taken.getsockname()[1])


def test_main_serves_by_hand_until_interrupted():
    """`python -m harness.targets.mcp_servers search` prints its URL, serves, and exits 0 on Ctrl-C."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.targets.mcp_servers", "search", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell starts background jobs with SIGINT ignored, and Python then keeps it ignored:
        # give the child the default disposition, as a terminal would (CI may run us in one).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    killer = threading.Timer(SUBPROCESS_DEADLINE_S, proc.kill)  # a hung child cannot hang the test
    killer.start()
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp"), proc.stderr.read()
        assert [t["name"] for t in asyncio.run(list_tools(url, timeout_s=CLIENT_TIMEOUT_S))] == ["search"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(SUBPROCESS_DEADLINE_S) == 0
    finally:
        killer.cancel()
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
