"""Each pinned real client (clients/drivers/) against the embedded reference gateway: a text
turn, a tool round and a follow-up must pass; a failing client fails this test with the client's
own error (the driver's first error, quoted in the assertion message).

(Codex was a strict xfail until branch `accept` made the gateway take its client_metadata,
include, namespace tools, web_search fields and reasoning.summary; the AI SDK one until branch
`itemref` made it resolve the `item_reference` items of its follow-up turn.)
"""

from __future__ import annotations

import pytest
from client_install import require_installed

from harness.run import clients as real_clients

BY_NAME = {c.name: c for c in real_clients.CLIENTS}
XFAIL: dict[str, str] = {}  # client name -> why it fails today (a strict xfail); none does


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=XFAIL[n])) if n in XFAIL else n
    for n in real_clients.CLIENT_NAMES])
def test_client_completes_text_tool_and_follow_up(name, gateway_target):
    client = BY_NAME[name]
    require_installed(client)
    entry = real_clients.run_client(client, gateway_target, step_deadline_s=60)
    assert entry["version"], entry
    assert entry["status"] == "pass", f"{name} {entry['version']}: {entry['error']}"
    assert [s["status"] for s in entry["steps"]] == ["pass"] * 3, entry
