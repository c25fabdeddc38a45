"""What differs between instrumented SDK methods, in one record per operation."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import _chat, _embeddings, _responses
from ._call import Call


@dataclass(frozen=True)
class Operation:
    kind: str  # for logs: "chat", "responses", "embeddings"
    operation: str  # gen_ai.operation.name
    request_attributes: Callable[[Mapping[str, Any]], dict[str, Any]]  # cheap, at span start
    content_attributes: Callable[[Mapping[str, Any], bool], dict[str, Any]]  # messages, recording spans only
    apply_response: Callable[[Call, Any], None]  # a complete response (SDK model or decoded JSON)
    stream_state: Callable[[Call], Any] | None = None  # a StreamState for streamed results


CHAT = Operation(
    kind="chat",
    operation=_chat.OPERATION,
    request_attributes=_chat.request_attributes,
    content_attributes=_chat.request_content_attributes,
    apply_response=lambda call, response: _chat.apply_response(call.span, response, call.capture),
    stream_state=lambda call: _chat.ChatStreamState(call.capture),
)

RESPONSES = Operation(
    kind="responses",
    operation=_responses.OPERATION,
    request_attributes=_responses.request_attributes,
    content_attributes=_responses.request_content_attributes,
    apply_response=lambda call, response: _responses.apply_response(
        call.span, response, call.capture, conversation_known=call.conversation_known
    ),
    stream_state=lambda call: _responses.ResponsesStreamState(call.capture, call.conversation_known),
)

EMBEDDINGS = Operation(
    kind="embeddings",
    operation=_embeddings.OPERATION,
    request_attributes=_embeddings.request_attributes,
    content_attributes=_embeddings.request_content_attributes,
    apply_response=lambda call, response: _embeddings.apply_response(call.span, response, call.capture),
)
