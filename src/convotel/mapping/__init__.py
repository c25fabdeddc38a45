"""Span records → conversation messages. Pure: no I/O, no clocks, no globals.

Shared by the in-process exporter and the bridge, so both produce the same ids
and threading for the same spans.
"""

from __future__ import annotations

from collections.abc import Iterable

from convotel import semconv
from convotel.mapping.model_call import map_model_call
from convotel.mapping.runs import (
    CLOSING_TYPES,
    OPENING_TYPES,
    map_embeddings,
    map_structural,
    map_tool,
    structural_type,
)
from convotel.mapping.scope import DEFAULT_OPTIONS, MappingOptions, scope_of
from convotel.messages import ConversationBatch
from convotel.records import SpanRecord

__all__ = ["DEFAULT_OPTIONS", "MappingOptions", "map_record", "map_records", "merge"]

_MODEL_CALLS = frozenset({semconv.OP_CHAT, semconv.OP_TEXT_COMPLETION, "generate_content"})


def map_record(record: SpanRecord, options: MappingOptions = DEFAULT_OPTIONS) -> ConversationBatch | None:
    """The messages one span contributes, or ``None`` for spans that are not conversation events."""
    scope = scope_of(record, options)
    kind = structural_type(scope)
    if kind is not None:
        return map_structural(scope, kind) if kind in OPENING_TYPES or kind in CLOSING_TYPES else None
    operation = scope.str(semconv.OPERATION_NAME)
    if not record.ended:
        return None  # only structural runs announce themselves at start
    if operation in _MODEL_CALLS:
        # A framework span (LangChain) already maps this call: one logical event, one message.
        return None if semconv.COVERED_BY in record.attributes else map_model_call(scope, options)
    if operation == semconv.OP_EXECUTE_TOOL:
        return map_tool(scope)
    if operation == semconv.OP_EMBEDDINGS:
        return map_embeddings(scope)
    return None


def merge(mapped: Iterable[ConversationBatch]) -> list[ConversationBatch]:
    """Group per conversation, first occurrence of each message id wins."""
    batches: dict[str, ConversationBatch] = {}
    seen: dict[str, set[str]] = {}
    for item in mapped:
        key = item.conversation.key
        batch = batches.get(key)
        if batch is None:
            batch = batches[key] = ConversationBatch(item.conversation)
            seen[key] = set()
        ids = seen[key]
        for message in item.messages:
            if message.external_message_id not in ids:
                ids.add(message.external_message_id)
                batch.messages.append(message)
        batch.model = item.model or batch.model
        batch.system_prompt = item.system_prompt or batch.system_prompt
        if item.properties:
            batch.properties = {**(batch.properties or {}), **item.properties}
    return list(batches.values())


def map_records(records: Iterable[SpanRecord], options: MappingOptions = DEFAULT_OPTIONS) -> list[ConversationBatch]:
    return merge(m for r in records if (m := map_record(r, options)) is not None)
