"""Responses API: request items → input messages, output items → one output message, streams.

A response is one assistant turn, so its output items (reasoning, messages,
function calls) become the parts of a single output message. Input items are
grouped the same way: consecutive assistant-side items (assistant messages,
reasoning, function calls) form one assistant message, ``function_call_output``
items become ``tool`` messages.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Span, Status, StatusCode

from convotel import semconv
from convotel.instrumentation import json_attr
from convotel.message_parts import content_text, image_part, join_text, text_part

from . import _chat
from . import _messages as m
from ._utils import arg, as_list, get, parse_arguments, report, view

if TYPE_CHECKING:
    from ._call import Call

OPERATION = semconv.OP_CHAT

_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


class ChainRoots:
    """Response id → the first response of its ``previous_response_id`` chain (bounded LRU).

    A chain of responses is one conversation; its id is the chain's first response id,
    so every turn of a chained conversation lands in the same conversation without the
    app naming one. A chain that outlives this process (or this map) starts over at the
    oldest response id still known.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._roots: OrderedDict[str, str] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def root_of(self, response_id: str) -> str:
        with self._lock:
            root = self._roots.get(response_id)
            if root is not None:
                self._roots.move_to_end(response_id)
            return root or response_id

    def remember(self, response_id: str, root: str) -> None:
        with self._lock:
            self._roots[response_id] = root
            self._roots.move_to_end(response_id)
            while len(self._roots) > self._capacity:
                self._roots.popitem(last=False)


CHAIN_ROOTS = ChainRoots()


def conversation_id(value: Any) -> str | None:
    """The id of a ``conversation`` argument or response field (a string or ``{"id": ...}``)."""
    if isinstance(value, str):
        return value or None
    ident = get(value, "id")
    return ident if isinstance(ident, str) and ident else None


def _output_type(text: Any) -> str | None:
    return _chat.output_type(get(text, "format"))


def request_attributes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for key, name in (("temperature", _chat.REQUEST_TEMPERATURE), ("top_p", _chat.REQUEST_TOP_P)):
        value = kwargs.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attrs[name] = value
    max_tokens = kwargs.get("max_output_tokens")
    if isinstance(max_tokens, int):
        attrs[_chat.REQUEST_MAX_TOKENS] = max_tokens
    if "text_format" in kwargs or "text" in kwargs:
        text_format = arg(kwargs, "text_format")
        kind = "json" if text_format is not None else _output_type(arg(kwargs, "text"))
        if kind:
            attrs[_chat.OUTPUT_TYPE] = kind
    tier = kwargs.get("service_tier")
    if isinstance(tier, str):
        attrs[_chat.OPENAI_REQUEST_SERVICE_TIER] = tier
    previous = kwargs.get("previous_response_id")
    if isinstance(previous, str) and previous:
        attrs[semconv.PREVIOUS_RESPONSE_ID] = previous
        attrs[semconv.CONVERSATION_ID] = CHAIN_ROOTS.root_of(previous)
    if "conversation" in kwargs:
        conversation = conversation_id(arg(kwargs, "conversation"))
        if conversation:
            attrs[semconv.CONVERSATION_ID] = conversation  # an explicit convotel.conversation() overrides it
    return attrs


# --------------------------------------------------------------------------- input items


_TEXT_KINDS = frozenset(("input_text", "output_text", "text", "summary_text", "reasoning_text"))


def _content_parts(content: Any, capture: bool) -> list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return m.content_parts(content, capture)
    items = as_list(content)
    if items is None:
        return m.content_parts(content, capture)
    parts: list[dict[str, Any]] = []
    for item in items:
        fields = view(item)
        kind = fields.get("type")
        if kind in _TEXT_KINDS:
            parts.append(text_part(fields.get("text") or "", capture))
        elif kind == "refusal":
            parts.append(text_part(fields.get("refusal") or "", capture))
        elif kind == "input_image":
            url = fields.get("image_url")
            if isinstance(url, str):
                parts.append(image_part(url, capture))
            else:
                part: dict[str, Any] = {"type": "file", "modality": "image"}
                if capture and isinstance(fields.get("file_id"), str):
                    part["file_id"] = fields.get("file_id")
                parts.append(part)
        elif kind == "input_file":
            part = {"type": "file"}
            if capture and isinstance(fields.get("file_id"), str):
                part["file_id"] = fields.get("file_id")
            parts.append(part)
        elif kind == "input_audio":
            parts.append({"type": "blob", "modality": "audio"})
        else:
            parts.extend(m.content_parts([item], capture))
    return join_text(parts)


def _reasoning_part(item: Mapping[str, Any], capture: bool) -> dict[str, Any] | None:
    texts = [get(s, "text") for s in as_list(item.get("summary")) or ()]
    texts += [get(c, "text") for c in as_list(item.get("content")) or ()]
    text = "\n\n".join(t for t in texts if isinstance(t, str) and t)
    return text_part(text, capture, "reasoning") if text else None


def _tool_call_part(item: Mapping[str, Any], capture: bool) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "tool_call", "id": item.get("call_id") or item.get("id"), "name": item.get("name")}
    if capture:
        raw = item.get("input") if item.get("type") == "custom_tool_call" else item.get("arguments")
        part["arguments"] = parse_arguments(raw)
    return part


_TOOL_CALLS = ("function_call", "custom_tool_call", "mcp_call")
_TOOL_OUTPUTS = ("function_call_output", "custom_tool_call_output")
_TOOL_OUTPUT_TEXT_TYPES = ("input_text", "output_text", "text")


def assistant_item_parts(item: Any, capture: bool) -> list[dict[str, Any]]:
    """Parts of one output-side item (message, reasoning, tool call, built-in tool call)."""
    fields = view(item)
    kind = fields.get("type")
    if kind == "reasoning":
        part = _reasoning_part(fields, capture)
        return [part] if part else []
    if kind in _TOOL_CALLS:
        return [_tool_call_part(fields, capture)]
    if kind in (None, "message"):
        return _content_parts(fields.get("content"), capture)
    return [{"type": str(kind)}]  # built-in tool calls (web_search_call, ...): structure only


def input_messages(value: Any, capture: bool) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """(leading system/developer parts or None, input messages) of a request's ``input``."""
    if isinstance(value, str):
        return None, [{"role": "user", "parts": [text_part(value, capture)]}]
    items = as_list(value)
    if items is None:
        return None, []
    system, start = m.leading_system(items, capture, _content_parts)
    out: list[dict[str, Any]] = []
    assistant: dict[str, Any] | None = None
    for item in items[start:] if start else items:
        fields = view(item)
        kind = fields.get("type")
        role = fields.get("role")
        if kind in _TOOL_OUTPUTS:
            assistant = None
            part: dict[str, Any] = {"type": "tool_call_response", "id": fields.get("call_id")}
            if capture:
                part["response"] = content_text(fields.get("output"), _TOOL_OUTPUT_TEXT_TYPES)
            out.append({"role": "tool", "parts": [part]})
            continue
        if kind == "item_reference":
            continue
        if role == "assistant" or (role is None and kind not in (None, "message")):
            if assistant is None:
                assistant = {"role": "assistant", "parts": []}
                out.append(assistant)
            assistant["parts"].extend(assistant_item_parts(item, capture))
            continue
        assistant = None
        if role in m.SYSTEM_ROLES:
            role = "system"
        parts = _content_parts(fields.get("content"), capture)
        out.append({"role": role if isinstance(role, str) else "user", "parts": parts})
    return system, out


def request_content_attributes(kwargs: Mapping[str, Any], capture: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    try:
        value = arg(kwargs, "input")
        system, messages = input_messages(value, capture)
        instructions = arg(kwargs, "instructions")
        parts: list[dict[str, Any]] = []
        if isinstance(instructions, str) and instructions:
            parts.append(text_part(instructions, capture))
        elif instructions is not None:
            _, items = input_messages(instructions, capture)
            for item in items:
                parts.extend(item["parts"])
        if system:
            parts.extend(system)
        if parts:
            attrs[semconv.SYSTEM_INSTRUCTIONS] = json_attr(parts)
        if messages or value is not None:
            attrs[semconv.INPUT_MESSAGES] = json_attr(messages)
    except Exception:
        report("responses.input_messages")
    if "tools" in kwargs:
        try:
            tools = tool_definitions(arg(kwargs, "tools"), capture)
            if tools:
                attrs[semconv.TOOL_DEFINITIONS] = json_attr(tools)
        except Exception:
            report("responses.tool_definitions")
    return attrs


def tool_definitions(tools: Any, capture: bool) -> list[dict[str, Any]]:
    out = []
    for tool in as_list(tools) or ():
        kind = get(tool, "type") or "function"
        entry: dict[str, Any] = {"type": str(kind), "name": get(tool, "name") or get(tool, "server_label") or str(kind)}
        if capture:
            for key in ("description", "parameters"):
                value = get(tool, key)
                if value is not None:
                    entry[key] = value
        out.append(entry)
    return out


# --------------------------------------------------------------------------- response


def _finish_reason(response: Mapping[str, Any], output: list[Any]) -> str:
    status = response.get("status")
    if status == "completed":
        return "tool_calls" if any(get(i, "type") in _TOOL_CALLS for i in output) else "stop"
    if status == "incomplete":
        reason = get(response.get("incomplete_details"), "reason")
        return _INCOMPLETE_REASONS.get(reason, reason if isinstance(reason, str) else "length")
    if status == "failed":
        return "error"
    return status if isinstance(status, str) else "error"


def _meta(attrs: dict[str, Any], response: Mapping[str, Any]) -> None:
    for key, name in (("id", semconv.RESPONSE_ID), ("model", semconv.RESPONSE_MODEL)):
        value = response.get(key)
        if isinstance(value, str):
            attrs[name] = value
    tier = response.get("service_tier")
    if isinstance(tier, str):
        attrs[_chat.OPENAI_RESPONSE_SERVICE_TIER] = tier


def _response_attributes(response: Mapping[str, Any], capture: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    _meta(attrs, response)
    _chat.add_usage(attrs, response.get("usage"), _chat.RESPONSES_USAGE)
    conversation = conversation_id(response.get("conversation"))
    if conversation:
        attrs[semconv.CONVERSATION_ID] = conversation
    output = as_list(response.get("output")) or []
    reason = _finish_reason(response, output)
    attrs[semconv.RESPONSE_FINISH_REASONS] = (reason,)
    try:
        parts: list[dict[str, Any]] = []
        for item in output:
            parts.extend(assistant_item_parts(item, capture))
        attrs[semconv.OUTPUT_MESSAGES] = json_attr([{"role": "assistant", "parts": parts, "finish_reason": reason}])
    except Exception:
        report("responses.output_messages")
    if response.get("status") == "failed":
        code = get(response.get("error"), "code")
        attrs[semconv.ERROR_TYPE] = code if isinstance(code, str) and code else "response_failed"
    return attrs


def _continue_chain(span: Span, response: Mapping[str, Any], attrs: dict[str, Any]) -> None:
    """Without an explicit or ``conversation`` id, a response chain is the conversation."""
    response_id = response.get("id")
    if not isinstance(response_id, str) or not response_id:
        return
    # In order: the response's own ``conversation``, the request's (or its chain's), this response.
    started = getattr(span, "attributes", None) or {}
    conversation = attrs.get(semconv.CONVERSATION_ID) or started.get(semconv.CONVERSATION_ID) or response_id
    attrs[semconv.CONVERSATION_ID] = conversation
    CHAIN_ROOTS.remember(response_id, conversation)


def apply_response(span: Span, response: Any, capture: bool, *, conversation_known: bool = False) -> None:
    fields = view(response)
    attrs = _response_attributes(fields, capture)
    if conversation_known:
        attrs.pop(semconv.CONVERSATION_ID, None)
    else:
        _continue_chain(span, fields, attrs)
    span.set_attributes(attrs)
    if fields.get("status") == "failed":
        message = get(fields.get("error"), "message")
        span.set_status(Status(StatusCode.ERROR, message if isinstance(message, str) else "response failed"))


def apply_call_response(call: Call, response: Any) -> None:
    apply_response(call.span, response, call.capture, conversation_known=call.conversation_known)


# --------------------------------------------------------------------------- streaming


class _ItemBuffer:
    __slots__ = ("item", "kind", "text", "reasoning", "arguments", "has_text", "has_reasoning")

    def __init__(self, item: Any) -> None:
        self.item = item  # the complete item once ``output_item.done`` arrived, else the ``added`` stub
        self.kind = get(item, "type")
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.arguments: list[str] = []
        self.has_text = self.has_reasoning = False

    def parts(self, capture: bool, done: bool) -> list[dict[str, Any]]:
        if done:
            return assistant_item_parts(self.item, capture)
        parts: list[dict[str, Any]] = []
        if self.has_reasoning:
            parts.append(text_part("".join(self.reasoning), capture, "reasoning"))
        if self.kind in _TOOL_CALLS:
            part: dict[str, Any] = {
                "type": "tool_call",
                "id": get(self.item, "call_id") or get(self.item, "id"),
                "name": get(self.item, "name"),
            }
            if capture:
                part["arguments"] = parse_arguments("".join(self.arguments))
            parts.append(part)
        elif self.has_text:
            parts.append(text_part("".join(self.text), capture))
        return parts


_TERMINAL = frozenset(("response.completed", "response.incomplete", "response.failed"))
_STARTED = frozenset(("response.created", "response.in_progress", "response.queued"))
_TEXT_DELTAS = frozenset(("response.output_text.delta", "response.refusal.delta"))
_REASONING_DELTAS = frozenset(("response.reasoning_summary_text.delta", "response.reasoning_text.delta"))
_ARGUMENT_DELTAS = frozenset(("response.function_call_arguments.delta", "response.custom_tool_call_input.delta"))


class ResponsesStreamState:
    """Reassembles Responses stream events; the terminal event's response is authoritative."""

    __slots__ = ("capture", "items", "done", "final", "response", "error", "broken", "conversation_known")

    def __init__(self, capture: bool, conversation_known: bool = False) -> None:
        self.capture = capture
        self.conversation_known = conversation_known
        self.items: dict[int, _ItemBuffer] = {}
        self.done: set[int] = set()
        self.final: Any = None
        self.response: Any = None
        self.error: Any = None
        self.broken = False

    def process(self, event: Any) -> None:
        fields = view(event)
        kind = fields.get("type")
        if not isinstance(kind, str):
            return
        if kind in _TERMINAL:
            self.final = fields.get("response")
            self.items.clear()  # the final response carries every item
            return
        if kind in _STARTED:
            self.response = fields.get("response")
            return
        if kind == "error":
            self.error = event
            return
        index = fields.get("output_index")
        if not isinstance(index, int):
            return
        if kind == "response.output_item.added":
            self.items[index] = _ItemBuffer(fields.get("item"))
            return
        buf = self.items.get(index)
        if buf is None:
            buf = self.items[index] = _ItemBuffer(None)
        if kind == "response.output_item.done":
            buf.item = fields.get("item")
            buf.kind = get(buf.item, "type")
            buf.text, buf.reasoning, buf.arguments = [], [], []
            self.done.add(index)
            return
        delta = fields.get("delta")
        if not isinstance(delta, str) or not delta:
            return
        if kind in _TEXT_DELTAS:
            buf.has_text = True
            if self.capture:
                buf.text.append(delta)
        elif kind in _REASONING_DELTAS:
            buf.has_reasoning = True
            if self.capture:
                buf.reasoning.append(delta)
        elif kind in _ARGUMENT_DELTAS:
            if self.capture:
                buf.arguments.append(delta)

    @property
    def partial(self) -> bool:
        return self.final is None

    def apply(self, span: Span) -> None:
        if self.final is not None:
            apply_response(span, self.final, self.capture, conversation_known=self.conversation_known)
            return
        attrs: dict[str, Any] = {semconv.PARTIAL: True}
        if self.response is not None:
            _meta(attrs, view(self.response))
        parts: list[dict[str, Any]] = []
        for index in sorted(self.items):
            parts.extend(self.items[index].parts(self.capture, index in self.done))
        if self.items or self.response is not None:
            attrs[semconv.RESPONSE_FINISH_REASONS] = ("error",)
            output = {"role": "assistant", "parts": parts, "finish_reason": "error"}
            attrs[semconv.OUTPUT_MESSAGES] = json_attr([output])
        span.set_attributes(attrs)
        if self.error is not None:
            code = get(self.error, "code")
            span.set_attribute(semconv.ERROR_TYPE, code if isinstance(code, str) and code else "stream_error")
            message = get(self.error, "message")
            span.set_status(Status(StatusCode.ERROR, message if isinstance(message, str) else "stream error"))


def stream_state(call: Call) -> ResponsesStreamState:
    return ResponsesStreamState(call.capture, call.conversation_known)
