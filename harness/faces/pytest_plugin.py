"""pytest plugin: ``pytest --respcheck-target URL --respcheck-model M`` judges scenarios as tests.

Registered through the ``pytest11`` entry point; it does nothing unless ``--respcheck`` or
``--respcheck-target`` is given (so it never changes an unrelated pytest run). Each scenario
becomes one test item (``respcheck::<scenario id>``, marked ``respcheck`` and with its feature);
with ``--alluredir`` (allure-pytest) each item attaches its request, transcript and findings.

The items are plain ``pytest.Function`` items whose function asks for session fixtures, the
way any test would:

    respcheck_target     the Target judged: opened once per session (the embedded gateway is
                         started once), closed at its end by the fixture's own ``with``
    respcheck_transport  the guarded HTTP transport to it (harness/run/client.py), one client
    respcheck_profile    ``--respcheck-profile``
    respcheck_catalogue  that profile's check catalogue
    respcheck_transcripts where each scenario's transcript is written (under the session's
                         basetemp, ``respcheck/``), within one budget for the session: the
                         ``TranscriptBudget`` (harness/core/transcript.py), ``--respcheck-transcript-budget MB``
                         (default: ``respcheck run``'s), so a flooding server cannot fill the
                         disk whatever the number of scenarios

A target that cannot be opened fails its fixture once; pytest reports every scenario as an
error at setup with the same one line ("respcheck: target ... is unreachable"), without
trying the target again. Whether a scenario runs at all is decided by the runner's own
``skip_reason`` (the rules ``respcheck run`` applies), never by a copy of them here.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.core.catalogue import PROFILE_NAMES, Catalogue, load_catalogue
from harness.core.findings import FAIL, MUST, UNSUPPORTED
from harness.core.transcript import TRANSCRIPT_BUDGET_BYTES, TranscriptBudget
from harness.run.client import Transport, get_models
from harness.run.runner import run_scenario, skip_reason
from harness.run.scenario import Scenario, ScenarioError, default_suite_dir, load_scenarios
from harness.targets.target import Target, TargetError, open_target


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("respcheck", "Responses API conformance")
    group.addoption("--respcheck", action="store_true",
                    help="collect the bundled conformance scenarios as tests")
    group.addoption("--respcheck-target", metavar="URL",
                    help="base URL to judge (default: the embedded reference gateway)")
    group.addoption("--respcheck-model", metavar="M", help="model name to send")
    group.addoption("--respcheck-api-key", metavar="KEY", help="bearer token for the target")
    group.addoption("--respcheck-profile", choices=PROFILE_NAMES, default="openai")
    group.addoption("--respcheck-scenarios", metavar="DIR", help="scenario directory")
    group.addoption("--respcheck-transcript-budget", metavar="MB", type=_megabytes,
                    default=TRANSCRIPT_BUDGET_BYTES / 2**20,
                    help="what the session's transcripts may take on disk, in MiB (default "
                         f"{TRANSCRIPT_BUDGET_BYTES // 2**20}); past it, body bytes are left out "
                         "and a 'truncated' record says so")


def _megabytes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive number of megabytes")
    return value


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "respcheck: a Responses API conformance scenario")
    # One marker per feature folder of the bundled suite (-m tools, -m state, ...).
    for feature in sorted(p.name for p in default_suite_dir().iterdir() if p.is_dir()):
        config.addinivalue_line("markers", f"{feature}: scenarios of feature {feature}")
    if config.getoption("--respcheck") or config.getoption("--respcheck-target"):
        config.pluginmanager.register(_SuitePlugin(), "respcheck-suite")


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def respcheck_profile(pytestconfig: pytest.Config) -> str:
    return pytestconfig.getoption("--respcheck-profile")


@pytest.fixture(scope="session")
def respcheck_catalogue(respcheck_profile: str) -> Catalogue:
    return load_catalogue(respcheck_profile)


@pytest.fixture(scope="session")
def respcheck_target(pytestconfig: pytest.Config, respcheck_profile: str) -> Iterator[Target]:
    try:  # the target is closed (the embedded gateway stopped) when the session ends
        with open_target(pytestconfig.getoption("--respcheck-target"),
                         model=pytestconfig.getoption("--respcheck-model"),
                         api_key=pytestconfig.getoption("--respcheck-api-key"),
                         profile=respcheck_profile, preflight=get_models) as target:
            yield target
    except TargetError as exc:  # cached by pytest: every scenario gets this line, none retries
        pytest.fail(f"respcheck: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def respcheck_transport(respcheck_target: Target) -> Iterator[Transport]:
    with Transport(respcheck_target.base_url, api_key=respcheck_target.api_key) as transport:
        yield transport


@pytest.fixture(scope="session")
def respcheck_transcripts(pytestconfig: pytest.Config) -> TranscriptBudget:
    budget_mib = pytestconfig.getoption("--respcheck-transcript-budget")
    return TranscriptBudget(int(budget_mib * 2**20), option="--respcheck-transcript-budget")


# -- items ---------------------------------------------------------------------------------------


def judge_scenario(respcheck_target: Target, respcheck_transport: Transport, respcheck_profile: str,
                   respcheck_catalogue: Catalogue, respcheck_transcripts: TranscriptBudget,
                   tmp_path_factory: pytest.TempPathFactory, *, scenario: Scenario) -> None:
    """The test function of every scenario item (``scenario`` is bound per item)."""
    reason = skip_reason(scenario, respcheck_target, respcheck_catalogue)
    if reason:
        pytest.skip(reason)
    outcome = run_scenario(scenario, respcheck_target, respcheck_transport, profile=respcheck_profile,
                           catalogue=respcheck_catalogue)
    failed = [r for r in outcome.results if r.status == FAIL]
    _attach_allure(scenario, outcome, failed)
    respcheck_transcripts.write(tmp_path_factory.getbasetemp() / "respcheck" / scenario.transcript_name,
                                outcome.exchanges, [r.to_dict() for r in failed])
    must = [r for r in failed if r.level == MUST]
    if must:
        raise ScenarioFailure(must)
    if outcome.status == UNSUPPORTED:
        pytest.skip("unsupported: the server refused the feature with a clean 4xx error")


class ScenarioFailure(Exception):
    """The MUST checks a scenario failed; reported one line per check, with its evidence."""

    def __init__(self, results) -> None:
        super().__init__(f"{len(results)} MUST check(s) failed")
        self.results = results


def _test_function(scenario: Scenario):
    """``judge_scenario`` with its scenario bound: the fixtures pytest reads from its signature
    are exactly the session fixtures above (no ``functools.partial``, whose own docstring
    allure would show as the test's description)."""

    def test_scenario(respcheck_target, respcheck_transport, respcheck_profile, respcheck_catalogue,
                      respcheck_transcripts, tmp_path_factory) -> None:
        judge_scenario(respcheck_target, respcheck_transport, respcheck_profile, respcheck_catalogue,
                       respcheck_transcripts, tmp_path_factory, scenario=scenario)

    test_scenario.__doc__ = scenario.title
    return test_scenario


class ScenarioItem(pytest.Function):
    """One scenario: a Function item (fixtures, markers, -k, allure) over ``judge_scenario``."""

    def __init__(self, *, scenario: Scenario, **kwargs) -> None:
        super().__init__(callobj=_test_function(scenario), **kwargs)
        self.scenario = scenario
        self.add_marker(pytest.mark.respcheck)
        self.add_marker(getattr(pytest.mark, scenario.feature))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ScenarioFailure):
            return "\n".join(f"{r.level} {r.check}: {r.message}  evidence={json.dumps(r.evidence)}"
                             for r in excinfo.value.results)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.scenario.source, 0, f"scenario {self.scenario.id}"


class SuiteCollector(pytest.Collector):
    def __init__(self, *, scenario_dir: str | None, **kwargs) -> None:
        super().__init__(**kwargs)
        self._scenario_dir = scenario_dir

    def collect(self):
        try:
            scenarios = load_scenarios(Path(self._scenario_dir) if self._scenario_dir else None)
        except ScenarioError as exc:
            raise self.CollectError(str(exc)) from None
        return [ScenarioItem.from_parent(self, name=sc.id, scenario=sc) for sc in scenarios]


class _SuitePlugin:
    # tryfirst: the scenarios must be among the items before -k / -m deselect any.
    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session, config, items) -> None:
        collector = SuiteCollector.from_parent(
            session, name="respcheck", nodeid="respcheck",  # items: respcheck::core/string_input
            scenario_dir=config.getoption("--respcheck-scenarios"))
        # Session.genitems reports the collection like any other (pytest_collectreport,
        # pytest_itemcollected): "collected N items" counts the scenarios, and a malformed
        # scenario is a collection error.
        items.extend(session.genitems(collector))


def _attach_allure(scenario, outcome, failed) -> None:
    try:
        import allure  # optional: allure-pytest is a test extra, not a dependency
    except ImportError:  # allure-pytest not installed: nothing to attach
        return
    allure.dynamic.title(scenario.title)
    allure.dynamic.feature(scenario.feature)
    allure.dynamic.label("scenario", scenario.id)
    for ex in outcome.exchanges:
        allure.attach(ex.request_body.decode("utf-8", "replace"), name=f"{ex.step}: request",
                      attachment_type=allure.attachment_type.JSON)
        allure.attach("\n".join(json.dumps(r, ensure_ascii=False) for r in ex.records()),
                      name=f"{ex.step}: transcript", attachment_type=allure.attachment_type.TEXT)
    allure.attach(json.dumps([r.to_dict() for r in outcome.results], indent=1),
                  name="check results", attachment_type=allure.attachment_type.JSON)
    if failed:
        allure.attach(json.dumps([r.to_dict() for r in failed], indent=1), name="findings",
                      attachment_type=allure.attachment_type.JSON)
