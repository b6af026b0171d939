"""suites/scenarios/clients/: the captured request shapes of each pinned client. Each file names
its client and version (header and title), and the version is the one pinned in clients/, so a
bump of a client without a new capture fails here. clients/to_scenario.py is tested on a small
recording: model and earlier responses' ids become references, the rest is kept as sent.

Every bundled scenario must pass against the reference gateway (tests/plugin); all four clients'
captures are bundled (the AI SDK's, the last to wait in clients/captures/, since the gateway
resolves its `item_reference` items)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

from harness.run import clients as real_clients
from harness.run.scenario import load_scenarios

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "suites" / "scenarios" / "clients"
HEADER = re.compile(r"^# client: (\S+) (.+) \(([^()]+)\)$")
sys.path.insert(0, str(ROOT / "clients"))
import to_scenario  # clients/ is not a package: imported from its folder


def pinned_versions() -> dict[str, str]:
    deps = json.loads((ROOT / "clients" / "package.json").read_text())["dependencies"]
    req = dict(line.split("==") for line in (ROOT / "clients" / "requirements.txt").read_text()
               .splitlines() if "==" in line and not line.startswith("#"))
    return {"codex": deps["@openai/codex"], "agents": req["openai-agents"],
            "ai-sdk": f"{deps['ai']} (@ai-sdk/openai {deps['@ai-sdk/openai']})",
            "openai-node": deps["openai"]}


def test_every_client_has_a_capture_of_its_pinned_version():
    pins = pinned_versions()
    seen = set()
    for path in sorted(SCENARIOS.glob("*.yaml")):
        match = HEADER.match(path.read_text(encoding="utf-8").splitlines()[0])
        assert match, f"{path.name}: first line must be '# client: NAME VERSION (PACKAGE)'"
        client, version, _ = match.groups()
        assert path.name.startswith(client + "_"), path.name
        assert client in real_clients.CLIENT_NAMES, client
        assert version == pins[client], f"{path.name}: captured from {version}, pinned {pins[client]}"
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert data["title"].startswith(f"{client} {version}:") and data["feature"] == "clients"
        seen.add(client)
    assert seen == set(real_clients.CLIENT_NAMES)


def test_the_suite_loads_them_as_refusable_multi_step_scenarios():
    mine = [s for s in load_scenarios() if s.feature == "clients"]
    assert len(mine) == len(list(SCENARIOS.glob("*.yaml")))
    for sc in mine:
        assert sc.refusable and len(sc.steps) >= 3, sc.id


def test_to_scenario_keeps_the_body_and_references_earlier_responses():
    records = [
        {"method": "GET", "path": "/models", "json": None},
        {"method": "POST", "path": "/responses", "status": 200,
         "json": {"model": "m", "input": "call it", "client_metadata": {"x": "1"}},
         "response": {"id": "resp_1", "output": [
             {"type": "function_call", "id": "fc_1", "call_id": "call_1"},
             {"type": "message", "id": "msg_1"}, {"type": "message", "id": "msg_2"}]}},
        {"method": "POST", "path": "/responses", "status": 200,
         "json": {"model": "m", "previous_response_id": "resp_1", "input": [
             {"type": "function_call_output", "call_id": "call_1", "output": "resp_1 is here"},
             {"type": "item_reference", "id": "msg_2"}]}, "response": None},
    ]
    sc = to_scenario.build(records, client="c", version="1", package="p", task="a task")
    first, second = (s["request"]["json"] for s in sc["steps"])
    assert first == {"model": "{{model}}", "input": "call it", "client_metadata": {"x": "1"}}
    assert second["previous_response_id"] == "{{steps.request_1.response.id}}"
    call, ref = second["input"]
    assert call["call_id"] == "{{steps.request_1.response.output[type=function_call].call_id}}"
    assert call["output"] == "resp_1 is here"  # only whole values that are ids are replaced
    assert ref["id"] == "{{steps.request_1.response.output[2].id}}"  # two messages: by position
    assert sc["refusable"] is True and [s["expect"] for s in sc["steps"]] == [{"status": 200}] * 2
