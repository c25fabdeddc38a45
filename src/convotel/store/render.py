"""Conversations as threaded text trees (``convotel show``, the demo).

Each message sits under its parent; a message whose parent is missing (or
that sits in a parent cycle) is drawn at the top level and marked, never lost.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from convotel.store.db import Store, StoredConversation, StoredMessage
from convotel.store.validation import NotFoundError

DEFAULT_EXCERPT: Final = 60
_USAGE_LABELS: Final = (("inputTokens", "in"), ("outputTokens", "out"), ("totalTokens", "total"))


def render_tree(store: Store, conversation: str, *, excerpt: int = DEFAULT_EXCERPT) -> str:
    """One conversation (by id or external id): a header line, then its messages as a tree."""
    found = store.conversation(conversation)
    if found is None:
        raise NotFoundError("conversation", f"no conversation {conversation!r} in {store.path}; "
                                            "run `convotel show` to list them")
    return "\n".join([conversation_header(found), *render_messages(store.messages(found.id), excerpt=excerpt)])


def conversation_header(conversation: StoredConversation) -> str:
    facts = [f"id={conversation.id}"] if conversation.external_id else []
    facts.append(f"user={conversation.external_user_id}")
    if conversation.external_organization_id:
        facts.append(f"org={conversation.external_organization_id}")
    if conversation.product_id:
        facts.append(f"product={conversation.product_id}")
    if conversation.model:
        facts.append(f"model={conversation.model}")
    facts.append(f"messages={conversation.message_count}")
    return f"conversation {conversation.external_id or conversation.id}  ({', '.join(facts)})"


def render_messages(messages: Sequence[StoredMessage], *, excerpt: int = DEFAULT_EXCERPT) -> list[str]:
    """Lines of a tree of ``messages`` (given in reading order; siblings keep that order)."""
    by_id = {m.id: m for m in messages}
    by_external: dict[str, StoredMessage] = {}
    for m in messages:
        if m.external_message_id is not None:
            by_external.setdefault(m.external_message_id, m)

    def parent_of(m: StoredMessage) -> StoredMessage | None:
        if m.parent_message_id is not None:
            return by_id.get(m.parent_message_id)
        if m.parent_external_message_id is not None:
            return by_external.get(m.parent_external_message_id)
        return None

    children: dict[str, list[StoredMessage]] = defaultdict(list)
    roots: list[StoredMessage] = []
    for m in messages:
        parent = parent_of(m)
        if parent is None or parent.id == m.id:
            roots.append(m)
        else:
            children[parent.id].append(m)

    lines: list[str] = []
    visited: set[str] = set()

    def walk(root: StoredMessage) -> None:
        # Iterative, so a long parent chain cannot hit the recursion limit.
        stack: list[tuple[StoredMessage, str, str]] = [(root, "", "")]
        while stack:
            m, lead, child_lead = stack.pop()
            if m.id in visited:
                continue
            visited.add(m.id)
            lines.append(lead + describe(m, excerpt=excerpt, orphan=not lead and _has_parent_ref(m)))
            kids = children[m.id]
            for i in range(len(kids) - 1, -1, -1):
                last = i == len(kids) - 1
                branch, rail = ("└─ ", "   ") if last else ("├─ ", "│  ")
                stack.append((kids[i], child_lead + branch, child_lead + rail))

    for m in roots:
        walk(m)
    for m in messages:  # only messages in a parent cycle are still unvisited
        walk(m)
    return lines


def describe(m: StoredMessage, *, excerpt: int = DEFAULT_EXCERPT, orphan: bool = False) -> str:
    """One line: type, tool, excerpts of content / input / output, tokens, latency, error."""
    parts = [m.message_type]
    if m.tool_name:
        parts.append(m.tool_name)
    if m.content:
        parts.append(f'"{_shorten(m.content, excerpt)}"')
    if m.input is not None:
        parts.append(f"input={_shorten(_compact(m.input), excerpt)}")
    if m.output is not None:
        parts.append(f"output={_shorten(_compact(m.output), excerpt)}")
    parts.extend(_facts(m.properties or {}))
    if orphan:
        parent = m.parent_message_id or m.parent_external_message_id
        parts.append(f"(parent {parent} not found)")
    return "  ".join(parts)


def _has_parent_ref(m: StoredMessage) -> bool:
    return m.parent_message_id is not None or m.parent_external_message_id is not None


def _facts(properties: Mapping[str, Any]) -> list[str]:
    facts: list[str] = []
    usage = properties.get("usage")
    if isinstance(usage, Mapping):
        counts = [f"{label}={usage[key]}" for key, label in _USAGE_LABELS if usage.get(key) is not None]
        if counts:
            facts.append(f"[tokens {' '.join(counts)}]")
    latency = properties.get("latencyMs")
    if isinstance(latency, (int, float)) and not isinstance(latency, bool):
        facts.append(f"[{latency:.0f} ms]")
    error = properties.get("error")
    if isinstance(error, Mapping):
        label = " ".join(str(error[k]) for k in ("type", "status") if error.get(k) is not None)
        facts.append(f"[error {label or _shorten(_compact(error), 40)}]")
    elif error:
        facts.append(f"[error {_shorten(str(error), 40)}]")
    return facts


def _compact(value: Any) -> str:
    return orjson.dumps(value).decode()


def _shorten(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: max(limit - 1, 0)] + "…"
