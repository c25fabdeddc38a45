"""Deterministic message ids: the same logical message gets the same id in any process."""

from __future__ import annotations

import hashlib

# Copies of fresh hashers: copying one costs less than parsing blake2b()'s keyword arguments.
_BLAKE2B_12 = hashlib.blake2b(digest_size=12)
_BLAKE2B_16 = hashlib.blake2b(digest_size=16)


def message_id(conversation_id: str, key: str) -> str:
    """``externalMessageId`` for ``key`` in a conversation: 24 hex digits of BLAKE2b."""
    digest = _BLAKE2B_12.copy()
    digest.update(f"{conversation_id}\x00{key}".encode())
    return digest.hexdigest()


def chain(previous: str, canonical: str) -> str:
    """Next link of a message-history hash: identifies a message by all that came before it."""
    digest = _BLAKE2B_16.copy()
    digest.update(f"{previous}\x00{canonical}".encode())
    return digest.hexdigest()


def tool_call_key(call_id: str) -> str:
    return f"call:{call_id}"


def observation_key(call_id: str) -> str:
    return f"obs:{call_id}"


def run_key(span_id: str) -> str:
    return f"run:{span_id}"
