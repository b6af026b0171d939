"""pytest plugin: ``pytest --respcheck-target URL --respcheck-model M`` judges scenarios as tests.

Registered through the ``pytest11`` entry point; it does nothing unless ``--respcheck`` or
``--respcheck-target`` is given (so it never changes an unrelated pytest run). Each scenario
becomes one test item; with ``--alluredir`` (allure-pytest) each item attaches its request,
transcript and findings. Fixtures are session-scoped only for the target (one gateway).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.catalogue import PROFILE_NAMES, load_catalogue
from harness.findings import FAIL, MUST, UNSUPPORTED


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


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("--respcheck") or config.getoption("--respcheck-target"))


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.add_marker(pytest.mark.respcheck)
        self.add_marker(getattr(pytest.mark, scenario.feature))

    def runtest(self) -> None:
        from harness.client import Transport
        from harness.runner import run_scenario
        from harness.transcript import write_transcript

        config = self.config
        target = _session_target(config)
        if self.scenario.targets and target.name not in self.scenario.targets:
            pytest.skip(f"runs only against {', '.join(self.scenario.targets)}")
        profile = config.getoption("--respcheck-profile")
        outside = load_catalogue(profile).profile.out_of_profile.get(self.scenario.feature)
        if outside:
            pytest.skip(f"not judged under profile {profile}: {outside}")
        with Transport(target.base_url, api_key=target.api_key) as transport:
            outcome = run_scenario(self.scenario, target, transport, profile=profile,
                                   catalogue=load_catalogue(profile))
        self.user_properties.append(("respcheck_status", outcome.status))
        failed = [r for r in outcome.results if r.status == FAIL]
        _attach_allure(self.scenario, outcome, failed)
        basetemp = Path(str(config._tmp_path_factory.getbasetemp()))  # type: ignore[attr-defined]
        write_transcript(basetemp / "respcheck" / self.scenario.transcript_name,
                         outcome.exchanges, [r.to_dict() for r in failed])
        must = [r for r in failed if r.level == MUST]
        if must:
            raise ScenarioFailure(must)
        if outcome.status == UNSUPPORTED:
            pytest.skip("unsupported: the server refused the feature with a clean 4xx error")

    def repr_failure(self, excinfo, style=None):  # noqa: ARG002
        if isinstance(excinfo.value, ScenarioFailure):
            return "\n".join(
                f"{r.level} {r.check}: {r.message}  evidence={json.dumps(r.evidence)}"
                for r in excinfo.value.results)
        if isinstance(excinfo.value, TargetUnavailable):
            return f"respcheck: {excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.scenario.source, 0, f"scenario {self.scenario.id}"


class TargetUnavailable(Exception):
    """The target could not be opened (unreachable, no model); every item fails with this."""


class ScenarioFailure(Exception):
    def __init__(self, results) -> None:
        super().__init__(f"{len(results)} MUST check(s) failed")
        self.results = results


class SuiteCollector(pytest.Collector):
    def __init__(self, *, scenario_dir: str | None, **kwargs) -> None:
        super().__init__(**kwargs)
        self._scenario_dir = scenario_dir

    def collect(self):
        from harness.scenario import ScenarioError, load_scenarios

        try:
            scenarios = load_scenarios(Path(self._scenario_dir) if self._scenario_dir else None)
        except ScenarioError as exc:
            raise self.CollectError(str(exc)) from None
        return [ScenarioItem.from_parent(self, name=sc.id, scenario=sc) for sc in scenarios]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "respcheck: a Responses API conformance scenario")
    from harness.scenario import default_suite_dir

    # One marker per feature folder of the bundled suite (-m tools, -m state, ...).
    for feature in sorted(p.name for p in default_suite_dir().iterdir() if p.is_dir()):
        config.addinivalue_line("markers", f"{feature}: scenarios of feature {feature}")
    if _enabled(config):
        config.pluginmanager.register(_SuitePlugin(), "respcheck-suite")


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

    @pytest.hookimpl
    def pytest_sessionfinish(self, session) -> None:
        cm = getattr(session.config, "_respcheck_target_cm", None)
        if cm is not None:
            cm.__exit__(None, None, None)


def _session_target(config: pytest.Config):
    target = getattr(config, "_respcheck_target", None)
    error = getattr(config, "_respcheck_target_error", None)
    if error is not None:  # tried once already: do not wait on a dead target per item
        raise TargetUnavailable(error)
    if target is None:
        from harness.targets import TargetError, open_target

        cm = open_target(config.getoption("--respcheck-target"),
                         model=config.getoption("--respcheck-model"),
                         api_key=config.getoption("--respcheck-api-key"),
                         profile=config.getoption("--respcheck-profile"))
        try:
            target = cm.__enter__()
        except TargetError as exc:
            config._respcheck_target_error = str(exc)  # type: ignore[attr-defined]
            raise TargetUnavailable(str(exc)) from None
        config._respcheck_target_cm = cm  # type: ignore[attr-defined]
        config._respcheck_target = target  # type: ignore[attr-defined]
    return target


def _attach_allure(scenario, outcome, failed) -> None:
    try:
        import allure
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
