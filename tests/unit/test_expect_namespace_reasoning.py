"""harness/run/expect.py ``namespaced_calls`` and ``encrypted_reasoning``: right and broken answers."""

from __future__ import annotations

from harness.core.findings import FindingLog
from harness.run.expect import _encrypted_reasoning, _namespaced_calls


class _Answer:
    def __init__(self, output: list[dict]) -> None:
        self.response = {"output": output}
        self.log = FindingLog()


def call(name: str, namespace: str | None) -> dict:
    return {"type": "function_call", "call_id": "c", "name": name, "arguments": "{}", "namespace": namespace}


def failed(handler, want, output) -> set[str]:
    answer = _Answer(output)
    handler(want, answer)
    return {f.check for f in answer.log.findings}


def test_namespaced_calls():
    want = {"namespace": "crm", "names": ["lookup"]}
    assert failed(_namespaced_calls, want, [call("lookup", "crm")]) == set()
    for output in ([], [call("lookup", None)], [call("crm__lookup", None)], [call("other", "crm")]):
        assert failed(_namespaced_calls, want, output) == {"tools.namespace.call"}, output


def test_encrypted_reasoning():
    good = [{"type": "reasoning", "summary": [], "encrypted_content": "blob"}, {"type": "message"}]
    assert failed(_encrypted_reasoning, True, good) == set()
    assert failed(_encrypted_reasoning, True, [{"type": "message"}]) == set()  # nothing to judge
    for bad in ({"type": "reasoning", "summary": []}, {"type": "reasoning", "summary": [], "encrypted_content": ""}):
        assert failed(_encrypted_reasoning, True, [bad]) == {"state.reasoning.encrypted_content"}
