"""Spans that are not model calls: tools, embeddings, and structural runs (agents, chains, graphs)."""

from __future__ import annotations

from typing import Any

from convotel import semconv
from convotel.mapping.clock import Clock
from convotel.mapping.ids import observation_key, run_key, tool_call_key
from convotel.mapping.model_call import conversation_properties, error_facts
from convotel.mapping.parts import as_object, as_text, load_json
from convotel.mapping.scope import SpanScope
from convotel.messages import ConversationBatch, Message, MessageType

#: Structural types announced when the run starts (they parent what happens inside).
OPENING_TYPES: frozenset[str] = frozenset({"task", "workflow", "chain_start"})
#: Structural types recorded once, when the run ends.
CLOSING_TYPES: frozenset[str] = frozenset(
    {"retrieval", "memory_read", "memory_write", "callback", "embedding", "thought"})


def _latency(scope: SpanScope) -> dict[str, Any]:
    rec = scope.record
    return {"latencyMs": round((rec.end_ns - rec.start_ns) / 1e6, 3)} if rec.end_ns is not None else {}


def map_tool(scope: SpanScope) -> ConversationBatch:
    rec = scope.record
    call_id = scope.str(semconv.TOOL_CALL_ID)
    tool_name = scope.str(semconv.TOOL_NAME) or rec.name
    clock = Clock(rec.start_ns)
    call_msg_id = scope.id(tool_call_key(call_id) if call_id else f"{run_key(rec.span_id)}:call")
    messages = [
        Message(
            external_message_id=call_msg_id,
            message_type="tool_call",
            created_at_ns=clock.tick(),
            parent_external_message_id=scope.run_parent_id,
            tool_name=tool_name,
            input=as_object(load_json(scope.attrs.get(semconv.TOOL_CALL_ARGUMENTS))),
        )
    ]
    if rec.end_ns is not None:
        clock.not_before(rec.end_ns)
        result = load_json(scope.attrs.get(semconv.TOOL_CALL_RESULT))
        if result is None:
            result = scope.attrs.get(semconv.TOOL_CALL_RESULT)
        props: dict[str, Any] = {**_latency(scope), "toolName": tool_name}
        if rec.status_error:
            props["error"] = error_facts(scope)
        messages.append(
            Message(
                external_message_id=scope.id(observation_key(call_id) if call_id else f"{run_key(rec.span_id)}:obs"),
                message_type="tool_error" if rec.status_error else "observation",
                created_at_ns=clock.tick(),
                parent_external_message_id=call_msg_id,
                content=as_text(result) if not rec.status_error else (rec.status_message or as_text(result)),
                output=result if isinstance(result, dict) else None,
                properties=props,
            )
        )
    return ConversationBatch(scope.conversation, messages, properties=conversation_properties(scope))


def map_embeddings(scope: SpanScope) -> ConversationBatch:
    rec = scope.record
    inputs = as_object(scope.json(semconv.INPUT_VALUE))
    props: dict[str, Any] = _latency(scope)
    dims = scope.attrs.get(semconv.EMBEDDINGS_DIMENSION_COUNT)
    if dims is not None:
        props["dimensions"] = int(dims)
    count = scope.attrs.get(semconv.EMBEDDINGS_COUNT)
    texts = (inputs or {}).get("texts")
    if count is None and not rec.status_error and isinstance(texts, list):
        count = len(texts)  # one embedding per input text
    if count is not None:
        props["count"] = int(count)
    if isinstance(tokens := scope.attrs.get(semconv.USAGE_INPUT_TOKENS), int):
        props["usage"] = {"inputTokens": tokens, "totalTokens": tokens}
    if provider := scope.str(semconv.PROVIDER_NAME):
        props["provider"] = provider
    if rec.status_error:
        props["error"] = error_facts(scope)
    model = scope.str(semconv.RESPONSE_MODEL) or scope.str(semconv.REQUEST_MODEL)
    message = Message(
        external_message_id=scope.id(run_key(rec.span_id)),
        message_type="embedding",
        created_at_ns=rec.end_ns or rec.start_ns,
        parent_external_message_id=scope.run_parent_id,
        input=inputs,
        model=model,
        properties=props or None,
    )
    return ConversationBatch(scope.conversation, [message], model=model, properties=conversation_properties(scope))


def structural_type(scope: SpanScope) -> str | None:
    explicit = scope.str(semconv.MESSAGE_TYPE)
    if explicit:
        return explicit
    if scope.str(semconv.OPERATION_NAME) == semconv.OP_INVOKE_AGENT:
        return "task" if scope.run_parent_id else "workflow"
    return None


def map_structural(scope: SpanScope, message_type: str) -> ConversationBatch:
    """A run that threads others (task/workflow/chain) or stands alone (retrieval, memory, callback)."""
    rec = scope.record
    name = scope.str(semconv.AGENT_NAME) or rec.name
    start_id = scope.id(run_key(rec.span_id))
    inputs = as_object(scope.json(semconv.INPUT_VALUE))
    outputs = as_object(scope.json(semconv.OUTPUT_VALUE))
    messages: list[Message] = []
    if message_type in OPENING_TYPES:
        messages.append(
            Message(start_id, message_type, rec.start_ns, content=name,  # type: ignore[arg-type]
                    parent_external_message_id=scope.run_parent_id, input=inputs)
        )
        if message_type == "chain_start" and rec.end_ns is not None:
            props = {**_latency(scope), **({"error": error_facts(scope)} if rec.status_error else {})}
            messages.append(
                Message(scope.id(f"{run_key(rec.span_id)}:end"), "chain_end", max(rec.end_ns, rec.start_ns + 1_000),
                        content=name, parent_external_message_id=start_id, output=outputs, properties=props or None)
            )
    elif message_type == "thought":
        # A framework's thought (agent-action log, on_text): its text, not the span name.
        if rec.end_ns is not None:
            messages.append(Message(start_id, "thought", rec.start_ns, content=scope.str(semconv.CONTENT),
                                    parent_external_message_id=scope.run_parent_id))
    elif rec.end_ns is not None:
        kind: MessageType = message_type  # type: ignore[assignment]
        props = {**_latency(scope), **({"error": error_facts(scope)} if rec.status_error else {})}
        messages.append(
            Message(start_id, kind, rec.start_ns, content=name, parent_external_message_id=scope.run_parent_id,
                    input=inputs, output=outputs, properties=props or None)
        )
    return ConversationBatch(scope.conversation, messages, properties=conversation_properties(scope))
