"""The span → message mapping, on plain data: types, ids, parents, order, properties."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from convotel.mapping import MappingOptions, map_records
from convotel.mapping.ids import message_id
from convotel.messages import ConversationBatch, Message
from convotel.records import SpanRecord
from spans import TRACE, assistant, chat_span, tool, tool_span, user


def only_batch(*records: SpanRecord, options: MappingOptions = MappingOptions()) -> ConversationBatch:
    batches = map_records(records, options)
    assert len(batches) == 1
    return batches[0]


def shape(messages: list[Message]) -> list[tuple[Any, ...]]:
    """(type, content or tool name, index of parent in the list or None or 'external')."""
    index = {m.external_message_id: i for i, m in enumerate(messages)}
    out = []
    for m in messages:
        parent = m.parent_external_message_id
        where = None if parent is None else index.get(parent, "external")
        out.append((m.message_type, m.tool_name or m.content, where))
    return out


WEATHER_CALL = ("call_1", "get_weather", {"city": "Paris"})


def test_plain_chat_is_user_then_assistant_with_call_facts() -> None:
    batch = only_batch(chat_span([user("hi")], [assistant("hello!", finish="stop")],
                                 **{"gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 3,
                                    "gen_ai.response.id": "chatcmpl-1"}))
    assert shape(batch.messages) == [("user_message", "hi", None), ("assistant_message", "hello!", 0)]
    answer = batch.messages[1]
    assert answer.properties == {
        "usage": {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15},
        "latencyMs": 250.0, "finishReason": "stop", "responseId": "chatcmpl-1", "provider": "openai",
    }
    assert answer.model == "gpt-4o-mini-2024-07-18"
    assert batch.model == "gpt-4o-mini-2024-07-18"
    assert batch.conversation.external_conversation_id == "conv-1"
    assert batch.conversation.external_user_id == "anonymous"
    assert batch.messages[0].created_at_ns < answer.created_at_ns


def test_tool_loop_threads_thought_call_observation_and_final_response() -> None:
    first = chat_span([user("weather in Paris?")], [assistant("let me check", [WEATHER_CALL], "tool_calls")])
    second = chat_span(
        [user("weather in Paris?"), assistant("let me check", [WEATHER_CALL]), tool("call_1", "sunny, 21C")],
        [assistant("It is sunny and 21C.", finish="stop")],
        span_id="00f067aa0ba902b8", start_ns=1_700_000_002_000_000_000,
    )
    batch = only_batch(first, second)
    assert shape(batch.messages) == [
        ("user_message", "weather in Paris?", None),
        ("thought", "let me check", 0),
        ("tool_call", "get_weather", 1),
        ("observation", "sunny, 21C", 2),
        ("final_response", "It is sunny and 21C.", 3),
    ]
    call = batch.messages[2]
    assert call.input == {"city": "Paris"}
    assert call.external_message_id == message_id("conv-1", "call:call_1")
    assert batch.messages[3].external_message_id == message_id("conv-1", "obs:call_1")


def test_resent_history_reproduces_ids_and_repeated_text_gets_new_ids() -> None:
    turn1 = chat_span([user("yes")], [assistant("ok 1")])
    turn2 = chat_span([user("yes"), assistant("ok 1"), user("yes")], [assistant("ok 2")], span_id="2" * 16)
    b1, b2 = only_batch(turn1), only_batch(turn2)
    ids1 = [m.external_message_id for m in b1.messages]
    ids2 = [m.external_message_id for m in b2.messages]
    assert ids2[:2] == ids1
    assert len(set(ids2)) == 4  # the second "yes" is a different message
    assert shape(b2.messages)[2:] == [("user_message", "yes", None), ("assistant_message", "ok 2", 2)]


def test_resend_without_reasoning_or_with_reformatted_arguments_keeps_ids() -> None:
    out = assistant("checking", [("call_9", "lookup", {"q": "x"})], reasoning="I should look it up")
    first = only_batch(chat_span([user("find x")], [out]))
    resent = assistant("checking", [("call_9", "lookup", '{"q":  "x"}')])  # no reasoning, args as a string
    second = only_batch(chat_span([user("find x"), resent, tool("call_9", "found")], [assistant("x is found")],
                                  span_id="3" * 16))
    assert shape(first.messages) == [
        ("user_message", "find x", None), ("thought", "I should look it up", 0), ("thought", "checking", 1),
        ("tool_call", "lookup", 2),
    ]
    assert first.messages[1].properties["kind"] == "reasoning"
    first_ids = {m.external_message_id for m in first.messages if m.content != "I should look it up"}
    assert first_ids <= {m.external_message_id for m in second.messages}


def test_parallel_tool_calls_each_get_their_observation() -> None:
    calls = [("call_a", "get_weather", {"city": "Paris"}), ("call_b", "get_time", {"tz": "CET"})]
    batch = only_batch(chat_span(
        [user("weather and time?"), assistant(None, calls), tool("call_b", "10:00"), tool("call_a", "rain")],
        [assistant("Rain, 10:00.")]))
    assert shape(batch.messages) == [
        ("user_message", "weather and time?", None),
        ("tool_call", "get_weather", 0),
        ("tool_call", "get_time", 0),
        ("observation", "10:00", 2),
        ("observation", "rain", 1),
        ("final_response", "Rain, 10:00.", 4),
    ]


def test_tool_span_and_role_tool_message_collapse_to_one_observation() -> None:
    from_tool_span = only_batch(tool_span("get_weather", "call_1", {"city": "Paris"}, "sunny, 21C"))
    from_history = only_batch(chat_span(
        [user("weather in Paris?"), assistant(None, [WEATHER_CALL]), tool("call_1", "sunny, 21C")], [assistant("Sunny.")]))
    assert shape(from_tool_span.messages) == [("tool_call", "get_weather", None), ("observation", "sunny, 21C", 0)]
    assert [m.external_message_id for m in from_tool_span.messages] == [
        m.external_message_id for m in from_history.messages if m.message_type in ("tool_call", "observation")
    ]


def test_failed_tool_is_tool_error_under_its_call() -> None:
    batch = only_batch(tool_span("get_weather", "call_1", {"city": "?"}, None, error="ValueError"))
    assert shape(batch.messages) == [("tool_call", "get_weather", None), ("tool_error", "ValueError", 0)]
    assert batch.messages[1].properties["error"] == {"type": "ValueError", "message": "ValueError"}


def test_failed_model_call_keeps_inputs_and_adds_llm_error() -> None:
    batch = only_batch(chat_span([user("hello")], [], error="NotFoundError",
                                 **{"http.response.status_code": 404}))
    assert shape(batch.messages) == [("user_message", "hello", None), ("llm", None, 0)]
    assert batch.messages[1].properties["error"] == {"type": "NotFoundError", "status": 404,
                                                     "message": "NotFoundError: boom"}


def test_more_choices_ride_as_alternatives_of_choice_zero() -> None:
    batch = only_batch(chat_span([user("name a colour")],
                                 [assistant("red", finish="stop"), assistant("blue", finish="length")]))
    assert shape(batch.messages) == [("user_message", "name a colour", None), ("assistant_message", "red", 0)]
    assert batch.messages[1].properties["alternatives"] == [{"content": "blue", "finishReason": "length"}]


def test_system_prompt_from_instructions_or_leading_system_messages() -> None:
    with_instructions = only_batch(chat_span(
        [user("hi")], [assistant("hey")],
        **{"gen_ai.system_instructions": '[{"type": "text", "content": "You are terse."}]'}))
    assert with_instructions.system_prompt == "You are terse."
    from_history = only_batch(chat_span([{"role": "system", "parts": [{"type": "text", "content": "Be kind."}]},
                                         user("hi")], [assistant("hey")]))
    assert from_history.system_prompt == "Be kind."
    assert shape(from_history.messages) == [("user_message", "hi", None), ("assistant_message", "hey", 0)]


def test_content_off_still_carries_structure() -> None:
    batch = only_batch(chat_span(
        [user(None), {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1", "name": "get_weather"}]},
         {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1"}]}],
        [text_only_structure()], **{"gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 2}))
    assert shape(batch.messages) == [
        ("user_message", None, None), ("tool_call", "get_weather", 0), ("observation", None, 1),
        ("final_response", None, 2),
    ]
    assert batch.messages[3].properties["usage"]["totalTokens"] == 7
    assert all(m.content is None and m.input is None for m in batch.messages)


def text_only_structure() -> dict[str, Any]:
    return {"role": "assistant", "parts": [{"type": "text"}], "finish_reason": "stop"}


def test_conversation_falls_back_to_trace_and_reads_user_and_org() -> None:
    batch = only_batch(chat_span([user("hi")], [assistant("yo")], conversation=None,
                                 **{"user.id": "user-456", "convotel.organization.id": "acme",
                                    "convotel.conversation.properties": '{"plan": "pro"}'}))
    conv = batch.conversation
    assert (conv.external_conversation_id, conv.external_user_id, conv.external_organization_id) == (
        TRACE, "user-456", "acme")
    assert batch.properties == {"plan": "pro"}
    default_user = only_batch(chat_span([user("hi")], [assistant("yo")]), options=MappingOptions(default_user_id="u0"))
    assert default_user.conversation.external_user_id == "u0"


def test_malformed_attributes_degrade_without_raising() -> None:
    record = chat_span([user("hi")], [assistant("yo")], **{"gen_ai.input.messages": "{not json",
                                                            "gen_ai.output.messages": '[1, "x", {"parts": 7}]'})
    batch = only_batch(record)
    assert [m.message_type for m in batch.messages] == ["assistant_message"]


def test_verbose_adds_an_llm_message_per_call() -> None:
    batch = only_batch(chat_span([user("hi")], [assistant("yo")]), options=MappingOptions(verbose=True))
    assert shape(batch.messages) == [("user_message", "hi", None), ("assistant_message", "yo", 0), ("llm", None, 0)]


def test_structural_runs_parent_what_runs_inside() -> None:
    start = SpanRecord(TRACE, "aaaaaaaaaaaaaaaa", None, "research-agent", 1, None,
                       {"convotel.message_type": "task", "gen_ai.conversation.id": "conv-1"})
    inner = chat_span([user("look up x")], [assistant("x is y")], **{"convotel.parent_span_id": "aaaaaaaaaaaaaaaa"})
    batch = only_batch(start, inner)
    assert shape(batch.messages) == [("task", "research-agent", None), ("user_message", "look up x", 0),
                                     ("assistant_message", "x is y", 1)]


def test_non_conversation_spans_map_to_nothing() -> None:
    http = SpanRecord(TRACE, "b" * 16, None, "GET /", 1, 2, {"http.request.method": "GET"})
    assert map_records([http]) == []


history_events = st.lists(st.sampled_from(["user", "tools", "answer"]), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(history_events)
def test_any_history_threads_parents_first_and_resends_identically(events: list[str]) -> None:
    """Replaying a growing history turn by turn never changes an id, and parents precede children."""
    history: list[dict[str, Any]] = []
    delivered: dict[str, Message] = {}
    n = 0
    for step, event in enumerate(events):
        if event == "user":
            history.append(user(f"question {step % 3}"))
            continue
        n += 1
        if event == "tools":
            calls = [(f"call_{step}_{i}", "t", {"i": i}) for i in range(1 + step % 2)]
            out = assistant("thinking" if step % 2 else None, calls)
        else:
            out = assistant(f"answer {step % 2}")
        batch = only_batch(chat_span(history, [out], span_id=f"{n:016x}", start_ns=n * 10**9))
        seen: set[str] = set()
        for m in batch.messages:
            parent = m.parent_external_message_id
            assert parent is None or parent in seen or parent in delivered
            seen.add(m.external_message_id)
            if m.external_message_id in delivered:
                assert delivered[m.external_message_id].message_type == m.message_type or m.message_type in (
                    "assistant_message", "final_response")
            delivered.setdefault(m.external_message_id, m)
        history.append(out)
        if event == "tools":
            history.extend(tool(c[0], "ok") for c in calls)
    assert len({m.external_message_id for m in delivered.values()}) == len(delivered)


def test_continued_responses_seed_ids_from_the_previous_response() -> None:
    """With previous_response_id only new items are sent: a repeated "yes" still gets a new id."""
    first = only_batch(chat_span([user("yes")], [assistant("sure")], **{"gen_ai.response.id": "resp_1"}))
    second = only_batch(chat_span([user("yes")], [assistant("done", [("call_7", "act", {})])], span_id="4" * 16,
                                  **{"convotel.previous_response_id": "resp_1"}))
    third = only_batch(chat_span([tool("call_7", "acted")], [assistant("all set")], span_id="5" * 16,
                                 **{"convotel.previous_response_id": "resp_2"}))
    assert first.messages[0].external_message_id != second.messages[0].external_message_id
    assert shape(third.messages)[0] == ("observation", "acted", "external")
    assert third.messages[0].parent_external_message_id == message_id("conv-1", "call:call_7")


def test_stream_that_failed_after_output_delivers_it_partial_then_the_error() -> None:
    """The app saw "Hel" before the connection broke: that text reaches the API (partial), then the failure."""
    cut = {"convotel.partial": True, "gen_ai.response.id": "chatcmpl-9", "http.response.status_code": 502}
    batch = only_batch(chat_span([user("hello")], [assistant("Hel", finish="error")], error="APIConnectionError",
                                 **cut))
    assert shape(batch.messages) == [("user_message", "hello", None), ("assistant_message", "Hel", 0), ("llm", None, 0)]
    assert batch.messages[1].properties == {"latencyMs": 250.0, "finishReason": "error", "responseId": "chatcmpl-9",
                                            "provider": "openai", "partial": True}
    assert batch.messages[2].properties == {
        "error": {"type": "APIConnectionError", "status": 502, "message": "APIConnectionError: boom"}}
    assert batch.messages[1].created_at_ns < batch.messages[2].created_at_ns
    # Nothing had arrived yet (an empty partial message), or not a stream: the input and the llm failure only.
    for outputs, attrs in (([{"role": "assistant", "parts": [], "finish_reason": "error"}], cut),
                           ([assistant("Hel", finish="error")], {})):
        failed = only_batch(chat_span([user("hello")], outputs, error="RuntimeError", **attrs))
        assert shape(failed.messages) == [("user_message", "hello", None), ("llm", None, 0)]
        assert failed.messages[1].properties["error"]["type"] == "RuntimeError"


def embeddings_span(error: str | None = None, **attrs: Any) -> SpanRecord:
    attributes = {"gen_ai.operation.name": "embeddings", "gen_ai.provider.name": "openai",
                  "gen_ai.request.model": "text-embedding-3-small", "gen_ai.conversation.id": "conv-1", **attrs}
    if error:
        attributes["error.type"] = error
    return SpanRecord(TRACE, "2222222222222222", None, "embeddings text-embedding-3-small", 1_000_000_000,
                      1_020_000_000, attributes, status_error=error is not None, status_message=error)


def test_embeddings_carry_count_dimensions_usage_and_provider() -> None:
    texts = '{"texts": ["a", "b", "c"]}'
    [message] = only_batch(embeddings_span(**{
        "convotel.input": texts, "convotel.embeddings.count": 3, "gen_ai.embeddings.dimension.count": 512,
        "gen_ai.usage.input_tokens": 9, "gen_ai.response.model": "text-embedding-3-small"})).messages
    assert (message.message_type, message.input, message.model) == (
        "embedding", {"texts": ["a", "b", "c"]}, "text-embedding-3-small")
    assert message.properties == {"latencyMs": 20.0, "dimensions": 512, "count": 3, "provider": "openai",
                                  "usage": {"inputTokens": 9, "totalTokens": 9}}
    # A peer's span without the count: one embedding per input text.
    [peer] = only_batch(embeddings_span(**{"convotel.input": texts})).messages
    assert peer.properties["count"] == 3
    [failed] = only_batch(embeddings_span(error="NotFoundError", **{"convotel.input": texts})).messages
    assert failed.properties == {"latencyMs": 20.0, "provider": "openai",
                                 "error": {"type": "NotFoundError", "message": "NotFoundError"}}


def test_content_off_keeps_the_thought_beside_tool_calls_but_empty_text_is_no_thought() -> None:
    withheld = {"role": "assistant", "parts": [{"type": "text"}, {"type": "tool_call", "id": "call_1", "name": "f"}]}
    empty = {"role": "assistant", "parts": [{"type": "text", "content": ""},
                                            {"type": "tool_call", "id": "call_1", "name": "f"}]}
    assert shape(only_batch(chat_span([user(None)], [withheld])).messages) == [
        ("user_message", None, None), ("thought", None, 0), ("tool_call", "f", 1)]
    assert shape(only_batch(chat_span([user("go")], [empty])).messages) == [
        ("user_message", "go", None), ("tool_call", "f", 0)]
