"""Hand-built report folders (summary.json + transcripts/) for the comparison tests.

Three targets over the same scenarios, so that every case of the matrix occurs:

    scenario               check                    ref    vllm          ollama
    core/text              response.accepted  MUST  pass   pass          pass
    core/text              schema.response    MUST  pass   pass          pass
    core/text              response.usage     SHOULD pass  fail          pass     <- disagree
    streaming/basic        stream.sequence    MUST  pass   fail          (not judged)  <- disagree
    streaming/basic        stream.terminal    MUST  pass   pass          pass
    tools/forced           response.accepted  MUST  pass   unsupported   fail     <- disagree
    tools/forced           tools.choice       MUST  fail   (not judged)  fail
    tools/parallel         response.accepted  MUST  pass   skip          pass     (skip: no opinion)

ollama never ran streaming/basic's sequence check (a check it never evaluated shows "—").
"""

from __future__ import annotations

import json
from pathlib import Path

EVIL = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'

SCENARIOS = {
    "core/text": ("core", "Plain text"),
    "streaming/basic": ("streaming", f"Streamed text {EVIL}"),
    "tools/forced": ("tools", "Forced function call"),
    "tools/parallel": ("tools", "Parallel calls"),
}

ROWS = [  # scenario, check, level, (ref, vllm, ollama); None = not judged
    ("core/text", "response.accepted", "MUST", ("pass", "pass", "pass")),
    ("core/text", "schema.response", "MUST", ("pass", "pass", "pass")),
    ("core/text", "response.usage", "SHOULD", ("pass", "fail", "pass")),
    ("streaming/basic", "stream.sequence", "MUST", ("pass", "fail", None)),
    ("streaming/basic", "stream.terminal", "MUST", ("pass", "pass", "pass")),
    ("tools/forced", "response.accepted", "MUST", ("pass", "unsupported", "fail")),
    ("tools/forced", "tools.choice", "MUST", ("fail", None, "fail")),
    ("tools/parallel", "response.accepted", "MUST", ("pass", "skip", "pass")),
]

TARGETS = [("ref", "reference"), ("vllm", "vllm"), ("ollama", f"ollama {EVIL}")]

# The score numbers the rows above imply, per feature and target.
EXPECTED_SCORES = {
    "core": ["3/3 pass", "2/3 pass, 1 fail", "3/3 pass"],
    "streaming": ["2/2 pass", "1/2 pass, 1 fail", "1/1 pass"],
    "tools": ["2/3 pass, 1 fail", "0/2 pass, 1 unsupported, 1 skip", "1/3 pass, 2 fail"],
}
# (scenario, check) rows on which the targets disagree.
DISAGREE = {("core/text", "response.usage"), ("streaming/basic", "stream.sequence"),
            ("tools/forced", "response.accepted")}


def transcript_name(scenario: str) -> str:
    return f"transcripts/{scenario.replace('/', '__')}.jsonl"


def write_run(root: Path, index: int, *, dirname: str | None = None,
              target_name: str | None = None) -> Path:
    """Write the report folder of target ``index`` (0 ref, 1 vllm, 2 ollama); return it."""
    default_dir, default_name = TARGETS[index]
    directory = root / (dirname or default_dir)
    (directory / "transcripts").mkdir(parents=True, exist_ok=True)
    results, statuses = [], {}
    for scenario, check, level, by_target in ROWS:
        status = by_target[index]
        if status is None:
            continue
        skipped = status == "skip"
        message = {"fail": f"{check} broke: {EVIL}", "unsupported": "refused with a 400",
                   "skip": "not selected (--only core)"}.get(status, "")
        results.append({"scenario": scenario, "check": check, "level": level,
                        "feature": SCENARIOS[scenario][0], "status": status,
                        "message": message, "evidence": {"path": "$.output"} if status == "fail" else {},
                        "transcript": None if skipped else transcript_name(scenario)})
        statuses.setdefault(scenario, set()).add(status)
    scenarios = []
    for sid, (feature, title) in SCENARIOS.items():
        st = statuses.get(sid, {"skip"})
        status = next(s for s in ("fail", "unsupported", "pass", "skip") if s in st)
        transcript = None if status == "skip" else transcript_name(sid)
        if transcript:
            (directory / transcript).write_text('{"step": "step0"}\n', encoding="utf-8")
        scenarios.append({"id": sid, "title": title, "feature": feature, "status": status,
                          "duration_s": 0.1, "transcript": transcript, "error": None})
    totals = {s: sum(r["status"] == s for r in results) for s in ("pass", "fail", "unsupported", "skip")}
    summary = {"tool": "respcheck", "version": "0.1.0", "profile": "openai",
               "target": {"name": target_name or default_name,
                          "base_url": f"http://127.0.0.1:{8000 + index}/v1", "model": f"model-{EVIL}"},
               "started_at": "2025-11-22T05:00:00+00:00", "duration_s": 1.5, "totals": totals,
               "results": results, "scenarios": scenarios}
    (directory / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return directory


def write_runs(root: Path) -> list[Path]:
    return [write_run(root, i) for i in range(len(TARGETS))]
