"""Chat Completions: request attributes, response extraction, stream reassembly."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import Span

from convotel import semconv
from convotel.instrumentation import json_attr

from . import _messages as m
from ._utils import arg, get, parse_arguments, report

# GenAI semconv request/response names convotel.semconv does not carry.
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_SEED = "gen_ai.request.seed"
REQUEST_STOP_SEQUENCES = "gen_ai.request.stop_sequences"
REQUEST_FREQUENCY_PENALTY = "gen_ai.request.frequency_penalty"
REQUEST_PRESENCE_PENALTY = "gen_ai.request.presence_penalty"
OUTPUT_TYPE = "gen_ai.output.type"
OPENAI_REQUEST_SERVICE_TIER = "openai.request.service_tier"
OPENAI_RESPONSE_SERVICE_TIER = "openai.response.service_tier"
OPENAI_RESPONSE_SYSTEM_FINGERPRINT = "openai.response.system_fingerprint"

OPERATION = semconv.OP_CHAT

_NUMERIC = (
    ("temperature", REQUEST_TEMPERATURE),
    ("top_p", REQUEST_TOP_P),
    ("frequency_penalty", REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", REQUEST_PRESENCE_PENALTY),
)


def output_type(response_format: Any) -> str | None:
    if response_format is None:
        return None
    if isinstance(response_format, type):  # a pydantic model given to .parse()
        return "json"
    kind = get(response_format, "type")
    if kind == "text":
        return "text"
    if kind in ("json_object", "json_schema"):
        return "json"
    return str(kind) if kind else None


def request_attributes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Cheap request parameters: set when the span starts (samplers see them)."""
    attrs: dict[str, Any] = {}
    for key, name in _NUMERIC:
        value = arg(kwargs, key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attrs[name] = value
    max_tokens = arg(kwargs, "max_completion_tokens")
    if max_tokens is None:
        max_tokens = arg(kwargs, "max_tokens")
    if isinstance(max_tokens, int):
        attrs[REQUEST_MAX_TOKENS] = max_tokens
    seed = arg(kwargs, "seed")
    if isinstance(seed, int):
        attrs[REQUEST_SEED] = seed
    n = arg(kwargs, "n")
    if isinstance(n, int) and n > 1:
        attrs[semconv.REQUEST_CHOICE_COUNT] = n
    stop = arg(kwargs, "stop")
    if isinstance(stop, str):
        attrs[REQUEST_STOP_SEQUENCES] = (stop,)
    elif isinstance(stop, (list, tuple)):
        attrs[REQUEST_STOP_SEQUENCES] = tuple(str(s) for s in stop)
    kind = output_type(arg(kwargs, "response_format"))
    if kind:
        attrs[OUTPUT_TYPE] = kind
    tier = arg(kwargs, "service_tier")
    if isinstance(tier, str):
        attrs[OPENAI_REQUEST_SERVICE_TIER] = tier
    return attrs


def request_content_attributes(kwargs: Mapping[str, Any], capture: bool) -> dict[str, Any]:
    """Messages, system instructions, tool definitions (only for recording spans)."""
    attrs: dict[str, Any] = {}
    try:
        system, messages = m.input_messages(arg(kwargs, "messages"), capture)
        if system is not None:
            attrs[semconv.SYSTEM_INSTRUCTIONS] = json_attr(system)
        attrs[semconv.INPUT_MESSAGES] = json_attr(messages)
    except Exception:
        report("chat.input_messages")
    try:
        tools = m.tool_definitions(arg(kwargs, "tools"), arg(kwargs, "functions"), capture)
        if tools:
            attrs[semconv.TOOL_DEFINITIONS] = json_attr(tools)
    except Exception:
        report("chat.tool_definitions")
    return attrs


def usage_attributes(usage: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if usage is None:
        return attrs
    for key, name in (("prompt_tokens", semconv.USAGE_INPUT_TOKENS), ("completion_tokens", semconv.USAGE_OUTPUT_TOKENS)):
        value = get(usage, key)
        if isinstance(value, int):
            attrs[name] = value
    reasoning = get(get(usage, "completion_tokens_details"), "reasoning_tokens")
    if isinstance(reasoning, int):
        attrs[semconv.USAGE_REASONING_TOKENS] = reasoning
    cached = get(get(usage, "prompt_tokens_details"), "cached_tokens")
    if isinstance(cached, int):
        attrs[semconv.USAGE_CACHE_READ_INPUT_TOKENS] = cached
    return attrs


def _response_meta(attrs: dict[str, Any], response_id: Any, model: Any, tier: Any, fingerprint: Any) -> None:
    if isinstance(response_id, str):
        attrs[semconv.RESPONSE_ID] = response_id
    if isinstance(model, str):
        attrs[semconv.RESPONSE_MODEL] = model
    if isinstance(tier, str):
        attrs[OPENAI_RESPONSE_SERVICE_TIER] = tier
    if isinstance(fingerprint, str):
        attrs[OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = fingerprint


def apply_response(span: Span, response: Any, capture: bool) -> None:
    """Attributes of a complete ``ChatCompletion`` (or a compatible shape)."""
    attrs: dict[str, Any] = {}
    _response_meta(
        attrs, get(response, "id"), get(response, "model"), get(response, "service_tier"), get(response, "system_fingerprint")
    )
    attrs.update(usage_attributes(get(response, "usage")))
    choices = sorted(get(response, "choices") or (), key=lambda c: get(c, "index") or 0)
    if choices:
        attrs[semconv.RESPONSE_FINISH_REASONS] = tuple(m.finish_reason_str(get(c, "finish_reason")) for c in choices)
        try:
            attrs[semconv.OUTPUT_MESSAGES] = json_attr(
                [m.output_message(get(c, "message"), get(c, "finish_reason"), capture) for c in choices]
            )
        except Exception:
            report("chat.output_messages")
    span.set_attributes(attrs)


# --------------------------------------------------------------------------- streaming


class _ToolCallBuffer:
    __slots__ = ("id", "name", "kind", "arguments")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.kind = "function"
        self.arguments: list[str] = []


class _ChoiceBuffer:
    __slots__ = ("finish_reason", "text", "reasoning", "refusal", "tool_calls", "has_text", "has_reasoning", "has_refusal")

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.has_text = self.has_reasoning = self.has_refusal = False
        self.tool_calls: dict[int, _ToolCallBuffer] = {}

    def parts(self, capture: bool) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        if self.has_reasoning:
            parts.append(m.text_part("".join(self.reasoning), capture, "reasoning"))
        if self.has_text:
            parts.append(m.text_part("".join(self.text), capture))
        if self.has_refusal:
            parts.append(m.text_part("".join(self.refusal), capture))
        for index in sorted(self.tool_calls):
            call = self.tool_calls[index]
            part: dict[str, Any] = {"type": "tool_call", "id": call.id, "name": call.name}
            if capture:
                part["arguments"] = parse_arguments("".join(call.arguments))
            parts.append(part)
        return parts


class ChatStreamState:
    """Reassembles ``ChatCompletionChunk``s: only what the span needs, text only when captured."""

    __slots__ = ("capture", "choices", "response_id", "model", "usage", "service_tier", "fingerprint", "broken")

    def __init__(self, capture: bool) -> None:
        self.capture = capture
        self.choices: dict[int, _ChoiceBuffer] = {}
        self.response_id: str | None = None
        self.model: str | None = None
        self.usage: Any = None
        self.service_tier: Any = None
        self.fingerprint: Any = None
        self.broken = False

    def _meta(self, chunk: Any) -> None:
        self.response_id = self.response_id or get(chunk, "id")
        self.model = self.model or get(chunk, "model")
        self.service_tier = self.service_tier or get(chunk, "service_tier")
        self.fingerprint = self.fingerprint or get(chunk, "system_fingerprint")

    def process(self, chunk: Any) -> None:
        # Response metadata from the first chunk and the usage chunk only: this runs per chunk.
        if self.response_id is None:
            self._meta(chunk)
        usage = get(chunk, "usage")
        if usage is not None:
            self.usage = usage
            self._meta(chunk)
        capture = self.capture
        for choice in get(chunk, "choices") or ():
            index = get(choice, "index") or 0
            buf = self.choices.get(index)
            if buf is None:
                buf = self.choices[index] = _ChoiceBuffer()
            finish = get(choice, "finish_reason")
            if finish is not None:
                buf.finish_reason = m.finish_reason_str(finish)
            delta = get(choice, "delta")
            if delta is None:
                continue
            content = get(delta, "content")
            if content:
                buf.has_text = True
                if capture:
                    buf.text.append(content)
            reasoning = m.reasoning_text(delta)
            if reasoning:
                buf.has_reasoning = True
                if capture:
                    buf.reasoning.append(reasoning)
            refusal = get(delta, "refusal")
            if refusal:
                buf.has_refusal = True
                if capture:
                    buf.refusal.append(refusal)
            tool_calls = get(delta, "tool_calls")
            if tool_calls:
                for call in tool_calls:
                    self._tool_delta(buf, call)
            function_call = get(delta, "function_call")
            if function_call is not None:
                self._function_delta(buf, function_call)

    def _tool_delta(self, buf: _ChoiceBuffer, call: Any) -> None:
        index = get(call, "index")
        if not isinstance(index, int):
            index = len(buf.tool_calls)
        tool = buf.tool_calls.get(index)
        if tool is None:
            tool = buf.tool_calls[index] = _ToolCallBuffer()
        call_id = get(call, "id")
        if call_id:
            tool.id = call_id
        function = get(call, "function")
        if function is not None:
            name = get(function, "name")
            if name:
                tool.name = name
            args = get(function, "arguments")
            if args and self.capture:
                tool.arguments.append(args)

    def _function_delta(self, buf: _ChoiceBuffer, function_call: Any) -> None:
        tool = buf.tool_calls.get(-1)
        if tool is None:
            tool = buf.tool_calls[-1] = _ToolCallBuffer()
        name = get(function_call, "name")
        if name:
            tool.name = name
        args = get(function_call, "arguments")
        if args and self.capture:
            tool.arguments.append(args)

    @property
    def partial(self) -> bool:
        return not self.choices or any(c.finish_reason is None for c in self.choices.values())

    def apply(self, span: Span) -> None:
        attrs: dict[str, Any] = {}
        _response_meta(attrs, self.response_id, self.model, self.service_tier, self.fingerprint)
        attrs.update(usage_attributes(self.usage))
        indices = sorted(self.choices)
        if indices:
            attrs[semconv.RESPONSE_FINISH_REASONS] = tuple(
                m.finish_reason_str(self.choices[i].finish_reason) for i in indices
            )
            attrs[semconv.OUTPUT_MESSAGES] = json_attr(
                [
                    {
                        "role": "assistant",
                        "parts": self.choices[i].parts(self.capture),
                        "finish_reason": m.finish_reason_str(self.choices[i].finish_reason),
                    }
                    for i in indices
                ]
            )
        if self.partial:
            attrs[semconv.PARTIAL] = True
        span.set_attributes(attrs)
