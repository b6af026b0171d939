"""What the verdict engine produces: findings, and the statuses a check can end in.

A ``Finding`` is one violation of one check, with the evidence that proves it: the frame index
and sequence_number it was seen at and a JSON path into that frame's payload. Every check id
comes from ``specs/checks.yaml``; ``level`` and ``feature`` are filled from that catalogue, so
drivers never invent them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PASS = "pass"
FAIL = "fail"
UNSUPPORTED = "unsupported"
SKIP = "skip"
STATUSES = (PASS, FAIL, UNSUPPORTED, SKIP)

MUST = "MUST"
SHOULD = "SHOULD"
MAY = "MAY"
LEVELS = (MUST, SHOULD, MAY)


@dataclass(frozen=True, slots=True)
class Finding:
    """One violation of one check.

    ``evidence`` keys (all optional): ``frame`` (0-based index of the SSE frame),
    ``sequence_number``, ``event_type``, ``path`` (JSONPath into the frame's JSON, ``$.item.id``),
    ``expected``, ``actual``.
    """

    check: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "message": self.message, "evidence": dict(self.evidence)}


@dataclass(slots=True)
class CheckResult:
    """One row of ``summary.json``'s ``results``: one check judged on one scenario."""

    scenario: str
    check: str
    level: str
    feature: str
    status: str
    message: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    transcript: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "check": self.check,
            "level": self.level,
            "feature": self.feature,
            "status": self.status,
            "message": self.message,
            "evidence": self.evidence,
            "transcript": self.transcript,
        }


class FindingLog:
    """Collects findings for one exchange, and which checks were evaluated at all.

    ``applied`` is what lets a report say "pass" honestly: a check that was never evaluated on
    an exchange is not reported as passed. Findings are capped per check (the first few are
    the evidence; a stream with every sequence_number off by one should not yield 10,000
    findings), and ``counts`` keeps the true total.
    """

    # Findings kept per check id per exchange; the rest are only counted.
    MAX_PER_CHECK = 5

    __slots__ = ("findings", "applied", "counts")

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.applied: set[str] = set()
        self.counts: dict[str, int] = {}

    def fail(self, check: str, message: str, **evidence: Any) -> None:
        self.applied.add(check)
        n = self.counts.get(check, 0) + 1
        self.counts[check] = n
        if n <= self.MAX_PER_CHECK:
            self.findings.append(Finding(check, message, evidence))

    def apply(self, *checks: str) -> None:
        self.applied.update(checks)

    def failed(self, check: str) -> bool:
        return check in self.counts

    def extend(self, other: "FindingLog") -> None:
        self.applied |= other.applied
        for f in other.findings:
            n = self.counts.get(f.check, 0)
            if n < self.MAX_PER_CHECK:
                self.findings.append(f)
        for check, n in other.counts.items():
            self.counts[check] = self.counts.get(check, 0) + n
