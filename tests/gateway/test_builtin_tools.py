"""The gateway's built-in tools (reference_gateway/builtin/): MCP, web search, the tool loop.

Against real MCP servers on loopback (harness/targets/mcp_servers.py) and the embedded mock upstream.
Each streamed answer is judged twice: by the harness's stream checker (grammar, phase order,
schemas) and by plain assertions on the items, so a bug shared by the gateway and one checker
cannot hide (the gateway shares no code with either).
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from harness.core.verdict import judge_stream_body
from harness.targets.mcp_servers import (
    McpServerHandle,
    McpTool,
    fake_search_results,
    start_search_server,
    start_tools_server,
)
from reference_gateway.builtin.config import (
    BuiltinConfig,
    ConfigError,
    McpServer,
    WebSearchProfile,
    parse_config,
)
from reference_gateway.config import GatewayConfig
from reference_gateway.launch import start_gateway

TIMEOUT_S = 20.0
LABEL = "calc"
STALL_S = 10.0  # a tool this slow is past every deadline the tests set


@pytest.fixture(scope="module")
def tools_server():
    with start_tools_server() as server:
        yield server


@pytest.fixture(scope="module")
def search_server():
    with start_search_server() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(target, tools_server, search_server):
    """A gateway whose allowlist has the tools server, and whose web search is the search server."""
    builtin = BuiltinConfig(servers={"search": McpServer("search", search_server.url),
                                     "configured": McpServer("configured", tools_server.url)},
                            allow_server_urls=(tools_server.url,),
                            web_search_profiles={"test": WebSearchProfile("test", "search", "search")})
    server = start_gateway(GatewayConfig(upstream_url=target.upstream.base_url, builtin=builtin,
                                         web_search_profile="test"))
    yield server
    server.close()


@pytest.fixture
def http(gateway):
    with httpx.Client(base_url=gateway.base_url, timeout=TIMEOUT_S) as c:
        yield c


def mcp_tool(url: str, **fields) -> dict:
    return {"type": "mcp", "server_label": LABEL, "server_url": url, "require_approval": "never", **fields}


def forced(name: str) -> dict:
    return {"type": "mcp", "server_label": LABEL, "name": name}


def streamed(http: httpx.Client, body: dict) -> tuple[list[dict], dict]:
    """The events and the final response of a streamed create, judged by the harness."""
    with http.stream("POST", "/responses", json={**body, "stream": True}) as r:
        assert r.status_code == 200, r.read()
        raw = r.read()
    judged = judge_stream_body(raw, "openai")
    failed = [f for f in judged.log.findings if f.check in judged.log.applied]
    assert not failed, failed[:5]
    return judged.events, judged.response


def items(response: dict, kind: str) -> list[dict]:
    return [i for i in response["output"] if i["type"] == kind]


def test_mcp_call_streamed_in_openai_order(http, tools_server):
    before = len(tools_server.calls)
    events, response = streamed(http, {"model": "mock-1", "input": "add", "tools": [mcp_tool(tools_server.url)],
                                       "tool_choice": forced("add")})
    kinds = [e["type"] for e in events]
    call = [e for e in events if e["type"] == "response.output_item.added" and e["item"]["type"] == "mcp_call"][0]
    at = kinds.index("response.output_item.added", kinds.index("response.mcp_list_tools.completed"))
    assert kinds[at:at + 3] == ["response.output_item.added", "response.mcp_call.in_progress",
                                "response.mcp_call_arguments.delta"]
    assert call["item"]["status"] == "in_progress" and call["item"]["arguments"] == ""
    assert kinds.index("response.mcp_list_tools.in_progress") < kinds.index("response.mcp_call.completed")
    listed, = items(response, "mcp_list_tools")
    assert sorted(t["name"] for t in listed["tools"]) == ["add", "echo", "fail", "slow"]
    done, = items(response, "mcp_call")
    arguments = json.loads(done["arguments"])
    assert done["status"] == "completed" and done["error"] is None
    assert done["output"] == str(arguments["a"] + arguments["b"])  # the server's real answer
    assert tools_server.calls[before:] == [("add", arguments)]
    assert response["status"] == "completed" and items(response, "message")  # the model answered after


def test_non_streamed_equals_streamed_shape(http, tools_server):
    r = http.post("/responses", json={"model": "mock-1", "input": "echo", "tools": [mcp_tool(tools_server.url)],
                                      "tool_choice": forced("echo")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["type"] for i in body["output"]] == ["mcp_list_tools", "mcp_call", "message"]
    call = body["output"][1]
    assert call["output"] == json.loads(call["arguments"])["text"]
    assert body["tools"][0]["headers"] is None  # credentials are never echoed


def test_a_tool_error_is_a_failed_call_not_a_failed_response(http, tools_server):
    events, response = streamed(http, {"model": "mock-1", "input": "fail", "tools": [mcp_tool(tools_server.url)],
                                       "tool_choice": forced("fail")})
    call, = items(response, "mcp_call")
    assert call["status"] == "failed" and call["output"] is None
    assert call["error"]["type"] == "mcp_tool_execution_error"
    assert "failed on purpose" in call["error"]["content"][0]["text"]
    assert "response.mcp_call.failed" in [e["type"] for e in events]
    assert response["status"] == "completed"


def test_allowed_tools_filters_the_list(http, tools_server):
    r = http.post("/responses", json={"model": "mock-1", "input": "x", "tool_choice": forced("add"),
                                      "tools": [mcp_tool(tools_server.url, allowed_tools={"tool_names": ["add"]})]})
    listed = items(r.json(), "mcp_list_tools")[0]
    assert [t["name"] for t in listed["tools"]] == ["add"]


def test_approval_stops_then_runs_the_approved_call(http, tools_server):
    tool = mcp_tool(tools_server.url, require_approval="always")
    before = len(tools_server.calls)
    first = http.post("/responses", json={"model": "mock-1", "input": "add", "tools": [tool],
                                          "tool_choice": forced("add")}).json()
    assert [i["type"] for i in first["output"]] == ["mcp_list_tools", "mcp_approval_request"]
    assert first["status"] == "completed" and len(tools_server.calls) == before  # nothing ran
    request = first["output"][1]
    events, second = streamed(http, {"model": "mock-1", "previous_response_id": first["id"], "tools": [tool],
                                     "input": [{"type": "mcp_approval_response", "approval_request_id": request["id"],
                                                "approve": True}]})
    call, = items(second, "mcp_call")
    assert call["approval_request_id"] == request["id"] and call["status"] == "completed"
    assert call["arguments"] == request["arguments"]
    assert not items(second, "mcp_list_tools")  # listed earlier in the conversation: not again
    assert tools_server.calls[before:] == [("add", json.loads(request["arguments"]))]


def test_a_denied_call_is_not_run(http, tools_server):
    tool = mcp_tool(tools_server.url, require_approval={"always": {"tool_names": ["add"]}})
    first = http.post("/responses", json={"model": "mock-1", "input": "add", "tools": [tool],
                                          "tool_choice": forced("add")}).json()
    before = len(tools_server.calls)
    second = http.post("/responses", json={"model": "mock-1", "previous_response_id": first["id"], "tools": [tool],
                                           "input": [{"type": "mcp_approval_response", "approve": False,
                                                      "approval_request_id": first["output"][1]["id"]}]}).json()
    assert second["status"] == "completed" and not items(second, "mcp_call")
    assert len(tools_server.calls) == before


def test_an_unknown_approval_request_is_400(http, tools_server):
    r = http.post("/responses", json={"model": "mock-1", "tools": [mcp_tool(tools_server.url)],
                                      "input": [{"type": "mcp_approval_response", "approve": True,
                                                 "approval_request_id": "mcpr_nope"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input[0].approval_request_id"


@pytest.mark.parametrize("tool, param", [
    ({"type": "mcp", "server_label": LABEL, "server_url": "http://127.0.0.1:9/elsewhere"}, "tools[0].server_url"),
    ({"type": "mcp", "server_label": "nowhere"}, "tools[0].server_label"),
    ({"type": "mcp", "server_label": "bad label!", "server_url": "http://127.0.0.1:9/"}, "tools[0].server_label"),
    ({"type": "mcp"}, "tools[0].server_label"),
    ({"type": "mcp", "server_label": LABEL, "connector_id": "x"}, "tools[0].connector_id"),
])
def test_mcp_servers_outside_the_config_are_refused(http, tool, param):
    r = http.post("/responses", json={"model": "mock-1", "input": "x", "tools": [tool]})
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


@pytest.mark.parametrize("name", ["web_search", "code_interpreter", f"mcp__{LABEL}__add"])
def test_function_names_of_the_builtin_mapping_are_reserved(http, tools_server, name):
    function = {"type": "function", "name": name, "parameters": {"type": "object", "properties": {}}}
    r = http.post("/responses", json={"model": "mock-1", "input": "x",
                                      "tools": [function, mcp_tool(tools_server.url)]})
    assert r.status_code == 400 and name in r.json()["error"]["message"], r.text
    # without a built-in tool beside it the name means nothing special
    assert http.post("/responses", json={"model": "mock-1", "input": "x", "tools": [function]}).status_code == 200


def test_a_configured_label_needs_no_url(http, tools_server):
    r = http.post("/responses", json={"model": "mock-1", "input": "x", "tools": [
        {"type": "mcp", "server_label": "configured", "require_approval": "never"}],
        "tool_choice": {"type": "mcp", "server_label": "configured", "name": "echo"}})
    assert [i["type"] for i in r.json()["output"]] == ["mcp_list_tools", "mcp_call", "message"]


def test_tool_lists_are_cached(target, tools_server):
    server = start_gateway(GatewayConfig(upstream_url=target.upstream.base_url,
                                         builtin=BuiltinConfig(allow_server_urls=(tools_server.url,))))
    try:
        with httpx.Client(base_url=server.base_url, timeout=TIMEOUT_S) as c:
            before = tools_server.list_tools_count
            for _ in range(3):
                r = c.post("/responses", json={"model": "mock-1", "input": "x", "tools": [mcp_tool(tools_server.url)]})
                assert items(r.json(), "mcp_list_tools")[0]["tools"]  # every response shows its list...
            assert tools_server.list_tools_count - before == 1  # ... fetched once within the TTL
    finally:
        server.close()


def test_an_unreachable_server_fails_its_list_not_the_response(target):
    dead = "http://127.0.0.1:9/mcp"  # discard port: nothing listens
    server = start_gateway(GatewayConfig(upstream_url=target.upstream.base_url,
                                         builtin=BuiltinConfig(allow_server_urls=(dead,))))
    try:
        with httpx.Client(base_url=server.base_url, timeout=TIMEOUT_S) as c:
            events, response = streamed(c, {"model": "mock-1", "input": "x", "tools": [mcp_tool(dead)]})
    finally:
        server.close()
    listed, = items(response, "mcp_list_tools")
    assert listed["error"] and listed["tools"] == []
    assert "response.mcp_list_tools.failed" in [e["type"] for e in events]
    assert response["status"] == "completed"


async def _stall(arguments, *, closing) -> str:
    await asyncio.to_thread(closing.wait, STALL_S)  # returns early when the server closes
    return "late"


def test_the_tool_loop_deadline_fails_the_response(target):
    stalling = McpServerHandle([McpTool("stall", "Never answers in time.", {"type": "object"}, _stall)],
                               name="stalling")
    server = start_gateway(GatewayConfig(upstream_url=target.upstream.base_url, tool_loop_timeout_s=1.0,
                                         builtin=BuiltinConfig(allow_server_urls=(stalling.url,))))
    try:
        with httpx.Client(base_url=server.base_url, timeout=TIMEOUT_S) as c:
            events, response = streamed(c, {"model": "mock-1", "input": "x", "tools": [mcp_tool(stalling.url)],
                                            "tool_choice": forced("stall")})
            non_streamed = c.post("/responses", json={"model": "mock-1", "input": "x", "tool_choice": forced("stall"),
                                                      "tools": [mcp_tool(stalling.url)]})
    finally:
        server.close()
        stalling.close()
    assert response["status"] == "failed" and "1 s" in response["error"]["message"]
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    call, = items(response, "mcp_call")
    assert call["status"] == "incomplete"  # the call cut short is closed, not left in progress
    assert non_streamed.status_code == 504 and non_streamed.json()["error"]["code"] == "timeout"


def test_max_tool_calls_bounds_the_loop(http, tools_server):
    r = http.post("/responses", json={"model": "mock-1", "input": "x", "max_tool_calls": 0,
                                      "tools": [mcp_tool(tools_server.url)], "tool_choice": forced("add")})
    body = r.json()
    assert body["status"] == "completed" and not items(body, "mcp_call")


def test_headers_reach_the_mcp_server_and_are_never_echoed(target):
    with start_tools_server(require_bearer="s3cret") as guarded:
        server = start_gateway(GatewayConfig(upstream_url=target.upstream.base_url,
                                             builtin=BuiltinConfig(allow_server_urls=(guarded.url,))))
        try:
            with httpx.Client(base_url=server.base_url, timeout=TIMEOUT_S) as c:
                ok = c.post("/responses", json={"model": "mock-1", "input": "x", "tool_choice": forced("echo"),
                                                "tools": [mcp_tool(guarded.url, authorization="s3cret")]}).json()
                denied = c.post("/responses", json={"model": "mock-1", "input": "x",
                                                    "tools": [mcp_tool(guarded.url)]}).json()
        finally:
            server.close()
    assert items(ok, "mcp_call")[0]["status"] == "completed"
    assert "s3cret" not in json.dumps(ok)
    assert items(denied, "mcp_list_tools")[0]["error"]


def test_web_search_with_and_without_sources(http):
    body = {"model": "mock-1", "input": "find news", "tools": [{"type": "web_search"}],
            "tool_choice": {"type": "web_search_preview"}}
    events, response = streamed(http, {**body, "include": ["web_search_call.action.sources"]})
    call, = items(response, "web_search_call")
    expected = [r["url"] for r in fake_search_results("find news", max_results=5)]
    assert call["status"] == "completed" and call["action"]["query"] == "find news"
    assert [s["url"] for s in call["action"]["sources"]] == expected
    phases = [e["type"] for e in events if e["type"].startswith("response.web_search_call.")]
    assert phases == ["response.web_search_call.in_progress", "response.web_search_call.searching",
                      "response.web_search_call.completed"]
    plain = http.post("/responses", json=body).json()
    assert "sources" not in items(plain, "web_search_call")[0]["action"]


def test_builtin_tools_the_gateway_cannot_run_are_refused(client):
    # the shared embedded gateway has no web search profile and no MCP allowlist
    for extra, param in [({"tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search_preview"}}, "tools"),
                         ({"tools": [{"type": "mcp", "server_label": "x", "server_url": "http://127.0.0.1:9/"}]},
                          "tools[0].server_url")]:
        r = client.post("/responses", json={"model": "mock-1", "input": "x", **extra})
        assert r.status_code == 400 and r.json()["error"]["param"] == param
        assert r.json()["error"]["code"] == "unsupported_parameter"


def test_a_web_search_only_offered_to_a_gateway_without_a_profile_is_not_offered_upstream(client):
    # policy.py: Codex offers web_search on every turn; with no profile the model answers unaided
    r = client.post("/responses", json={"model": "mock-echo", "input": "search the web", "tools": [
        {"type": "web_search", "external_web_access": False}]})
    assert r.status_code == 200, r.text
    assert [i["type"] for i in r.json()["output"]] == ["message"]
    assert r.json()["tools"] == [{"type": "web_search", "external_web_access": False}]


def test_background_with_builtin_tools_is_refused(http, tools_server):
    r = http.post("/responses", json={"model": "mock-1", "input": "x", "background": True,
                                      "tools": [mcp_tool(tools_server.url)]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "background"


def test_stateless_feed_back_of_builtin_items(http, tools_server):
    """A client that keeps its own history sends the built-in items back as input."""
    first = http.post("/responses", json={"model": "mock-echo", "input": "x", "store": False,
                                          "tools": [mcp_tool(tools_server.url)], "tool_choice": forced("echo")}).json()
    second = http.post("/responses", json={"model": "mock-echo", "store": False, "input": [
        *[i for i in first["output"] if i["type"] != "message"], {"role": "user", "content": "again"}]})
    assert second.status_code == 200, second.text
    seen = json.loads(second.json()["output"][0]["content"][0]["text"])
    call = items(first, "mcp_call")[0]
    # mock-echo shows calls by name and tool results by content (mock_upstream.py)
    at = seen.index({"role": "assistant", "content": None, "tool_calls": [f"mcp__{LABEL}__echo"]})
    assert seen[at + 1] == {"role": "tool", "content": call["output"]}


@pytest.mark.parametrize("data, says", [
    ([], "top"),
    ({"mcpServers": {"a b": {"url": "http://x/"}}}, "label"),
    ({"mcpServers": {"a": {"url": "ftp://x/"}}}, "http"),
    ({"mcpServers": {"a": {"url": "http://x/", "headers": {"A": "${RESPCHECK_SURELY_UNSET}"}}}}, "RESPCHECK_SURELY_UNSET"),
    ({"webSearchProfiles": {"p": {"server": "missing"}}}, "server"),
    ({"allowServerUrls": ["not a url"]}, "allowServerUrls"),
    ({"servers": {}}, "unknown key"),
])
def test_mcp_config_errors_are_one_line(data, says):
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="mcp.json")
    assert says in str(info.value) and "\n" not in str(info.value)


def test_allowlist_prefixes_compare_normalized():
    config = parse_config({"allowServerUrls": ["HTTP://127.0.0.1:8000/mcp"]})
    assert config.url_allowed("http://127.0.0.1:8000/mcp")
    assert not config.url_allowed("http://127.0.0.1:8001/mcp")
    assert not config.url_allowed("file:///etc/passwd")


# -- code_interpreter through the whole flow (the sandbox's own escape tests: test_sandbox.py) --

@pytest.fixture(scope="module")
def coding(target):
    """A gateway that runs code_interpreter in the spawned Pyodide sandbox."""
    import os

    from reference_gateway.sandbox.contract import SandboxError

    try:
        server = start_gateway(GatewayConfig(upstream_url=target.upstream.base_url, code_interpreter="spawn"))
    except SandboxError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the code sandbox must run under CI: {exc}")
        pytest.skip(f"code sandbox not available here: {exc}")
    with httpx.Client(base_url=server.base_url, timeout=60.0) as c:
        yield c
    server.close()


def run_code(client: httpx.Client, code: str, *, include: bool = True) -> tuple[list[dict], dict]:
    body = {"model": "mock-1", "input": f"Run this:\n```python\n{code}\n```\n",
            "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}],
            "tool_choice": {"type": "code_interpreter"}}
    if include:
        body["include"] = ["code_interpreter_call.outputs"]
    return streamed(client, body)


def test_code_runs_and_streams_in_openai_order(coding):
    events, response = run_code(coding, "x = 6 * 7\nprint(x)\nx + 1")
    call, = items(response, "code_interpreter_call")
    assert call["code"] == "x = 6 * 7\nprint(x)\nx + 1\n"
    assert call["outputs"] == [{"type": "logs", "logs": "42\n43"}]
    assert call["status"] == "completed" and call["container_id"].startswith("cntr_")
    phases = [e["type"] for e in events if e["type"].startswith("response.code_interpreter_call")]
    assert phases[0] == "response.code_interpreter_call.in_progress"
    assert phases[-3:] == ["response.code_interpreter_call_code.done", "response.code_interpreter_call.interpreting",
                           "response.code_interpreter_call.completed"]
    assert "".join(e["delta"] for e in events if e["type"] == "response.code_interpreter_call_code.delta") \
        == call["code"]
    _, plain = run_code(coding, "print(1)", include=False)
    assert items(plain, "code_interpreter_call")[0]["outputs"] is None


@pytest.mark.parametrize("attempt, refused", [
    ("print(open('/etc/passwd').read())", ("PermissionError", "FileNotFoundError")),
    ("import socket; socket.create_connection(('127.0.0.1', 80), timeout=2)", ("Error",)),
    ("import js; print(js.process.env)", ("Error",)),
])
def test_escape_attempts_through_the_gateway_are_refused(coding, attempt, refused):
    """What a model (or a prompt injection) writes runs sandboxed: the call completes with the
    refusal in its logs, and the response goes on."""
    _, response = run_code(coding, attempt)
    call, = items(response, "code_interpreter_call")
    logs = call["outputs"][0]["logs"]
    assert call["status"] == "completed" and any(word in logs for word in refused), logs
    assert "root:" not in logs and response["status"] == "completed"


def test_a_hosted_call_cut_off_by_the_token_budget_is_not_run(http, search_server):
    """The model ran out of tokens mid-call (finish_reason length): the call is neither run nor
    handed to the client as a function call under its internal name."""
    before = len(search_server.calls)
    r = http.post("/responses", json={"model": "mock-1", "input": "search " + "very long query " * 12,
                                      "max_output_tokens": 16, "tools": [{"type": "web_search"}],
                                      "tool_choice": {"type": "web_search_preview"}})
    body = r.json()
    assert body["status"] == "incomplete", body
    assert [i["type"] for i in body["output"]] == ["message"]
    assert len(search_server.calls) == before


def test_an_upstream_429_in_the_tool_loop_keeps_its_backoff_headers(http, tools_server):
    """Non-streamed with an MCP tool: the upstream's 429 reaches the client with its Retry-After
    and x-ratelimit-* headers, as it does without built-in tools (test_faults.py)."""
    from reference_gateway.mock_upstream import RATE_LIMIT_HEADERS

    r = http.post("/responses", json={"model": "mock-fault:429:3", "input": "x", "tools": [mcp_tool(tools_server.url)]})
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded", r.text
    assert r.headers["retry-after"] == "3" and r.headers["retry-after-ms"] == "3000"
    assert {name: r.headers.get(name) for name in RATE_LIMIT_HEADERS} == RATE_LIMIT_HEADERS


def test_web_search_filters_allowed_domains_drop_other_results(http):
    """policy.py: filters.allowed_domains is honoured; the fake search answers example.com URLs."""
    def sources(domains):
        body = {"model": "mock-1", "input": "find news", "include": ["web_search_call.action.sources"],
                "tools": [{"type": "web_search", "filters": {"allowed_domains": domains}}],
                "tool_choice": {"type": "web_search_preview"}}
        r = http.post("/responses", json=body)
        assert r.status_code == 200, r.text
        return [s["url"] for s in items(r.json(), "web_search_call")[0]["action"]["sources"]]

    everything = [r["url"] for r in fake_search_results("find news", max_results=5)]
    assert sources(["Example.com"]) == everything
    assert sources(["other.org"]) == []


def test_within_domains_takes_subdomains_not_lookalikes():
    from reference_gateway.builtin.loop import within_domains

    assert within_domains("https://news.example.com/a", ("example.com",))
    assert within_domains("https://example.com./a", ("example.com",))
    assert not within_domains("https://badexample.com/a", ("example.com",))
    assert not within_domains("https://example.com.evil.org/a", ("example.com",))
