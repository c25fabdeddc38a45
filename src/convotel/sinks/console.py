"""Console sink: each batch as a few readable lines (for trying convotel without an API)."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from convotel.messages import ConversationBatch, Message
from convotel.sinks.base import SendResult

_EXCERPT_CHARS = 80


def _excerpt(text: str | None) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= _EXCERPT_CHARS else flat[: _EXCERPT_CHARS - 1] + "…")


def _line(m: Message) -> str:
    parts = [f"  {m.message_type:<17}", m.external_message_id]
    if m.tool_name:
        parts.append(f"tool={m.tool_name}")
    if m.parent_external_message_id:
        parts.append(f"parent={m.parent_external_message_id}")
    if m.content:
        parts.append(_excerpt(m.content))
    return " ".join(parts)


class ConsoleSink:
    """Prints; every message counts as created."""

    name = "console"
    max_request_bytes = 64_000_000  # nothing to enforce: a terminal has no request limit
    max_messages_per_request = 10_000

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, batch: ConversationBatch) -> SendResult:
        conv = batch.conversation
        head = f"[convotel] conversation {conv.external_conversation_id} user={conv.external_user_id}"
        if conv.external_organization_id:
            head += f" org={conv.external_organization_id}"
        if batch.model:
            head += f" model={batch.model}"
        text = "\n".join([head + f" ({len(batch.messages)} messages)", *map(_line, batch.messages)]) + "\n"
        stream = self._stream if self._stream is not None else sys.stderr  # late: pytest swaps stderr
        with self._lock:
            stream.write(text)
            stream.flush()
        return SendResult({m.external_message_id: "created" for m in batch.messages})

    def close(self) -> None:
        """The stream is the caller's; nothing to release."""
