"""Run the stages of a load test on a locust Environment, locally or as a master with workers.

``python -m loadtests.runner CONFIG.json`` is the load-generator process that ``respcheck
load`` (``loadtests.cli``) starts: locust monkey-patches it for gevent at import, so it must be
a process of its own. It writes the reports and prints the final table; its exit status is
the command's.

A stage runs: warm-up (users start, samples not counted) -> measurement window (``duration``)
-> drain (no new requests; those in flight finish, up to ``drain_s``) -> stop. With
``workers`` > 0 this process is a locust master (``Environment.create_master_runner``) and
spawns that many ``python -m loadtests.worker`` processes; workers on other machines can join
with ``--external-workers`` (see loadtests/worker.py). The stage description goes to every
worker as a custom message before the users are spawned; each worker sends its samples back
once its in-flight requests have drained.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import locust  # noqa: F401  (first: gevent's monkey-patching must precede other imports)
from locust.env import Environment

from loadtests.metrics import Sample, Window, summarize
from loadtests.report import machine_info
from loadtests.user import LoadUser, StageState

WORKER_CONNECT_DEADLINE_S = 60.0
FLUSH_GRACE_S = 10.0  # beyond the drain deadline, for the workers' sample messages to arrive
PROGRESS_EVERY_S = 1.0
# Called as a stage's measured window opens ("start") and closes ("end"), with the stage's spec
# and the load generator's process ids.
WindowHook = Callable[[dict[str, Any], str, list[int]], None]


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Progress:
    """One live line on stderr (rewritten in place on a terminal, every few seconds otherwise)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._last_print = 0.0

    def show(self, text: str, *, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + text + ("\n" if final else ""))
            sys.stderr.flush()
        elif final or now - self._last_print >= 5.0:
            self._last_print = now
            print(text, file=sys.stderr, flush=True)


class Controller:
    def __init__(self, config: dict[str, Any], on_window: WindowHook | None = None) -> None:
        self.config = config
        self.on_window = on_window
        self.workers = int(config.get("workers") or 0)
        self.external = int(config.get("external_workers") or 0)
        self.distributed = self.workers + self.external > 0
        self.env = Environment(user_classes=[LoadUser], stop_timeout=0)
        self.env.respcheck = StageState()
        self.samples: list[Sample] = []
        self._flushes: dict[str, list] = {}
        self._worker_progress: dict[str, dict[str, int]] = {}
        self._procs: list[subprocess.Popen] = []
        if self.distributed:
            host, _, port = (config.get("master_bind") or "127.0.0.1:0").rpartition(":")
            host = host or "127.0.0.1"
            port = int(port) if port and port != "0" else _free_port("127.0.0.1" if host in ("*", "0.0.0.0") else host)
            self.master_host, self.master_port = host, port
            self.runner = self.env.create_master_runner(master_bind_host=host, master_bind_port=port)
            self.runner.register_message("respcheck_flush", self._on_flush)
            self.env.events.worker_report.add_listener(self._on_worker_report)
        else:
            self.runner = self.env.create_local_runner()

    def client_pids(self) -> list[int]:
        """The load generator's processes on this machine: this one and its local workers."""
        return [os.getpid()] + [p.pid for p in self._procs if p.poll() is None]

    # -- workers ---------------------------------------------------------------------------
    def _on_flush(self, msg, **_kw) -> None:
        self._flushes[msg.node_id] = msg.data["samples"]

    def _on_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        if "respcheck" in data:
            self._worker_progress[client_id] = data["respcheck"]

    def start_workers(self) -> None:
        if not self.distributed:
            return
        log_dir = Path(self.config["report_dir"]) / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        connect = "127.0.0.1" if self.master_host in ("*", "0.0.0.0") else self.master_host
        for i in range(self.workers):
            log = open(log_dir / f"worker-{i}.log", "wb")
            self._procs.append(subprocess.Popen(
                [sys.executable, "-m", "loadtests.worker", "--master-host", connect,
                 "--master-port", str(self.master_port)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        want = self.workers + self.external
        if self.external:
            print(f"waiting for {self.external} external worker(s): python -m loadtests.worker "
                  f"--master-host <this host> --master-port {self.master_port}", file=sys.stderr)
        deadline = time.monotonic() + WORKER_CONNECT_DEADLINE_S + (600 if self.external else 0)
        while self.runner.worker_count < want:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.runner.worker_count} of {want} workers connected "
                                   f"to the master on port {self.master_port}")
            for p in self._procs:
                if p.poll() is not None:
                    raise RuntimeError(f"a worker exited with status {p.returncode} (see {log_dir})")
            gevent.sleep(0.1)

    def close(self) -> None:
        try:
            self.runner.quit()
        except Exception:  # noqa: BLE001 - best effort at shutdown
            pass
        for p in self._procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()

    # -- stages ----------------------------------------------------------------------------
    def run_stage(self, spec: dict[str, Any], progress: Progress) -> dict[str, Any]:
        cfg = self.config
        users = int(spec["users"])
        n_proc = (self.runner.worker_count if self.distributed else 1) or 1
        t_start = time.time()
        window = Window(t_start + cfg["warmup_s"], t_start + cfg["warmup_s"] + cfg["duration_s"])
        stage = {
            "label": spec["label"], "t_end": window.end,
            "rate": (spec["rate"] / n_proc) if spec.get("rate") else None,
            # a stage may name its own target and workload (the overhead benchmark alternates
            # the upstream's chat endpoint and the gateway's Responses endpoint)
            "base_url": spec.get("base_url") or cfg["base_url"], "api_key": spec.get("api_key", cfg.get("api_key")),
            "workload": spec.get("workload") or cfg["workload"],
            "deadline_s": cfg["deadline_s"], "idle_s": cfg["idle_s"],
            "drain_s": cfg["drain_s"],
        }
        state: StageState = self.env.respcheck
        self._flushes = {}
        self._worker_progress = {}
        if self.distributed:
            self.runner.send_message("respcheck_stage", stage)
        else:
            state.begin(stage)
        # Every user at once: a closed-loop stage is about N concurrent streams, not a ramp.
        self.runner.start(users, spawn_rate=max(users * 20, 1))
        for edge, phase in ((window.start, "start"), (window.end, "end")):
            while time.time() < edge:
                self._progress(progress, spec, window)
                gevent.sleep(min(PROGRESS_EVERY_S, max(0.0, edge - time.time())))
            if self.on_window is not None:
                self.on_window(spec, phase, self.client_pids())
        if self.distributed:
            limit = time.monotonic() + cfg["drain_s"] + FLUSH_GRACE_S
            while len(self._flushes) < self.runner.worker_count and time.monotonic() < limit:
                self._progress(progress, spec, window, draining=True)
                gevent.sleep(0.1)
            samples = [Sample.from_wire(row) for rows in self._flushes.values() for row in rows]
        else:
            while state.inflight and time.time() < window.end + cfg["drain_s"]:
                self._progress(progress, spec, window, draining=True)
                gevent.sleep(0.05)
            samples = state.take_samples()
        unfinished = state.inflight if not self.distributed else sum(
            p.get("inflight", 0) for p in self._worker_progress.values())
        self.runner.stop()
        state.end()
        self.samples.extend(samples)
        summary = summarize(samples, window, slo=cfg.get("slo"), levels=self._levels(samples))
        summary.update(label=spec["label"], users=users, rate=spec.get("rate"), base_url=stage["base_url"],
                       api=stage["workload"]["api"],
                       window=[window.start, window.end], unfinished_at_stop=unfinished)
        progress.show(self._line(spec, summary["requests"], summary["failed"],
                                 sum(v["count"] for v in summary["violations"].values()),
                                 summary["request_throughput"]) + " done", final=True)
        return summary

    def _levels(self, samples: list[Sample]) -> dict[str, str]:
        checks = {c for s in samples for c in s.violations}
        if not checks:
            return {}
        from harness.core.catalogue import load_catalogue

        cat = load_catalogue(self.config["workload"].get("profile", "openai"))
        out = {}
        for c in checks:
            try:
                out[c] = cat.level(c)
            except Exception:  # noqa: BLE001 - an id outside the catalogue: no level
                out[c] = None
        return out

    def _progress(self, progress: Progress, spec, window: Window, draining: bool = False) -> None:
        if self.distributed:
            agg = {"done": 0, "failed": 0, "violations": 0}
            for p in self._worker_progress.values():
                for k in agg:
                    agg[k] += p.get(k, 0)
            done, failed, viol = agg["done"], agg["failed"], agg["violations"]
        else:
            st = self.env.respcheck
            done, failed, viol = st.done, st.failed, st.violations
        now = time.time()
        elapsed = now - (window.start - self.config["warmup_s"])
        rate = done / elapsed if elapsed > 0 else 0.0
        phase = "draining" if draining else ("warm-up" if now < window.start else "measuring")
        total = self.config["warmup_s"] + self.config["duration_s"]
        progress.show(self._line(spec, done, failed, viol, rate)
                      + f"  {min(elapsed, total):5.1f}/{total:.0f}s {phase}")

    @staticmethod
    def _line(spec, done, failed, viol, rate) -> str:
        what = f"rate={spec['rate']}/s users<={spec['users']}" if spec.get("rate") else f"users={spec['users']}"
        return (f"[{spec['label']}] {what}  requests {done}  errors {failed}  violations {viol}"
                f"  {rate or 0:.1f} req/s")


def run(config: dict[str, Any], *, on_window: WindowHook | None = None) -> dict[str, Any]:
    """Run every stage; return the results document (``results.json``). ``on_window(spec,
    "start" | "end", client_pids)`` is called as each stage's measured window opens and closes
    (loadtests/overhead.py reads the processes' CPU time there)."""
    logging.getLogger("locust").setLevel(logging.ERROR)
    ctl = Controller(config, on_window)
    progress = Progress(bool(config.get("progress", True)))
    started = time.time()
    stages = []
    try:
        ctl.start_workers()
        for spec in config["stages"]:
            stages.append(ctl.run_stage(spec, progress))
    finally:
        ctl.close()
    return {
        "tool": "respcheck", "kind": "load", "started_at": started, "duration_s": time.time() - started,
        "config": {k: v for k, v in config.items() if k != "api_key"},
        "machine": machine_info(), "stages": stages,
        "_samples": ctl.samples,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m loadtests.runner CONFIG.json", file=sys.stderr)
        return 2
    config = json.loads(Path(argv[0]).read_text())
    try:
        results = run(config)
    except RuntimeError as exc:
        print(f"respcheck load: {exc}", file=sys.stderr)
        return 2
    from loadtests.report import exit_status, print_table, write_reports

    samples = results.pop("_samples")
    write_reports(results, samples, Path(config["report_dir"]))
    print_table(results, file=sys.stdout)
    print(f"report: {Path(config['report_dir']) / 'report.html'}", file=sys.stdout)
    return exit_status(results)


if __name__ == "__main__":
    sys.exit(main())
