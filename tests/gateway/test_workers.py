"""``--workers N`` (reference_gateway/worker.py) and ``respcheck serve --spawn-vllm``
(harness/targets/serve.py), with real processes on loopback.

Which worker served a request is told by the debug-only header ``x-gateway-worker-pid``
(``REFERENCE_GATEWAY_WORKER_PID_HEADER=1``); a client with a single kept-alive connection stays
on one worker, so a test can create on one worker and read, continue, cancel or delete on the
other. The store's ``instance`` column (one instance per worker process) confirms from the
database side that both workers wrote.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from reference_gateway.background import ORPHAN_MESSAGE
from reference_gateway.worker import CONFIG_ENV, PID_HEADER, PID_HEADER_ENV, PROMETHEUS_ENV

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG")

ROOT = Path(__file__).resolve().parents[2]
PID = PID_HEADER.decode()
STARTUP_DEADLINE_S = 60.0  # two workers importing on a busy 2-core VM
STOP_DEADLINE_S = 30.0  # worker.STOP_DEADLINE_S (20 s) plus room
ORPHAN_AFTER_S = 3.0  # heartbeats every 0.6 s
CLIENT_TIMEOUT_S = 20.0
# A background response that stays in_progress for several leases of ORPHAN_AFTER_S.
LONG_BACKGROUND = {"model": "mock-paced:8000:10", "input": "slow", "background": True, "max_output_tokens": 16}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children of all its threads, recursively)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except FileNotFoundError:
                continue
            for kid in kids:
                if kid not in found:
                    found.add(kid)
                    todo.append(kid)
    return found


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def environ_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = [kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv]
    return {k.decode(): v.decode(errors="replace") for k, v in pairs}


class Pinned:
    """An httpx client with one kept-alive connection, known to be served by worker ``pid``;
    every answer is checked to come from that worker."""

    def __init__(self, client: httpx.Client, pid: int) -> None:
        self.client, self.pid = client, pid

    def request(self, method: str, url: str, **kw) -> httpx.Response:
        r = self.client.request(method, url, **kw)
        assert int(r.headers[PID]) == self.pid, "the kept-alive connection moved to another worker"
        return r

    def post(self, url: str, **kw) -> httpx.Response:
        return self.request("POST", url, **kw)

    def get(self, url: str, **kw) -> httpx.Response:
        return self.request("GET", url, **kw)

    def delete(self, url: str, **kw) -> httpx.Response:
        return self.request("DELETE", url, **kw)

    def close(self) -> None:
        self.client.close()


class Supervisor:
    """``python -m reference_gateway --workers N`` (or any argv) in a process group of its own."""

    def __init__(self, tmp: Path, *extra: str, workers: int = 2, argv: list[str] | None = None,
                 env: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.db = tmp / "gateway.sqlite3"
        self.log_path = tmp / f"supervisor-{self.port}.log"
        self.headers = headers or {}
        self._clients: list[Pinned] = []
        argv = argv or [sys.executable, "-m", "reference_gateway"]
        cmd = [*argv, "--workers", str(workers), "--store", str(self.db), "--port", str(self.port),
               "--code-interpreter", "disabled", "--orphan-after", str(ORPHAN_AFTER_S), *extra]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=ROOT, env={**os.environ, PID_HEADER_ENV: "1", **(env or {})},
                                         start_new_session=True)
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def worker_pids(self, n: int = 2, *, deadline_s: float = STARTUP_DEADLINE_S, exclude=()) -> set[int]:
        """Probe /health on fresh connections until ``n`` distinct workers answered."""
        seen: set[int] = set()
        deadline = time.monotonic() + deadline_s
        while len(seen) < n:
            assert self.proc.poll() is None, f"supervisor exited with {self.proc.returncode}:\n{self.log()}"
            assert time.monotonic() < deadline, f"only workers {seen} answered within {deadline_s} s:\n{self.log()}"
            try:
                r = httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2, trust_env=False)
                pid = int(r.headers[PID])
                if pid not in exclude:
                    seen.add(pid)
            except httpx.TransportError:
                time.sleep(0.1)
        return seen

    def pinned(self, pid: int, *, deadline_s: float = 30.0) -> Pinned:
        """A client whose one connection is served by worker ``pid``."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            client = httpx.Client(base_url=self.base_url, timeout=CLIENT_TIMEOUT_S, trust_env=False,
                                  headers=self.headers,
                                  limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
            if int(client.get(f"http://127.0.0.1:{self.port}/health").headers[PID]) == pid:
                pinned = Pinned(client, pid)
                self._clients.append(pinned)
                return pinned
            client.close()
        raise AssertionError(f"no connection reached worker {pid} within {deadline_s} s")

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(STOP_DEADLINE_S)

    def close(self) -> None:
        """SIGTERM (so the supervisor removes its hand-off), then SIGKILL to the group."""
        for client in self._clients:
            client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """One supervisor with two workers, and a client pinned to each: ``(supervisor, a, b)``."""
    sup = Supervisor(tmp_path_factory.mktemp("workers"))
    try:
        pid_a, pid_b = sorted(sup.worker_pids(2))
        yield sup, sup.pinned(pid_a), sup.pinned(pid_b)
    finally:
        sup.close()


# -- refusals ------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["--workers", "2", "--db", ":memory:"], ["--workers", "3", "--store", ":memory:"],
                                  ["--workers", "0"]])
def test_workers_without_a_shared_store_are_refused(argv):
    r = subprocess.run([sys.executable, "-m", "reference_gateway", *argv, "--port", str(free_port())],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert (":memory:" in lines[0]) if "0" not in argv else "--workers" in lines[0]


def test_the_handoff_round_trips_and_a_worker_refuses_a_file_others_can_read(tmp_path, monkeypatch):
    """In-process: what a worker does with the hand-off file (no supervisor needed)."""
    from uvicorn.config import STARTUP_FAILURE

    from reference_gateway.config import GatewayConfig
    from reference_gateway.worker import create_worker_app, read_handoff, write_handoff

    config = GatewayConfig(upstream_url="http://127.0.0.1:9/v1", api_keys=("sk-a",), db_path=str(tmp_path / "s.db"))
    path = write_handoff(config, tmp_path, parent_pid=os.getpid())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_handoff(path) == {"config": config, "parent_pid": os.getpid()}
    path.chmod(0o644)
    monkeypatch.setenv(CONFIG_ENV, str(path))
    with pytest.raises(SystemExit) as exited:  # uvicorn's STARTUP_FAILURE: the supervisor stops,
        create_worker_app()                     # rather than restarting the worker in a loop
    assert exited.value.code == STARTUP_FAILURE
    monkeypatch.delenv(CONFIG_ENV)
    with pytest.raises(SystemExit) as exited:
        create_worker_app()
    assert exited.value.code == STARTUP_FAILURE


def test_workers_1_is_the_in_process_server(tmp_path):
    sup = Supervisor(tmp_path, workers=1)
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while True:
            assert sup.proc.poll() is None, sup.log()
            try:
                r = httpx.get(f"http://127.0.0.1:{sup.port}/health", timeout=2, trust_env=False)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, sup.log()
                time.sleep(0.1)
        assert r.status_code == 200 and PID not in r.headers  # no worker, no supervisor
        assert descendants(sup.proc.pid) == set()
        # uvicorn re-raises the SIGTERM it handled once it has shut down: killed by it, cleanly
        assert sup.terminate() in (0, -signal.SIGTERM)
    finally:
        sup.close()


# -- two workers, one store ----------------------------------------------------------------
def test_a_response_made_on_one_worker_is_read_continued_and_deleted_on_the_other(pair):
    sup, a, b = pair
    first = a.post("/responses", json={"model": "mock-1", "input": "one"})
    assert first.status_code == 200, first.text
    first = first.json()
    got = b.get(f"/responses/{first['id']}")
    assert got.status_code == 200 and got.json() == first
    items = b.get(f"/responses/{first['id']}/input_items").json()
    assert [i["content"][0]["text"] for i in items["data"]] == ["one"]

    second = b.post("/responses", json={"model": "mock-echo", "input": "two", "previous_response_id": first["id"]})
    assert second.status_code == 200, second.text
    second = second.json()
    echoed = json.loads(second["output"][0]["content"][0]["text"])
    assert echoed == [{"role": "user", "content": "one"},
                      {"role": "assistant", "content": first["output"][0]["content"][0]["text"]},
                      {"role": "user", "content": "two"}]
    third = a.post("/responses", json={"model": "mock-1", "input": "three", "previous_response_id": second["id"]})
    assert third.status_code == 200 and third.json()["previous_response_id"] == second["id"]

    # each worker is an instance of the store of its own: the rows say who wrote them
    rows = dict(sup.query("SELECT id, instance FROM stored_responses WHERE id IN (?, ?)", (first["id"], second["id"])))
    assert rows[first["id"]] != rows[second["id"]]

    deleted = b.delete(f"/responses/{first['id']}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert a.get(f"/responses/{first['id']}").status_code == 404
    assert a.delete(f"/responses/{first['id']}").status_code == 404
    again = a.post("/responses", json={"model": "mock-1", "input": "x", "previous_response_id": first["id"]})
    assert again.status_code == 400 and again.json()["error"]["code"] == "previous_response_not_found"


def test_a_burst_of_concurrent_creates_on_both_workers_loses_no_write(pair):
    sup, a, b = pair
    per_worker_clients, per_client = 8, 6  # 96 responses, half of them streamed
    clients = [sup.pinned(pid) for pid in (a.pid, b.pid) for _ in range(per_worker_clients)]
    before = sup.query("SELECT count(*) FROM stored_responses")[0][0]
    made: list[tuple[int, str]] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(clients))

    def burst(client: Pinned, n: int) -> None:
        start.wait()
        for k in range(per_client):
            stream = (n + k) % 2 == 1
            try:
                r = client.post("/responses", json={"model": "mock-1", "input": f"burst {n}.{k}", "stream": stream})
                if r.status_code != 200:
                    raise AssertionError(f"{r.status_code} {r.text[:200]}")
                if stream:
                    created = next(json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:"))
                    assert "response.completed" in r.text
                    response_id = created["response"]["id"]
                else:
                    response_id = r.json()["id"]
            except Exception as exc:  # noqa: BLE001 -- collected and asserted below
                with lock:
                    errors.append(repr(exc))
                continue
            with lock:
                made.append((client.pid, response_id))

    threads = [threading.Thread(target=burst, args=(c, n)) for n, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    total = len(clients) * per_client
    assert len(made) == total and len({rid for _, rid in made}) == total
    assert sup.query("SELECT count(*) FROM stored_responses")[0][0] == before + total
    ids = [rid for _, rid in made]
    instances = dict(sup.query(f"SELECT id, instance FROM stored_responses WHERE id IN ({','.join('?' * total)})",
                               tuple(ids)))
    assert len(instances) == total
    # both workers wrote, and every row of one worker carries that worker's instance
    by_worker = {pid: {instances[rid] for p, rid in made if p == pid} for pid in (a.pid, b.pid)}
    assert all(len(v) == 1 for v in by_worker.values()) and by_worker[a.pid] != by_worker[b.pid]
    # and each response reads back the same through the other worker
    for pid, rid in made[:: max(1, total // 12)]:
        reader = b if pid == a.pid else a
        assert reader.get(f"/responses/{rid}").json()["status"] == "completed"


def test_workers_do_not_orphan_each_others_background_responses(pair):
    sup, a, b = pair
    made = [c.post("/responses", json=LONG_BACKGROUND).json() for c in (a, b, a, b)]
    assert all(r["status"] == "queued" for r in made)
    live = sup.query("SELECT count(*) FROM gateway_instances WHERE lease_expires_at > "
                     "((julianday('now') - 2440587.5) * 86400.0)")[0][0]
    assert live >= 2  # one lease per worker
    deadline = time.monotonic() + 60
    final = {}
    while len(final) < len(made):
        assert time.monotonic() < deadline, f"still pending: {set(r['id'] for r in made) - set(final)}"
        for r in made:
            # read through the *other* worker than the one generating, every few heartbeats
            body = (b if r in made[0::2] else a).get(f"/responses/{r['id']}").json()
            if body["status"] not in ("queued", "in_progress"):
                final[r["id"]] = body
        time.sleep(0.5)
    # 8 s of generation = more than two leases of 3 s, each swept 5 times per lease by both
    # (incomplete: the paced model writes exactly max_output_tokens tokens, as a random model does)
    assert {body["status"] for body in final.values()} == {"incomplete"}, [f.get("error") for f in final.values()]
    assert all(body["error"] is None and body["output"] for body in final.values())


def test_a_cancel_on_the_other_worker_is_the_one_outcome(pair):
    sup, a, b = pair
    created = a.post("/responses", json={**LONG_BACKGROUND, "model": "mock-paced:3000:10"}).json()
    cancelled = b.post(f"/responses/{created['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    time.sleep(4.5)  # worker a's generation ends; its conditional update is refused
    assert a.get(f"/responses/{created['id']}").json()["status"] == "cancelled"
    assert b.get(f"/responses/{created['id']}").json()["status"] == "cancelled"


# -- a worker killed, the supervisor stopped -----------------------------------------------
def test_a_killed_worker_is_replaced_and_its_background_responses_settled(tmp_path):
    sup = Supervisor(tmp_path)
    try:
        pid_a, pid_b = sorted(sup.worker_pids(2))
        a, b = sup.pinned(pid_a), sup.pinned(pid_b)
        pending = a.post("/responses", json={**LONG_BACKGROUND, "model": "mock-paced:120000:10"}).json()
        assert pending["status"] == "queued"
        os.kill(pid_a, signal.SIGKILL)
        deadline = time.monotonic() + ORPHAN_AFTER_S + 20
        while True:
            body = b.get(f"/responses/{pending['id']}").json()
            if body["status"] == "failed":
                break
            assert time.monotonic() < deadline, f"still {body['status']} after the worker was killed"
            time.sleep(0.3)
        assert body["error"]["message"] == ORPHAN_MESSAGE
        # the supervisor started a new worker in its place
        replacement = sup.worker_pids(1, exclude={pid_a, pid_b})
        assert replacement and gone(pid_a)
        assert sup.terminate() == 0
    finally:
        sup.close()


def test_sigterm_stops_every_worker_and_removes_the_config_handoff(tmp_path):
    key = "sk-test-" + "k3y" * 8
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"# the test's key\n{key}\n")
    sup = Supervisor(tmp_path, "--api-keys-file", str(keys_file), headers={"authorization": f"Bearer {key}"})
    try:
        pids = sup.worker_pids(2)
        everyone = descendants(sup.proc.pid)
        assert pids <= everyone
        # the keys reach the workers through a private file, never a command line or the environment
        handoff = Path(environ_of(min(pids))[CONFIG_ENV])
        prometheus = Path(environ_of(min(pids))[PROMETHEUS_ENV])
        assert stat.S_IMODE(handoff.stat().st_mode) == 0o600
        assert stat.S_IMODE(handoff.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(prometheus.stat().st_mode) == 0o700
        for pid in everyone | {sup.proc.pid}:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                assert key.encode() not in f.read()
            assert key not in "".join(environ_of(pid).values())
        for pid in pids:  # and every worker knows them
            client = sup.pinned(pid)
            assert client.get("/models").status_code == 200
            assert client.client.get("/models", headers={"authorization": "Bearer wrong"}).status_code == 401

        started = time.monotonic()
        assert sup.terminate() == 0, sup.log()
        assert time.monotonic() - started < STOP_DEADLINE_S
        deadline = time.monotonic() + 10
        while not all(gone(pid) for pid in everyone):  # the resource tracker may take a moment
            assert time.monotonic() < deadline, [pid for pid in everyone if not gone(pid)]
            time.sleep(0.1)
        assert not handoff.parent.exists() and not prometheus.exists()
    finally:
        sup.close()


def test_a_killed_supervisor_takes_its_workers_with_it(tmp_path):
    sup = Supervisor(tmp_path)
    try:
        pids = sup.worker_pids(2)
        handoff = Path(environ_of(min(pids))[CONFIG_ENV])
        os.kill(sup.proc.pid, signal.SIGKILL)  # no cleanup at all: PR_SET_PDEATHSIG does it
        sup.proc.wait(10)
        deadline = time.monotonic() + STOP_DEADLINE_S
        while not all(gone(pid) for pid in pids):
            assert time.monotonic() < deadline, [pid for pid in pids if not gone(pid)]
            time.sleep(0.1)
        assert not handoff.parent.exists()  # removed by the orphaned workers on their way out
    finally:
        sup.close()


# -- respcheck serve --spawn-vllm ------------------------------------------------------------
def _fake_vllm_python(tmp_path: Path) -> tuple[Path, Path]:
    """A 'python' that, as vLLM would while it loads, runs and never answers; writes its pid."""
    pidfile = tmp_path / "fake-vllm.pid"
    script = tmp_path / "fake-python"
    script.write_text(f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 600\n")
    script.chmod(0o700)
    return script, pidfile


def _serve(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "harness.faces.cli", "serve", *args], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
                                env={**os.environ, **env}, start_new_session=True)


def _kill(proc: subprocess.Popen, pidfile: Path | None = None, pid: int | None = None) -> None:
    """After a failed test: the supervisor's group, and the spawned server's (its own session)."""
    for group in (proc.pid, pid if pid is not None else
                  (int(pidfile.read_text()) if pidfile and pidfile.exists() and pidfile.read_text().strip() else None)):
        if group is not None:
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    if proc.poll() is None:
        proc.wait(10)


def _wait_file(path: Path, deadline_s: float) -> int:
    deadline = time.monotonic() + deadline_s
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} was not written"
        time.sleep(0.05)
    return int(path.read_text())


def test_spawn_vllm_gives_up_at_its_deadline_in_one_line_and_leaves_nothing(tmp_path):
    python, pidfile = _fake_vllm_python(tmp_path)
    log = tmp_path / "serve.log"
    proc = _serve(["--spawn-vllm", "some/model", "--start-timeout", "2", "--vllm-log", str(tmp_path / "vllm.log"),
                   "--port", str(free_port()), "--store", str(tmp_path / "db.sqlite3")],
                  {"RESPCHECK_VLLM_PYTHON": str(python)}, log)
    try:
        assert proc.wait(60) == 2
        assert gone(_wait_file(pidfile, 1))
        lines = log.read_text().strip().splitlines()
        assert lines[-1].startswith("respcheck serve: error: vllm was not ready within 2 s"), lines
        assert str(tmp_path / "vllm.log") in lines[-1]
    finally:
        _kill(proc, pidfile)


def test_spawn_vllm_sigterm_while_it_loads_stops_it(tmp_path):
    python, pidfile = _fake_vllm_python(tmp_path)
    proc = _serve(["--spawn-vllm", "some/model", "--start-timeout", "120", "--port", str(free_port()),
                   "--vllm-log", str(tmp_path / "vllm.log"), "--store", str(tmp_path / "db.sqlite3")],
                  {"RESPCHECK_VLLM_PYTHON": str(python)}, tmp_path / "serve.log")
    try:
        fake = _wait_file(pidfile, 30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert gone(fake)
    finally:
        _kill(proc, pidfile)


def test_spawn_vllm_that_dies_while_serving_stops_the_gateway(tmp_path):
    """A stand-in that gets ready (tests/targets/fake_server.py), then is killed: the gateway
    and its workers stop too, exit 1, one line naming the log."""
    pidfile = tmp_path / "fake-vllm.pid"
    python = tmp_path / "fake-python"
    python.write_text(f"#!/bin/sh\necho $$ > {pidfile}\n"
                      'while [ $# -gt 0 ]; do [ "$1" = "--port" ] && port=$2; shift; done\n'
                      f"exec {sys.executable} {ROOT / 'tests' / 'targets' / 'fake_server.py'} $port ok\n")
    python.chmod(0o700)
    port = free_port()
    log = tmp_path / "serve.log"
    proc = _serve(["--spawn-vllm", "fake", "--workers", "2", "--port", str(port), "--store",
                   str(tmp_path / "db.sqlite3"), "--code-interpreter", "disabled",
                   "--vllm-log", str(tmp_path / "vllm.log")], {"RESPCHECK_VLLM_PYTHON": str(python)}, log)
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        workers = descendants(proc.pid)
        os.kill(_wait_file(pidfile, 1), signal.SIGKILL)
        assert proc.wait(STOP_DEADLINE_S) == 1, log.read_text()[-3000:]
        assert log.read_text().strip().splitlines()[-1].startswith(
            "respcheck serve: error: vllm exited with code -9 while the gateway was serving; see ")
        deadline = time.monotonic() + 10
        while not all(gone(pid) for pid in workers):
            assert time.monotonic() < deadline, [pid for pid in workers if not gone(pid)]
            time.sleep(0.1)
    finally:
        _kill(proc, pidfile)


@pytest.mark.parametrize("args, says", [
    (["--upstream", "http://127.0.0.1:9/v1"], "not both"),
    (["--workers", "2", "--db", ":memory:"], ":memory:"),
    (["--no-such-flag"], "unrecognized arguments"),
])
def test_spawn_vllm_refuses_bad_gateway_flags_before_starting_vllm(tmp_path, args, says):
    python, pidfile = _fake_vllm_python(tmp_path)
    log = tmp_path / "serve.log"
    proc = _serve(["--spawn-vllm", "tiny", *args], {"RESPCHECK_VLLM_PYTHON": str(python)}, log)
    assert proc.wait(60) == 2
    assert not pidfile.exists()
    text = log.read_text().strip()
    assert len(text.splitlines()) == 1 and says in text, text


def _vllm_installed() -> bool:
    from harness.targets.target import vllm_python

    return vllm_python().exists()


@pytest.mark.skipif(not _vllm_installed() and not os.environ.get("CI"),
                    reason="vLLM is not installed (.venv-vllm or $RESPCHECK_VLLM_PYTHON): run "
                    "scripts/install-vllm.sh; under CI this test always runs")
def test_spawn_vllm_tiny_serves_through_vllm_and_stops_it(tmp_path):
    assert _vllm_installed(), "CI must have vLLM: .ci/run installs it (scripts/install-vllm.sh)"
    port = free_port()
    log = tmp_path / "serve.log"
    vllm_pid = None
    proc = _serve(["--spawn-vllm", "tiny", "--workers", "2", "--port", str(port), "--store",
                   str(tmp_path / "db.sqlite3"), "--code-interpreter", "disabled",
                   "--vllm-log", str(tmp_path / "vllm.log")], {PID_HEADER_ENV: "1"}, log)
    try:
        deadline = time.monotonic() + 240  # vLLM: 60-90 s on 2 cores, more on a loaded one
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        text = log.read_text()
        vllm_pid = int(text.split("vllm ready after ")[1].split("(pid ")[1].split(")")[0])
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/v1", timeout=120, trust_env=False) as client:
            assert [m["id"] for m in client.get("/models").json()["data"]] == ["tiny"]
            r = client.post("/responses", json={"model": "tiny", "input": "Say hello.", "max_output_tokens": 16})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["status"] in ("completed", "incomplete") and body["output"], body
            assert client.get(f"/responses/{body['id']}").json()["id"] == body["id"]
        everyone = descendants(proc.pid) | {vllm_pid} | descendants(vllm_pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
        deadline = time.monotonic() + 15
        while not all(gone(pid) for pid in everyone):
            assert time.monotonic() < deadline, [pid for pid in everyone if not gone(pid)]
            time.sleep(0.2)
        assert "respcheck serve: vllm stopped" in log.read_text()
    finally:
        _kill(proc, pid=vllm_pid)
