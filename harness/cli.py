"""`respcheck`: run the conformance suite, validate a saved stream, serve the reference gateway.

    respcheck run [--target URL] [--model M] [--api-key K] [--profile P] [--only FEATURE]
                  [--report-dir DIR] [--scenarios DIR]
    respcheck validate PATH [--profile P]
    respcheck serve [--upstream URL] [...]        (the reference gateway; see --help)

Exit codes (DESIGN.md output contract): 0 no MUST check failed; 1 a MUST check failed;
2 the run could not happen (bad arguments, unreachable target) with one line on stderr.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from harness import __version__
from harness.catalogue import PROFILE_NAMES, SpecError, load_catalogue
from harness.findings import FAIL, MUST, PASS, SKIP, UNSUPPORTED

EXIT_OK, EXIT_MUST_FAILED, EXIT_CANNOT_RUN = 0, 1, 2
DEFAULT_REPORT_DIR = Path("reports/latest")


class UsageError(Exception):
    """A one-line reason the command cannot run (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _use_color(stream) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


# -- run ----------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from harness.report import console_table, write_reports
    from harness.runner import run_suite
    from harness.scenario import ScenarioError, load_scenarios
    from harness.targets import TargetError, open_target

    try:
        scenarios = load_scenarios(Path(args.scenarios) if args.scenarios else None)
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None
    features = sorted({s.feature for s in scenarios})
    only = set(args.only or ())
    unknown = only - set(features)
    if unknown:
        raise UsageError(f"--only {', '.join(sorted(unknown))}: no such feature; "
                         f"choose from {', '.join(features)}")
    report_dir = Path(args.report_dir)
    if report_dir.exists() and not report_dir.is_dir():
        raise UsageError(f"--report-dir {report_dir} exists and is not a directory")
    out = sys.stderr
    color = _use_color(out)

    def skip(sc):
        return f"not selected (--only {','.join(sorted(only))})" if only and sc.feature not in only else None

    def progress(n: int, total: int, outcome) -> None:
        mark = {PASS: "pass", FAIL: "FAIL", UNSUPPORTED: "unsupported", SKIP: "skip"}[outcome.status]
        if color:
            code = {PASS: "32", FAIL: "31;1", UNSUPPORTED: "33", SKIP: "90"}[outcome.status]
            mark = f"\x1b[{code}m{mark}\x1b[0m"
        out.write(f"[{n:>3}/{total}] {outcome.scenario.id:<48} {mark} "
                  f"({outcome.duration_s * 1000:.0f} ms)\n")
        out.flush()

    try:
        with open_target(args.target, model=args.model, api_key=args.api_key,
                         profile=args.profile) as target:
            out.write(f"respcheck {__version__}: {len(scenarios)} scenarios against "
                      f"{target.name} ({target.base_url}, model {target.model}), "
                      f"profile {args.profile}\n")
            # Transcripts of an earlier run in the same folder would mix with this one.
            shutil.rmtree(report_dir / "transcripts", ignore_errors=True)
            summary = run_suite(target, scenarios, profile=args.profile, report_dir=report_dir,
                                skip=skip, progress=progress, deadline_s=args.deadline)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    paths = write_reports(summary, report_dir)
    print(console_table(summary, color=_use_color(sys.stdout)))
    print(f"report: {paths['html']}  (also {report_dir}/summary.json, junit.xml, report.md)")
    must_failed = any(r["status"] == FAIL and r["level"] == MUST for r in summary["results"])
    return EXIT_MUST_FAILED if must_failed else EXIT_OK


# -- validate -----------------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace) -> int:
    from harness.verdict import judge_file

    path = Path(args.path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file; give a saved text/event-stream body or a "
                         "JSON Response object")
    data = path.read_bytes()
    if not data.strip():
        raise UsageError(f"{path} is empty; give a saved text/event-stream body or a JSON "
                         "Response object")
    judged = judge_file(data, args.profile)
    catalogue = load_catalogue(args.profile)
    must = 0
    for f in judged.log.findings:
        level = catalogue.level(f.check)
        must += level == MUST
        where = " ".join(f"{k}={v}" for k, v in f.evidence.items()
                         if k in ("frame", "sequence_number", "path") and v is not None)
        print(f"{level:<6} {f.check:<34} {where}  {f.message}")
    n_events = len(judged.events or [])
    kind = f"stream of {n_events} events" if judged.kind == "stream" else judged.kind
    verdict = "FAIL" if must else "PASS"
    print(f"{verdict}: {path.name}: {kind}, {len(judged.log.applied)} checks applied, "
          f"{sum(judged.log.counts.values())} findings ({must} MUST) under profile {args.profile}")
    return EXIT_MUST_FAILED if must else EXIT_OK


# -- serve --------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace, rest: list[str]) -> int:
    from reference_gateway.__main__ import main as gateway_main

    return gateway_main(rest)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="respcheck", description="Conformance checks for OpenAI Responses API "
                "servers.")
    p.add_argument("--version", action="version", version=f"respcheck {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser, required=True)

    r = sub.add_parser("run", help="run the conformance suite against a target")
    r.add_argument("--target", help="base URL of the server (e.g. http://127.0.0.1:8000/v1); "
                   "default: the embedded reference gateway")
    r.add_argument("--model", help="model name to send (default: the target's first model)")
    r.add_argument("--api-key", default=os.environ.get("RESPCHECK_API_KEY"),
                   help="bearer token for the target (default: $RESPCHECK_API_KEY)")
    r.add_argument("--profile", choices=PROFILE_NAMES, default="openai")
    r.add_argument("--only", action="append", metavar="FEATURE",
                   help="run only scenarios of this feature (repeatable); the rest are `skip`")
    r.add_argument("--report-dir", default=str(DEFAULT_REPORT_DIR))
    r.add_argument("--scenarios", help="scenario directory (default: the bundled suite)")
    r.add_argument("--deadline", type=float, help="seconds allowed per request (default 60)")

    v = sub.add_parser("validate", help="judge a saved event-stream body or Response JSON")
    v.add_argument("path")
    v.add_argument("--profile", choices=PROFILE_NAMES, default="openai")

    sub.add_parser("serve", help="run the reference gateway (flags: respcheck serve --help)",
                   add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["serve"]:
            return cmd_serve(argparse.Namespace(), argv[1:])
        args = build_parser().parse_args(argv)
        if args.command == "run":
            return cmd_run(args)
        return cmd_validate(args)
    except UsageError as exc:  # the contract: one line on stderr
        print(f"respcheck: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except SpecError as exc:
        print(f"respcheck: error: specs/ is inconsistent: {' '.join(str(exc).split())}",
              file=sys.stderr)
        return EXIT_CANNOT_RUN
    except KeyboardInterrupt:
        print("respcheck: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
