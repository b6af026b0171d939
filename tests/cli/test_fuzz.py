"""`respcheck fuzz` (harness/run/fuzz.py): the reference gateway passes; broken servers are caught.

The broken servers are tiny Starlette apps on 127.0.0.1 that answer a sane request (a JSON
object with a string ``model`` and an ``input``, and no unknown key) correctly, and misbehave in
one way on anything else: a 500, a 400 without the envelope, a 400 whose ``param`` is null or
names nothing in the body, a hang, a stream without its terminal event. Each must be reported
as its own finding kind; the sane answers must not be.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from harness.faces.cli import main
from harness.run.fuzz import (FAMILIES, KNOWN_PARAMS, TARGET_DOWN_AFTER, Example, judge, related,
                              resolve_param, run_fuzz, write_report)
from harness.core.transcript import Exchange
from reference_gateway.launch import RunningServer, start_embedded

# Small and fixed: a few seconds against the embedded gateway, the same bodies every run.
GATEWAY_EXAMPLES = 250
BROKEN_EXAMPLES = 60
SEED = 20261122
HANG_DEADLINE_S = 0.5

ENVELOPE = {"error": {"message": "bad", "type": "invalid_request_error", "param": "model",
                      "code": None}}
COMPLETED = {"type": "response.completed", "sequence_number": 0,
             "response": {"id": "resp_1", "object": "response", "status": "completed", "output": []}}


def _problem(body: object) -> tuple[bool, str | None]:
    """(is the body sane, the param a correct server would name)."""
    if not isinstance(body, dict):
        return False, None
    unknown = sorted(set(body) - KNOWN_PARAMS)
    if unknown:
        return False, unknown[0]
    if not isinstance(body.get("model"), str):
        return False, "model"
    if "input" not in body:
        return False, "input"
    return True, None


def broken_app(mode: str) -> Starlette:
    async def create(request: Request) -> Response:
        if mode == "hang":
            await asyncio.sleep(30)
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            body = None
        sane, param = _problem(body)
        if sane:
            if body.get("stream") is True:
                frames = [b"event: response.created\ndata: {\"type\": \"response.created\"}\n\n"]
                if mode != "truncated_stream":
                    frames.append(b"event: response.completed\ndata: " + json.dumps(COMPLETED).encode()
                                  + b"\n\n")
                return StreamingResponse(iter(frames), media_type="text/event-stream")
            return JSONResponse(COMPLETED["response"])
        if mode == "server_error":
            return JSONResponse({"error": {"message": "boom", "type": "server_error", "param": None,
                                           "code": None}}, status_code=500)
        if mode == "no_envelope":
            return JSONResponse({"detail": "bad request"}, status_code=400)
        if mode == "param_null":
            return JSONResponse({"error": {**ENVELOPE["error"], "param": None}}, status_code=400)
        if mode == "param_unknown":
            return JSONResponse({"error": {**ENVELOPE["error"], "param": "no.such[3].field"}},
                                status_code=400)
        return JSONResponse({"error": {**ENVELOPE["error"], "param": param}}, status_code=400)

    return Starlette(routes=[Route("/v1/responses", create, methods=["POST"])])


@pytest.fixture(scope="module")
def embedded():
    with start_embedded() as target:
        yield target


def test_reference_gateway_has_no_findings(embedded, tmp_path):
    run = run_fuzz(embedded.base_url, model="mock-1", examples_n=GATEWAY_EXAMPLES, seed=SEED,
                   deadline_s=10.0, target_name="reference")
    assert run.findings == [] and run.total_findings == 0, run.findings[:3]
    assert run.sent == GATEWAY_EXAMPLES and run.stopped is None
    assert set(run.by_family) == set(FAMILIES)
    # every family really reached the gateway's both sides: accepted and refused
    assert {"200", "400"} <= set(run.by_status)
    assert run.by_family_status["valid"].get("200", 0) > 0
    assert run.by_family_status["hostile"].get("400", 0) > 0
    report = json.loads(write_report(run, tmp_path).read_text())
    assert report["findings_total"] == 0 and report["seed"] == SEED
    assert report["examples"] == {"requested": GATEWAY_EXAMPLES, "sent": GATEWAY_EXAMPLES}


def test_the_same_seed_sends_the_same_bodies(embedded):
    def digest(seed: int) -> str:
        return run_fuzz(embedded.base_url, model="mock-1", examples_n=15, seed=seed).digest.hexdigest()

    assert digest(7) == digest(7) != digest(8)


@pytest.mark.parametrize("mode, kind", [
    ("server_error", "server_error"),
    ("no_envelope", "no_envelope"),
    ("param_null", "param_missing"),
    ("param_unknown", "param_unknown"),
    ("truncated_stream", "broken_success"),
])
def test_a_broken_server_is_caught(mode, kind, tmp_path):
    with RunningServer(broken_app(mode), name=f"broken ({mode})") as server:
        run = run_fuzz(server.base_url, model="m", examples_n=BROKEN_EXAMPLES, seed=SEED, deadline_s=5.0)
    assert run.finding_counts[kind] > 0, dict(run.finding_counts)
    assert set(run.finding_counts) == {kind}, dict(run.finding_counts)
    first = run.findings[0]
    assert first["kind"] == kind and first["recipe"] and "sha256" in first["request"]
    path = write_report(run, tmp_path)
    saved = tmp_path / first["request"]["saved_as"]
    assert saved.read_bytes() and json.loads(path.read_text())["findings_total"] == run.total_findings


def test_a_hanging_server_is_reported_and_the_run_stops():
    with RunningServer(broken_app("hang"), name="hanging server") as server:
        run = run_fuzz(server.base_url, model="m", examples_n=BROKEN_EXAMPLES, seed=SEED,
                       deadline_s=HANG_DEADLINE_S)
    assert run.finding_counts == {"hang": TARGET_DOWN_AFTER}
    assert run.stopped and "no answer" in run.stopped
    assert run.sent == TARGET_DOWN_AFTER
    assert all(f["elapsed_s"] < HANG_DEADLINE_S + 2.0 for f in run.findings)


def test_a_server_that_behaves_has_no_findings():
    with RunningServer(broken_app("fine"), name="fine server") as server:
        run = run_fuzz(server.base_url, model="m", examples_n=BROKEN_EXAMPLES, seed=SEED, deadline_s=5.0)
    assert run.total_findings == 0, run.findings[:3]


def test_cli_exit_codes_and_report(embedded, tmp_path, capsys):
    rc = main(["fuzz", "--target", embedded.base_url, "--model", "mock-1", "--examples", "20",
               "--seed", "3", "--report-dir", str(tmp_path)])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and len(out) == 1 and out[0].startswith("fuzz: 20/20 examples") and "0 findings" in out[0]
    assert json.loads((tmp_path / "fuzz.json").read_text())["seed"] == 3
    with RunningServer(broken_app("server_error"), name="broken") as server:
        rc = main(["fuzz", "--target", server.base_url, "--model", "m", "--examples", "40",
                   "--seed", "3", "--report-dir", str(tmp_path / "b")])
    assert rc == 1 and "server_error" in capsys.readouterr().out


@pytest.mark.parametrize("argv, says", [
    (["--examples", "0"], "--examples 0"),
    (["--deadline", "0"], "--deadline 0"),
    (["--seed", "-1"], "--seed -1"),
    (["--examples", "many"], "invalid int value"),
])
def test_cli_usage_errors(argv, says, capsys):
    assert main(["fuzz", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err


def test_cli_unreachable_target(closed_port, capsys):
    assert main(["fuzz", "--target", f"http://127.0.0.1:{closed_port}/v1", "--examples", "5"]) == 2
    assert "unreachable" in capsys.readouterr().err


# -- the rules, on their own -----------------------------------------------------------------
BODY = {"model": "m", "metadata": {"": "x", "a.b": "y"}, "input": [{"content": [{"type": "t"}]}]}


@pytest.mark.parametrize("param, segments", [
    ("model", ("model",)),
    ("input[0].content[0].type", ("input", 0, "content", 0, "type")),
    ("input[0].call_id", ("input", 0, "call_id")),  # missing, in an existing object
    ("metadata.a.b", ("metadata", "a.b")),  # a key with a dot in it
    ("metadata.", ("metadata", "")),  # the empty key
    ("temperature", ("temperature",)),  # a missing top-level field
    ("input[1]", None),  # no such item
    ("input[0].content[0].type.x", None),  # below a string
    ("model.x", None),
    ("", None),  # the body has no "" key
    ("input.0", None),
])
def test_resolve_param(param, segments):
    assert resolve_param(BODY, param) == segments


@pytest.mark.parametrize("param, broken, ok", [
    (("tools",), ("tools", 0, "type"), True),  # ancestor
    (("tools", 0, "type"), ("tools", 0, "type"), True),
    (("input", 0, "content", 0), ("input", 0), True),  # descendant
    (("input", 4, "role"), ("input", 4, "type"), True),  # sibling of a discriminator
    (("tool_choice", "name"), ("tools", 1, "name"), True),  # CROSS_FIELD
    (("model",), ("temperature",), False),
    (("input", 1, "role"), ("input", 0, "role"), False),
    (("input", 4, "role"), ("input", 4, "content"), False),
])
def test_related(param, broken, ok):
    assert related(param, broken) is ok


def _exchange(status: int | None, body: bytes = b"", ctype: str = "application/json",
              error: str | None = None) -> Exchange:
    ex = Exchange("s", "POST", "http://x/v1/responses", {}, b"")
    ex.status, ex.error = status, error
    ex.response_headers = {"content-type": ctype}
    ex.chunks = [(0.0, body)] if body else []
    return ex


def _err(param, **fields) -> bytes:
    return json.dumps({"error": {"message": "m", "type": "invalid_request_error", "param": param,
                                 "code": None, **fields}}).encode()


SANE = Example("valid", "valid", b"{}", "x", parsed={"model": "m", "input": "hi"})
MUTATED = Example("mutated", "wrong_type", b"{}", "x", mutated=("temperature",),
                  parsed={"model": "m", "input": "hi", "temperature": "hot"})
HOSTILE = Example("hostile", "not_json", b"{", "x", param_required=False)


@pytest.mark.parametrize("example, ex, kinds", [
    (SANE, _exchange(200, b'{"id": "r"}'), []),
    (SANE, _exchange(200, b"[]"), ["broken_success"]),
    (SANE, _exchange(200, b"event: response.created\ndata: {\"type\": \"response.created\"}\n\n",
                     "text/event-stream"), ["broken_success"]),
    (SANE, _exchange(200, b"data: " + json.dumps(COMPLETED).encode() + b"\n\ndata: [DONE]\n\n",
                     "text/event-stream"), []),
    (SANE, _exchange(502, _err(None)), ["server_error"]),
    (SANE, _exchange(302), ["unexpected_status"]),
    (SANE, _exchange(None, error="ConnectError: refused"), ["connection_error"]),
    (SANE, _exchange(None, error="no response headers within 2 s (the deadline)"), ["hang"]),
    (SANE, _exchange(200, error="body exceeded the 10-byte cap after 0.1 s"), ["flood"]),
    (SANE, _exchange(400, _err("model")), []),
    (SANE, _exchange(422, _err("input")), []),
    (SANE, _exchange(400, b'{"detail": "x"}'), ["no_envelope"]),
    (SANE, _exchange(400, _err("model", message="")), ["no_envelope"]),
    (SANE, _exchange(400, b'{"error": {"message": "m", "type": "t", "param": null}}'),
     ["no_envelope"]),  # code absent (null is fine, absent is not)
    (SANE, _exchange(400, _err(None)), ["param_missing"]),
    (SANE, _exchange(400, _err("tools[0].name")), ["param_unknown"]),
    (SANE, _exchange(404, _err(None)), []),  # param only for 400/422
    (MUTATED, _exchange(400, _err("temperature")), []),
    (MUTATED, _exchange(400, _err("model")), ["param_elsewhere"]),
    (HOSTILE, _exchange(400, _err(None)), []),
    (HOSTILE, _exchange(413, b"too big"), ["no_envelope"]),
])
def test_judge(example, ex, kinds):
    assert [k for k, _ in judge(example, ex)] == kinds


def test_examples_are_what_they_claim():
    """Every generated body of the hostile families is what its recipe says (a sample)."""
    from hypothesis import given, settings
    from harness.run.fuzz import examples

    seen = set()

    @settings(max_examples=300, deadline=None, database=None)
    @given(examples("m"))
    def check(example: Example) -> None:
        seen.add(example.kind)
        if example.kind == "invalid_utf8":
            with pytest.raises(UnicodeDecodeError):
                example.body.decode("utf-8")
        elif example.kind == "oversized":
            assert len(example.body) > 1024 * 1024
        elif example.family in ("valid", "mutated"):
            # Through JSON text both ways: two generated lone surrogates that happen to form a
            # pair ('\ud800\udc00') are one character once parsed, on either side.
            assert json.loads(example.body) == json.loads(json.dumps(example.parsed))
        if example.mutated is not None:
            assert example.family == "mutated" and example.param_required

    check()
    assert {"valid", "invalid_utf8", "deep_nesting", "wrong_type", "unknown_key"} <= seen


def test_report_dir_that_is_a_file(tmp_path, capsys):
    file = tmp_path / "f"
    file.write_text("x")
    assert main(["fuzz", "--report-dir", str(file), "--examples", "1"]) == 2
    assert "not a directory" in capsys.readouterr().err
