"""Validation of ``input`` into normalized input items, the form ``GET .../input_items`` returns.

Accepted item types (anything else is refused with ``unsupported_parameter`` naming
``input[i].type``):

    message               roles user/system/developer -> ``ResponseInputMessageItem`` with
                          ``input_text``, ``input_image`` and ``input_file`` parts (content_parts.py:
                          what is accepted of each, and why ``file_id`` and ``file_url`` are
                          refused); role assistant -> ``ResponseOutputMessage`` with
                          ``output_text`` parts (assistant history fed back by a client), keeping
                          its ``phase`` (commentary / final_answer) when it has one
    function_call         a call the model made earlier (``ResponseFunctionToolCallItem``), keeping
                          its ``namespace`` when it has one
    function_call_output  the client's result for a call (``ResponseFunctionToolCallOutputItem``)
    reasoning             a reasoning item fed back by a client (vLLM's client pattern); kept in
                          the stored context, contributes nothing to the chat messages
    compaction            the item ``POST /v1/responses/compact`` made (compaction.py), expanded
                          back into the items it packed before anything is sent upstream
    mcp_approval_response the client's answer to an ``mcp_approval_request`` of the previous
                          response (``approval_request_id``, ``approve``; builtin/loop.py acts on it)
    item_reference        an item of an earlier stored response, by its ``id``; kept as
                          ``{"type", "id"}`` here and replaced by the stored item once the owner
                          is known (item_reference.py)
    mcp_list_tools, mcp_call, mcp_approval_request, code_interpreter_call, web_search_call
                          built-in tool items fed back by a stateless client: kept as sent (they
                          must carry their ``id``), shown to the model as the calls they record

Every normalized item carries an ``id``: the client's when it sent one, else a new one with the
prefix OpenAI uses (``msg_``, ``fc_``, ``fco_``, ``rs_``).
"""

from __future__ import annotations

from typing import Any

from reference_gateway.content_parts import MEDIA_PART_TYPES, media_part
from reference_gateway.errors import invalid, unsupported
from reference_gateway.ids import new_id

MESSAGE_ROLES = ("user", "system", "developer", "assistant")
TEXT_PART_TYPES = ("input_text", "output_text")
# An assistant message's phase (the SDK's ResponseOutputMessage.phase): clients resend it on
# follow-up requests; other roles have none.
MESSAGE_PHASES = ("commentary", "final_answer")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error message never echoes a huge value."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def type_error(param: str, expected: str, value: Any):
    return invalid(
        f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _required_string(item: dict, key: str, where: str) -> str:
    value = item.get(key)
    if value is None:
        raise invalid(f"Missing required parameter: '{where}.{key}'.", param=f"{where}.{key}",
                      code="missing_required_parameter")
    if not isinstance(value, str):
        raise type_error(f"{where}.{key}", "a string", value)
    return value


def _item_id(item: dict, where: str, prefix: str) -> str:
    given = item.get("id")
    if given is None:
        return new_id(prefix)
    if not isinstance(given, str) or not given:
        raise type_error(f"{where}.id", "a non-empty string", given)
    return given


def _texts(content: Any, where: str, field: str = "content", *, media: bool = False) -> list[str | dict]:
    """Texts of ``where.field``: a string, or an array of input_text/output_text parts; with
    ``media``, also ``input_image``/``input_file`` parts, each as its normalized part (a dict)."""
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise type_error(f"{where}.{field}", "a string or an array of content parts", content)
    texts: list[str | dict] = []
    for j, part in enumerate(content):
        part_where = f"{where}.{field}[{j}]"
        if not isinstance(part, dict):
            raise type_error(part_where, "an object", part)
        if part.get("type") is None:
            raise invalid(f"Missing required parameter: '{part_where}.type'.", param=f"{part_where}.type",
                          code="missing_required_parameter")
        if media and part.get("type") in MEDIA_PART_TYPES:
            texts.append(media_part(part, part_where))
            continue
        if part.get("type") not in TEXT_PART_TYPES:
            raise unsupported(f"{part_where}.type", f"content part type {shown(part.get('type'))}")
        if not isinstance(part.get("text"), str):
            raise type_error(f"{part_where}.text", "a string", part.get("text"))
        texts.append(part["text"])
    return texts


def _message(item: dict, where: str) -> dict:
    role = item.get("role")
    if role not in MESSAGE_ROLES:
        raise invalid(
            f"Invalid value for '{where}.role': expected one of {', '.join(MESSAGE_ROLES)}.",
            param=f"{where}.role",
            code="invalid_value" if role is not None else "missing_required_parameter",
        )
    texts = _texts(item.get("content"), where, media=role != "assistant")
    item_id = _item_id(item, where, "msg")
    phase = item.get("phase")
    if phase is not None and (role != "assistant" or phase not in MESSAGE_PHASES):
        raise invalid(f"Invalid value for '{where}.phase': an assistant message's phase is one of "
                      f"{', '.join(MESSAGE_PHASES)}.", param=f"{where}.phase")
    if role == "assistant":
        parts = [{"type": "output_text", "text": t, "annotations": [], "logprobs": []} for t in texts]
    else:
        parts = [{"type": "input_text", "text": t} if isinstance(t, str) else t for t in texts]
    normalized = {"id": item_id, "type": "message", "role": role, "content": parts, "status": "completed"}
    if phase is not None:
        normalized["phase"] = phase  # kept: stored, listed by input_items, sent to a native upstream
    return normalized


def _function_call(item: dict, where: str) -> dict:
    normalized = {
        "id": _item_id(item, where, "fc"),
        "type": "function_call",
        "call_id": _required_string(item, "call_id", where),
        "name": _required_string(item, "name", where),
        "arguments": _required_string(item, "arguments", where),
        "status": "completed",
    }
    namespace = item.get("namespace")
    if namespace is not None:  # a call to a function of a namespace tool (tools.py)
        if not isinstance(namespace, str):
            raise type_error(f"{where}.namespace", "a string", namespace)
        normalized["namespace"] = namespace
    return normalized


def _function_call_output(item: dict, where: str) -> dict:
    call_id = _required_string(item, "call_id", where)
    output = item.get("output")
    if output is None:
        raise invalid(f"Missing required parameter: '{where}.output'.", param=f"{where}.output",
                      code="missing_required_parameter")
    if isinstance(output, list):
        output = [{"type": "input_text", "text": t} for t in _texts(output, where, "output")]
    elif not isinstance(output, str):
        raise type_error(f"{where}.output", "a string or an array of content parts", output)
    return {"id": _item_id(item, where, "fco"), "type": "function_call_output", "call_id": call_id,
            "output": output, "status": "completed"}


def _reasoning(item: dict, where: str) -> dict:
    normalized = {"id": _item_id(item, where, "rs"), "type": "reasoning"}
    summary = item.get("summary")
    if summary is not None and not isinstance(summary, list):
        raise type_error(f"{where}.summary", "an array", summary)
    normalized["summary"] = summary or []
    content = item.get("content")
    if content is not None:
        if not isinstance(content, list):
            raise type_error(f"{where}.content", "an array", content)
        normalized["content"] = content
    if isinstance(item.get("encrypted_content"), str):
        normalized["encrypted_content"] = item["encrypted_content"]
    normalized["status"] = "completed"
    return normalized


def _approval_response(item: dict, where: str) -> dict:
    request_id = _required_string(item, "approval_request_id", where)
    approve = item.get("approve")
    if not isinstance(approve, bool):
        raise type_error(f"{where}.approve", "a boolean", approve)
    reason = item.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise type_error(f"{where}.reason", "a string", reason)
    return {"id": _item_id(item, where, "mcpa"), "type": "mcp_approval_response",
            "approval_request_id": request_id, "approve": approve, "reason": reason}


# Built-in tool items a client may send back, and the string fields each must have.
FED_BACK_ITEMS = {
    "mcp_list_tools": ("id", "server_label"),
    "mcp_call": ("id", "server_label", "name", "arguments"),
    "mcp_approval_request": ("id", "server_label", "name", "arguments"),
    "code_interpreter_call": ("id",),
    "web_search_call": ("id",),
}


def _fed_back(item: dict, where: str) -> dict:
    for key in FED_BACK_ITEMS[item["type"]]:
        _required_string(item, key, where)
    return dict(item)


def _compaction(item: dict, where: str) -> dict:
    """A ``compaction`` item from ``POST /v1/responses/compact`` (compaction.py); its blob is
    opened by ``Gateway.conversation`` (which knows the tenant it was sealed for), before anything
    is sent upstream."""
    blob = _required_string(item, "encrypted_content", where)
    return {"id": _item_id(item, where, "cmp"), "type": "compaction", "encrypted_content": blob}


def _item_reference(item: dict, where: str) -> dict:
    """Checked here, resolved by item_reference.resolve (it needs the store and the owner)."""
    item_id = item.get("id")
    if item_id is None:
        raise invalid(f"Missing required parameter: '{where}.id'.", param=f"{where}.id",
                      code="missing_required_parameter")
    if not isinstance(item_id, str) or not item_id:
        raise type_error(f"{where}.id", "a non-empty string", item_id)
    return {"type": "item_reference", "id": item_id}


ITEM_PARSERS = {
    "item_reference": _item_reference,
    "compaction": _compaction,
    "mcp_approval_response": _approval_response,
    **{kind: _fed_back for kind in FED_BACK_ITEMS},
    "message": _message,
    "function_call": _function_call,
    "function_call_output": _function_call_output,
    "reasoning": _reasoning,
}


def parse_input(value: Any) -> list[dict]:
    """``input`` (a string or an array of items) -> normalized input items."""
    if isinstance(value, str):
        return [_message({"role": "user", "content": value}, "input")]
    if not isinstance(value, list):
        raise type_error("input", "a string or an array of input items", value)
    items = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise type_error(where, "an object", item)
        kind = item.get("type", "message")
        if not isinstance(kind, str):
            raise type_error(f"{where}.type", "a string", kind)
        parse = ITEM_PARSERS.get(kind)
        if parse is None:
            raise unsupported(f"{where}.type", f"input item type {shown(kind)}")
        items.append(parse(item, where))
    return items
