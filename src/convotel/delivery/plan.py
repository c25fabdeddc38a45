"""Pure request planning for one conversation: causal order, parent hold, size split."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter

from convotel.delivery.wire import dumps
from convotel.messages import ConversationBatch, Message

#: Bytes kept free below ``max_request_bytes`` for envelope fields the sink adds (e.g. ``productId``).
SINK_HEADROOM_BYTES = 256
_CREATED_AT = attrgetter("created_at_ns")


def causal_order(messages: Iterable[Message], by_id: Mapping[str, Message] | None = None) -> list[Message]:
    """Sort by ``created_at_ns`` (stable), then move each parent just ahead of its first child.

    ``by_id``: the same messages by id, when the caller has them that way.
    """
    ordered = sorted(messages, key=_CREATED_AT)
    if by_id is None:
        by_id = {m.external_message_id: m for m in ordered}
    if len(by_id) == len(ordered) and _parents_first(ordered, by_id):
        return ordered  # the usual case: a parent is older than its children; nothing moves
    out: list[Message] = []
    placed: set[str] = set()
    for message in ordered:
        if message.external_message_id in placed:
            continue
        # Walk up to the oldest unplaced ancestor in this set (iterative: chains can be long).
        chain = [message]
        in_chain = {message.external_message_id}
        parent = message.parent_external_message_id
        while parent is not None and parent in by_id and parent not in placed and parent not in in_chain:
            in_chain.add(parent)
            chain.append(by_id[parent])
            parent = by_id[parent].parent_external_message_id
        for m in reversed(chain):
            placed.add(m.external_message_id)
            out.append(m)
    return out


def _parents_first(ordered: list[Message], by_id: Mapping[str, Message]) -> bool:
    """Whether each message's parent, when among the (distinct) messages, comes before it."""
    seen: set[str] = set()
    for m in ordered:
        parent = m.parent_external_message_id
        if parent is not None and parent not in seen and parent in by_id:
            return False
        seen.add(m.external_message_id)
    return True


def hold_orphans(
    candidates: list[Message],
    since: Mapping[str, float],
    *,
    now: float,
    hold_s: float,
    release_all: bool,
    is_sent: Callable[[str], bool],
) -> tuple[list[Message], list[Message], list[Message]]:
    """Split candidates into (send now, hold, released orphans).

    A message waits (up to ``hold_s`` since it was first seen) while its parent is neither
    sent nor among the candidates; a message whose parent is held waits too, so a parent
    never arrives after its child. ``release_all`` (flush, shutdown) holds nothing. The
    released orphans are also in the send list; they are returned for logging.
    """
    ids = {m.external_message_id for m in candidates}
    held: set[str] = set()
    orphans: set[str] = set()
    changed = True
    while changed:  # a held message can make its children wait: repeat until stable
        changed = False
        for m in candidates:
            mid, parent = m.external_message_id, m.parent_external_message_id
            if mid in held or parent is None or (parent in ids and parent not in held):
                continue
            if parent in held:
                hold = True
            elif is_sent(parent):
                continue
            else:
                hold = not release_all and now - since.get(mid, now) < hold_s
                if not hold:
                    orphans.add(mid)
            if hold:
                held.add(mid)
                changed = True
    send = [m for m in candidates if m.external_message_id not in held]
    wait = [m for m in candidates if m.external_message_id in held]
    return send, wait, [m for m in send if m.external_message_id in orphans]


@dataclass(slots=True)
class Split:
    requests: list[list[Message]] = field(default_factory=list)
    #: Each request's messages as encoded for sizing (``wire.dumps(m.to_wire())`` of each, joined
    #: with commas: what goes between the brackets of ``"messages":[]``), so a sink can build the
    #: body from them instead of encoding every message again.
    encoded: list[bytes] = field(default_factory=list)
    #: ``wire.dumps`` of the envelope with ``"messages":[]``, which every request shares.
    envelope_json: bytes = b""
    too_large: list[tuple[Message, int]] = field(default_factory=list)  # (message, request size alone)
    unencodable: list[tuple[Message, Exception]] = field(default_factory=list)


def split(envelope: ConversationBatch, messages: list[Message], *, max_bytes: int, max_count: int) -> Split:
    """Chunk ``messages`` (kept in order) so each request's encoded body fits the limits.

    Sizes are exact for compact JSON: body = envelope with ``"messages":[]`` + messages + commas.
    """
    budget = max_bytes - SINK_HEADROOM_BYTES
    if envelope.messages:
        envelope = envelope.without_messages()
    head = dumps(envelope.to_wire())
    base = len(head)
    result = Split(envelope_json=head)
    if messages and len(messages) <= max_count:
        # Usually all of them fit in one request: one encoding of the list (its elements are
        # byte for byte the messages' own encodings) instead of one per message.
        try:
            data = dumps([m.to_wire() for m in messages])
        except Exception:  # noqa: BLE001 - one of them cannot be encoded: found one by one below
            pass
        else:
            if base + len(data) - 2 <= budget:
                result.requests.append(list(messages))
                result.encoded.append(data[1:-1])
                return result
    current: list[Message] = []
    encoded: list[bytes] = []
    size = base
    for m in messages:
        try:
            data = dumps(m.to_wire())
        except Exception as exc:  # noqa: BLE001 - any encoding failure makes this one message undeliverable
            result.unencodable.append((m, exc))
            continue
        own = len(data)
        if base + own > budget:
            result.too_large.append((m, base + own))
            continue
        if current and (size + 1 + own > budget or len(current) >= max_count):
            result.requests.append(current)
            result.encoded.append(b",".join(encoded))
            current, encoded, size = [], [], base
        size += own + (1 if current else 0)
        current.append(m)
        encoded.append(data)
    if current:
        result.requests.append(current)
        result.encoded.append(b",".join(encoded))
    return result
