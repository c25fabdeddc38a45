"""Validation of ``POST /v1/messages`` bodies, shared by the store and the ingest server.

Mirrors Greenflash's request schema (its SDK's ``MessageCreateParams`` and
``MessageItemParam``) plus the documented cross-field rules, so that what the
local store accepts the real API accepts too. Errors name the offending field
by its wire path (``messages[3].toolName``) so a client can fix the payload.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import date, datetime, timezone
from typing import Any, Final, NoReturn

from convotel.messages import MESSAGE_TYPES


class IngestError(Exception):
    """A request the store refuses; ``status`` is the HTTP status the server answers with."""

    status: int = 400

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ValidationError(IngestError):
    """The body does not match the schema; ``field`` is the wire path of the culprit."""

    status = 400


class NotFoundError(IngestError):
    """The body or a lookup names a conversation that does not exist."""

    status = 404


#: Largest ``POST /v1/messages`` body accepted by default (``convotel serve``, the local sink).
DEFAULT_MAX_BODY_BYTES: Final = 4 * 1024 * 1024
ROLES: Final = frozenset({"user", "assistant", "system"})
ROLE_MESSAGE_TYPES: Final = {"user": "user_message", "assistant": "assistant_message", "system": "system_message"}
CONVERSATION_KEYS: Final = ("conversationId", "externalConversationId", "productId")

Check = Callable[[Any, str], None]


def _fail(path: str, message: str) -> NoReturn:
    raise ValidationError(path, message)


def _key(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _string(*, nonempty: bool = False) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, str):
            _fail(path, "must be a string")
        if nonempty and not value:
            _fail(path, "must not be empty")

    return check


def _boolean(value: Any, path: str) -> None:
    if not isinstance(value, bool):
        _fail(path, "must be true or false")


def _integer(value: Any, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(path, "must be an integer")


def _number(*, low: float | None = None, high: float | None = None) -> Check:
    def check(value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(path, "must be a number")
        if (low is not None and value < low) or (high is not None and value > high):
            _fail(path, f"must be between {low} and {high}")

    return check


def _one_of(*values: str) -> Check:
    allowed = frozenset(values)

    def check(value: Any, path: str) -> None:
        if not isinstance(value, str) or value not in allowed:
            _fail(path, f"must be one of {', '.join(sorted(allowed))}; got {value!r}")

    return check


def _nullable(inner: Check) -> Check:
    def check(value: Any, path: str) -> None:
        if value is not None:
            inner(value, path)

    return check


def _json_object(value: Any, path: str) -> None:
    if not isinstance(value, dict):
        _fail(path, "must be a JSON object (wrap other values, e.g. {\"value\": ...})")
    for k in value:
        if not isinstance(k, str):
            _fail(path, f"object keys must be strings; got {k!r}")


def _string_map(value: Any, path: str) -> None:
    _json_object(value, path)
    for k, v in value.items():
        if not isinstance(v, str):
            _fail(_key(path, k), "must be a string")


def _timestamp(value: Any, path: str) -> None:
    if isinstance(value, (date, datetime)):
        return
    if not isinstance(value, str):
        _fail(path, "must be an ISO-8601 timestamp string")
    try:
        parse_timestamp(value)
    except ValueError:
        _fail(path, f"must be an ISO-8601 timestamp such as 2025-01-31T12:00:00.000000Z; got {value!r}")


def _array(item: Check, *, nonempty: bool = False) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, list):
            _fail(path, "must be an array")
        if nonempty and not value:
            _fail(path, "must contain at least one item")
        for i, element in enumerate(value):
            item(element, f"{path}[{i}]")

    return check


def _record(fields: Mapping[str, Check], *, required: Collection[str] = ()) -> Check:
    """An object with exactly these keys (unknown keys are rejected, as the API does)."""

    def check(value: Any, path: str) -> None:
        _json_object(value, path)
        for name in required:
            if name not in value:
                _fail(_key(path, name), "is required")
        for name, field_value in value.items():
            field_check = fields.get(name)
            if field_check is None:
                _fail(_key(path, name), f"unknown field; allowed: {', '.join(sorted(fields))}")
            field_check(field_value, _key(path, name))

    return check


def parse_timestamp(value: str | date) -> datetime:
    """An ISO-8601 string or date as an aware UTC datetime (naive input is taken as UTC)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


_VOICE_PROSODY = _record({
    "arousal": _number(),
    "emotion": _string(),
    "sentimentLabel": _one_of("positive", "neutral", "negative"),
    "sentimentScore": _number(),
})

_VOICE = _record({
    "asrConfidence": _number(),
    "audioUrl": _string(),
    "bargeIn": _boolean,
    "durationMs": _integer,
    "endedAt": _integer,
    "prosody": _VOICE_PROSODY,
    "responseLatencyMs": _integer,
    "silenceBeforeMs": _integer,
    "speaker": _string(),
    "startedAt": _integer,
    "wasInterrupted": _boolean,
})

_MESSAGE_FIELDS = _record({
    "content": _string(),
    "context": _nullable(_string()),
    "createdAt": _nullable(_timestamp),
    "externalMessageId": _string(nonempty=True),
    "input": _json_object,
    "messageType": _one_of(*MESSAGE_TYPES),
    "model": _string(),
    "output": _json_object,
    "parentExternalMessageId": _string(nonempty=True),
    "parentMessageId": _string(nonempty=True),
    "properties": _json_object,
    "role": _one_of(*ROLES),
    "toolName": _string(),
    "voice": _VOICE,
})


def _message(value: Any, path: str) -> None:
    _MESSAGE_FIELDS(value, path)
    if "messageType" in value and "role" in value:
        _fail(_key(path, "role"), "cannot be used with messageType; send one of them")
    if "messageType" not in value and "role" not in value:
        _fail(_key(path, "messageType"), "is required (or give role: user, assistant or system)")
    if value.get("messageType") == "tool_call" and not value.get("toolName"):
        _fail(_key(path, "toolName"), "is required for tool_call messages")
    if "parentExternalMessageId" in value and "parentMessageId" in value:
        _fail(_key(path, "parentMessageId"), "cannot be used with parentExternalMessageId; send one of them")


_COMPONENT = _record({
    "content": _string(),
    "componentId": _string(),
    "externalComponentId": _string(),
    "isDynamic": _boolean,
    "name": _string(),
    "source": _one_of("customer", "participant", "greenflash", "agent"),
    "type": _one_of("system", "user", "tool", "guardrail", "rag", "agent", "other"),
}, required=("content",))

_SYSTEM_PROMPT_OBJECT = _record({
    "components": _array(_COMPONENT),
    "content": _string(),
    "externalPromptId": _string(),
    "promptId": _string(),
    "variables": _string_map,
})


def _system_prompt(value: Any, path: str) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, dict):
        _fail(path, "must be a string or a prompt object")
    _SYSTEM_PROMPT_OBJECT(value, path)
    if "components" in value and "content" in value:
        _fail(_key(path, "content"), "cannot be used with components; send one of them")


_VOICE_CALL = _record({
    "callSuccessful": _boolean,
    "durationMs": _integer,
    "endedReason": _string(),
    "interruptionCount": _integer,
    "latency": _record({"asrMs": _integer, "e2eMs": _integer, "llmMs": _integer, "ttsMs": _integer}),
    "platform": _one_of("vapi", "retell", "elevenlabs", "openai_realtime", "livekit", "bland",
                        "synthflow", "simpleai", "other"),
    "platformCallId": _string(),
    "recordingUrl": _string(),
    "silenceCount": _integer,
    "structuredOutputs": _json_object,
})

_BODY = _record({
    "externalUserId": _string(nonempty=True),
    "messages": _array(_message, nonempty=True),
    "conversationId": _string(nonempty=True),
    "externalConversationId": _string(nonempty=True),
    "externalOrganizationId": _string(nonempty=True),
    "forceSample": _boolean,
    "model": _string(),
    "productId": _string(nonempty=True),
    "properties": _json_object,
    "sampleRate": _number(low=0.0, high=1.0),
    "systemPrompt": _system_prompt,
    "voiceCall": _VOICE_CALL,
}, required=("externalUserId", "messages"))


def validate_create_params(body: Any) -> None:
    """Raise :class:`ValidationError` naming the first field that the API would reject."""
    if not isinstance(body, dict):
        _fail("body", "must be a JSON object")
    _BODY(body, "")
    if not any(k in body for k in CONVERSATION_KEYS):
        _fail("externalConversationId", "one of conversationId, externalConversationId or productId is required")


def effective_message_type(message: Mapping[str, Any]) -> str:
    """``messageType``, or the type a plain ``role`` stands for."""
    return message.get("messageType") or ROLE_MESSAGE_TYPES[message["role"]]
