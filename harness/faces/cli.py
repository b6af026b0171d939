"""`respcheck`: run the conformance suite, validate a saved stream, serve the reference gateway.

    respcheck run [--target URL] [--model M] [--api-key K] [--profile P] [--only FEATURE]
                  [--report-dir DIR] [--scenarios DIR] [--transport http|ws] [--deadline S]
                  [--keep-going] [--transcript-budget MB]
    respcheck validate PATH [--profile P]
    respcheck serve [--upstream URL] [...]        (the reference gateway; see --help)
    respcheck serve --spawn-vllm tiny [...]       (vLLM started here, the gateway in front of it)
    respcheck load [--target URL] [--concurrency 1,8,64] [--duration 20s] [...]  (loadtests/)
    respcheck targets [--json]                    (the target profiles, specs/targets.yaml)
    respcheck run --target A --target B [--baseline [NAME=]FILE]   (each target, then a comparison)
    respcheck compare DIR [DIR ...] [--out DIR]   (comparison.html + .md of report folders)
    respcheck baseline DIR > FILE                 (the known failures of a report, as YAML)
    respcheck fuzz [--target URL] [--examples N] [--seed S] [--deadline S] [--report-dir DIR]
                                                  (generated bad input; exit 1 on findings)
    respcheck clients [--target URL|NAME ...] [--model M] [--client codex --client agents ...]
                                                  (real clients against the target: exit 1 when
                                                  one fails; harness/run/clients.py)
    respcheck run --clients all|codex,agents,...  (the suite, then the clients, in one report)

Exit codes (DESIGN.md output contract): 0 no MUST check failed; 1 a MUST check failed;
2 the run could not happen (bad arguments, unreachable target, or stopped early: every
scenario failing the same way at the transport, harness/run/runner.py) with one line on stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from harness import __version__
from harness.core.catalogue import PROFILE_NAMES, SpecError, load_catalogue
from harness.core.findings import FAIL, MUST, PASS, SKIP, UNSUPPORTED
from harness.core.transcript import TRANSCRIPT_BUDGET_BYTES, TRANSPORTS
from harness.core.verdict import judge_file
from harness.report import baseline as baselines
from harness.report.compare import console_scores, safe_dir_name, write_comparison
from harness.report.comparison import CompareError, load_run
from harness.report.console import console_table
from harness.report.outputs import write_reports
from harness.run import clients as real_clients
from harness.run.client import get_models
from harness.run.runner import run_suite
from harness.run.scenario import ScenarioError, load_scenarios
from harness.targets.pool import ServerPool
from harness.targets.serve import main as serve_main
from harness.targets.target import TargetError, open_target, print_profiles

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
    if args.deadline is not None and args.deadline <= 0:
        raise UsageError(f"--deadline {args.deadline:g}: give a positive number of seconds")
    if args.transcript_budget <= 0:
        raise UsageError(f"--transcript-budget {args.transcript_budget:g}: give a positive "
                         "number of megabytes")
    specs = list(args.target or [None])
    chosen = _chosen_clients(args.clients) if args.clients else []
    try:
        plan = baselines.plan(args.baseline)
    except baselines.BaselineError as exc:
        raise UsageError(str(exc)) from None
    _check_baseline_names(plan, specs)
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

    profiles = list(dict.fromkeys(args.profile or ["openai"]))

    def run_one(spec: str | None, report_dir: Path, profile: str) -> tuple[dict, int]:
        """One target under one profile into report_dir: its reports, its table on stdout, its
        exit code."""
        try:
            with open_target(spec, model=args.model, api_key=args.api_key,
                             profile=profile, report_dir=report_dir,
                             start_timeout_s=getattr(args, "start_timeout", None),
                             preflight=get_models, deadline_s=args.deadline, pool=pool,
                             notify=lambda m: (out.write(f"respcheck: {m}\n"), out.flush())) as target:
                baseline = plan.for_target(spec, target.name)
                out.write(f"respcheck {__version__}: {len(scenarios)} scenarios against "
                          f"{target.name} ({target.base_url}, model {target.model}), "
                          f"profile {profile}"
                          + (", transport ws (WebSocket mode)" if args.transport == "ws" else "")
                          + "\n")
                # Transcripts of an earlier run in the same folder would mix with this one.
                shutil.rmtree(report_dir / "transcripts", ignore_errors=True)
                summary = run_suite(target, scenarios, profile=profile, report_dir=report_dir,
                                    skip=skip, progress=progress, deadline_s=args.deadline,
                                    transport=args.transport, keep_going=args.keep_going,
                                    transcript_budget_bytes=int(args.transcript_budget * 2**20))
                if chosen:
                    entries = _drive_clients(target, chosen, args.deadline, out)
                    summary.update(clients=entries, clients_totals=real_clients.totals(entries))
        except TargetError as exc:
            raise UsageError(str(exc)) from None
        judged = baselines.apply(summary, baseline) if baseline is not None else None
        paths = write_reports(summary, report_dir)
        # The report's place first, the table after: the verdict line (which names the MUST
        # check that failed most) is the run's last line on stdout, what a CI log shows.
        print(f"report: {paths['html']}  (also {report_dir}/summary.json, junit.xml, report.md)")
        print(console_table(summary, color=_use_color(sys.stdout)))
        if summary.get("stopped"):
            # The reports hold what was judged; the run as a whole could not happen (exit 2).
            raise UsageError(f"target {target.name}: {summary['stopped']}")
        if judged is not None:
            print("\n".join(baselines.describe(judged)))
            return summary, EXIT_MUST_FAILED if baselines.new_must_failures(judged) else EXIT_OK
        must_failed = any(r["status"] == FAIL and r["level"] == MUST for r in summary["results"])
        return summary, EXIT_MUST_FAILED if must_failed else EXIT_OK

    # One pool for the whole run: a server that several targets need (vllm, reference+vllm,
    # reference+native:vllm) is started once, its log in REPORT_DIR, and stopped at the end.
    with ServerPool(log_dir=report_dir) as pool:
        if len(specs) == 1 and len(profiles) == 1:
            return run_one(specs[0], report_dir, profiles[0])[1]
        return _run_targets([(spec, p) for spec in specs for p in profiles], report_dir,
                            run_one, plan, tag_profile=len(profiles) > 1)


def _target_dir_name(spec: str | None) -> str:
    """The folder of one target of a multi-target run: its name as summary.json will give it
    (a profile name as given, a URL's host:port), made safe as a folder name."""
    spec = (spec or "reference").strip()
    if spec.startswith(("http://", "https://")):
        spec = urlsplit(spec).netloc or spec
    return safe_dir_name(spec)


def _check_baseline_names(plan, specs: list[str | None]) -> None:
    """Every NAME of ``--baseline NAME=FILE`` names a target: its --target value, or the name
    it will have (a URL's host:port). Checked before any request is sent."""
    known = set()
    for spec in specs:
        spec = (spec or "reference").strip()
        known |= {spec, _target_dir_name(spec)}
        if spec.startswith(("http://", "https://")):
            known.add(urlsplit(spec).netloc)
    for name in sorted(plan.named):
        if name not in known:
            raise UsageError(f"--baseline {name}=FILE: no target named {name!r} in this run "
                             f"(targets: {', '.join(sorted(known))})")


def _run_targets(runs: list[tuple[str | None, str]], report_dir: Path, run_one, plan, *,
                 tag_profile: bool = False) -> int:
    """``run --target A --target B ...`` (and/or ``--profile openai --profile openresponses``):
    each (target, profile) into REPORT_DIR/<name>/ (``<name>@<profile>`` when several profiles
    are run), in turn, then the comparison into REPORT_DIR, a column per run. A target that
    cannot be run gets one stderr line and the others still run; exit 2 if any could not, else
    1 if any has a MUST failure not in its baseline, else 0."""
    dirs, code, cannot, taken = [], EXIT_OK, 0, set()
    for spec, profile in runs:
        name = base = _target_dir_name(spec) + (f"@{profile}" if tag_profile else "")
        n = 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        print(f"== target {spec or 'reference'}" + (f", profile {profile}" if tag_profile else "")
              + f" -> {report_dir / name}", flush=True)
        try:
            _, rc = run_one(spec, report_dir / name, profile)
        except UsageError as exc:
            reason = " ".join(str(exc).split())
            if (spec or "reference") not in reason:
                reason = f"target {spec or 'reference'}: {reason}"
            print(f"respcheck: error: {reason}", file=sys.stderr)
            cannot += 1
            continue
        dirs.append(report_dir / name)
        code = max(code, rc)
    if plan.unused():
        print(f"respcheck: error: --baseline {plan.unused()[0]}=FILE names no target of this run",
              file=sys.stderr)
        cannot += 1
    if dirs:
        try:
            comparison, paths = write_comparison(dirs, report_dir)
        except CompareError as exc:
            raise UsageError(str(exc)) from None
        print()
        print(console_scores(comparison))
        print(f"comparison: {paths['html']}  (also {paths['markdown']})")
    return EXIT_CANNOT_RUN if cannot else code


# -- clients ------------------------------------------------------------------------------
def _chosen_clients(names: list[str] | None) -> list[real_clients.Client]:
    try:
        return real_clients.select(names)
    except ValueError as exc:
        raise UsageError(f"--client {exc}") from None


def _drive_clients(target, chosen, deadline_s: float | None, out) -> list[dict]:
    """Each chosen client against ``target``, a line each on ``out``; the ``clients`` entries.
    A client that is not installed gets one line saying to run scripts/install-clients.sh."""
    out.write(f"respcheck: real clients against {target.name} ({target.base_url}, model "
              f"{target.model}): {', '.join(c.name for c in chosen)}\n")
    out.flush()

    def progress(entry: dict) -> None:
        if entry["status"] == SKIP and real_clients.INSTALL_HINT in (entry.get("error") or ""):
            out.write(f"respcheck: {entry['client']}: not installed, skipped: "
                      f"{real_clients.INSTALL_HINT}\n")
        else:
            out.write(f"[client] {real_clients.describe(entry)}\n")
        out.flush()

    return real_clients.run_clients(
        target, chosen, progress=progress,
        step_deadline_s=deadline_s or real_clients.DEFAULT_STEP_DEADLINE_S)


def cmd_clients(args: argparse.Namespace) -> int:
    """``respcheck clients``: each chosen client against each target; exit 1 when one failed."""
    chosen = _chosen_clients(args.client)
    report_dir = Path(args.report_dir)
    if report_dir.exists() and not report_dir.is_dir():
        raise UsageError(f"--report-dir {report_dir} exists and is not a directory")
    if args.deadline is not None and args.deadline <= 0:
        raise UsageError(f"--deadline {args.deadline:g}: give a positive number of seconds")
    out = sys.stderr

    def run_one(spec: str | None, report_dir: Path, profile: str) -> tuple[dict, int]:
        started = dt.datetime.now(dt.UTC)
        t0 = time.monotonic()
        try:
            with open_target(spec, model=args.model, api_key=args.api_key, profile=profile,
                             report_dir=report_dir,
                             start_timeout_s=getattr(args, "start_timeout", None),
                             preflight=get_models, deadline_s=args.deadline,
                             notify=lambda m: (out.write(f"respcheck: {m}\n"), out.flush())) as target:
                entries = _drive_clients(target, chosen, args.deadline, out)
                summary = real_clients.clients_summary(
                    target, entries, started_at=started.isoformat(timespec="seconds"),
                    duration_s=round(time.monotonic() - t0, 3))
        except TargetError as exc:
            raise UsageError(str(exc)) from None
        paths = write_reports(summary, report_dir)
        print(f"report: {paths['html']}  (also {report_dir}/summary.json, report.md)")
        for entry in entries:
            print(real_clients.describe(entry))
        t = summary["clients_totals"]
        if t[SKIP] == len(entries):
            raise UsageError(f"none of the clients ({', '.join(c.name for c in chosen)}) is "
                             f"installed here: {real_clients.INSTALL_HINT}")
        failed = t[FAIL] > 0
        print(f"{'FAIL' if failed else 'PASS'}: clients against {target.name}: {t[PASS]} pass, "
              f"{t[FAIL]} fail, {t[SKIP]} skip")
        return summary, EXIT_MUST_FAILED if failed else EXIT_OK

    specs = list(args.target or [None])
    if len(specs) == 1:
        return run_one(specs[0], report_dir, "openai")[1]
    return _run_targets([(spec, "openai") for spec in specs], report_dir, run_one,
                        baselines.plan(None))


# -- compare ------------------------------------------------------------------------------
def cmd_compare(args: argparse.Namespace) -> int:
    try:
        comparison, paths = write_comparison([Path(d) for d in args.dirs], Path(args.out))
    except CompareError as exc:
        raise UsageError(str(exc)) from None
    print(console_scores(comparison))
    print(f"comparison: {paths['html']}  (also {paths['markdown']})")
    return EXIT_OK


# -- baseline -----------------------------------------------------------------------------
def cmd_baseline(args: argparse.Namespace) -> int:
    try:
        _, summary = load_run(Path(args.dir))
    except CompareError as exc:
        raise UsageError(str(exc)) from None
    sys.stdout.write(baselines.render(summary))
    return EXIT_OK


# -- validate -----------------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace) -> int:
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


# -- targets ------------------------------------------------------------------------------
def cmd_targets(args: argparse.Namespace) -> int:
    print_profiles(as_json=args.json)
    return EXIT_OK


# -- fuzz ---------------------------------------------------------------------------------
def cmd_fuzz(args: argparse.Namespace) -> int:
    """Generated request bodies against one target (harness/run/fuzz.py); exit 1 on any finding."""
    # deferred: the fuzzer brings in hypothesis, which only this command needs
    from harness.run.fuzz import one_line, run_fuzz, write_report

    if args.examples < 1:
        raise UsageError(f"--examples {args.examples}: give a positive number of examples")
    if args.deadline <= 0:
        raise UsageError(f"--deadline {args.deadline:g}: give a positive number of seconds")
    if args.seed is not None and not 0 <= args.seed < 2**32:
        raise UsageError(f"--seed {args.seed}: give a seed from 0 to {2**32 - 1}")
    report_dir = Path(args.report_dir)
    if report_dir.exists() and not report_dir.is_dir():
        raise UsageError(f"--report-dir {report_dir} exists and is not a directory")
    err = sys.stderr
    every = max(1, args.examples // 10)

    def progress(run) -> None:
        if run.sent % every == 0 or run.stopped:
            err.write(f"[{run.sent:>{len(str(args.examples))}}/{args.examples}] "
                      f"{run.total_findings} findings\n")
            err.flush()

    try:
        with open_target(args.target, model=args.model, api_key=args.api_key,
                         preflight=get_models, deadline_s=args.deadline,
                         notify=lambda m: (err.write(f"respcheck: {m}\n"), err.flush())) as target:
            err.write(f"respcheck {__version__}: fuzzing {target.name} ({target.base_url}, model "
                      f"{target.model}) with {args.examples} examples\n")
            run = run_fuzz(target.base_url, model=target.model, api_key=target.api_key or args.api_key,
                           examples_n=args.examples, seed=args.seed, deadline_s=args.deadline,
                           target_name=target.name, progress=progress)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    path = write_report(run, report_dir)
    print(one_line(run, path))
    return EXIT_MUST_FAILED if run.total_findings else EXIT_OK


# -- serve --------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace, rest: list[str]) -> int:
    # the gateway's own flags, plus --spawn-vllm (vLLM started and stopped here: harness/targets/serve.py)
    return serve_main(rest)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="respcheck", description="Conformance checks for OpenAI Responses API "
                "servers.")
    p.add_argument("--version", action="version", version=f"respcheck {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser, required=True)

    r = sub.add_parser("run", help="run the conformance suite against a target")
    r.add_argument("--target", action="append", metavar="TARGET",
                   help="base URL of the server (e.g. http://127.0.0.1:8000/v1) or a target "
                   "name (`respcheck targets`); default: the embedded reference gateway. "
                   "Repeatable: each target runs in turn into REPORT_DIR/<name>/, then "
                   "REPORT_DIR/comparison.html and .md compare them (--model and --api-key "
                   "apply to every target)")
    r.add_argument("--model", help="model name to send (default: the target's first model)")
    r.add_argument("--api-key", default=os.environ.get("RESPCHECK_API_KEY"),
                   help="bearer token for the target (default: $RESPCHECK_API_KEY)")
    r.add_argument("--profile", choices=PROFILE_NAMES, action="append",
                   help="openai (default) or openresponses. Repeatable: each target runs under "
                   "each profile, into REPORT_DIR/<name>@<profile>/, and the comparison has a "
                   "column per target and profile")
    r.add_argument("--only", action="append", metavar="FEATURE",
                   help="run only scenarios of this feature (repeatable); the rest are `skip`")
    r.add_argument("--report-dir", default=str(DEFAULT_REPORT_DIR))
    r.add_argument("--scenarios", help="scenario directory (default: the bundled suite)")
    r.add_argument("--deadline", type=float, help="seconds allowed per request (default 60; "
                   "the preflight GET /models gets at most 10)")
    r.add_argument("--keep-going", action="store_true",
                   help="run every scenario even when 5 in a row fail the same way at the "
                   "transport (connection refused, no headers within the deadline, ...); "
                   "without it the run stops there with exit 2")
    r.add_argument("--transcript-budget", type=float, default=TRANSCRIPT_BUDGET_BYTES / 2**20,
                   metavar="MB", help="megabytes the run's transcripts may take on disk "
                   f"(default {TRANSCRIPT_BUDGET_BYTES // 2**20}); past it body bytes are left "
                   "out and each transcript that lost some says so")
    r.add_argument("--transport", choices=TRANSPORTS, default="http",
                   help="how create steps (POST /responses with a JSON body) are sent: http "
                   "(default) or ws, one response.create turn each on the scenario's WebSocket "
                   "(WebSocket mode; other steps stay HTTP; scenarios that cannot be said over "
                   "WebSocket are `skip`)")
    r.add_argument("--start-timeout", type=float, metavar="SECONDS",
                   help="how long a spawned target (--target vllm) may take to be ready "
                   "(default: $RESPCHECK_START_TIMEOUT or 300)")
    r.add_argument("--clients", action="append", metavar="NAMES",
                   help="after the suite, drive these real clients against each target "
                   f"(comma-separated: {', '.join(real_clients.CLIENT_NAMES)}, or all; "
                   "repeatable): their pass/fail and first error go into summary.json's "
                   "`clients`, the reports and the comparison (exit code: the suite's; "
                   "`respcheck clients` exits 1 when a client fails)")
    r.add_argument("--baseline", action="append", metavar="[NAME=]FILE",
                   help="known failures (written by `respcheck baseline`): a failure listed "
                   "there (same check and scenario) does not fail the run; exit 1 only for a "
                   "MUST failure not listed. With several --target: FILE once for all of them, "
                   "or NAME=FILE once per target (NAME: the target's name or --target value; a "
                   "FILE alone then covers the targets not named)")

    v = sub.add_parser("validate", help="judge a saved event-stream body or Response JSON")
    v.add_argument("path")
    v.add_argument("--profile", choices=PROFILE_NAMES, default="openai")

    t = sub.add_parser("targets", help="list the target profiles (--target NAME) and what "
                       "each needs")
    t.add_argument("--json", action="store_true", help="print them as JSON")

    c = sub.add_parser("compare", help="compare report folders of several runs side by side")
    c.add_argument("dirs", nargs="+", metavar="DIR", help="report folders (each with summary.json)")
    c.add_argument("--out", default="reports/compare",
                   help="folder for comparison.html and comparison.md (default: reports/compare)")

    b = sub.add_parser("baseline", help="print the known failures of a report as a baseline "
                       "file (YAML): respcheck baseline DIR > FILE")
    b.add_argument("dir", metavar="DIR", help="a report folder (or its summary.json)")

    f = sub.add_parser("fuzz", help="send generated valid, almost-valid and hostile request "
                       "bodies; report 5xx, hangs and 4xx without a useful error envelope")
    f.add_argument("--target", metavar="TARGET",
                   help="base URL of the server or a target name (`respcheck targets`); "
                   "default: the embedded reference gateway")
    f.add_argument("--model", help="model name to send (default: the target's first model)")
    f.add_argument("--api-key", default=os.environ.get("RESPCHECK_API_KEY"),
                   help="bearer token for the target (default: $RESPCHECK_API_KEY)")
    f.add_argument("--examples", type=int, default=200, metavar="N",
                   help="number of request bodies to send (default 200)")
    f.add_argument("--seed", type=int, help="hypothesis seed, to replay a run exactly "
                   "(default: a random one, printed and written to the report)")
    f.add_argument("--deadline", type=float, default=10.0, metavar="SECONDS",
                   help="seconds allowed per request, streamed bodies read to the end "
                   "(default 10); a request past it is a `hang` finding")
    f.add_argument("--report-dir", default="reports/fuzz",
                   help="folder for fuzz.json and the failing bodies (default: reports/fuzz)")

    cl = sub.add_parser("clients", help="drive the installed real clients (Codex CLI, the Agents "
                        "SDK, the AI SDK, openai-node) against a target: a text turn, a tool "
                        "round, a follow-up; exit 1 when one fails")
    cl.add_argument("--target", action="append", metavar="TARGET",
                    help="base URL or target name, as for `respcheck run` (default: the embedded "
                    "reference gateway); repeatable: each into REPORT_DIR/<name>/, then a "
                    "comparison")
    cl.add_argument("--model", help="model name to send (default: the target's first model)")
    cl.add_argument("--api-key", default=os.environ.get("RESPCHECK_API_KEY"),
                    help="bearer token for the target (default: $RESPCHECK_API_KEY)")
    cl.add_argument("--client", action="append", metavar="NAME",
                    help=f"a client to drive ({', '.join(real_clients.CLIENT_NAMES)}; repeatable "
                    "or comma-separated; default: all). One not installed is `skip`: run "
                    "scripts/install-clients.sh")
    cl.add_argument("--deadline", type=float, metavar="SECONDS",
                    help=f"seconds each step of a client may take (default "
                    f"{real_clients.DEFAULT_STEP_DEADLINE_S:g})")
    cl.add_argument("--start-timeout", type=float, metavar="SECONDS",
                    help="how long a spawned target (--target vllm) may take to be ready")
    cl.add_argument("--report-dir", default="reports/clients")

    sub.add_parser("serve", help="run the reference gateway (flags: respcheck serve --help)",
                   add_help=False)
    sub.add_parser("load", help="load-test a target with locust (flags: respcheck load --help)",
                   add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["serve"]:
            return cmd_serve(argparse.Namespace(), argv[1:])
        if argv[:1] == ["load"]:
            # loadtests owns its options (locust runs in its own process: importing it here
            # would monkey-patch this one for gevent)
            from loadtests.cli import main as load_main

            return load_main(argv[1:])
        args = build_parser().parse_args(argv)
        if args.command == "run":
            return cmd_run(args)
        if args.command == "targets":
            return cmd_targets(args)
        if args.command == "compare":
            return cmd_compare(args)
        if args.command == "baseline":
            return cmd_baseline(args)
        if args.command == "fuzz":
            return cmd_fuzz(args)
        if args.command == "clients":
            return cmd_clients(args)
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
