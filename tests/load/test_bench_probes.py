"""The overhead benchmark's probes: per-process CPU time from /proc (loadtests/cpu.py) and the
py-spy summary (loadtests/profile.py). No timing is asserted: only that the readings move the
right way and that the summary counts what the stacks say."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests import cpu
from loadtests.profile import read_collapsed, summarize, top_frames

linux = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


@linux
def test_process_seconds_grow_with_work_and_vanish_with_the_process():
    before = cpu.process_seconds(os.getpid())
    x = 0
    for i in range(300_000):
        x += i * i
    after = cpu.process_seconds(os.getpid())
    assert before is not None and after is not None and after > before
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert cpu.process_seconds(child.pid) is None  # gone: no reading, not zero
    assert cpu.total_seconds([child.pid]) is None
    assert cpu.total_seconds([child.pid, os.getpid()]) >= after


@linux
def test_descendants_finds_a_grandchild():
    code = "import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); " \
           "print(p.pid, flush=True); p.wait()"
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(parent.stdout.readline())
        tree = cpu.descendants(parent.pid)
        assert tree[0] == parent.pid and grandchild in tree
        assert os.getpid() not in tree
    finally:
        os.kill(grandchild, 9)
        parent.wait(10)


def test_profile_summary_counts_self_and_inclusive(tmp_path):
    raw = tmp_path / "p.txt"
    raw.write_text("main (app.py);loop (app.py);send (/x/site-packages/uvicorn/h.py) 30\n"
                   "main (app.py);loop (app.py);parse (orjson) 10\n"
                   "main (app.py);loop (app.py);loop (app.py) 10\n"
                   "a line that is not a stack\n")
    total, own, incl = top_frames(read_collapsed(raw))
    assert total == 50
    assert own["send (/x/site-packages/uvicorn/h.py)"] == 30 and own["loop (app.py)"] == 10
    assert incl["loop (app.py)"] == 50  # a recursive frame counts once per stack
    lines = summarize(raw, rate_hz=10, duration_s=10)
    assert lines[0].startswith("50 samples, busy 50%")
    assert "| 60.0% | `send (uvicorn/h.py)` |" in "\n".join(lines)


def test_profile_summary_of_an_empty_capture(tmp_path):
    raw = tmp_path / "p.txt"
    raw.write_text("")
    assert summarize(raw, rate_hz=10, duration_s=1) == ["no samples."]


def test_floor_relay_passes_a_stream_through_byte_for_byte(tmp_path):
    """loadtests/relay.py (overhead.py --floor) is measured as the floor of a relay: it must
    relay, unchanged, a streamed chat completion and a kept-alive second request."""
    import httpx

    from loadtests import servers

    with servers.spawn("mock", log=tmp_path / "mock.log") as mock, \
            servers.spawn("relay", upstream=mock.base_url, log=tmp_path / "relay.log") as relay:
        body = {"model": "mock-paced", "stream": True, "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}]}
        streams = []
        for base in (mock.base_url, relay.base_url, relay.base_url):
            with httpx.Client(timeout=10) as client:
                r = client.post(base + "/chat/completions", json=body)
                assert r.status_code == 200
                streams.append([line for line in r.text.splitlines() if line.startswith("data:")])
        with httpx.Client(base_url=relay.base_url, timeout=10) as client:  # one connection, two requests
            assert [client.post("/chat/completions", json=body).status_code for _ in range(2)] == [200, 200]

    def shape(lines):  # ids and timestamps differ between requests; the structure must not
        import json
        return [sorted(json.loads(x[5:])) if x != "data: [DONE]" else x for x in lines]

    assert len(streams[0]) >= 7 and streams[0][-1] == "data: [DONE]"
    assert shape(streams[1]) == shape(streams[0]) == shape(streams[2])


def test_relay_closes_the_client_when_the_upstream_is_gone(tmp_path):
    import socket

    from loadtests import servers

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # bound, never listening: connections are refused
        with servers.spawn("relay", upstream=f"http://127.0.0.1:{dead}/v1", log=tmp_path / "relay.log") as relay:
            port = int(relay.base_url.rsplit(":", 1)[1].split("/")[0])
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                c.sendall(b"GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n")
                assert c.recv(100) == b""  # closed, not hung


def test_the_throughput_ratio_spread_pairs_rounds_and_shows_the_worst():
    from loadtests.metrics import (  # not overhead.py: it imports locust (gevent)
        round_ratios,
        spread,
    )

    row = {"direct": {"output_tok_s_rounds": [100.0, 200.0, 100.0]},
           "gateway": {"output_tok_s_rounds": [90.0, 100.0, 100.0]},
           "half": {"output_tok_s_rounds": [50.0]}}
    assert round_ratios(row, "gateway") == [0.9, 0.5, 1.0]  # round r over round r, not over the mean
    assert spread(round_ratios(row, "gateway")) == "0.500 / 0.900 / 1.000 (3 rounds)"
    assert round_ratios(row, "half") == [0.5]
    assert spread([]) == "-" and spread(None) == "-"
