"""The SDK-derived schema checker rejects what Greenflash rejects, and the store is never laxer than it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from greenflash.types import MessageCreateParams, MessageItemParam
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import greenflash_schema
from convotel.messages import MESSAGE_TYPES, Conversation, ConversationBatch, Message
from convotel.store import ValidationError
from convotel.store import validate_create_params as store_validate


def agentic_body() -> dict[str, Any]:
    """The shape of the API reference's agentic example."""
    return {
        "externalUserId": "user-123",
        "externalOrganizationId": "org-789",
        "externalConversationId": "conv-456",
        "productId": "123e4567-e89b-12d3-a456-426614174001",
        "model": "gpt-greenflash-1",
        "properties": {"campaign": "summer-sale"},
        "sampleRate": 0.5,
        "forceSample": True,
        "systemPrompt": {
            "promptId": "123e4567-e89b-12d3-a456-426614174004",
            "components": [{"content": "You are a helpful assistant.", "type": "system", "source": "customer"}],
            "variables": {"name": "Ada"},
        },
        "voiceCall": {"platform": "vapi", "durationMs": 1200, "latency": {"e2eMs": 300}},
        "messages": [
            {"externalMessageId": "user-msg-1", "role": "user", "content": "Hello!"},
            {"externalMessageId": "tool-call-1", "messageType": "tool_call", "content": "Calling search tool",
             "toolName": "web_search", "input": {"query": "weather forecast"}, "parentExternalMessageId": "user-msg-1",
             "createdAt": "2025-01-31T12:00:00.000001Z"},
            {"externalMessageId": "tool-result-1", "messageType": "observation", "output": {"results": ["Sunny"]},
             "parentExternalMessageId": "tool-call-1", "context": None, "properties": {"latencyMs": 12},
             "voice": {"asrConfidence": 0.9, "prosody": {"sentimentLabel": "positive"}}},
            {"externalMessageId": "final-1", "messageType": "final_response", "content": "Sunny.", "model": "gpt-4o"},
        ],
    }


def test_wire_names_come_from_the_sdk_aliases() -> None:
    body_fields = greenflash_schema.typed_dict_fields(MessageCreateParams)
    message_fields = greenflash_schema.typed_dict_fields(MessageItemParam)
    assert {"externalUserId", "externalConversationId", "conversationId", "productId", "systemPrompt",
            "sampleRate", "forceSample", "voiceCall"} <= body_fields.keys()
    assert {"externalMessageId", "messageType", "parentExternalMessageId", "parentMessageId", "toolName",
            "createdAt", "input", "output", "properties"} <= message_fields.keys()
    assert not any("_" in name for name in [*body_fields, *message_fields])
    assert {f.wire_name for f in body_fields.values() if f.required} == {"externalUserId", "messages"}
    assert not any(f.required for f in message_fields.values())


def test_message_types_match_convotel() -> None:
    assert greenflash_schema.message_types() == MESSAGE_TYPES


@pytest.mark.parametrize("body", [
    agentic_body(),
    {"externalUserId": "u", "productId": "p", "messages": [{"role": "assistant", "content": "hi"}]},
    {"externalUserId": "u", "conversationId": "c", "systemPrompt": "Be brief.", "messages": [{"role": "system"}]},
    {"externalUserId": "u", "externalConversationId": "c", "systemPrompt": {"content": "Be brief."},
     "messages": [{"messageType": "thought", "createdAt": None}]},
], ids=["agentic", "chat-by-product", "string-prompt", "prompt-content"])
def test_valid_bodies_pass(body: dict[str, Any]) -> None:
    assert greenflash_schema.validate_create_params(body) == []


def test_convotel_wire_bodies_pass() -> None:
    batch = ConversationBatch(
        Conversation("conv-1", "alice", "acme"),
        [Message("m1", "user_message", 1_700_000_000_000_000_000, content="hi"),
         Message("m2", "tool_call", 1_700_000_000_000_001_000, parent_external_message_id="m1", tool_name="search",
                 input={"q": "x"}, properties={"usage": {"inputTokens": 3}})],
        model="gpt-4o", system_prompt="Be brief.", properties={"env": "test"},
    )
    assert greenflash_schema.validate_create_params(batch.to_wire(product_id="prod")) == []


def _mutated(path: tuple[Any, ...], value: Any = ...) -> dict[str, Any]:
    """The agentic body with the key at ``path`` set to ``value`` (or deleted when ``value`` is omitted)."""
    body = copy.deepcopy(agentic_body())
    target: Any = body
    for step in path[:-1]:
        target = target[step]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


def _without_conversation() -> dict[str, Any]:
    body = agentic_body()
    for key in ("externalConversationId", "productId"):
        del body[key]
    return body


NEGATIVE_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("missing-user", _mutated(("externalUserId",)), "externalUserId: is required"),
    ("missing-messages", _mutated(("messages",)), "messages: is required"),
    ("no-conversation", _without_conversation(), "conversationId: one of"),
    ("messages-not-array", _mutated(("messages",), {"role": "user"}), "messages: must be an array"),
    ("message-not-object", _mutated(("messages", 0), "hello"), "messages[0]: must be an object"),
    ("role-and-type", _mutated(("messages", 0, "messageType"), "user_message"), "messages[0].role: cannot be used"),
    ("bad-type", _mutated(("messages", 3, "messageType"), "answer"), "messages[3].messageType: 'answer'"),
    ("bad-role", _mutated(("messages", 0, "role"), "tool"), "messages[0].role: 'tool'"),
    ("tool-call-no-name", _mutated(("messages", 1, "toolName")), "messages[1].toolName: is required for tool_call"),
    ("both-parents", _mutated(("messages", 2, "parentMessageId"), "x"), "messages[2].parentMessageId: cannot"),
    ("input-array", _mutated(("messages", 1, "input"), ["weather"]), "messages[1].input: must be an object"),
    ("output-string", _mutated(("messages", 2, "output"), "Sunny"), "messages[2].output: must be an object"),
    ("properties-array", _mutated(("messages", 2, "properties"), [1]), "messages[2].properties: must be an object"),
    ("body-properties-string", _mutated(("properties",), "x"), "properties: must be an object"),
    ("content-number", _mutated(("messages", 0, "content"), 3), "messages[0].content: must be a string"),
    ("sample-rate-string", _mutated(("sampleRate",), "0.5"), "sampleRate: must be a number"),
    ("force-sample-string", _mutated(("forceSample",), "yes"), "forceSample: must be a boolean"),
    ("unknown-body-key", _mutated(("versionId",), "v1"), "versionId: unknown field"),
    ("python-name", _mutated(("external_user_id",), "u"), "external_user_id: unknown field"),
    ("unknown-message-key", _mutated(("messages", 0, "parentId"), "x"), "messages[0].parentId: unknown field"),
    ("unknown-component-key", _mutated(("systemPrompt", "components", 0, "text"), "x"),
     "systemPrompt.components[0].text: unknown field"),
    ("component-without-content", _mutated(("systemPrompt", "components", 0, "content")),
     "systemPrompt.components[0].content: is required"),
    ("prompt-content-and-components", _mutated(("systemPrompt", "content"), "x"), "systemPrompt.content: cannot"),
    ("bad-prosody", _mutated(("messages", 2, "voice", "prosody", "sentimentLabel"), "happy"),
     "messages[2].voice.prosody.sentimentLabel"),
    ("voice-int", _mutated(("voiceCall", "durationMs"), "long"), "voiceCall.durationMs: must be an integer"),
    ("body-not-object", [agentic_body()], "body: must be an object"),  # type: ignore[list-item]
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in NEGATIVE_CASES], ids=[c[0] for c in NEGATIVE_CASES])
def test_each_violation_is_reported(body: Any, expected: str) -> None:
    violations = greenflash_schema.validate_create_params(body)
    assert any(expected in v for v in violations), violations


def test_an_unknown_type_is_loud_not_silently_accepted() -> None:
    with pytest.raises(TypeError, match="extend _check"):
        greenflash_schema._check({1}, set[int], "x", [])


# The store (and so `convotel serve` and the local sink) must never accept what the SDK schema rejects.
# Bodies are mostly valid, each with at most one field per object overwritten by an arbitrary value.

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.floats(-1, 2, allow_nan=False),
                     st.sampled_from(["", "x", "user", "tool_call", "2025-01-31T12:00:00Z"]))
_values = st.one_of(_scalars, st.lists(_scalars, max_size=2),
                    st.dictionaries(st.sampled_from(["a", "b"]), _scalars, max_size=2))
_objects = st.dictionaries(st.sampled_from(["a", "b"]), _values, max_size=2)
_ids = st.sampled_from(["m1", "m2"])
_message_keys = sorted(greenflash_schema.typed_dict_fields(MessageItemParam)) + ["bogus"]
_body_keys = sorted(greenflash_schema.typed_dict_fields(MessageCreateParams)) + ["bogus"]


def _overwrite(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), st.dictionaries(st.sampled_from(keys), _values, max_size=1))


_messages = st.builds(
    lambda fields, kind, bad: {**fields, **kind, **bad},
    st.fixed_dictionaries({}, optional={
        "content": st.text(max_size=3),
        "context": st.one_of(st.none(), st.text(max_size=3)),
        "createdAt": st.sampled_from([None, "2025-01-31", "2025-01-31T12:00:00Z", "2025-01-31T12:00:00.5+02:00"]),
        "externalMessageId": _ids,
        "input": _objects,
        "output": _objects,
        "properties": _objects,
        "model": st.text(max_size=3),
        "toolName": st.sampled_from(["", "search"]),
        "parentExternalMessageId": _ids,
        "parentMessageId": _ids,
    }),
    st.one_of(st.sampled_from(sorted(MESSAGE_TYPES)).map(lambda t: {"messageType": t}),
              st.sampled_from(["user", "assistant", "system"]).map(lambda r: {"role": r}),
              st.just({}), st.just({"role": "user", "messageType": "thought"})),
    _overwrite(_message_keys),
)
_bodies = st.builds(
    lambda fields, messages, bad: {**fields, "messages": messages, **bad},
    st.fixed_dictionaries({"externalUserId": st.just("u")}, optional={
        "externalConversationId": st.just("c"),
        "conversationId": st.just("c"),
        "productId": st.just("p"),
        "model": st.text(max_size=3),
        "properties": _objects,
        "sampleRate": st.floats(0, 1),
        "forceSample": st.booleans(),
        "systemPrompt": st.sampled_from(["Be brief.", {"content": "x"}, {"components": [{"content": "x"}]},
                                         {"components": [{"content": "x"}], "content": "y"}]),
    }),
    st.lists(_messages, min_size=1, max_size=3),
    _overwrite(_body_keys),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_bodies)
def test_the_store_is_never_laxer_than_the_sdk_schema(body: dict[str, Any]) -> None:
    try:
        store_validate(body)
    except ValidationError:
        return
    assert greenflash_schema.validate_create_params(body) == []
