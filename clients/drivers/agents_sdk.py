"""Drive the OpenAI Agents SDK (openai-agents, pinned in clients/requirements.txt) against a
Responses server. Run with .venv-clients/bin/python (scripts/install-clients.sh).

    .venv-clients/bin/python clients/drivers/agents_sdk.py --base-url URL --model M [--api-key K]
                                                       [--deadline S]

Prints one JSON line: {"client", "version", "status", "steps": [{"step", "status", "error"}],
"error"} (harness/run/clients.py reads it). The model is ``OpenAIResponsesModel`` on an
``AsyncOpenAI`` client pointed at the server, tracing off (nothing leaves loopback):

  text       ``Runner.run`` of an agent without tools; passes on a non-empty final output.
  tool       ``Runner.run_streamed`` of an agent with a ``@function_tool`` get_weather, asked to
             call it, ``tool_choice="required"`` (the SDK resets it to auto once the tool ran, so
             the run ends: the server's tool plumbing is judged, not whether the model would
             have chosen the tool); passes when the tool ran (a tool call item and its output
             item) and the run ended in a non-empty final output.
  follow_up  ``Runner.run`` with ``previous_response_id`` = the tool run's last response id (the
             text step's when the tool run left none); passes on a non-empty final output.

The first error is the SDK's own exception, as ``ClassName: message``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from importlib import metadata

CLIENT = "agents"
TEXT_PROMPT = "Say hello in one short sentence."
TOOL_PROMPT = "Call the tool get_weather for Paris, then tell me the weather there."
FOLLOW_UP_PROMPT = "Now say goodbye in one short sentence."
MAX_ERROR_CHARS = 600


def _cut(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 3] + "..."


async def drive(base_url: str, model_name: str, api_key: str, deadline_s: float) -> list[dict]:
    from agents import (
        Agent,
        ModelSettings,
        OpenAIResponsesModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )
    from openai import AsyncOpenAI

    set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=deadline_s)
    model = OpenAIResponsesModel(model=model_name, openai_client=client)
    ran: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        ran.append(city)
        return json.dumps({"city": city, "temperature_c": 18, "sky": "clear"})

    plain = Agent(name="respcheck", instructions="You are concise.", model=model)
    with_tool = Agent(name="respcheck-tools", instructions="Use tools when asked.", model=model,
                      tools=[get_weather], model_settings=ModelSettings(tool_choice="required"))
    steps: list[dict] = []

    async def step(name: str, body) -> None:
        started = time.monotonic()
        try:
            error = await asyncio.wait_for(body(), deadline_s)
        except TimeoutError:
            error = f"no answer within {deadline_s:g} s"
        except Exception as exc:  # noqa: BLE001 (the client's own error is the finding)
            error = f"{type(exc).__name__}: {exc}"
        steps.append({"step": name, "status": "fail" if error else "pass",
                      "duration_s": round(time.monotonic() - started, 3),
                      "error": _cut(error) if error else None})

    last: dict = {}

    async def text():
        result = await Runner.run(plain, TEXT_PROMPT)
        last["id"] = result.last_response_id
        return None if str(result.final_output or "").strip() else "empty final output"

    async def tool():
        result = Runner.run_streamed(with_tool, TOOL_PROMPT)
        async for _ in result.stream_events():
            pass
        last["id"] = result.last_response_id or last.get("id")
        kinds = {item.type for item in result.new_items}
        if not ran or "tool_call_output_item" not in kinds:
            return "the agent did not call get_weather (no tool call in the run)"
        if not str(result.final_output or "").strip():
            return "empty final output after the tool output"
        return None

    async def follow_up():
        if not last.get("id"):
            return "no earlier step left a response id to continue from"
        result = await Runner.run(plain, FOLLOW_UP_PROMPT, previous_response_id=last["id"])
        return None if str(result.final_output or "").strip() else "empty final output"

    await step("text", text)
    await step("tool", tool)
    await step("follow_up", follow_up)
    await client.close()
    return steps


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base-url", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--api-key", default="respcheck")
    p.add_argument("--deadline", type=float, default=120.0, help="seconds per step")
    a = p.parse_args()
    result = {"client": CLIENT, "version": None, "status": "fail", "steps": [], "error": None}
    try:
        result["version"] = metadata.version("openai-agents")
        import agents  # noqa: F401
    except (ImportError, metadata.PackageNotFoundError):
        result.update(status="skip", error="openai-agents is not installed: run "
                      "scripts/install-clients.sh")
        print(json.dumps(result))
        return 0
    result["steps"] = asyncio.run(drive(a.base_url.rstrip("/"), a.model, a.api_key or "respcheck",
                                        a.deadline))
    failed = [s for s in result["steps"] if s["status"] != "pass"]
    result["status"] = "fail" if failed else "pass"
    result["error"] = next((f"{s['step']}: {s['error']}" for s in failed if s["error"]), None)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
