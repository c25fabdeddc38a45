"""Chat Completions messages → GenAI semconv message parts.

Input: the request's ``messages`` (dicts or SDK models). Output: the response's
choices. With content capture off every part keeps its type, ids and names but
loses its text (``content``, ``arguments``, ``response``, ``uri``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from convotel.message_parts import blob_part, content_text, image_part, join_text, text_part

from ._utils import as_list, get, parse_arguments, view

SYSTEM_ROLES = ("system", "developer")


def reasoning_of(fields: Mapping[str, Any]) -> str | None:
    """The reasoning of a message's (or delta's) ``view()``: ``reasoning_content`` (DeepSeek,
    vLLM, ...) or a string ``reasoning`` (OpenRouter, newer vLLM)."""
    value = fields.get("reasoning_content")
    if isinstance(value, str) and value:
        return value
    value = fields.get("reasoning")
    if isinstance(value, str) and value:
        return value
    return None


def content_parts(content: Any, capture: bool) -> list[dict[str, Any]]:
    """Parts of a message's ``content``: a string or a list of content parts."""
    if content is None:
        return []
    if isinstance(content, str):  # the usual message: ``text_part`` inlined, this runs per message per call
        if not content:
            return []
        return [{"type": "text", "content": content} if capture else {"type": "text"}]
    items = as_list(content)
    if items is None:
        return [text_part(content, capture)]
    parts: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, str):
            if item:
                parts.append(text_part(item, capture))
            continue
        kind = get(item, "type")
        if kind == "text":
            parts.append(text_part(get(item, "text") or "", capture))
        elif kind == "refusal":
            parts.append(text_part(get(item, "refusal") or "", capture))
        elif kind == "image_url":
            image = get(item, "image_url")  # {"url": ...}, or a bare URL
            parts.append(image_part(image if isinstance(image, str) else get(image, "url"), capture))
        elif kind == "input_audio":
            fmt = get(get(item, "input_audio"), "format")
            parts.append(blob_part("audio", f"audio/{fmt}" if isinstance(fmt, str) else None))
        elif kind == "file":
            part: dict[str, Any] = {"type": "file"}
            file_id = get(get(item, "file"), "file_id")
            if capture and isinstance(file_id, str):
                part["file_id"] = file_id
            parts.append(part)
        else:
            parts.append({"type": str(kind) if kind else "unknown"})
    return join_text(parts)


def tool_call_part(call: Any, capture: bool) -> dict[str, Any]:
    function = get(call, "function")
    if function is None and get(call, "custom") is not None:
        function = get(call, "custom")
        raw_args = get(function, "input")
    else:
        raw_args = get(function, "arguments")
    part: dict[str, Any] = {"type": "tool_call", "id": get(call, "id"), "name": get(function, "name")}
    if capture:
        part["arguments"] = parse_arguments(raw_args)
    return part


def _function_call_part(function_call: Any, capture: bool) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "tool_call", "id": None, "name": get(function_call, "name")}
    if capture:
        part["arguments"] = parse_arguments(get(function_call, "arguments"))
    return part


def assistant_parts(message: Any, capture: bool) -> list[dict[str, Any]]:
    fields = view(message)
    parts: list[dict[str, Any]] = []
    if fields.get("reasoning_content") or fields.get("reasoning"):  # most messages carry none: no call
        reasoning = reasoning_of(fields)
        if reasoning:
            parts.append(text_part(reasoning, capture, "reasoning"))
    content = fields.get("content")
    if content is not None:
        parts.extend(content_parts(content, capture))
    refusal = fields.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append(text_part(refusal, capture))
    tool_calls = fields.get("tool_calls")
    if tool_calls:
        for call in as_list(tool_calls) or ():
            parts.append(tool_call_part(call, capture))
    function_call = fields.get("function_call")
    if function_call is not None:
        parts.append(_function_call_part(function_call, capture))
    return parts


def leading_system(
    items: list[Any], capture: bool, parts_of: Callable[[Any, bool], list[dict[str, Any]]]
) -> tuple[list[dict[str, Any]] | None, int]:
    """(the parts of the leading system/developer messages or None, the index after them)."""
    system: list[dict[str, Any]] | None = None
    start = 0
    while start < len(items):
        fields = view(items[start])
        if fields.get("role") not in SYSTEM_ROLES:
            break
        system = system or []
        system.extend(parts_of(fields.get("content"), capture))
        start += 1
    return system, start


def input_messages(messages: Any, capture: bool) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """(system instruction parts or None, input messages) of a chat request's ``messages``."""
    items = as_list(messages)
    if items is None:
        return None, []
    system, start = leading_system(items, capture, content_parts)
    out = []
    for message in items[start:] if start else items:
        fields = view(message)
        role = fields.get("role")
        if role == "assistant":
            parts = assistant_parts(message, capture)
        elif role in ("tool", "function"):
            part: dict[str, Any] = {"type": "tool_call_response", "id": fields.get("tool_call_id")}
            if capture:
                part["response"] = content_text(fields.get("content"))
            parts = [part]
            role = "tool"
        else:
            if role in SYSTEM_ROLES:
                role = "system"
            parts = content_parts(fields.get("content"), capture)
        entry: dict[str, Any] = {"role": role if isinstance(role, str) else "user", "parts": parts}
        name = fields.get("name")
        if isinstance(name, str) and name:
            entry["name"] = name
        out.append(entry)
    return system, out


def tool_definitions(tools: Any, functions: Any, capture: bool) -> list[dict[str, Any]]:
    """``gen_ai.tool.definitions`` from ``tools`` (and legacy ``functions``)."""
    out: list[dict[str, Any]] = []
    for tool in as_list(tools) or ():
        kind = get(tool, "type") or "function"
        spec = get(tool, kind) or get(tool, "function") or tool
        out.append(_definition(str(kind), spec, capture))
    for spec in as_list(functions) or ():
        out.append(_definition("function", spec, capture))
    return out


def _definition(kind: str, spec: Any, capture: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": kind, "name": get(spec, "name")}
    if capture:
        description = get(spec, "description")
        if description is not None:
            entry["description"] = description
        parameters = get(spec, "parameters")
        if parameters is not None:
            entry["parameters"] = parameters
    return entry


def finish_reason_str(value: Any) -> str:
    """A choice's finish reason; ``"error"`` when the call never said (a cut stream)."""
    if value is None:
        return "error"
    return value if isinstance(value, str) else str(getattr(value, "value", value))
