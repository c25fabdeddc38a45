"""Deterministic message ids: the same logical message gets the same id in any process."""

from __future__ import annotations

import hashlib


def message_id(conversation_id: str, key: str) -> str:
    """``externalMessageId`` for ``key`` in a conversation: 24 hex digits of BLAKE2b."""
    digest = hashlib.blake2b(f"{conversation_id}\x00{key}".encode(), digest_size=12)
    return digest.hexdigest()


def chain(previous: str, canonical: str) -> str:
    """Next link of a message-history hash: identifies a message by all that came before it."""
    return hashlib.blake2b(f"{previous}\x00{canonical}".encode(), digest_size=16).hexdigest()


def tool_call_key(call_id: str) -> str:
    return f"call:{call_id}"


def observation_key(call_id: str) -> str:
    return f"obs:{call_id}"


def run_key(span_id: str) -> str:
    return f"run:{span_id}"
