"""A recorded run, re-judged with today's checker and no server.

Some servers cannot run where the tests run (the vllm-responses gateway needs Python >= 3.12,
its own source checkout and a vLLM: reports/vllm-responses.md). Their runs are committed as a
*recording* instead, and every test run judges the recorded bytes again, so that a checker
change that flips a verdict on a real server's output is seen (tests/report/
test_recorded_runs.py)::

    RECORDING/expected.json           the run's target, profile and transport, and per scenario
                                      the sha256 of its scenario file, its status and the
                                      status of each check it applied
    RECORDING/scenarios.json.gz       each scenario file as it was when recorded
    RECORDING/transcripts/*.jsonl.gz  what was sent and what came back (harness/core/
                                      transcript.py), gzipped

Making one (``respcheck run`` writes the report folder; ``freeze`` turns it into a recording)::

    .venv/bin/respcheck run --target URL --model M --profile P --report-dir DIR
    .venv/bin/python -m harness.run.replay freeze DIR RECORDING
    .venv/bin/python -m harness.run.replay check RECORDING [RECORDING ...]

Re-judging goes through the runner itself (``run_scenario``) with the recorded exchanges handed
in by a transport that sends nothing (``RecordedExchanges``): every check, expectation and
early stop is today's, and nothing is judged by a second code path. A polling step is judged
on its recorded last answer (its poll is not repeated).

Decisions:

- **Judged as recorded.** Each scenario is parsed from its recorded snapshot, not from today's
  suite: the transcripts answer the requests of that snapshot, and a scenario edited since
  would send something else. A recording whose scenario files changed since (another sha256,
  gone, or new in the suite) is *stale*: it is still re-judged as recorded, and ``check`` and
  the test say which scenarios to re-record, and with which command (``RERECORD``); a stale
  recording fails nothing, since re-recording needs the server.
- **The request must be the same.** The runner renders each request again; it must be the
  recorded one byte for byte (up to the port of a loopback URL: the run's MCP servers listen
  on random ports, ``LOOPBACK``). A request that differs (the template engine changed) or a step
  the recording never reached (a checker change made the runner go on where it stopped) is a
  *drift*: the recorded answer no longer answers today's request, so its verdict cannot stand.
- **A verdict** is a scenario's status and the status of each check it applied; a check
  applied today and not then, or the reverse, is a flip too.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.core.catalogue import load_catalogue
from harness.core.findings import SKIP
from harness.core.transcript import Exchange, read_transcript
from harness.run.runner import run_scenario, skip_reason
from harness.run.scenario import (
    DEFAULT_SOCKET,
    Scenario,
    default_suite_dir,
    load_scenarios,
    parse_scenario,
)
from harness.targets.suite_servers import SuiteServers
from harness.targets.target import Target

EXPECTED_FILE = "expected.json"
SCENARIOS_FILE = "scenarios.json.gz"
TRANSCRIPTS_DIR = "transcripts"
FORMAT_VERSION = 1
# The run's MCP servers (harness/targets/suite_servers.py) listen on random loopback ports; a
# replay renders them at port 0 and compares requests with every loopback port masked.
LOOPBACK = re.compile(r"http://127\.0\.0\.1:\d+")
# (Their path is harness/targets/mcp_servers.py's MCP_PATH; that module brings in mcp and
# uvicorn, which a replay does not need.)
REPLAY_SERVERS = SuiteServers("http://127.0.0.1:0/mcp", "http://127.0.0.1:0/mcp")
# What ``check`` and the test tell a reader to run when a recording is stale (the server is
# started by hand first: reports/vllm-responses.md says how).
RERECORD = (".venv/bin/respcheck run --target URL --model M --profile {profile} "
            "--report-dir DIR && .venv/bin/python -m harness.run.replay freeze DIR {recording}")


class NotRecorded(Exception):
    """The runner asked for an exchange the recording does not have."""


class RecordedExchanges:
    """Stands in for the HTTP transport and the WebSocket transport of a run: each request (or
    turn) is answered with the next recorded exchange, after checking that it is the request
    that was recorded. Sends nothing."""

    def __init__(self, exchanges: list[Exchange]) -> None:
        self._left = list(exchanges)
        self.drift: list[str] = []

    def _next(self, step: str, sent: bytes, where: str) -> Exchange:
        if not self._left:
            raise NotRecorded(f"step {step!r} ({where}) was never recorded: the recorded run "
                              "stopped before it")
        ex = self._left.pop(0)
        if ex.step != step:
            raise NotRecorded(f"step {step!r} ({where}) was asked for where the recording has "
                              f"step {ex.step!r}")
        if _masked(sent) != _masked(ex.request_body):
            self.drift.append(f"step {step!r}: the request rendered today differs from the "
                              "recorded one")
        return ex

    def request(self, step: str, method: str, path: str, *, body: bytes | None = None,
                **_options: Any) -> Exchange:
        ex = self._next(step, body or b"", f"{method} {path}")
        if (ex.method, ex.transport) != (method, "http") or not ex.url.endswith(path):
            self.drift.append(f"step {step!r}: sent {method} {path}, recorded {ex.method} "
                              f"{ex.url}")
        return ex

    def turn(self, step: str, frame: str, *, socket_name: str = DEFAULT_SOCKET,
             **_options: Any) -> Exchange:
        ex = self._next(step, frame.encode("utf-8"), f"WebSocket turn on {socket_name!r}")
        if ex.transport != "ws" or (ex.socket or DEFAULT_SOCKET) != socket_name:
            self.drift.append(f"step {step!r}: a turn on socket {socket_name!r}, recorded as "
                              f"{ex.transport} on {ex.socket!r}")
        return ex

    @property
    def unused(self) -> int:
        return len(self._left)


def _masked(body: bytes) -> bytes:
    return LOOPBACK.sub("http://127.0.0.1:PORT", body.decode("utf-8", "replace")).encode()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _without_polls(scenario: Scenario) -> Scenario:
    return dataclasses.replace(scenario, steps=tuple(
        dataclasses.replace(s, poll=None) if s.poll else s for s in scenario.steps))


def _verdict(status: str, results) -> dict[str, Any]:
    return {"status": status, "checks": {r.check: r.status for r in results}}


# -- freeze -----------------------------------------------------------------------------------
def freeze(report_dir: Path, out: Path, *, suite_dir: Path | None = None,
           server: str | None = None) -> dict[str, Any]:
    """Turn the report folder of one ``respcheck run`` (summary.json, transcripts/) into a
    recording at ``out`` (replacing the one there); returns its expected.json data.
    ``suite_dir``: the scenario folder the run used (default: the bundled suite); ``server``:
    what was judged, in words (version, commit, flags), kept in expected.json."""
    summary = json.loads((report_dir / "summary.json").read_text(encoding="utf-8"))
    root = suite_dir or default_suite_dir()
    files = {s.id: Path(s.source) for s in load_scenarios(root)}
    rows: dict[str, list[dict[str, Any]]] = {}
    for r in summary["results"]:
        rows.setdefault(r["scenario"], []).append(r)
    scenarios: dict[str, Any] = {}
    snapshots: dict[str, Any] = {}
    (out / TRANSCRIPTS_DIR).mkdir(parents=True, exist_ok=True)
    for old in (out / TRANSCRIPTS_DIR).glob("*.jsonl.gz"):
        old.unlink()
    for sc in summary["scenarios"]:
        sid = sc["id"]
        if sid not in files:
            raise ValueError(f"scenario {sid!r} of {report_dir} is not in {root}: give the "
                             "scenario folder the run used (--scenarios)")
        text = files[sid].read_text(encoding="utf-8")
        rel = files[sid].relative_to(root).as_posix()
        snapshots[sid] = {"path": rel, "text": text}
        scenarios[sid] = {"sha256": _sha256(text), "status": sc["status"],
                          "checks": {r["check"]: r["status"] for r in rows.get(sid, [])}}
        if sc.get("transcript"):
            src = report_dir / sc["transcript"]
            dest = out / TRANSCRIPTS_DIR / (src.name + ".gz")
            # mtime 0: the same transcript gives the same bytes (a re-record diffs cleanly)
            with dest.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
                gz.write(src.read_bytes())
    expected = {"format": FORMAT_VERSION, "tool_version": summary.get("version"),
                "profile": summary["profile"], "transport": summary.get("transport", "http"),
                "target": summary["target"], "started_at": summary.get("started_at"),
                "totals": summary["totals"], "server": server, "scenarios": scenarios}
    (out / EXPECTED_FILE).write_text(_expected_text(expected), encoding="utf-8")
    with (out / SCENARIOS_FILE).open("wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(json.dumps(snapshots, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return expected


def _expected_text(expected: dict[str, Any]) -> str:
    """expected.json with one scenario a line: compact, and a re-record diffs by scenario."""
    head = {k: v for k, v in expected.items() if k != "scenarios"}
    lines = [f" {json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in sorted(head.items())]
    rows = [f"  {json.dumps(sid)}: {json.dumps(v, sort_keys=True)}"
            for sid, v in sorted(expected["scenarios"].items())]
    return "{\n" + ",\n".join(lines) + ',\n "scenarios": {\n' + ",\n".join(rows) + "\n }\n}\n"


# -- re-judge ---------------------------------------------------------------------------------
@dataclass(slots=True)
class Rejudged:
    """What today's checker says of a recording, against what it said when recorded."""

    recording: Path
    profile: str
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)  # today's, by scenario
    flips: list[str] = field(default_factory=list)   # verdicts that changed
    drift: list[str] = field(default_factory=list)   # recorded answers that no longer answer
    stale: list[str] = field(default_factory=list)   # scenario files changed since recording

    @property
    def rerecord(self) -> str:
        try:  # the recording as a reader in the repository would type it
            shown = self.recording.resolve().relative_to(Path.cwd()).as_posix()
        except ValueError:
            shown = self.recording.as_posix()
        return RERECORD.format(profile=self.profile, recording=shown)

    def lines(self) -> Iterator[str]:
        for kind, items in (("flip", self.flips), ("drift", self.drift)):
            for item in items:
                yield f"{self.recording}: {kind}: {item}"
        if self.stale:
            yield (f"{self.recording}: stale: {len(self.stale)} scenarios changed since "
                   f"recording ({', '.join(self.stale)}): re-record with {self.rerecord}")


def load_snapshots(recording: Path) -> dict[str, Any]:
    return json.loads(gzip.decompress((recording / SCENARIOS_FILE).read_bytes()))


def rejudge(recording: Path, *, suite_dir: Path | None = None) -> Rejudged:
    """Judge every recorded scenario of ``recording`` again (as recorded) and compare."""
    expected = json.loads((recording / EXPECTED_FILE).read_text(encoding="utf-8"))
    snapshots = load_snapshots(recording)
    profile = expected["profile"]
    catalogue = load_catalogue(profile)
    t = expected["target"]
    target = Target(t["name"], t["base_url"], t["model"], variables=REPLAY_SERVERS.variables)
    out = Rejudged(recording, profile)
    for sid, was in sorted(expected["scenarios"].items()):
        snap = snapshots[sid]
        scenario = _without_polls(parse_scenario(
            yaml.safe_load(snap["text"]), default_id=snap["path"].removesuffix(".yaml"),
            source=f"{recording / SCENARIOS_FILE}: {snap['path']}"))
        now = _judge(scenario, target, recording, was, expected["transport"], profile,
                     catalogue, out)
        out.verdicts[sid] = now
        out.flips += _differences(sid, was, now)
    out.stale = _stale(expected["scenarios"], suite_dir)
    return out


def _judge(scenario: Scenario, target: Target, recording: Path, was: dict[str, Any],
           transport: str, profile: str, catalogue, out: Rejudged) -> dict[str, Any]:
    reason = skip_reason(scenario, target, catalogue, transport=transport)
    if reason:
        return {"status": SKIP, "checks": {"response.accepted": SKIP}}
    if was["status"] == SKIP:
        return {"status": "not recorded", "checks": {},
                "why": "skipped when recorded, run today: re-record"}
    path = recording / TRANSCRIPTS_DIR / (scenario.transcript_name + ".gz")
    recorded = RecordedExchanges(read_transcript(path))
    try:
        outcome = run_scenario(scenario, target, recorded, profile=profile,  # type: ignore[arg-type]
                               catalogue=catalogue, transport_name=transport,
                               ws=recorded)  # type: ignore[arg-type]
    except NotRecorded as exc:
        out.drift.append(f"{scenario.id}: {exc}")
        return {"status": "not recorded", "checks": {}, "why": str(exc)}
    out.drift += [f"{scenario.id}: {d}" for d in recorded.drift]
    if recorded.unused:
        out.drift.append(f"{scenario.id}: {recorded.unused} recorded exchanges were not asked "
                         "for (the runner stops earlier today)")
    return _verdict(outcome.status, outcome.results)


def _differences(sid: str, was: dict[str, Any], now: dict[str, Any]) -> list[str]:
    flips = []
    if was["status"] != now["status"]:
        flips.append(f"{sid}: {was['status']} -> {now['status']}"
                     + (f" ({now['why']})" if now.get("why") else ""))
    for check in sorted(set(was["checks"]) | set(now["checks"])):
        a, b = was["checks"].get(check, "not applied"), now["checks"].get(check, "not applied")
        if a != b:
            flips.append(f"{sid} {check}: {a} -> {b}")
    return flips


def _stale(recorded: dict[str, Any], suite_dir: Path | None) -> list[str]:
    root = suite_dir or default_suite_dir()
    today = {s.id: _sha256(Path(s.source).read_text(encoding="utf-8"))
             for s in load_scenarios(root)}
    stale = [f"{sid} (changed)" for sid, r in recorded.items()
             if sid in today and today[sid] != r["sha256"]]
    stale += [f"{sid} (gone from the suite)" for sid in recorded if sid not in today]
    stale += [f"{sid} (new, not recorded)" for sid in today if sid not in recorded]
    return sorted(stale)


# -- command line -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.run.replay", description=__doc__
                                     .split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("freeze", help="turn a respcheck run's report folder into a recording")
    f.add_argument("report_dir", type=Path)
    f.add_argument("recording", type=Path)
    f.add_argument("--scenarios", type=Path, help="the scenario folder the run used "
                   "(default: the bundled suite)")
    f.add_argument("--server", help="what was judged, in words (version, commit, flags)")
    c = sub.add_parser("check", help="re-judge recordings; exit 1 if a verdict flipped")
    c.add_argument("recordings", type=Path, nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.command == "freeze":
            if not (args.report_dir / "summary.json").is_file():
                raise ValueError(f"{args.report_dir}/summary.json does not exist: give the "
                                 "--report-dir of a respcheck run")
            data = freeze(args.report_dir, args.recording, suite_dir=args.scenarios,
                          server=args.server)
            print(f"{args.recording}: {len(data['scenarios'])} scenarios, totals "
                  f"{data['totals']}")
            return 0
        bad = 0
        for rec in args.recordings:
            if not (rec / EXPECTED_FILE).is_file():
                raise ValueError(f"{rec}/{EXPECTED_FILE} does not exist: give a folder "
                                 "written by `python -m harness.run.replay freeze`")
            result = rejudge(rec)
            bad += len(result.flips) + len(result.drift)
            for line in result.lines():
                print(line)
            print(f"{rec}: {len(result.verdicts)} scenarios re-judged, {len(result.flips)} "
                  f"verdicts flipped, {len(result.drift)} drifted, {len(result.stale)} stale")
        return 1 if bad else 0
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
