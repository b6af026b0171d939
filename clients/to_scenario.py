"""Turn a recording of clients/capture.py into a scenario of suites/scenarios/clients/.

    .venv/bin/python clients/to_scenario.py RECORDING.jsonl --client codex --version 0.171.0 \
        --package @openai/codex --out suites/scenarios/clients/codex_text_tool_follow_up.yaml

Each recorded ``POST /responses`` becomes one step whose body is the client's, byte for byte in
meaning, except what must differ on another server: ``model`` is ``{{model}}``, and a value that
an earlier step's Response produced (its ``id``, an output item's ``id`` or ``call_id``) becomes
a reference to that step (``{{steps.request_1.response.id}}``,
``{{steps.request_1.response.output[type=function_call].call_id}}``), so the chain holds on any
server. Each step expects 200; the scenario is refusable: a clean 4xx envelope says the server
does not take that client's request (``unsupported``), a 5xx, a broken stream or a wrong body
fails. The client's name and version are in the file's header, title and description.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml


def _references(name: str, response: dict | None) -> dict[str, str]:
    """The values of one step's Response that later requests may carry, each with the reference
    that finds it again on another server."""
    if not isinstance(response, dict):
        return {}
    refs = {}
    if isinstance(response.get("id"), str):
        refs[response["id"]] = f"{{{{steps.{name}.response.id}}}}"
    items = [i for i in response.get("output") or [] if isinstance(i, dict)]
    for n, item in enumerate(items):
        same_type = [i for i in items if i.get("type") == item.get("type")]
        where = f"[type={item.get('type')}]" if len(same_type) == 1 else f"[{n}]"
        for key in ("id", "call_id"):
            if isinstance(item.get(key), str):
                refs.setdefault(item[key], f"{{{{steps.{name}.response.output{where}.{key}}}}}")
    return refs


def _substitute(value: Any, refs: dict[str, str]) -> Any:
    if isinstance(value, str):
        return refs.get(value, value)
    if isinstance(value, list):
        return [_substitute(v, refs) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, refs) for k, v in value.items()}
    return value


def build(records: list[dict], *, client: str, version: str, package: str,
          task: str) -> dict:
    steps, refs = [], {}
    for record in records:
        if record.get("method") != "POST" or record.get("path") != "/responses":
            continue
        body = record.get("json")
        if not isinstance(body, dict):
            continue
        name = f"request_{len(steps) + 1}"
        sent = _substitute({k: v for k, v in body.items()}, refs)
        if "model" in sent:
            sent["model"] = "{{model}}"
        steps.append({"name": name, "request": {"json": sent}, "expect": {"status": 200}})
        refs.update(_references(name, record.get("response")))
    return {
        "title": f"{client} {version}: the requests of {task}, replayed",
        "feature": "clients",
        "refusable": True,
        "description": (f"The exact request bodies that {package} {version} sent for {task} "
                        "(clients/drivers/), captured through clients/capture.py and replayed "
                        "in order; model and ids of earlier responses are references. "
                        f"unsupported: the server refuses what {client} sends."),
        "steps": steps,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("recording")
    p.add_argument("--client", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--package", required=True)
    p.add_argument("--task", default="a text turn, a tool round and a follow-up")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    records = [json.loads(line) for line in Path(a.recording).read_text().splitlines() if line]
    scenario = build(records, client=a.client, version=a.version, package=a.package, task=a.task)
    header = (f"# client: {a.client} {a.version} ({a.package})\n"
              f"# Captured by clients/capture.py from clients/drivers/ and written by "
              f"clients/to_scenario.py (regenerate: README, \"Will my client work?\").\n")
    Path(a.out).write_text(header + yaml.safe_dump(scenario, sort_keys=False, allow_unicode=True,
                                                   width=100), encoding="utf-8")


if __name__ == "__main__":
    main()
