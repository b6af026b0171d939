"""The gateway's server layer (reference_gateway/http_protocol.py), on raw sockets: the request
head is capped, and every refusal it makes before the app runs is the OpenAI envelope with the
right status (414, 431, 400), never uvicorn's plain text; a head at the caps is served."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest

from harness.core.findings import FindingLog
from harness.core.response import check_error_body
from harness.core.schemas import schema_set
from reference_gateway.http_protocol import (
    MAX_HEADER_BYTES,
    MAX_HEADER_COUNT,
    MAX_HEADER_FIELD_BYTES,
    MAX_REQUEST_TARGET_BYTES,
)

SOCKET_TIMEOUT_S = 10.0
SETTLE_S = 0.5  # for the app to end a request the server layer refused mid-body
MAX_ANSWER_BYTES = 1024 * 1024


def exchange(target, head: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` (a whole request head), read until the server closes; status, headers, body."""
    with socket.create_connection((target.gateway.host, target.gateway.port), timeout=SOCKET_TIMEOUT_S) as sock:
        sock.sendall(head)
        answer = b""
        while len(answer) < MAX_ANSWER_BYTES:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    status_line, _, rest = answer.partition(b"\r\n")
    raw_headers, _, body = rest.partition(b"\r\n\r\n")
    headers = dict(line.decode("latin-1").lower().split(": ", 1) for line in raw_headers.split(b"\r\n") if line)
    return int(status_line.split()[1]), headers, body


def request(target: str = "/health", headers: list[bytes] = ()) -> bytes:
    """A GET with ``Connection: close`` (so a served request also ends with the server closing)."""
    return b"".join([f"GET {target} HTTP/1.1\r\n".encode(), b"Host: 127.0.0.1\r\n", b"Connection: close\r\n",
                     *(h + b"\r\n" for h in headers), b"\r\n"])


def assert_refused(answer: tuple[int, dict[str, str], bytes], status: int, code: str) -> str:
    got, headers, body = answer
    assert got == status, body[:300]
    assert headers["content-type"] == "application/json" and headers["connection"] == "close"
    envelope = json.loads(body)
    log = FindingLog()
    check_error_body(envelope, log, schemas=schema_set("openai"))
    assert log.findings == [], [f.message for f in log.findings]
    assert envelope["error"]["code"] == code and envelope["error"]["type"] == "invalid_request_error"
    return envelope["error"]["message"]


def field(name: str, size: int) -> bytes:
    """A header field whose name and value together are ``size`` bytes."""
    return name.encode() + b": " + b"a" * (size - len(name))


def test_a_1mb_target_is_414(target):
    message = assert_refused(exchange(target, request("/" + "a" * 1_000_000)), 414, "uri_too_long")
    assert str(MAX_REQUEST_TARGET_BYTES) in message


def test_a_target_at_the_cap_is_served(target):
    status, headers, body = exchange(target, request("/" + "a" * (MAX_REQUEST_TARGET_BYTES - 1)))
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"  # the app answered


def test_a_1mb_header_is_431(target):
    assert_refused(exchange(target, request(headers=[field("x-big", 1_000_000)])), 431,
                   "request_header_fields_too_large")


def test_a_header_at_the_field_cap_is_served_and_one_byte_more_is_431(target):
    assert exchange(target, request(headers=[field("x-big", MAX_HEADER_FIELD_BYTES)]))[0] == 200
    message = assert_refused(exchange(target, request(headers=[field("x-big", MAX_HEADER_FIELD_BYTES + 1)])), 431,
                             "request_header_fields_too_large")
    assert str(MAX_HEADER_FIELD_BYTES) in message


def test_many_small_fields_past_the_total_are_431(target):
    each = MAX_HEADER_FIELD_BYTES // 2
    fields = [field(f"x-{i}", each) for i in range(MAX_HEADER_BYTES // each + 1)]
    message = assert_refused(exchange(target, request(headers=fields)), 431, "request_header_fields_too_large")
    assert str(MAX_HEADER_BYTES) in message


@pytest.mark.parametrize("count", [10_000, MAX_HEADER_COUNT + 1])
def test_too_many_header_fields_are_431(target, count):
    fields = [f"x-{i}: a".encode() for i in range(count)]
    message = assert_refused(exchange(target, request(headers=fields)), 431, "request_header_fields_too_large")
    assert str(MAX_HEADER_COUNT) in message


def test_header_fields_at_the_count_cap_are_served(target):
    # request() sends Host and Connection: the rest fill the count to the cap exactly.
    fields = [f"x-{i}: a".encode() for i in range(MAX_HEADER_COUNT - 2)]
    assert exchange(target, request(headers=fields))[0] == 200


@pytest.mark.parametrize("head", [b"GARBAGE\r\n\r\n", b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"],
                         ids=["request line", "header line"])
def test_a_malformed_head_is_a_400_envelope(target, head):
    assert_refused(exchange(target, head), 400, "invalid_http_request")


def test_a_malformed_chunked_body_is_a_400_envelope_and_no_gateway_error(target, caplog):
    """The head is fine, so the app is already reading the body when the parser refuses its
    chunked framing: the client gets the envelope, and the app is told the client is gone
    (a 499, not an "unhandled error" traceback in the gateway's log)."""
    head = (b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\nZZZ\r\n\r\n")
    with caplog.at_level(logging.ERROR, logger="reference_gateway"):
        assert_refused(exchange(target, head), 400, "invalid_http_request")
        time.sleep(SETTLE_S)
    assert [r.getMessage() for r in caplog.records if r.name == "reference_gateway"] == []


# -- WebSocket upgrades: refused in the envelope too -------------------------------------------

UPGRADE = [b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Version: 13"]
KEY = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="


def test_an_upgrade_with_a_bad_handshake_is_a_400_envelope(target):
    """uvicorn's WebSocket protocol said this in plain text ("Failed to open a WebSocket
    connection: missing Sec-WebSocket-Key header.")."""
    message = assert_refused(exchange(target, request("/v1/responses", headers=UPGRADE)), 400,
                             "invalid_websocket_handshake")
    assert message == "Invalid WebSocket handshake: missing Sec-WebSocket-Key header."


def test_an_upgrade_to_an_unknown_path_is_the_404_envelope(target):
    """The server's answer to an upgrade no route took was a bare 403."""
    status, headers, body = exchange(target, request("/v1/nothing", headers=[*UPGRADE, KEY]))
    assert status == 404 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"] == {"message": "Unknown route: WebSocket /v1/nothing",
                                         "type": "invalid_request_error", "param": None, "code": "not_found"}


def test_an_upgrade_the_app_closes_before_accepting_is_a_403_envelope():
    """The refusal uvicorn makes when an app closes before accepting (no route of the gateway
    does that today, so the protocol's own method is called, as uvicorn calls it)."""
    from websockets.server import ServerProtocol

    from reference_gateway.http_protocol import EnvelopedServerProtocol

    conn = ServerProtocol()
    conn.__class__ = EnvelopedServerProtocol  # as GatewayWebSocketProtocol does
    response = conn.reject(403, "")
    assert response.status_code == 403 and response.headers["Content-Type"] == "application/json"
    assert int(response.headers["Content-Length"]) == len(response.body)
    assert json.loads(response.body)["error"]["code"] == "websocket_refused"
