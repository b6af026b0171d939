"""kill -9 durability and several processes on one SQLite file, with real gateway processes
(``python -m reference_gateway``, each with its own embedded mock upstream)."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import httpx
import pytest

from reference_gateway.background import ORPHAN_MESSAGE
from reference_gateway.store import open_store

STARTUP_DEADLINE_S = 30.0
ORPHAN_AFTER_S = 2.0  # the lease of each test gateway; heartbeats every 0.4 s
SETTLE_DEADLINE_S = 15.0  # generous: a lease, a heartbeat, and a busy 2-core VM
BURST_WORKERS = 8
CLIENT_TIMEOUT_S = 10.0

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="kill -9 is POSIX")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GatewayProcess:
    def __init__(self, db: str, log_path: str, *extra: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reference_gateway", "--store", db, "--port", str(self.port),
             "--orphan-after", str(ORPHAN_AFTER_S), *extra],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=os.getcwd(),
        )
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while True:
            if self.proc.poll() is not None:
                self._log.flush()
                raise RuntimeError(f"gateway exited with {self.proc.returncode}: {open(log_path).read()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"gateway not up within {STARTUP_DEADLINE_S} s: {open(log_path).read()[-2000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=CLIENT_TIMEOUT_S)


@contextmanager
def gateway(db: str, tmp_path, *extra: str):
    process = GatewayProcess(db, str(tmp_path / "gateway.log"), *extra)
    try:
        yield process
    finally:
        process.kill()


def create(client: httpx.Client, n: int) -> dict | None:
    """One stored response, streamed every third time; what the client was given, or None
    when it was not acknowledged (a 200 with the complete object / the terminal event)."""
    body = {"model": "mock-1", "input": f"burst {n}", "max_output_tokens": 16}
    try:
        if n % 3:
            r = client.post("/responses", json=body)
            return r.json() if r.status_code == 200 else None
        final = None
        with client.stream("POST", "/responses", json={**body, "stream": True}) as r:
            if r.status_code != 200:
                return None
            for line in r.iter_lines():
                if line.startswith("data: {") and '"type":"response.completed"' in line:
                    final = json.loads(line[len("data: "):])["response"]
        return final
    except (httpx.TransportError, ValueError):
        return None


def test_kill_9_during_a_burst_loses_no_acknowledged_response(tmp_path):
    db = str(tmp_path / "gw.sqlite3")
    acknowledged: dict[str, dict] = {}
    lock = threading.Lock()
    stop = threading.Event()
    counter = iter(range(10**9))

    with gateway(db, tmp_path) as gw:
        def worker() -> None:
            with gw.client() as c:
                while not stop.is_set():
                    with lock:
                        n = next(counter)
                    got = create(c, n)
                    if got is not None:
                        with lock:
                            acknowledged[got["id"]] = got

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(BURST_WORKERS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while len(acknowledged) < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        gw.kill()  # mid-burst: the workers are still sending
        stop.set()
        for t in threads:
            t.join(15)
    assert len(acknowledged) >= 50, "the burst was too small to mean anything"

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with gateway(db, tmp_path) as gw, gw.client() as c:
        for response_id, given in acknowledged.items():
            r = c.get(f"/responses/{response_id}")
            assert r.status_code == 200, (response_id, r.text)
            assert r.json() == given
        rows = sqlite3.connect(db).execute("SELECT status, body FROM stored_responses").fetchall()
    # Nothing half-stored: a row is final, or a stream the kill cut (stored from its
    # response.created on), still in progress or already failed by the orphan sweep.
    for status, body in rows:
        if status not in ("completed", "incomplete"):
            assert status == "in_progress" or json.loads(body)["error"]["message"] == ORPHAN_MESSAGE, body


def poll_settled(client: httpx.Client, response_id: str) -> dict:
    deadline = time.monotonic() + SETTLE_DEADLINE_S
    while True:
        body = client.get(f"/responses/{response_id}").json()
        if body["status"] not in ("queued", "in_progress") or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def background(client: httpx.Client) -> dict:
    r = client.post("/responses", json={"model": "mock-slow", "input": "slow", "background": True})
    assert r.status_code == 200 and r.json()["status"] == "queued", r.text
    return r.json()


def test_orphaned_background_response_fails_after_restart(tmp_path):
    db = str(tmp_path / "gw.sqlite3")
    with gateway(db, tmp_path) as gw, gw.client() as c:
        queued = background(c)  # mock-slow answers after 1 s: still pending at the kill
        gw.kill()
    with gateway(db, tmp_path) as gw, gw.client() as c:
        live = background(c)  # the new process's own work is not swept
        final = poll_settled(c, queued["id"])
        assert final["status"] == "failed", final
        assert final["error"] == {"code": "server_error", "message": ORPHAN_MESSAGE}
        assert {k: v for k, v in final.items() if k not in ("status", "error")} == \
            {k: v for k, v in queued.items() if k not in ("status", "error")}
        assert poll_settled(c, live["id"])["status"] == "completed"


def test_two_processes_share_one_file(tmp_path):
    """Both write at once and read each other's responses; a live worker never sweeps the other's
    pending work, and sweeps it once that worker is killed (no restart needed)."""
    db = str(tmp_path / "gw.sqlite3")
    with gateway(db, tmp_path) as one, gateway(db, tmp_path) as two, one.client() as c1, two.client() as c2:
        made: dict[int, list[dict]] = {1: [], 2: []}

        def burst(which: int, client: httpx.Client) -> None:
            for n in range(30):
                made[which].append(client.post("/responses", json={"model": "mock-1", "input": f"{which}-{n}"}))

        threads = [threading.Thread(target=burst, args=(1, c1)), threading.Thread(target=burst, args=(2, c2))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(r.status_code == 200 for rs in made.values() for r in rs)
        for reader, writer in ((c1, 2), (c2, 1)):
            for r in made[writer]:
                assert reader.get(f"/responses/{r.json()['id']}").json() == r.json()
        # A chain across processes: made by one, continued by the other.
        first = made[1][0].json()
        cont = c2.post("/responses", json={"model": "mock-1", "input": "on", "previous_response_id": first["id"]})
        assert cont.status_code == 200 and cont.json()["previous_response_id"] == first["id"]
        # Live work of one is not swept by the other, though both sweep every 0.2 s.
        live = background(c1)
        assert poll_settled(c2, live["id"])["status"] == "completed"
        # Killed: the survivor fails its orphan by itself.
        orphan = background(c1)
        one.kill()
        final = poll_settled(c2, orphan["id"])
        assert final["status"] == "failed" and final["error"]["message"] == ORPHAN_MESSAGE


# -- kill -9 at random points: every id a client saw exists, and ends terminal -------------------
KEYS = ("sk-durable-alice-0123456789abcdef", "sk-durable-bob-0123456789abcdef")
KILL_ROUNDS = 2
WORKERS_PER_KIND = 3
# A stored stream of ~40 paced tokens (25 ms apart): about a second, so a kill cuts some mid-way.
STREAM_BODY = {"model": "mock-paced:0:25", "input": "durable stream", "max_output_tokens": 40, "stream": True}
TERMINAL = ("completed", "incomplete", "failed", "cancelled")


class Seen:
    """What the clients were told: every id, its key, and for streams the text received and
    whether the terminal event arrived."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.key: dict[str, str] = {}
        self.kind: dict[str, str] = {}
        self.streamed_text: dict[str, list[str]] = {}
        self.finished: dict[str, dict] = {}  # id -> the final object the client got

    def saw(self, response_id: str, key: str, kind: str) -> None:
        with self.lock:
            self.key[response_id], self.kind[response_id] = key, kind


def stored_stream(c: httpx.Client, key: str, seen: Seen) -> None:
    with c.stream("POST", "/responses", json=STREAM_BODY, headers=auth(key)) as r:
        if r.status_code != 200:
            return
        response_id = None
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            event = json.loads(line[len("data: "):])
            if event["type"] == "response.created":
                response_id = event["response"]["id"]
                seen.streamed_text[response_id] = []
                seen.saw(response_id, key, "stream")
            elif event["type"] == "response.output_text.delta":
                seen.streamed_text[response_id].append(event["delta"])
            elif event["type"] in ("response.completed", "response.incomplete", "response.failed"):
                seen.finished[response_id] = event["response"]


def plain(c: httpx.Client, key: str, seen: Seen) -> None:
    r = c.post("/responses", json={"model": "mock-1", "input": "durable plain", "max_output_tokens": 16},
               headers=auth(key))
    if r.status_code == 200:
        seen.saw(r.json()["id"], key, "plain")
        seen.finished[r.json()["id"]] = r.json()


def queued(c: httpx.Client, key: str, seen: Seen) -> None:
    r = c.post("/responses", json={"model": "mock-slow", "input": "durable background", "background": True},
               headers=auth(key))
    if r.status_code == 200:
        seen.saw(r.json()["id"], key, "background")


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def load_then_kill(gw: GatewayProcess, seen: Seen, kill_after_s: float) -> None:
    """Stored streams, background and plain requests from several threads, each with one of two
    keys, until the gateway is killed ``kill_after_s`` seconds in."""
    stop = threading.Event()

    def worker(n: int, make) -> None:
        key = KEYS[n % 2]
        with gw.client() as c:
            while not stop.is_set():
                try:
                    make(c, key, seen)
                except (httpx.TransportError, ValueError):
                    pass  # the kill: this request was cut

    threads = [threading.Thread(target=worker, args=(n, make), daemon=True)
               for make in (stored_stream, plain, queued) for n in range(WORKERS_PER_KIND)]
    for t in threads:
        t.start()
    time.sleep(kill_after_s)
    gw.kill()
    stop.set()
    for t in threads:
        t.join(CLIENT_TIMEOUT_S + 5)


@pytest.fixture(params=["sqlite", "postgres"])
def store_location(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "gw.sqlite3")
    return request.getfixturevalue("postgres").new_database()


def test_kill_9_at_random_points_leaves_every_seen_id_present_and_terminal(store_location, tmp_path):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    seen = Seen()
    key_args = [arg for key in KEYS for arg in ("--api-key", key)]
    for _ in range(KILL_ROUNDS):
        with gateway(store_location, tmp_path, *key_args) as gw:
            load_then_kill(gw, seen, rng.uniform(1.0, 3.0))
    cut = [i for i in seen.streamed_text if i not in seen.finished]
    assert cut, f"seed {seed}: no stream was cut by a kill; the test proved nothing"
    assert {seen.kind[i] for i in seen.key} == {"stream", "plain", "background"}, f"seed {seed}"

    with gateway(store_location, tmp_path, *key_args) as gw, gw.client() as c:
        deadline = time.monotonic() + SETTLE_DEADLINE_S
        for response_id, key in seen.key.items():
            while True:
                r = c.get(f"/responses/{response_id}", headers=auth(key))
                assert r.status_code == 200, (seed, seen.kind[response_id], response_id, r.text)
                body = r.json()
                if body["status"] in TERMINAL or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert body["status"] in TERMINAL, (seed, seen.kind[response_id], body)
            other = KEYS[1 - KEYS.index(key)]
            assert c.get(f"/responses/{response_id}", headers=auth(other)).status_code == 404
            if response_id in seen.finished:  # acknowledged as final: stored exactly so
                assert body == seen.finished[response_id], (seed, response_id)
            elif seen.kind[response_id] == "stream":
                # Cut by the kill: failed by the orphan sweep, or final already (committed before
                # its terminal event was sent, and the kill came before the client read it).
                assert body["status"] != "failed" or body["error"]["message"] == ORPHAN_MESSAGE, (seed, body)
                stored, received = message_text(body), "".join(seen.streamed_text[response_id])
                assert stored.startswith(received) or received.startswith(stored), (seed, stored, received)
    store = open_store(store_location)
    try:
        assert not store.orphans(), f"seed {seed}: pending rows left"
    finally:
        store.close()


def message_text(body: dict) -> str:
    return "".join(part.get("text", "") for item in body["output"] if item["type"] == "message"
                   for part in item.get("content", []))


def test_kill_9_keeps_every_event_of_a_finished_stream(tmp_path):
    """Every event of a stream whose terminal event was sent is committed before it was sent
    (response_keeper.py): a kill -9 right after loses none of them, and the replay is the stream."""
    db = str(tmp_path / "gw.sqlite3")
    with gateway(db, tmp_path) as gw, gw.client() as c, \
            c.stream("POST", "/responses", json={"model": "mock-1", "input": "keep me", "stream": True}) as r:
        events = [json.loads(line[len("data: "):]) for line in r.iter_lines() if line.startswith("data: {")]
        assert events[-1]["type"] in ("response.completed", "response.incomplete")
        gw.kill()
    with gateway(db, tmp_path) as gw, gw.client() as c, \
            c.stream("GET", f"/responses/{events[0]['response']['id']}", params={"stream": "true"}) as r:
        replayed = [json.loads(line[len("data: "):]) for line in r.iter_lines() if line.startswith("data: {")]
    assert replayed == events
