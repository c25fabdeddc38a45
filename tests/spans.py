"""Plain-data span records for mapping tests (no SDK, no I/O)."""

from __future__ import annotations

import json
from typing import Any

from convotel.records import SpanRecord

TRACE = "0af7651916cd43dd8448eb211c80319c"


def text(role: str, content: str | None) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "text"}
    if content is not None:
        part["content"] = content
    return {"role": role, "parts": [part]}


def user(content: str | None) -> dict[str, Any]:
    return text("user", content)


def assistant(content: str | None = None, calls: list[tuple[str, str, Any]] = (), finish: str | None = None,
              reasoning: str | None = None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if reasoning is not None:
        parts.append({"type": "reasoning", "content": reasoning})
    if content is not None:
        parts.append({"type": "text", "content": content})
    for call_id, name, args in calls:
        parts.append({"type": "tool_call", "id": call_id, "name": name, "arguments": args})
    message: dict[str, Any] = {"role": "assistant", "parts": parts}
    if finish:
        message["finish_reason"] = finish
    return message


def tool(call_id: str, response: str) -> dict[str, Any]:
    return {"role": "tool", "parts": [{"type": "tool_call_response", "id": call_id, "response": response}]}


def chat_span(inputs: list[dict[str, Any]], outputs: list[dict[str, Any]], *, span_id: str = "00f067aa0ba902b7",
              start_ns: int = 1_700_000_000_000_000_000, duration_ns: int = 250_000_000, conversation: str | None = "conv-1",
              error: str | None = None, **attrs: Any) -> SpanRecord:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.input.messages": json.dumps(inputs),
        "gen_ai.output.messages": json.dumps(outputs),
        **attrs,
    }
    if conversation:
        attributes["gen_ai.conversation.id"] = conversation
    if error:
        attributes["error.type"] = error
    return SpanRecord(TRACE, span_id, None, "chat gpt-4o-mini", start_ns, start_ns + duration_ns, attributes,
                      status_error=error is not None, status_message=f"{error}: boom" if error else None)


def tool_span(name: str, call_id: str | None, args: Any, result: Any, *, span_id: str = "1111111111111111",
              start_ns: int = 1_700_000_001_000_000_000, error: str | None = None, **attrs: Any) -> SpanRecord:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.call.arguments": json.dumps(args),
        "gen_ai.conversation.id": "conv-1",
        **attrs,
    }
    if call_id:
        attributes["gen_ai.tool.call.id"] = call_id
    if result is not None:
        attributes["gen_ai.tool.call.result"] = result if isinstance(result, str) else json.dumps(result)
    if error:
        attributes["error.type"] = error
    return SpanRecord(TRACE, span_id, None, f"execute_tool {name}", start_ns, start_ns + 5_000_000, attributes,
                      status_error=error is not None, status_message=error)
