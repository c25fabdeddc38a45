"""What the mapping produces and delivery sends: messages grouped per conversation.

Field names here are Python's; :meth:`Message.to_wire` and
:meth:`ConversationBatch.to_wire` give Greenflash's ``POST /v1/messages`` wire
names. Sinks for other APIs translate from these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Final, Literal

MessageType = Literal[
    "user_message",
    "assistant_message",
    "system_message",
    "final_response",
    "thought",
    "tool_call",
    "observation",
    "retrieval",
    "memory_read",
    "memory_write",
    "chain_start",
    "chain_end",
    "embedding",
    "tool_error",
    "callback",
    "llm",
    "task",
    "workflow",
]
MESSAGE_TYPES: Final[frozenset[str]] = frozenset(MessageType.__args__)  # type: ignore[attr-defined]

DEFAULT_USER_ID: Final = "anonymous"


# The last second and its ``%``-template, and the last minute and its prefix: each one tuple,
# replaced atomically (safe across threads).
_last_second: tuple[int, str] = (-1, "")
_last_minute: tuple[int, str] = (-1, "")


def iso_from_ns(ns: int) -> str:
    """RFC 3339 UTC timestamp with microseconds (``createdAt``).

    Called once per message. Messages of a batch mostly share their second, else their minute,
    so both are kept formatted: a new second of the same minute costs one small format, not a
    ``strftime``.
    """
    global _last_second, _last_minute
    second = ns // 1_000_000_000
    cached_second, template = _last_second
    if cached_second != second:
        minute, prefix = _last_minute
        if second // 60 != minute:
            minute = second // 60
            prefix = datetime.fromtimestamp(minute * 60, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:")
            _last_minute = (minute, prefix)
        template = f"{prefix}{second % 60:02d}.%06dZ"
        _last_second = (second, template)
    return template % (ns // 1000 % 1_000_000)


@dataclass(slots=True)
class Message:
    """One conversation message. A value: change one with :meth:`with_changes`, which copies (not a
    frozen dataclass only because the mapping builds several per span: see ``convotel.records``)."""

    external_message_id: str
    message_type: MessageType
    created_at_ns: int
    content: str | None = None
    parent_external_message_id: str | None = None
    tool_name: str | None = None
    input: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    model: str | None = None
    context: str | None = None
    properties: dict[str, Any] | None = None

    def with_changes(self, **changes: Any) -> Message:
        return replace(self, **changes)

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "externalMessageId": self.external_message_id,
            "messageType": self.message_type,
            "createdAt": iso_from_ns(self.created_at_ns),
        }
        if self.content is not None:
            wire["content"] = self.content
        if self.parent_external_message_id is not None:
            wire["parentExternalMessageId"] = self.parent_external_message_id
        if self.tool_name is not None:
            wire["toolName"] = self.tool_name
        if self.input is not None:
            wire["input"] = self.input
        if self.output is not None:
            wire["output"] = self.output
        if self.model is not None:
            wire["model"] = self.model
        if self.context is not None:
            wire["context"] = self.context
        if self.properties:
            wire["properties"] = self.properties
        return wire


@dataclass(slots=True)
class Conversation:
    """Who and what a batch of messages belongs to (the request envelope)."""

    external_conversation_id: str
    external_user_id: str = DEFAULT_USER_ID
    external_organization_id: str | None = None

    @property
    def key(self) -> str:
        return self.external_conversation_id


@dataclass(slots=True)
class ConversationBatch:
    """Messages of one conversation plus the request-level fields that go with them."""

    conversation: Conversation
    messages: list[Message] = field(default_factory=list)
    model: str | None = None
    system_prompt: str | dict[str, Any] | None = None
    properties: dict[str, Any] | None = None

    def without_messages(self) -> ConversationBatch:
        """The request-level fields alone: what every request of this conversation shares."""
        return ConversationBatch(self.conversation, [], self.model, self.system_prompt, self.properties)

    def to_wire(self, *, product_id: str | None = None) -> dict[str, Any]:
        conv = self.conversation
        body: dict[str, Any] = {
            "externalUserId": conv.external_user_id,
            "externalConversationId": conv.external_conversation_id,
            "messages": [m.to_wire() for m in self.messages],
        }
        if product_id:
            body["productId"] = product_id
        if conv.external_organization_id:
            body["externalOrganizationId"] = conv.external_organization_id
        if self.model:
            body["model"] = self.model
        if self.system_prompt:
            body["systemPrompt"] = self.system_prompt
        if self.properties:
            body["properties"] = self.properties
        return body
