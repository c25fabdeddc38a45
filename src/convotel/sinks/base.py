"""The sink contract: one API each; nothing above a sink knows URLs or JSON shapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from convotel.messages import ConversationBatch

MessageStatus = Literal["created", "deduplicated"]


@dataclass(slots=True)  # not frozen: one per request, and frozen costs a setattr call per field
class SendResult:
    """What the API said about each message, by ``externalMessageId``."""

    statuses: dict[str, MessageStatus]

    @property
    def created(self) -> int:
        return sum(1 for s in self.statuses.values() if s == "created")

    @property
    def deduplicated(self) -> int:
        return sum(1 for s in self.statuses.values() if s == "deduplicated")


class SinkError(Exception):
    """A send failed. ``transient`` ones are retried; the others are dropped and counted."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None,
                 retry_after_s: float | None = None, too_large: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status
        self.retry_after_s = retry_after_s
        self.too_large = too_large  # 413: split the batch and send the halves


class Sink(Protocol):
    name: str
    #: Largest request body the API accepts, in bytes (delivery splits below it).
    max_request_bytes: int
    #: Most messages one request may carry.
    max_messages_per_request: int

    def send(self, batch: ConversationBatch) -> SendResult:
        """Deliver one batch (one conversation) or raise :class:`SinkError`. Never retries itself.

        A sink may also offer ``send_many(batches) -> list[SendResult | SinkError]`` (an outcome per
        batch, in order, raising only for a bug of its own): delivery then sends through it alone,
        handing it the requests of all the conversations that are due together (or the one)."""
        ...

    def close(self) -> None: ...

