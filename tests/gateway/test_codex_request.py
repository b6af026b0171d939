"""A request body exactly as Codex CLI 0.171.0 sent it to ``respcheck serve`` (captured by a
loopback recorder; only the working directory in its environment context was renamed): the
gateway takes it whole, nothing stripped.

What Codex 0.171.0 sends (``wire_api = "responses"``, ``codex exec``), every turn: ``model``,
``stream: true``, ``input`` (developer messages with its instructions and skills, a user message
with the environment context, the prompt; later turns add the previous turns' ``reasoning``
items with ``encrypted_content``, ``function_call`` and ``function_call_output`` items, each
with an ``id``), ``tools`` (functions ``exec_command``, ``write_stdin``, ``request_user_input``,
``view_image``, ``get_goal``, ``create_goal``, ``update_goal`` with ``strict: false``; a
``namespace`` ``multi_agent_v1`` of five functions; ``{"type": "web_search",
"external_web_access": false}``), ``tool_choice: "auto"``, ``parallel_tool_calls: true``,
``reasoning: {"summary": "auto"}``, ``store: false``, ``include:
["reasoning.encrypted_content"]``, ``prompt_cache_key`` (the thread id) and ``client_metadata``
(window, installation, thread, turn and session ids, and a JSON ``x-codex-turn-metadata``)."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "codex-0.171.0-first-turn.json"


def codex_body() -> dict:
    return json.loads(FIXTURE.read_text())


def test_the_fixture_has_what_made_codex_fail_before():
    body = codex_body()
    assert body["client_metadata"] and body["include"] == ["reasoning.encrypted_content"] and body["store"] is False
    assert {"namespace", "web_search", "function"} <= {t["type"] for t in body["tools"]}
    assert body["reasoning"] == {"summary": "auto"} and body["stream"] is True


def test_the_gateway_accepts_codexs_request_whole(client, target, stream, check_events):
    response, _, events = stream(client, codex_body())
    assert response.status_code == 200, events
    assert events[-1]["type"] == "response.completed"
    check_events(events)
    offered = [t["function"]["name"] for t in target.upstream.app.state.requests[-1]["tools"]]
    assert "exec_command" in offered and "multi_agent_v1__spawn_agent" in offered
    assert "web_search" not in offered  # no --web-search-profile: offered only, not to the model (policy.py)
