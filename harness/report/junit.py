"""``junit.xml`` for CI (Jenkins, GitLab): one ``<testsuite>`` per feature, one ``<testcase>``
per scenario.

Only a failed MUST check turns a testcase red, matching the exit code's rule (DESIGN.md, "Output
contract"). Failed SHOULD/MAY checks stay visible without failing the build: they are listed in
``<system-out>`` and in a ``respcheck.failed.<LEVEL>`` property, the way pytest's
``record_property`` puts ``<properties>`` first inside a ``<testcase>``. A scenario that failed
without any failed check (it crashed, it hit a deadline) is an ``<error>``.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from typing import Any

from harness.core.findings import FAIL, MUST, SKIP, UNSUPPORTED
from harness.report.summary_json import (
    by_feature,
    results_by_scenario,
    scenarios,
    status_reason,
    where,
)

# XML 1.0 section 2.2 "Char": anything else (NUL, most C0 controls, lone surrogates) makes the
# document unparseable, and a misbehaving server can put any of them in a message.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: Any) -> str:
    return _NOT_XML_CHAR.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def _timestamp(started_at: Any) -> str | None:
    """The JUnit schema's timestamp is an ISO 8601 time with no zone: we give it in UTC."""
    try:
        t = datetime.fromisoformat(str(started_at))
    except ValueError:
        return None
    return (t.astimezone(timezone.utc) if t.tzinfo else t).strftime("%Y-%m-%dT%H:%M:%S")


def _finding(r: dict[str, Any]) -> str:
    lines = [f"[{r.get('level', '?')}] {r['check']}: {r.get('message') or '(no message)'}"]
    if at := where(r.get("evidence")):
        lines.append(f"  at {at}")
    if r.get("evidence"):
        lines.append("  evidence: " + json.dumps(r["evidence"], ensure_ascii=False, default=str))
    return "\n".join(lines)


def _testcase(scenario: dict[str, Any], results: list[dict[str, Any]], feature: str) -> ET.Element:
    case = ET.Element("testcase", classname=f"respcheck.{feature}", name=_text(scenario["id"]),
                      time=f"{float(scenario.get('duration_s') or 0):.3f}")
    failed = [r for r in results if r.get("status") == FAIL]
    must = [r for r in failed if r.get("level") == MUST]
    advisory = [r for r in failed if r.get("level") != MUST]
    if advisory:
        props = ET.SubElement(case, "properties")
        for level in dict.fromkeys(r.get("level", "?") for r in advisory):
            ET.SubElement(props, "property", name=f"respcheck.failed.{level}", value=_text(
                ",".join(r["check"] for r in advisory if r.get("level", "?") == level)))

    status, error = scenario.get("status"), scenario.get("error")
    if must:
        message = "MUST check failed: " + ", ".join(dict.fromkeys(r["check"] for r in must))
        body = "\n\n".join([_finding(r) for r in must] + ([f"error: {error}"] if error else []))
        ET.SubElement(case, "failure", message=_text(message), type=MUST).text = _text(body)
    elif status == FAIL and not failed:
        # Failed without a failed check: the scenario itself broke (crash, deadline). That is
        # JUnit's <error>, "an unanticipated problem", not a <failure> of an assertion.
        message = f"error: {error or 'scenario failed without a failed check'}"
        ET.SubElement(case, "error", message=_text(message), type="scenario").text = _text(message)
    elif status in (UNSUPPORTED, SKIP):
        reason = status_reason(scenario, results)
        label = "unsupported" if status == UNSUPPORTED else "skip"
        ET.SubElement(case, "skipped", message=_text(f"{label}: {reason or 'not run'}"))

    out = [f"transcript: {scenario['transcript']}"] if scenario.get("transcript") else []
    if advisory:
        out.append("Failed SHOULD/MAY checks (advisory, not a build failure):\n\n"
                   + "\n\n".join(_finding(r) for r in advisory))
    if out:
        ET.SubElement(case, "system-out").text = _text("\n\n".join(out))
    return case


def render(summary: dict[str, Any]) -> str:
    results = results_by_scenario(summary)
    root = ET.Element("testsuites", name=summary.get("tool", "respcheck"))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for feature, items in by_feature(scenarios(summary)).items():
        suite = ET.SubElement(root, "testsuite", name=_text(feature))
        target = summary.get("target") or {}
        run = [(k, v) for k, v in (("profile", summary.get("profile")), ("target", target.get("name")),
               ("base_url", target.get("base_url")), ("model", target.get("model"))) if v is not None]
        if run:
            props = ET.SubElement(suite, "properties")
            for name, value in run:
                ET.SubElement(props, "property", name=name, value=_text(value))
        cases = [_testcase(s, results.get(s["id"], []), _text(feature)) for s in items]
        suite.extend(cases)
        counts = {"tests": len(cases)} | {
            key: sum(c.find(tag) is not None for c in cases)
            for key, tag in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped"))}
        suite.attrib.update({k: str(v) for k, v in counts.items()})
        suite.set("time", f"{sum(float(s.get('duration_s') or 0) for s in items):.3f}")
        if stamp := _timestamp(summary.get("started_at")):
            suite.set("timestamp", stamp)
        totals = {k: totals[k] + counts[k] for k in totals}
    root.attrib.update({k: str(v) for k, v in totals.items()})
    root.set("time", f"{float(summary.get('duration_s') or 0):.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
