"""Run scenarios against a target: send each step, judge it, turn findings into result rows.

One run = a list of scenarios x one target -> ``summary`` (the DESIGN.md output contract) and
one transcript per scenario. Checks that a scenario never evaluated produce no row: only a
check that was judged can pass.

Transport ``ws`` (``respcheck run --transport ws``, or a scenario's ``transport: ws``): each
create step (``Step.is_create``) is a turn on one of the scenario's WebSocket sockets
(harness/run/ws_client.py), judged by ``judge_ws_turn``; the other steps go over HTTP. A scenario
that cannot be said over WebSocket (``Scenario.ws_unfit``) is ``skip``; an upgrade refused with
a 4xx is ``unsupported`` (row ``ws.handshake``): the server does not offer WebSocket mode.

Budgets (DESIGN.md principle 8; the README's "Budgets" states them for users). One scenario's
exchanges record at most ``SCENARIO_MAX_BYTES`` in all (each step's cap is what its earlier
steps left, at least ``MIN_STEP_BYTES``), and the harness's memory does not grow with the
number of scenarios: ``run_suite`` keeps of a finished scenario
only its result rows, each message and evidence value cut to ``MAX_ROW_TEXT_CHARS``; its
exchanges (up to the transport's caps each) are written to its transcript and released before
the next scenario starts. What the transcripts take on disk is bounded by a per-run budget
(``TRANSCRIPT_BUDGET_BYTES``, ``respcheck run --transcript-budget``): once it is spent, body
chunks and WebSocket frames are no longer written, and each exchange that lost some says so in
its transcript with a ``truncated`` record (how many records and bytes were dropped, and why).

Early stop: a server that fails every scenario the same way at the transport (connection
refused, no headers within the deadline, ...) would make a run last ``scenarios x deadline``.
After ``STOP_AFTER_SAME_FAILURES`` such scenarios in a row, the run stops (``summary["stopped"]``
says why; the scenarios not run are ``skip`` with that reason), unless ``keep_going``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__
from harness.core.catalogue import Catalogue, load_catalogue
from harness.core.findings import FAIL, LEVELS, PASS, SKIP, UNSUPPORTED, CheckResult, FindingLog
from harness.core.transcript import TRANSCRIPT_BUDGET_BYTES, TRANSPORTS, Exchange, TranscriptBudget
from harness.core.verdict import Judged, judge_exchange, judge_ws_turn, ws_exchange_view
from harness.run.client import Transport
from harness.run.expect import check_step, is_clean_refusal, status_matches
from harness.run.scenario import Scenario, Step
from harness.run.template import UnresolvedReference, fill
from harness.run.ws_client import WebSocketTransport
from harness.targets.target import Target

# A polling step (background responses) asks again every POLL_INTERVAL_S until a final status,
# for at most POLL_DEADLINE_S: a background generation of a bounded answer takes seconds.
POLL_INTERVAL_S = 0.2
POLL_DEADLINE_S = 30.0

# A result row kept for the summary: its message and each evidence string at most this long
# (a finding quoting a 16 MB event would otherwise be kept, per scenario, until the run ends).
MAX_ROW_TEXT_CHARS = 4096
# What one scenario's exchanges may record in all (its steps share it; a step gets at least
# MIN_STEP_BYTES). With the transport's 8 MiB body cap, a scenario judged at ~8x its bytes at
# worst stays near 140 MB whatever its steps and the server do (README, "Budgets").
SCENARIO_MAX_BYTES = 16 * 1024 * 1024
MIN_STEP_BYTES = 1024 * 1024
# Early stop. Decision: 5 scenarios in a row failing with the same transport failure, spanning
# at least 2 features (when the run has more than one). A server that is down, or silent on
# every route, is stopped after 5 deadlines instead of 64; a server that hangs on one feature
# only (the suite's largest has 12 scenarios) is not stopped, its other features are still
# judged. "The same failure": the transport's error with its numbers masked.
STOP_AFTER_SAME_FAILURES = 5
STOP_SPANS_FEATURES = 2

# Checks whose level a scenario may lower (its own expectations, not protocol rules).
EXPECTATION_CHECKS = frozenset({
    "response.accepted", "response.status.expected", "response.echo",
    "response.stream_equivalent", "errors.status", "errors.param", "errors.not_streamed",
})


@dataclass(slots=True)
class ScenarioOutcome:
    scenario: Scenario
    status: str
    results: list[CheckResult]
    exchanges: list[Exchange] = field(default_factory=list)
    duration_s: float = 0.0
    error: str | None = None

    transport: str = "http"  # "ws" when its create steps went over WebSocket

    def to_dict(self, transcript: str | None) -> dict[str, Any]:
        return {"id": self.scenario.id, "title": self.scenario.title,
                "feature": self.scenario.feature, "status": self.status,
                "duration_s": round(self.duration_s, 4), "transcript": transcript,
                "error": self.error, "transport": self.transport}


def _level(catalogue: Catalogue, check: str, scenario: Scenario) -> str:
    level = catalogue.level(check)
    if check in EXPECTATION_CHECKS and LEVELS.index(scenario.level) > LEVELS.index(level):
        return scenario.level
    return level


def _rows(scenario: Scenario, log: FindingLog, catalogue: Catalogue, transcript: str,
          *, unsupported: set[str] = frozenset()) -> list[CheckResult]:
    first = {}
    for f in log.findings:
        first.setdefault(f.check, f)
    rows = []
    for check in sorted(log.applied | unsupported):
        meta = catalogue.check(check)
        level = _level(catalogue, check, scenario)
        if check in unsupported:
            rows.append(CheckResult(scenario.id, check, level, meta.feature, UNSUPPORTED,
                                    "the server refused the request with a clean 4xx error",
                                    {}, transcript))
        elif check in first:
            f = first[check]
            n = log.counts.get(check, 1)
            msg = f.message + (f" (and {n - 1} more)" if n > 1 else "")
            rows.append(CheckResult(scenario.id, check, level, meta.feature, FAIL,
                                    _bounded(msg), {k: _bounded(v) for k, v in
                                                    f.evidence.items()}, transcript))
        else:
            rows.append(CheckResult(scenario.id, check, level, meta.feature, PASS, "", {},
                                    transcript))
    return rows


def _bounded(value: Any) -> Any:
    """``value`` as it is when short; else its text (a string, or its JSON) cut to
    MAX_ROW_TEXT_CHARS, saying how much was left out. Numbers, bools and None stay."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= MAX_ROW_TEXT_CHARS:
        return value
    return text[:MAX_ROW_TEXT_CHARS] + f"... ({len(text) - MAX_ROW_TEXT_CHARS} more characters)"


def _recorded(ex: Exchange) -> int:
    return sum(len(c) for _, c in ex.chunks) + sum(
        len(m.encode("utf-8")) if isinstance(m, str) else len(m) for _, m in ex.frames)


def _step_cap(exchanges: list[Exchange]) -> int:
    """The bytes the next step may record: what the scenario's budget has left."""
    return max(MIN_STEP_BYTES, SCENARIO_MAX_BYTES - sum(_recorded(ex) for ex in exchanges))


def _send(step: Step, transport: Transport, path: str, body: bytes,
          headers: dict[str, str], cap: int) -> Exchange:
    """One request, or for a polling step, requests until the status is final or the poll's
    deadline passes (the last exchange is the one judged)."""
    ex = transport.request(step.name, step.method, path, body=body, headers=headers,
                           max_body_bytes=cap)
    poll = step.poll
    if not poll:
        return ex
    until = set(poll["until_status"])
    deadline = time.monotonic() + float(poll.get("deadline_s", POLL_DEADLINE_S))
    interval = float(poll.get("interval_s", POLL_INTERVAL_S))
    while ex.status == 200 and (ex.json() or {}).get("status") not in until \
            and time.monotonic() < deadline:
        time.sleep(interval)
        ex = transport.request(step.name, step.method, path, body=body, headers=headers,
                               max_body_bytes=cap)
    return ex


def _resumes(path: str, original: Any, judged_by_step: dict[str, Judged]
             ) -> tuple[list[dict[str, Any]], int] | None:
    """For a step that ``replays`` an earlier stream from ``starting_after=N`` (its path's
    query): that stream's events up to N, and N; None for anything else (a whole replay is
    judged as the stream it is)."""
    if not isinstance(original, str) or original not in judged_by_step:
        return None
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    after = (query.get("starting_after") or [""])[0]
    if not after.isdigit():
        return None
    n = int(after)
    events = judged_by_step[original].events or []
    return [e for e in events if isinstance(e.get("sequence_number"), int) and e["sequence_number"] <= n], n


def run_scenario(scenario: Scenario, target: Target, transport: Transport, *,
                 profile: str, catalogue: Catalogue, transport_name: str = "http",
                 ws_options: dict[str, Any] | None = None,
                 ws: WebSocketTransport | None = None) -> ScenarioOutcome:
    """Run one scenario. Its create steps go over WebSocket when ``transport_name`` is "ws" or
    the scenario says ``transport: ws`` (its sockets are closed when it ends); ``ws_options``
    are WebSocketTransport's keyword options (deadline, caps). ``ws``: the WebSocket transport
    to use instead of opening one (harness/run/replay.py hands in the recorded turns; like
    ``transport``, anything with the same method will do)."""
    if scenario.transport == "ws" or transport_name == "ws":
        if ws is not None:
            out = _run_scenario(scenario, target, transport, ws, profile=profile,
                                catalogue=catalogue)
        else:
            with WebSocketTransport(target.base_url, api_key=target.api_key,
                                    **(ws_options or {})) as opened:
                out = _run_scenario(scenario, target, transport, opened, profile=profile,
                                    catalogue=catalogue)
        out.transport = "ws"
        return out
    return _run_scenario(scenario, target, transport, None, profile=profile,
                         catalogue=catalogue)


def _run_scenario(scenario: Scenario, target: Target, transport: Transport,
                  ws: WebSocketTransport | None, *, profile: str,
                  catalogue: Catalogue) -> ScenarioOutcome:
    start = time.monotonic()
    log = FindingLog()
    exchanges: list[Exchange] = []
    judged_by_step: dict[str, Judged] = {}
    unsupported: set[str] = set()
    context: dict[str, Any] = {**target.variables,
                               "model": scenario.model_for.get(target.name, target.model),
                               "steps": {}}
    for step in scenario.steps:
        try:
            path, body, headers, request = step.render(context)
            expect = fill(step.expect, context)
        except UnresolvedReference as exc:
            log.fail("response.reference.resolvable", f"step {step.name!r} cannot be sent: "
                     f"{exc}", step=step.name)
            break
        over_ws = ws is not None and step.is_create
        if over_ws:
            ex = ws.turn(step.name, step.ws_frame(request), socket_name=step.socket,
                         max_turn_bytes=_step_cap(exchanges))
            exchanges.append(ex)
            judged = judge_ws_turn(ex, profile, request=request)
            if judged.kind == "refused":
                # The upgrade was refused with a 4xx: the server offers no WebSocket mode.
                log.extend(judged.log)
                unsupported.add("ws.handshake")
                break
            seen = ws_exchange_view(ex, judged)  # the turn's status, as expectations read it
        else:
            ex = _send(step, transport, path, body, headers, _step_cap(exchanges))
            exchanges.append(ex)
            posted = request if step.method == "POST" else None
            # A synchronous create must come back finished; a background create or a GET may
            # legitimately be queued or in progress (a polling step asks for a final one).
            final = posted is not None and not posted.get("background")
            judged = judge_exchange(ex, profile, expect_stream=step.stream,
                                    returns=step.returns, request=posted, final=final,
                                    resumes=_resumes(path, expect.get("replays"), judged_by_step))
            seen = ex
        step_log = judged.log
        refused = scenario.refusable and status_matches(expect.get("status", 200), 200) \
            and is_clean_refusal(seen, judged) and not step_log.failed("ws.error.shape")
        if not refused:
            check_step(step, expect, seen, judged, step_log, judged_by_step)
        for f in step_log.findings:
            f.evidence.setdefault("step", step.name)
        log.extend(step_log)
        if refused:
            unsupported.add("response.accepted")
            break
        judged_by_step[step.name] = judged
        context["steps"][step.name] = {"status": seen.status, "response": judged.response,
                                       "body": judged.body, "error": judged.error}
        if seen.status is None:
            break  # the server is gone; later steps would only repeat the same failure
        if over_ws and ex.error:
            break  # the turn was cut or its socket closed: later turns would only echo it
        if step_log.failed("response.accepted"):
            break  # later steps build on this one; their failures would only be echoes
    rows = _rows(scenario, log, catalogue, f"transcripts/{scenario.transcript_name}",
                 unsupported=unsupported)
    if any(r.status == FAIL and r.level == "MUST" for r in rows):
        status = FAIL
    elif unsupported:
        status = UNSUPPORTED
    elif any(r.status == FAIL for r in rows):
        status = FAIL
    else:
        status = PASS
    return ScenarioOutcome(scenario, status, rows, exchanges, time.monotonic() - start)


def skip_reason(scenario: Scenario, target: Target, catalogue: Catalogue, *,
                transport: str = "http") -> str | None:
    """Why ``scenario`` is not run against ``target`` (a ``skip`` with this reason), or None.
    The one place these rules live: ``run_suite`` and the pytest plugin both ask here."""
    out = catalogue.profile.out_of_profile  # keyed by feature, or by one scenario's id
    reason = out.get(scenario.feature) or out.get(scenario.id)
    if reason:
        return reason
    if scenario.targets and target.name not in scenario.targets:
        return f"runs only against {', '.join(scenario.targets)}"
    if transport == "ws" and (why := scenario.ws_unfit()):
        return f"cannot run over WebSocket: {why}"
    return None


class FailureStreak:
    """Consecutive run scenarios that failed with the same transport failure (the early stop,
    STOP_AFTER_SAME_FAILURES). A skipped scenario sent nothing and neither breaks nor extends
    the streak; any other scenario breaks it."""

    def __init__(self, *, after: int = STOP_AFTER_SAME_FAILURES,
                 spans_features: int = STOP_SPANS_FEATURES) -> None:
        self.after = after
        self.spans_features = spans_features
        self.kind: str | None = None
        self.message: str | None = None
        self.features: set[str] = set()
        self.count = 0

    def add(self, outcome: ScenarioOutcome) -> None:
        error = transport_failure(outcome) if outcome.status == FAIL else None
        kind = re.sub(r"\d+(\.\d+)?", "N", error) if error else None
        if kind is None or kind != self.kind:
            self.kind, self.count, self.features = kind, 0, set()
        if kind is not None:
            self.count += 1
            self.message = error
            self.features.add(outcome.scenario.feature)

    def stop_reason(self, features_in_run: int) -> str | None:
        spans = min(self.spans_features, features_in_run)
        if self.kind is None or self.count < self.after or len(self.features) < spans:
            return None
        return (f"stopped early: {self.count} scenarios in a row failed the same way at the "
                f"transport ({self.message}); the target is down or broken on every route "
                "(pass --keep-going to run every scenario anyway)")


def transport_failure(outcome: ScenarioOutcome) -> str | None:
    """The transport failure a scenario ended on (its first exchange with one), or None. A
    refused WebSocket upgrade is an answer (``unsupported``), not a transport failure."""
    for ex in outcome.exchanges:
        if ex.error and not (ex.transport == "ws" and ex.status not in (None, 101)):
            return ex.error
    return None


def run_suite(target: Target, scenarios: list[Scenario], *, profile: str, report_dir: Path,
              skip: Callable[[Scenario], str | None] = lambda s: None,
              progress: Callable[[int, int, ScenarioOutcome], None] | None = None,
              deadline_s: float | None = None, max_body_bytes: int | None = None,
              max_frame_bytes: int | None = None, transport: str = "http",
              transcript_budget_bytes: int = TRANSCRIPT_BUDGET_BYTES,
              keep_going: bool = False) -> dict[str, Any]:
    """Run every scenario; write transcripts under report_dir; return the summary dict.

    ``transport`` "ws": create steps go over WebSocket (harness/run/ws_client.py), one socket per
    scenario; a scenario that cannot be said over WebSocket is ``skip`` with the reason.

    ``deadline_s`` bounds each request (harness/run/client.py honours it to within a fraction of a
    second, whatever the server does); ``max_body_bytes`` and ``max_frame_bytes`` override the
    transport's caps on one body and one event. A scenario whose server stalls, floods or never
    closes gets its ``fail`` and the run goes on with the next one, until
    STOP_AFTER_SAME_FAILURES scenarios in a row failed the same way at the transport: then the
    run stops (``summary["stopped"]``, the rest ``skip``), unless ``keep_going``.

    Each scenario's exchanges are released once its transcript is written (within
    ``transcript_budget_bytes`` for the whole run): memory does not grow with the scenarios."""
    catalogue = load_catalogue(profile)
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.monotonic()
    outcomes: list[ScenarioOutcome] = []
    kwargs: dict[str, Any] = {"deadline_s": deadline_s} if deadline_s else {}
    if max_body_bytes:
        kwargs["max_body_bytes"] = max_body_bytes
    if max_frame_bytes:
        kwargs["max_frame_bytes"] = max_frame_bytes
    if transport not in TRANSPORTS:
        raise ValueError(f"transport {transport!r} is not one of {TRANSPORTS}")
    ws_options: dict[str, Any] = {k: v for k, v in kwargs.items()
                                  if k in ("deadline_s", "max_frame_bytes")}
    if max_body_bytes:
        ws_options["max_turn_bytes"] = max_body_bytes
    transcripts = TranscriptBudget(transcript_budget_bytes)
    streak = FailureStreak()
    stopped: str | None = None
    run_features = {s.feature for s in scenarios if not skip(s) and not skip_reason(
        s, target, catalogue, transport=transport)}
    with Transport(target.base_url, api_key=target.api_key, **kwargs) as http:
        for n, scenario in enumerate(scenarios):
            reason = ("not run: the run stopped early" if stopped else None) or skip(scenario) \
                or skip_reason(scenario, target, catalogue, transport=transport)
            if reason:
                out = ScenarioOutcome(scenario, SKIP, [CheckResult(
                    scenario.id, "response.accepted", scenario.level, scenario.feature, SKIP,
                    reason)], error=None)
                if transport == "ws" or scenario.transport == "ws":
                    out.transport = "ws"
            else:
                out = run_scenario(scenario, target, http, profile=profile,
                                   catalogue=catalogue, transport_name=transport,
                                   ws_options=ws_options)
                findings = [r.to_dict() for r in out.results if r.status == FAIL]
                transcripts.write(report_dir / "transcripts" / scenario.transcript_name,
                                  out.exchanges, findings)
                streak.add(out)
                out.exchanges = []  # written: the run keeps only the rows (see "Budgets")
            outcomes.append(out)
            if progress:
                progress(n + 1, len(scenarios), out)
            if stopped is None and not keep_going:
                stopped = streak.stop_reason(len(run_features))
    results = [r.to_dict() for out in outcomes for r in out.results]
    totals = {s: 0 for s in (PASS, FAIL, UNSUPPORTED, SKIP)}
    for r in results:
        totals[r["status"]] += 1
    summary = {
        "tool": "respcheck", "version": __version__, "profile": profile,
        "transport": transport,
        "target": target.to_dict(),
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - t0, 3),
        "totals": totals,
        "results": results,
        "scenarios": [o.to_dict(None if o.status == SKIP else
                                f"transcripts/{o.scenario.transcript_name}") for o in outcomes],
    }
    if stopped:
        summary["stopped"] = stopped
    if transcripts.dropped:
        summary["transcripts_truncated_bytes"] = transcripts.dropped
    return summary
