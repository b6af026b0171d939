"""Run scenarios against a target: send each step, judge it, turn findings into result rows.

One run = a list of scenarios x one target -> ``summary`` (the DESIGN.md output contract) and
one transcript per scenario. Checks that a scenario never evaluated produce no row: only a
check that was judged can pass.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__
from harness.catalogue import Catalogue, load_catalogue
from harness.client import Transport
from harness.expect import check_step, is_clean_refusal, status_matches
from harness.findings import FAIL, LEVELS, PASS, SKIP, UNSUPPORTED, CheckResult, FindingLog
from harness.scenario import Scenario, Step
from harness.template import UnresolvedReference, fill
from harness.targets import Target
from harness.transcript import Exchange, write_transcript
from harness.verdict import Judged, judge_exchange

# A polling step (background responses) asks again every POLL_INTERVAL_S until a final status,
# for at most POLL_DEADLINE_S: a background generation of a bounded answer takes seconds.
POLL_INTERVAL_S = 0.2
POLL_DEADLINE_S = 30.0

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

    def to_dict(self, transcript: str | None) -> dict[str, Any]:
        return {"id": self.scenario.id, "title": self.scenario.title,
                "feature": self.scenario.feature, "status": self.status,
                "duration_s": round(self.duration_s, 4), "transcript": transcript,
                "error": self.error}


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
            rows.append(CheckResult(scenario.id, check, level, meta.feature, FAIL, msg,
                                    dict(f.evidence), transcript))
        else:
            rows.append(CheckResult(scenario.id, check, level, meta.feature, PASS, "", {},
                                    transcript))
    return rows


def _send(step: Step, transport: Transport, path: str, body: bytes,
          headers: dict[str, str]) -> Exchange:
    """One request, or for a polling step, requests until the status is final or the poll's
    deadline passes (the last exchange is the one judged)."""
    ex = transport.request(step.name, step.method, path, body=body, headers=headers)
    poll = step.poll
    if not poll:
        return ex
    until = set(poll["until_status"])
    deadline = time.monotonic() + float(poll.get("deadline_s", POLL_DEADLINE_S))
    interval = float(poll.get("interval_s", POLL_INTERVAL_S))
    while ex.status == 200 and (ex.json() or {}).get("status") not in until \
            and time.monotonic() < deadline:
        time.sleep(interval)
        ex = transport.request(step.name, step.method, path, body=body, headers=headers)
    return ex


def run_scenario(scenario: Scenario, target: Target, transport: Transport, *,
                 profile: str, catalogue: Catalogue) -> ScenarioOutcome:
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
        ex = _send(step, transport, path, body, headers)
        exchanges.append(ex)
        posted = request if step.method == "POST" else None
        # A synchronous create must come back finished; a background create or a GET may
        # legitimately be queued or in progress (a polling step asks for a final one).
        final = posted is not None and not posted.get("background")
        judged = judge_exchange(ex, profile, expect_stream=step.stream, returns=step.returns,
                                request=posted, final=final)
        step_log = judged.log
        refused = scenario.refusable and status_matches(expect.get("status", 200), 200) \
            and is_clean_refusal(ex, judged)
        if not refused:
            check_step(step, expect, ex, judged, step_log, judged_by_step)
        for f in step_log.findings:
            f.evidence.setdefault("step", step.name)
        log.extend(step_log)
        if refused:
            unsupported.add("response.accepted")
            break
        judged_by_step[step.name] = judged
        context["steps"][step.name] = {"status": ex.status, "response": judged.response,
                                       "body": judged.body, "error": judged.error}
        if ex.status is None:
            break  # the server is gone; later steps would only repeat the same failure
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


def run_suite(target: Target, scenarios: list[Scenario], *, profile: str, report_dir: Path,
              skip: Callable[[Scenario], str | None] = lambda s: None,
              progress: Callable[[int, int, ScenarioOutcome], None] | None = None,
              deadline_s: float | None = None, max_body_bytes: int | None = None,
              max_frame_bytes: int | None = None) -> dict[str, Any]:
    """Run every scenario; write transcripts under report_dir; return the summary dict.

    ``deadline_s`` bounds each request (harness/client.py honours it to within a fraction of a
    second, whatever the server does); ``max_body_bytes`` and ``max_frame_bytes`` override the
    transport's caps on one body and one event. A scenario whose server stalls, floods or never
    closes gets its ``fail`` and the run goes on with the next one."""
    catalogue = load_catalogue(profile)
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.monotonic()
    outcomes: list[ScenarioOutcome] = []
    kwargs: dict[str, Any] = {"deadline_s": deadline_s} if deadline_s else {}
    if max_body_bytes:
        kwargs["max_body_bytes"] = max_body_bytes
    if max_frame_bytes:
        kwargs["max_frame_bytes"] = max_frame_bytes
    with Transport(target.base_url, api_key=target.api_key, **kwargs) as transport:
        for n, scenario in enumerate(scenarios):
            reason = skip(scenario) or catalogue.profile.out_of_profile.get(scenario.feature)
            if not reason and scenario.targets and target.name not in scenario.targets:
                reason = f"runs only against {', '.join(scenario.targets)}"
            if reason:
                out = ScenarioOutcome(scenario, SKIP, [CheckResult(
                    scenario.id, "response.accepted", scenario.level, scenario.feature, SKIP,
                    reason)], error=None)
            else:
                out = run_scenario(scenario, target, transport, profile=profile,
                                   catalogue=catalogue)
                findings = [r.to_dict() for r in out.results if r.status == FAIL]
                write_transcript(report_dir / "transcripts" / scenario.transcript_name,
                                 out.exchanges, findings)
            outcomes.append(out)
            if progress:
                progress(n + 1, len(scenarios), out)
    results = [r.to_dict() for out in outcomes for r in out.results]
    totals = {s: 0 for s in (PASS, FAIL, UNSUPPORTED, SKIP)}
    for r in results:
        totals[r["status"]] += 1
    return {
        "tool": "respcheck", "version": __version__, "profile": profile,
        "target": target.to_dict(),
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - t0, 3),
        "totals": totals,
        "results": results,
        "scenarios": [o.to_dict(None if o.status == SKIP else
                                f"transcripts/{o.scenario.transcript_name}") for o in outcomes],
    }
