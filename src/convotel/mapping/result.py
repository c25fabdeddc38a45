"""What mapping one span yields, before it is merged into conversation batches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from convotel.messages import Conversation, Message


@dataclass(slots=True)
class Mapped:
    conversation: Conversation
    messages: list[Message] = field(default_factory=list)
    model: str | None = None
    system_prompt: str | dict[str, Any] | None = None
    properties: dict[str, Any] | None = None


class Clock:
    """Hands out strictly increasing ``createdAt`` values, one microsecond apart."""

    __slots__ = ("_next",)

    def __init__(self, start_ns: int) -> None:
        self._next = start_ns

    def tick(self) -> int:
        now = self._next
        self._next += 1_000
        return now

    def not_before(self, ns: int) -> None:
        self._next = max(self._next, ns)
