"""Chat Completions: request attributes, response extraction, stream reassembly."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Span

from convotel import semconv
from convotel.instrumentation import json_attr
from convotel.message_parts import text_part

from . import _messages as m
from ._utils import MODEL_TYPES, arg, get, parse_arguments, report, view

if TYPE_CHECKING:
    from ._call import Call

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
_EXTRA = "__pydantic_extra__"

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
    # Type checks do the work of ``arg()``: the SDK's NOT_GIVEN / omit sentinels are no int, str...
    attrs: dict[str, Any] = {}
    for key, name in _NUMERIC:
        value = kwargs.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attrs[name] = value
    max_tokens = arg(kwargs, "max_completion_tokens") if "max_completion_tokens" in kwargs else None
    if max_tokens is None:
        max_tokens = kwargs.get("max_tokens")
    if isinstance(max_tokens, int):
        attrs[REQUEST_MAX_TOKENS] = max_tokens
    seed = kwargs.get("seed")
    if isinstance(seed, int):
        attrs[REQUEST_SEED] = seed
    n = kwargs.get("n")
    if isinstance(n, int) and n > 1:
        attrs[semconv.REQUEST_CHOICE_COUNT] = n
    stop = kwargs.get("stop")
    if isinstance(stop, str):
        attrs[REQUEST_STOP_SEQUENCES] = (stop,)
    elif isinstance(stop, (list, tuple)):
        attrs[REQUEST_STOP_SEQUENCES] = tuple(str(s) for s in stop)
    if "response_format" in kwargs:
        kind = output_type(arg(kwargs, "response_format"))
        if kind:
            attrs[OUTPUT_TYPE] = kind
    tier = kwargs.get("service_tier")
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
    if "tools" in kwargs or "functions" in kwargs:
        try:
            tools = m.tool_definitions(arg(kwargs, "tools"), arg(kwargs, "functions"), capture)
            if tools:
                attrs[semconv.TOOL_DEFINITIONS] = json_attr(tools)
        except Exception:
            report("chat.tool_definitions")
    return attrs


# (input tokens, output tokens, input details, output details) keys of a usage object
CHAT_USAGE = ("prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details")
RESPONSES_USAGE = ("input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details")


def add_usage(attrs: dict[str, Any], usage: Any, keys: tuple[str, str, str, str] = CHAT_USAGE) -> None:
    """Token counts of a Chat Completions (or, with ``RESPONSES_USAGE``, a Responses) usage."""
    if usage is None:
        return
    fields = view(usage)
    input_key, output_key, input_details, output_details = keys
    value = fields.get(input_key)
    if isinstance(value, int):
        attrs[semconv.USAGE_INPUT_TOKENS] = value
    value = fields.get(output_key)
    if isinstance(value, int):
        attrs[semconv.USAGE_OUTPUT_TOKENS] = value
    details = fields.get(output_details)
    if details is not None:
        value = view(details).get("reasoning_tokens")
        if isinstance(value, int):
            attrs[semconv.USAGE_REASONING_TOKENS] = value
    details = fields.get(input_details)
    if details is not None:
        value = view(details).get("cached_tokens")
        if isinstance(value, int):
            attrs[semconv.USAGE_CACHE_READ_INPUT_TOKENS] = value


def _response_meta(attrs: dict[str, Any], response_id: Any, model: Any, tier: Any, fingerprint: Any) -> None:
    if isinstance(response_id, str):
        attrs[semconv.RESPONSE_ID] = response_id
    if isinstance(model, str):
        attrs[semconv.RESPONSE_MODEL] = model
    if isinstance(tier, str):
        attrs[OPENAI_RESPONSE_SERVICE_TIER] = tier
    if isinstance(fingerprint, str):
        attrs[OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = fingerprint


def _choice_index(choice: Mapping[str, Any]) -> Any:
    return choice.get("index") or 0


def apply_response(span: Span, response: Any, capture: bool) -> None:
    """Attributes of a complete ``ChatCompletion`` (or a compatible shape)."""
    fields = view(response)
    attrs: dict[str, Any] = {}
    _response_meta(
        attrs, fields.get("id"), fields.get("model"), fields.get("service_tier"), fields.get("system_fingerprint")
    )
    usage = fields.get("usage")
    if usage is not None:
        add_usage(attrs, usage)
    choices = [view(c) for c in fields.get("choices") or ()]
    if len(choices) > 1:
        choices.sort(key=_choice_index)
    if choices:
        reasons = tuple([m.finish_reason_str(c.get("finish_reason")) for c in choices])
        attrs[semconv.RESPONSE_FINISH_REASONS] = reasons
        try:
            attrs[semconv.OUTPUT_MESSAGES] = json_attr(
                [
                    {"role": "assistant", "parts": m.assistant_parts(c.get("message"), capture), "finish_reason": why}
                    for c, why in zip(choices, reasons, strict=True)
                ]
            )
        except Exception:
            report("chat.output_messages")
    span.set_attributes(attrs)


def apply_call_response(call: Call, response: Any) -> None:
    apply_response(call.span, response, call.capture)


# --------------------------------------------------------------------------- streaming


class _ToolCallBuffer:
    __slots__ = ("id", "name", "kind", "arguments")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.kind = "function"
        self.arguments: list[str] = []


class _ChoiceBuffer:
    __slots__ = (
        "finish_reason", "text", "reasoning", "refusal", "tool_calls", "has_text", "has_reasoning", "has_refusal"
    )

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
            parts.append(text_part("".join(self.reasoning), capture, "reasoning"))
        if self.has_text:
            parts.append(text_part("".join(self.text), capture))
        if self.has_refusal:
            parts.append(text_part("".join(self.refusal), capture))
        for index in sorted(self.tool_calls):
            call = self.tool_calls[index]
            part: dict[str, Any] = {"type": "tool_call", "id": call.id, "name": call.name}
            if capture:
                part["arguments"] = parse_arguments("".join(call.arguments))
            parts.append(part)
        return parts


class ChatStreamState:
    """Reassembles ``ChatCompletionChunk``s: only what the span needs, text only when captured.

    ``process`` runs for every chunk in the app's thread, between the SDK yielding the chunk
    and the app seeing it: it appends the delta's pieces to lists and does nothing else;
    ``apply`` joins them once at the end.
    """

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

    def _meta(self, chunk: Mapping[str, Any]) -> None:
        self.response_id = self.response_id or chunk.get("id")
        self.model = self.model or chunk.get("model")
        self.service_tier = self.service_tier or chunk.get("service_tier")
        self.fingerprint = self.fingerprint or chunk.get("system_fingerprint")

    def process(self, chunk: Any) -> None:
        # ``view()`` inlined for the SDK's pydantic chunks (no extra fields): this runs per chunk.
        kind = type(chunk)
        fields = chunk.__dict__ if kind in MODEL_TYPES and not getattr(chunk, _EXTRA, None) else view(chunk)
        # Response metadata from the first chunk and the usage chunk only.
        if self.response_id is None:
            self._meta(fields)
        usage = fields.get("usage")
        if usage is not None:
            self.usage = usage
            self._meta(fields)
        choices = fields.get("choices")
        if not choices:
            return
        for choice in choices:
            kind = type(choice)
            choice = choice.__dict__ if kind in MODEL_TYPES and not getattr(choice, _EXTRA, None) else view(choice)
            index = choice.get("index") or 0
            buf = self.choices.get(index)
            if buf is None:
                buf = self.choices[index] = _ChoiceBuffer()
            finish = choice.get("finish_reason")
            if finish is not None:
                buf.finish_reason = m.finish_reason_str(finish)
            delta = choice.get("delta")
            if delta is None:
                continue
            kind = type(delta)
            delta = delta.__dict__ if kind in MODEL_TYPES and not getattr(delta, _EXTRA, None) else view(delta)
            content = delta.get("content")
            if content:
                buf.has_text = True
                if self.capture:
                    buf.text.append(content)
            # ``m.reasoning_of(delta)`` inlined: this runs per chunk (it only takes strings, which
            # every provider sends; a field of another type hands the rare case to it).
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning:
                if not isinstance(reasoning, str):
                    reasoning = m.reasoning_of(delta)
                if reasoning:
                    buf.has_reasoning = True
                    if self.capture:
                        buf.reasoning.append(reasoning)
            refusal = delta.get("refusal")
            if refusal:
                buf.has_refusal = True
                if self.capture:
                    buf.refusal.append(refusal)
            tool_calls = delta.get("tool_calls")
            if tool_calls:
                for call in tool_calls:
                    call = view(call)
                    index = call.get("index")
                    if not isinstance(index, int):
                        index = len(buf.tool_calls)
                    self._call_delta(buf, index, call.get("id"), call.get("function"))
            function_call = delta.get("function_call")
            if function_call is not None:
                self._call_delta(buf, -1, None, function_call)  # legacy ``function_call``: one call, no id

    def _call_delta(self, buf: _ChoiceBuffer, index: int, call_id: Any, function: Any) -> None:
        tool = buf.tool_calls.get(index)
        if tool is None:
            tool = buf.tool_calls[index] = _ToolCallBuffer()
        if call_id:
            tool.id = call_id
        if function is not None:
            function = view(function)
            name = function.get("name")
            if name:
                tool.name = name
            args = function.get("arguments")
            if args and self.capture:
                tool.arguments.append(args)

    @property
    def partial(self) -> bool:
        return not self.choices or any(c.finish_reason is None for c in self.choices.values())

    def apply(self, span: Span) -> None:
        attrs: dict[str, Any] = {}
        _response_meta(attrs, self.response_id, self.model, self.service_tier, self.fingerprint)
        add_usage(attrs, self.usage)
        indices = sorted(self.choices)
        if indices:
            reasons = tuple(m.finish_reason_str(self.choices[i].finish_reason) for i in indices)
            attrs[semconv.RESPONSE_FINISH_REASONS] = reasons
            attrs[semconv.OUTPUT_MESSAGES] = json_attr(
                [
                    {"role": "assistant", "parts": self.choices[i].parts(self.capture), "finish_reason": reason}
                    for i, reason in zip(indices, reasons, strict=True)
                ]
            )
        if self.partial:
            attrs[semconv.PARTIAL] = True
        span.set_attributes(attrs)


def stream_state(call: Call) -> ChatStreamState:
    return ChatStreamState(call.capture)
