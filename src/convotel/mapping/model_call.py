"""A model call span (``chat`` / ``text_completion``) → the messages it adds to a conversation.

Input messages are identified by their history (:func:`ids.chain`), so a client
that resends the whole history every turn reproduces the same ids and the API
keeps one copy; output messages continue the same chain, so this turn's answer
has the id it will have when it is resent next turn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from convotel import semconv
from convotel.mapping.clock import Clock
from convotel.mapping.ids import chain, observation_key, tool_call_key
from convotel.mapping.parts import (
    ChatMessage,
    ToolCall,
    as_object,
    as_text,
    parse_messages,
    parse_text_parts,
)
from convotel.mapping.scope import MappingOptions, SpanScope
from convotel.messages import ConversationBatch, Message, MessageType

_USAGE = (
    ("inputTokens", semconv.USAGE_INPUT_TOKENS),
    ("outputTokens", semconv.USAGE_OUTPUT_TOKENS),
    ("reasoningTokens", semconv.USAGE_REASONING_TOKENS),
    ("cachedInputTokens", semconv.USAGE_CACHE_READ_INPUT_TOKENS),
)


def _usage(attrs: Mapping[str, Any]) -> dict[str, int] | None:
    usage: dict[str, int] = {}
    for key, attr in _USAGE:
        value = attrs.get(attr)
        if isinstance(value, (int, float)):
            usage[key] = int(value)
    if "inputTokens" in usage and "outputTokens" in usage:
        usage["totalTokens"] = usage["inputTokens"] + usage["outputTokens"]
    return usage or None


def _call_facts(scope: SpanScope, first_output: ChatMessage | None, others: list[ChatMessage]) -> dict[str, Any]:
    """Model-call facts that ride in ``properties`` of the first message the call produced."""
    rec = scope.record
    facts: dict[str, Any] = {}
    usage = _usage(scope.attrs)
    if usage:
        facts["usage"] = usage
    if rec.end_ns is not None:
        facts["latencyMs"] = round((rec.end_ns - rec.start_ns) / 1e6, 3)
    finish = first_output.finish_reason if first_output else None
    if not finish:
        reasons = scope.attrs.get(semconv.RESPONSE_FINISH_REASONS)
        if reasons:
            finish = str(reasons[0]) if isinstance(reasons, (list, tuple)) else str(reasons)
    if finish:
        facts["finishReason"] = finish
    for key, attr in (("responseId", semconv.RESPONSE_ID), ("provider", semconv.PROVIDER_NAME)):
        if value := scope.str(attr):
            facts[key] = value
    if scope.attrs.get(semconv.PARTIAL):
        facts["partial"] = True
    if others:
        facts["alternatives"] = [_alternative(m) for m in others]
    return facts


def _alternative(message: ChatMessage) -> dict[str, Any]:
    alt: dict[str, Any] = {}
    if message.text:
        alt["content"] = message.text
    if message.tool_calls:
        alt["toolCalls"] = [{"name": c.name, "arguments": c.arguments} for c in message.tool_calls]
    if message.finish_reason:
        alt["finishReason"] = message.finish_reason
    return alt


def _split_system(scope: SpanScope, inputs: list[ChatMessage]) -> tuple[str | dict[str, Any] | None, list[ChatMessage]]:
    """The request's system prompt, and the history without its leading system messages."""
    leading = 0
    while leading < len(inputs) and inputs[leading].role in ("system", "developer"):
        leading += 1
    template = scope.json(semconv.SYSTEM_PROMPT)
    if isinstance(template, dict):
        prompt: str | dict[str, Any] | None = template
    else:
        prompt = parse_text_parts(scope.attrs.get(semconv.SYSTEM_INSTRUCTIONS))
        if prompt is None and leading:
            prompt = "\n".join(m.text for m in inputs[:leading] if m.text) or None
    return prompt, inputs[leading:]


def _has_output(message: ChatMessage) -> bool:
    """Whether an output message holds anything (text, reasoning or calls; content captured or not)."""
    return message.has_text or message.has_reasoning or bool(message.tool_calls)


def _is_final_answer(scope: SpanScope, history: list[ChatMessage]) -> bool:
    """A text answer that closes a turn in which tools ran is the agent's final response."""
    explicit = scope.attrs.get(semconv.FINAL_RESPONSE)
    if explicit is not None:
        return bool(explicit)
    for message in reversed(history):
        if message.role == "user":
            return False
        if message.role == "tool" or message.tool_calls:
            return True
    return False


class _Emitter:
    """Builds the messages of one span, tracking the ids they thread under."""

    def __init__(self, scope: SpanScope, model: str | None) -> None:
        self.scope = scope
        self.model = model
        self.messages: list[Message] = []
        self.clock = Clock(scope.record.start_ns)
        #: Properties for the next message added (merged over its own), then cleared.
        self.facts: dict[str, Any] | None = None

    def add(self, message_type: MessageType, key: str, parent: str | None, **fields: Any) -> str:
        message_id = self.scope.id(key)
        facts = self.facts
        if facts is not None:
            self.facts = None
            fields["properties"] = {**(fields.get("properties") or {}), **facts}
        self.messages.append(
            Message(
                external_message_id=message_id,
                message_type=message_type,
                created_at_ns=self.clock.tick(),
                parent_external_message_id=parent,
                model=self.model if message_type not in ("user_message", "observation", "tool_error") else None,
                **fields,
            )
        )
        return message_id

    def tool_calls(self, calls: tuple[ToolCall, ...], parent: str | None, fallback_key: str) -> str | None:
        last = None
        for index, call in enumerate(calls):
            key = tool_call_key(call.id) if call.id else f"{fallback_key}:call:{index}"
            last = self.add("tool_call", key, parent, tool_name=call.name, input=as_object(call.arguments))
        return last

    def assistant(self, message: ChatMessage, link: str, parent: str | None, final: bool) -> str | None:
        """An assistant turn: reasoning and text beside tool calls are thoughts."""
        anchor = parent
        if message.has_reasoning:
            anchor = self.add("thought", f"reasoning:{link}", anchor, content=message.reasoning,
                              properties={"kind": "reasoning"})
        if message.tool_calls:
            if message.has_text:
                anchor = self.add("thought", f"m:{link}", anchor, content=message.text)
            return self.tool_calls(message.tool_calls, anchor, f"m:{link}") or anchor
        kind: MessageType = "final_response" if final else "assistant_message"
        return self.add(kind, f"m:{link}", anchor, content=message.text or None)


def map_model_call(scope: SpanScope, options: MappingOptions) -> ConversationBatch:
    attrs = scope.attrs
    model = scope.str(semconv.RESPONSE_MODEL) or scope.str(semconv.REQUEST_MODEL)
    system_prompt, history = _split_system(scope, parse_messages(attrs.get(semconv.INPUT_MESSAGES)))
    outputs = parse_messages(attrs.get(semconv.OUTPUT_MESSAGES))
    emit = _Emitter(scope, model)

    previous = scope.str(semconv.PREVIOUS_RESPONSE_ID)
    # A continued response sends only what is new: seed the history from the response it continues.
    link = chain("", f"prev:{previous}") if previous else ""
    anchor = scope.run_parent_id
    history_calls = {c.id for m in history for c in m.tool_calls if c.id}
    for message in history:
        link = chain(link, message.canonical())
        if message.role == "user":
            anchor = emit.add("user_message", f"m:{link}", scope.run_parent_id, content=message.text or None)
        elif message.role == "tool":
            call_id = message.tool_call_id
            # The call is known if this history holds it, or if the history lives server-side.
            known = call_id is not None and (call_id in history_calls or previous is not None)
            parent = scope.id(tool_call_key(call_id)) if known else anchor
            key = observation_key(call_id) if call_id else f"m:{link}"
            anchor = emit.add("observation", key, parent, content=as_text(message.tool_response))
        elif message.role == "assistant":
            anchor = emit.assistant(message, link, anchor, final=False)
        else:
            anchor = emit.add("system_message", f"m:{link}", anchor, content=message.text or None)

    first_produced = len(emit.messages)
    if scope.record.end_ns is not None:
        emit.clock.not_before(scope.record.end_ns)
    choice = outputs[0] if outputs else None
    failed = scope.record.status_error
    # A stream that broke (or that the app gave up on by raising) after output arrived: the app
    # saw that output, so it is delivered, marked partial, and the failure follows it.
    partial_output = failed and choice is not None and bool(scope.attrs.get(semconv.PARTIAL)) and _has_output(choice)
    facts = _call_facts(scope, choice, outputs[1:])
    # The facts ride on the first message the call produced (built with them: no copy afterwards),
    # else (or at the verbose level) on its llm message.
    emit.facts = facts if facts and not options.verbose else None
    if choice is not None and (not failed or partial_output):
        out_link = chain(link, choice.canonical())
        emit.assistant(choice, out_link, anchor, final=_is_final_answer(scope, history))
    emit.facts = None
    facts_on_output = len(emit.messages) > first_produced and not options.verbose
    if failed or options.verbose or not facts_on_output:
        llm_props = {} if facts_on_output else dict(facts)
        if failed:
            llm_props["error"] = error_facts(scope)
        emit.add("llm", f"llm:{scope.record.span_id}", anchor, content=None, properties=llm_props or None)

    return ConversationBatch(
        scope.conversation,
        emit.messages,
        model=model,
        system_prompt=system_prompt,
        properties=conversation_properties(scope),
    )


def error_facts(scope: SpanScope) -> dict[str, Any]:
    error: dict[str, Any] = {"type": scope.str(semconv.ERROR_TYPE) or "error"}
    status = scope.attrs.get(semconv.HTTP_RESPONSE_STATUS_CODE)
    if status is not None:
        error["status"] = int(status)
    if scope.record.status_message:
        error["message"] = scope.record.status_message
    return error


def conversation_properties(scope: SpanScope) -> dict[str, Any] | None:
    props = scope.json(semconv.CONVERSATION_PROPERTIES)
    return props if isinstance(props, dict) and props else None
