"""LangChain messages, generations and prompt templates → GenAI semconv values.

The parts format is exactly the one ``convotel-openai`` records for the same
request (roles user/assistant/tool/system; parts text, reasoning, tool_call,
tool_call_response, uri/blob; both build them with :mod:`convotel.message_parts`),
so a history seen through LangChain and through the OpenAI client hashes to the
same message ids. With content capture off every part keeps its type, ids and
names but loses its text.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

from convotel.instrumentation import json_attr
from convotel.message_parts import blob_part, content_text, image_part, join_text, text_part

#: ``isinstance(x, _MAPPING)`` is ``isinstance(x, Mapping)``, but a plain dict (what LangChain
#: hands over) matches ``dict`` without the ABC's Python-level check
_MAPPING = (dict, Mapping)

_ROLES = {
    "human": "user",
    "ai": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "tool",
    "developer": "system",
}


def role_of(message: Any) -> str:
    kind = getattr(message, "type", None)
    if not isinstance(kind, str):
        return "user"
    role = _ROLES.get(kind)  # the common case: human, ai, system, tool
    if role is not None:
        return role
    if kind.endswith("Chunk"):  # AIMessageChunk, HumanMessageChunk, ...
        kind = kind[: -len("MessageChunk")].lower()
    if kind == "chat":
        role = getattr(message, "role", None)
        return _ROLES.get(role, role) if isinstance(role, str) and role else "user"
    return _ROLES.get(kind, kind)


def _image(block: Mapping[str, Any], capture: bool) -> dict[str, Any]:
    """An OpenAI-style ``image_url`` block or a standard ``image`` block (by URL or inline base64)."""
    url = block.get("image_url")
    if isinstance(url, Mapping):
        url = url.get("url")
    if url is None:
        url = block.get("url")
    if isinstance(url, str):
        return image_part(url, capture)
    return blob_part("image", block.get("mime_type"))


def _reasoning_text(block: Mapping[str, Any]) -> str:
    for key in ("reasoning", "thinking", "text"):
        value = block.get(key)
        if isinstance(value, str):
            return value
    summary = block.get("summary")
    if isinstance(summary, list):
        return "\n".join(s.get("text", "") for s in summary if isinstance(s, Mapping) and s.get("text"))
    return ""


def content_parts(content: Any, capture: bool, *, with_reasoning: bool = False) -> list[dict[str, Any]]:
    """Parts of a message's ``content`` (a string or a list of content blocks)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [text_part(content, capture)] if content else []
    if not isinstance(content, (list, tuple)):
        return [text_part(content, capture)]
    parts: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, str):
            if block:
                parts.append(text_part(block, capture))
            continue
        if not isinstance(block, _MAPPING):
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(text_part(block.get("text") or "", capture))
        elif kind in ("reasoning", "thinking"):
            if with_reasoning:
                parts.append(text_part(_reasoning_text(block), capture, "reasoning"))
        elif kind in ("image_url", "image"):
            parts.append(_image(block, capture))
        elif kind in ("tool_call", "tool_use", "function_call", "tool_call_chunk", "redacted_thinking"):
            continue  # tool calls come from ``message.tool_calls``
        else:
            parts.append({"type": str(kind) if kind else "unknown"})
    return join_text(parts)


def assistant_parts(message: Any, capture: bool) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    extra = getattr(message, "additional_kwargs", None)
    if extra and isinstance(extra, _MAPPING):
        reasoning = extra.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            parts.append(text_part(reasoning, capture, "reasoning"))
    content = getattr(message, "content", None)
    if content:  # a reply that only calls tools has none: no call
        parts.extend(content_parts(content, capture, with_reasoning=True))
    for call in getattr(message, "tool_calls", None) or ():
        part: dict[str, Any] = {"type": "tool_call", "id": call.get("id"), "name": call.get("name")}
        if capture:
            part["arguments"] = call.get("args")
        parts.append(part)
    return parts


def message_entry(message: Any, capture: bool, role: str | None = None) -> dict[str, Any]:
    """An input message (``role``: its :func:`role_of`, when the caller has it)."""
    if role is None:
        role = role_of(message)
    if role == "assistant":
        parts = assistant_parts(message, capture)
    elif role == "tool":
        part: dict[str, Any] = {"type": "tool_call_response", "id": getattr(message, "tool_call_id", None)}
        if capture:
            part["response"] = content_text(getattr(message, "content", None))
        parts = [part]
    else:
        parts = content_parts(getattr(message, "content", None), capture)
    entry: dict[str, Any] = {"role": role, "parts": parts}
    if role != "tool":
        name = getattr(message, "name", None)
        if isinstance(name, str) and name:
            entry["name"] = name
    return entry


Parts = list[dict[str, Any]]


def input_messages(messages: Sequence[Any], capture: bool) -> tuple[Parts | None, list[str], Parts]:
    """(system instruction parts or None, leading system texts, input messages) of a chat request."""
    system: list[dict[str, Any]] | None = None
    texts: list[str] = []
    entries: Parts = []
    for message in messages:
        role = role_of(message)
        if role == "system" and not entries:  # the leading system messages are the instructions
            content = getattr(message, "content", None)
            if system is None:
                system = []
            system.extend(content_parts(content, capture))
            texts.append(content_text(content))
        else:
            entries.append(message_entry(message, capture, role))
    return system, texts, entries


def finish_reason(generation: Any) -> str | None:
    info = getattr(generation, "generation_info", None)
    reason = info.get("finish_reason") if info and isinstance(info, _MAPPING) else None
    if reason is None:
        meta = getattr(getattr(generation, "message", None), "response_metadata", None) or {}
        reason = meta.get("finish_reason") or meta.get("stop_reason")
    return str(reason) if reason is not None else None


def output_message(generation: Any, capture: bool) -> dict[str, Any]:
    message = getattr(generation, "message", None)
    if message is not None:
        parts = assistant_parts(message, capture)
    else:
        text = getattr(generation, "text", "")
        parts = [text_part(text, capture)] if text else []
    out: dict[str, Any] = {"role": "assistant", "parts": parts}
    reason = finish_reason(generation)
    if reason is not None:
        out["finish_reason"] = reason
    return out


def is_text_only(generation: Any) -> bool:
    message = getattr(generation, "message", None)
    if message is None:
        return bool(getattr(generation, "text", ""))
    return not getattr(message, "tool_calls", None)


# -- prompt templates -----------------------------------------------------------------------

_formatter = string.Formatter()


def _placeholders(template: str, template_format: str) -> str:
    """An f-string template with Greenflash's ``{{variable}}`` placeholders (mustache stays as is)."""
    if template_format != "f-string":
        return template
    try:
        pieces = []
        for literal, field, _spec, _conv in _formatter.parse(template):
            pieces.append(literal)
            if field is not None:
                pieces.append("{{" + field + "}}")
        return "".join(pieces)
    except ValueError:
        return template


def _kwargs(node: Any) -> Mapping[str, Any]:
    if isinstance(node, _MAPPING):
        value = node.get("kwargs")
        if isinstance(value, _MAPPING):
            return value
    return {}


def _class_name(node: Any) -> str:
    if isinstance(node, _MAPPING):
        ident = node.get("id")
        if isinstance(ident, list) and ident:
            return str(ident[-1])
    return ""


#: serialized ``ChatPromptTemplate`` (LangChain caches one per template object) → its system templates
_templates: dict[int, tuple[Any, list[tuple[str, list[str]]] | None]] = {}
_MAX_TEMPLATES = 64


def system_templates(serialized: Any) -> list[tuple[str, list[str]]] | None:
    """(template, variable names) of each system message of a serialized ``ChatPromptTemplate``."""
    if _class_name(serialized) != "ChatPromptTemplate":
        return None
    cached = _templates.get(id(serialized))
    if cached is not None and cached[0] is serialized:
        return cached[1]
    found = _system_templates(serialized)
    if len(_templates) >= _MAX_TEMPLATES:
        _templates.clear()
    _templates[id(serialized)] = (serialized, found)
    return found


def _system_templates(serialized: Any) -> list[tuple[str, list[str]]] | None:
    found: list[tuple[str, list[str]]] = []
    for message in _kwargs(serialized).get("messages") or ():
        if _class_name(message) != "SystemMessagePromptTemplate":
            continue
        prompt = _kwargs(_kwargs(message).get("prompt"))
        template = prompt.get("template")
        if not isinstance(template, str):
            continue
        names = [str(v) for v in prompt.get("input_variables") or ()]
        found.append((_placeholders(template, str(prompt.get("template_format") or "f-string")), names))
    return found or None


def _variable(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json_attr(value)


def system_prompt(templates: list[tuple[str, list[str]]], inputs: Any) -> dict[str, Any]:
    """Greenflash ``systemPrompt`` ``{components, variables}`` for these system templates and inputs."""
    names = [n for _t, vs in templates for n in vs]
    variables: dict[str, str] = {}
    if isinstance(inputs, Mapping):
        for name in names:
            if name in inputs:
                variables[name] = _variable(inputs[name])
    elif len(names) == 1 and inputs is not None:
        variables[names[0]] = _variable(inputs)
    prompt: dict[str, Any] = {"components": [{"type": "system", "content": t} for t, _vs in templates]}
    if variables:
        prompt["variables"] = variables
    return prompt


def rendered_system_texts(prompt_value: Any) -> tuple[str, ...] | None:
    """Texts of the leading system messages a prompt produced (a ``ChatPromptValue``)."""
    messages = getattr(prompt_value, "messages", None)
    if not isinstance(messages, list):
        return None
    texts = []
    for message in messages:
        if role_of(message) != "system":
            break
        texts.append(content_text(getattr(message, "content", None)))
    return tuple(texts) or None
