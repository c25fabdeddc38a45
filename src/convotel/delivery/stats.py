"""Delivery counters: every message handed to ``submit()`` ends up in exactly one of them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

#: Why messages are dropped; see :class:`DeliveryStats`.
DROP_REASONS = (
    "queue_full", "shutdown", "invalid", "too_large", "unencodable",
    "rejected", "retries_exhausted", "sink_error", "spool_corrupt",
)


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    """A snapshot. For valid input: ``submitted == delivered + deduplicated + skipped + dropped_total + pending``.

    ``dropped`` counts messages by reason:

    - ``queue_full``: submit() past ``max_pending_messages`` (spool off, or unwritable)
    - ``shutdown``: submit() after shutdown()
    - ``invalid``: submit() got something that is not a ConversationBatch (counted per object)
    - ``too_large``: one message alone exceeds the sink's request limit
    - ``unencodable``: the message cannot be encoded as JSON
    - ``rejected``: permanent API error (400/401/403/404...)
    - ``retries_exhausted``: transient errors past ``max_retries`` (still in the spool, if on)
    - ``sink_error``: the sink raised something other than SinkError, or returned garbage
    - ``spool_corrupt``: a spooled batch could not be decoded
    """

    submitted: int = 0      # messages handed to submit() (or recovered from the spool)
    delivered: int = 0      # API said "created" (or the 2xx response did not say)
    deduplicated: int = 0   # API said "deduplicated"
    skipped: int = 0        # not sent: this Delivery already sent or queued the same id
    retried: int = 0        # re-sends after a transient error
    requests: int = 0       # successful requests
    pending: int = 0        # messages accepted and not yet resolved
    dropped: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


class Counters:
    """Mutable counters behind :class:`DeliveryStats`.

    ``dropped`` has every key from the start, so incrementing never resizes the dict while
    another thread takes a snapshot.
    """

    __slots__ = ("submitted", "delivered", "deduplicated", "skipped", "retried", "requests", "dropped")

    def __init__(self) -> None:
        self.submitted = self.delivered = self.deduplicated = self.skipped = 0
        self.retried = self.requests = 0
        self.dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)

    def snapshot(self, pending: int) -> DeliveryStats:
        return DeliveryStats(
            submitted=self.submitted, delivered=self.delivered, deduplicated=self.deduplicated,
            skipped=self.skipped, retried=self.retried, requests=self.requests, pending=pending,
            dropped=MappingProxyType({k: v for k, v in self.dropped.items() if v}),
        )
