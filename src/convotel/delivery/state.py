"""Worker-side bookkeeping: one entry per accepted batch, one state per conversation."""

from __future__ import annotations

from collections import deque
from typing import Any

from convotel.messages import Conversation, ConversationBatch, Message


class PlannedRequest(ConversationBatch):
    """A request as delivery planned it: also carries its encoding as it was sized (see
    :class:`~convotel.delivery.plan.Split`): ``message_json``, its messages, and ``envelope_json``,
    the rest with ``"messages":[]``, for a sink that builds its body from them; ``None`` once
    dropped (after a failed attempt, so that requests waiting out an outage do not hold their bytes
    twice)."""

    __slots__ = ("message_json", "envelope_json")

    def __init__(self, conversation: Conversation, messages: list[Message], model: str | None,
                 system_prompt: str | dict[str, Any] | None, properties: dict[str, Any] | None,
                 message_json: bytes | None, envelope_json: bytes | None = None) -> None:
        super().__init__(conversation, messages, model, system_prompt, properties)
        self.message_json = message_json
        self.envelope_json = envelope_json


class BatchEntry:
    """One accepted batch: how many of its messages are unresolved, and its spool row."""

    __slots__ = ("remaining", "rowid", "keep_row")

    def __init__(self, rowid: int | None, remaining: int) -> None:
        self.remaining = remaining
        self.rowid = rowid
        self.keep_row = False  # gave up on a message without a verdict: leave it for the next start


class ConvState:
    """Per-conversation state: merged messages waiting, held orphans, planned requests."""

    __slots__ = ("key", "conversation", "model", "system_prompt", "properties", "pending", "held",
                 "outbox", "due", "attempts", "retry_at", "recheck", "token", "scheduled_at")

    def __init__(self, conversation: Conversation) -> None:
        self.key = conversation.key
        self.conversation = conversation
        self.model: str | None = None
        self.system_prompt: str | dict[str, Any] | None = None
        self.properties: dict[str, Any] | None = None
        self.pending: dict[str, Message] = {}  # merged, first copy of an id wins
        self.held: dict[str, tuple[Message, float]] = {}  # orphan -> first seen (monotonic)
        self.outbox: deque[ConversationBatch] = deque()  # planned requests, head is next/retrying
        self.due = 0.0  # linger deadline of ``pending``
        self.attempts = 0
        self.retry_at = 0.0
        self.recheck = False  # something was delivered: held orphans may have their parent now
        self.token = 0  # invalidates older timer entries
        self.scheduled_at: float | None = None

    def absorb(self, batch: ConversationBatch) -> None:
        """Request-level fields: the later non-None value wins."""
        self.conversation = batch.conversation
        if batch.model is not None:
            self.model = batch.model
        if batch.system_prompt is not None:
            self.system_prompt = batch.system_prompt
        if batch.properties is not None:
            self.properties = batch.properties

    def request(self, messages: list[Message], message_json: bytes | None = None,
                envelope_json: bytes | None = None) -> PlannedRequest:
        return PlannedRequest(self.conversation, messages, self.model, self.system_prompt, self.properties,
                              message_json, envelope_json)

    def hold_expiry(self, hold_s: float) -> float:
        return min(since for _, since in self.held.values()) + hold_s

    def next_at(self, *, force: bool, hold_s: float) -> float | None:
        """When this conversation next needs the worker (monotonic), or None if idle."""
        if self.outbox:
            return self.retry_at
        if not self.pending and not self.held:
            return None
        if force or self.recheck:
            return 0.0
        at = self.due if self.pending else float("inf")
        return min(at, self.hold_expiry(hold_s)) if self.held else at
