"""Chat Completions messages → GenAI semconv message parts.

Input: the request's ``messages`` (dicts or SDK models). Output: the response's
choices. With content capture off every part keeps its type, ids and names but
loses its text (``content``, ``arguments``, ``response``, ``uri``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._utils import as_list, get, parse_arguments, view

SYSTEM_ROLES = ("system", "developer")


def text_part(text: Any, capture: bool, kind: str = "text") -> dict[str, Any]:
    return {"type": kind, "content": text if isinstance(text, str) else str(text)} if capture else {"type": kind}


def reasoning_text(message: Any) -> str | None:
    """``reasoning_content`` (DeepSeek, vLLM, ...) or a string ``reasoning`` (OpenRouter, newer vLLM)."""
    return reasoning_of(view(message))


def reasoning_of(fields: Mapping[str, Any]) -> str | None:
    """``reasoning_text`` of a message's ``view()``."""
    value = fields.get("reasoning_content")
    if isinstance(value, str) and value:
        return value
    value = fields.get("reasoning")
    if isinstance(value, str) and value:
        return value
    return None


def _data_uri_mime(url: str) -> str | None:
    head = url[5:].split(",", 1)[0]
    mime = head.split(";", 1)[0]
    return mime or None


def image_part(image: Any, capture: bool) -> dict[str, Any]:
    url = get(image, "url") if not isinstance(image, str) else image
    if isinstance(url, str) and url.startswith("data:"):
        # Inline bytes never go on the span: a blob part says an image was there.
        part: dict[str, Any] = {"type": "blob", "modality": "image"}
        mime = _data_uri_mime(url)
        if mime:
            part["mime_type"] = mime
        return part
    part = {"type": "uri", "modality": "image"}
    if capture and isinstance(url, str):
        part["uri"] = url
    return part


def content_parts(content: Any, capture: bool) -> list[dict[str, Any]]:
    """Parts of a message's ``content``: a string or a list of content parts."""
    if content is None:
        return []
    if isinstance(content, str):
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
            parts.append(image_part(get(item, "image_url"), capture))
        elif kind == "input_audio":
            audio = get(item, "input_audio")
            part: dict[str, Any] = {"type": "blob", "modality": "audio"}
            fmt = get(audio, "format")
            if isinstance(fmt, str):
                part["mime_type"] = f"audio/{fmt}"
            parts.append(part)
        elif kind == "file":
            part = {"type": "file"}
            file_id = get(get(item, "file"), "file_id")
            if capture and isinstance(file_id, str):
                part["file_id"] = file_id
            parts.append(part)
        else:
            parts.append({"type": str(kind) if kind else "unknown"})
    return join_text(parts)


TEXT_JOINER = "\n"


def join_text(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge runs of adjacent text parts into one (joined with a newline), so a list of
    text parts and the same text as one string describe the same message."""
    if len(parts) < 2:
        return parts
    out: list[dict[str, Any]] = []
    for part in parts:
        prev = out[-1] if out else None
        if prev is not None and part.get("type") == "text" and prev.get("type") == "text":
            if "content" in prev:
                out[-1] = {"type": "text", "content": prev["content"] + TEXT_JOINER + part.get("content", "")}
            continue
        out.append(part)
    return out


def content_text(content: Any) -> str:
    """Plain text of a ``content`` (string, or text parts joined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    items = as_list(content)
    if items is None:
        return str(content)
    texts = []
    for item in items:
        if isinstance(item, str):
            texts.append(item)
        elif get(item, "type") == "text":
            texts.append(get(item, "text") or "")
    return TEXT_JOINER.join(texts)


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
    if fields.get("reasoning_content") or fields.get("reasoning"):
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
