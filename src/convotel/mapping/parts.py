"""Read GenAI semconv message attributes (``gen_ai.*.messages``) into plain values.

Tolerant by design: attributes come from any instrumentor, in-process or over
OTLP, so a malformed value degrades to "no messages" rather than an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(slots=True)
class ToolCall:
    id: str | None
    name: str
    arguments: Any = None  # parsed JSON, the raw string, or None when content is not captured


@dataclass(slots=True)
class ChatMessage:
    role: str
    text: str | None = None
    reasoning: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # role "tool": the call this answers
    tool_response: Any = None
    finish_reason: str | None = None
    text_withheld: bool = False  # text existed but content capture was off
    reasoning_withheld: bool = False

    @property
    def has_text(self) -> bool:
        return bool(self.text) or self.text_withheld

    @property
    def has_reasoning(self) -> bool:
        return bool(self.reasoning) or self.reasoning_withheld

    def canonical(self) -> str:
        """What identifies this message in a history: role, text and tool call ids.

        Reasoning and tool arguments are left out: clients drop or reformat them
        when they resend history, and the message must keep its id.
        """
        calls = ",".join(c.id or c.name for c in self.tool_calls)
        return f"{self.role}\x1f{(self.text or '').strip()}\x1f{calls}\x1f{self.tool_call_id or ''}"


#: What a JSON text can start with: other strings (a tool's plain-text result, say) are not
#: handed to the parser, whose failure (an exception) costs more than the parse.
_JSON_STARTS = frozenset('{["-0123456789tfn \t\r\n')


def load_json(value: Any) -> Any:
    """Decode a JSON string attribute; structured values pass through; garbage gives None."""
    if isinstance(value, str):
        if not value or value[0] not in _JSON_STARTS:
            return None
    elif not isinstance(value, bytes):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


def _join(texts: list[str]) -> str | None:
    return "\n".join(texts) if texts else None


def _parse_arguments(value: Any) -> Any:
    if isinstance(value, str):
        decoded = load_json(value)
        return value if decoded is None else decoded
    return value


def as_text(value: Any) -> str | None:
    """Message content as text: strings as they are, anything else as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=str).decode()


def _from_parts(role: str, parts: list[Any], finish_reason: str | None) -> ChatMessage:
    if len(parts) == 1:  # the usual message: one text part (the general loop below gives the same)
        part = parts[0]
        if type(part) is dict and part.get("type") == "text":
            content = part.get("content")
            if type(content) is str:
                return ChatMessage(role, content or None, None, (), None, None, finish_reason)
    texts: list[str] = []
    reasoning: list[str] = []
    # A part without "content" was withheld (capture off): there was text, we may not see it.
    text_withheld = reasoning_withheld = False
    calls: list[ToolCall] = []
    response_id: str | None = None
    response: Any = None
    for part in parts:
        if type(part) is not dict and not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind == "text":
            text_withheld = text_withheld or "content" not in part
            content = part.get("content")
            if content and isinstance(content, str):
                texts.append(content)
        elif kind == "reasoning":
            reasoning_withheld = reasoning_withheld or "content" not in part
            content = part.get("content")
            if content and isinstance(content, str):
                reasoning.append(content)
        elif kind == "tool_call":
            calls.append(ToolCall(part.get("id") or None, str(part.get("name") or "unknown_tool"),
                                  _parse_arguments(part.get("arguments"))))
        elif kind == "tool_call_response":
            response_id = part.get("id") or None
            response = part.get("response")
    return ChatMessage(role, _join(texts), _join(reasoning), tuple(calls), response_id, response, finish_reason,
                       text_withheld, reasoning_withheld)


def _from_openai_shape(raw: Mapping[str, Any], role: str) -> ChatMessage:
    # Older instrumentations record OpenAI-shaped messages: {role, content, tool_calls, tool_call_id}.
    calls = tuple(
        ToolCall(
            id=c.get("id"),
            name=str((c.get("function") or {}).get("name") or c.get("name") or "unknown_tool"),
            arguments=_parse_arguments((c.get("function") or {}).get("arguments", c.get("arguments"))),
        )
        for c in raw.get("tool_calls") or ()
        if isinstance(c, Mapping)
    )
    content = raw.get("content")
    if role == "tool":
        return ChatMessage(role=role, tool_call_id=raw.get("tool_call_id") or raw.get("id"), tool_response=content)
    return ChatMessage(role=role, text=as_text(content), tool_calls=calls,
                       finish_reason=raw.get("finish_reason"))


def parse_messages(value: Any) -> list[ChatMessage]:
    """``gen_ai.input.messages`` / ``gen_ai.output.messages`` → messages (malformed entries skipped)."""
    decoded = load_json(value)
    if not isinstance(decoded, list):
        return []
    messages: list[ChatMessage] = []
    for raw in decoded:
        if type(raw) is not dict and not isinstance(raw, Mapping):
            continue
        role = str(raw.get("role") or "user")
        parts = raw.get("parts")
        if isinstance(parts, list):
            messages.append(_from_parts(role, parts, raw.get("finish_reason")))
        else:
            messages.append(_from_openai_shape(raw, role))
    return messages


def parse_text_parts(value: Any) -> str | None:
    """``gen_ai.system_instructions`` (a list of parts, or a plain string) → text."""
    decoded = load_json(value)
    if decoded is None and isinstance(value, str):
        return value
    if isinstance(decoded, str):
        return decoded
    if not isinstance(decoded, list):
        return None
    texts = [p["content"] for p in decoded if isinstance(p, Mapping) and isinstance(p.get("content"), str)]
    return _join(texts)


def as_object(value: Any) -> dict[str, Any] | None:
    """Greenflash ``input`` / ``output`` must be objects: wrap anything else as ``{"value": ...}``."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value
    if isinstance(value, Mapping):
        return dict(value)
    return {"value": value}
