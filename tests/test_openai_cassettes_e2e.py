"""Recorded OpenAI exchanges, replayed through the real client with convotel on: the messages that arrive.

Each case calls the real ``openai`` client (sync or async) against a local replay
of the cassette, inside ``convotel.conversation(<cassette>)``, delivers through
the Greenflash sink to the strict local ingest server, and states the full list
of messages it expects there. The ``ingest_server`` fixture checks every payload
against the official Greenflash SDK's types.
"""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

import convotel
from agent_session import captured
from convotel.mapping.ids import message_id
from openai_replay import load_cassette, recorded_response, replay_server, request_kwargs
from test_end_to_end import tree

SAY_TEST = "Say this is a test"
WEATHER_Q = "What's the weather in Seattle and San Francisco today?"
SYSTEM = "You're a helpful assistant."


def run_cassette(name: str, ingest: Any, *, is_async: bool = False, raw: bool = False, **options: Any) -> list[Any]:
    """Replay every interaction of ``name`` with convotel on; returns what the app received."""
    received: list[Any] = []
    interactions = len(load_cassette(name).interactions)
    with replay_server(name) as url, captured(ingest.url, ingest.token, **options):
        client_cls = openai.AsyncOpenAI if is_async else openai.OpenAI
        client = client_cls(base_url=url, api_key="sk-test-not-a-real-key", max_retries=0)

        async def run_all_async() -> None:
            for i in range(interactions):
                kwargs = request_kwargs(name, i)
                create = client.chat.completions.with_raw_response.create if raw else client.chat.completions.create
                try:
                    received.append(await create(**kwargs))
                except openai.APIStatusError as error:
                    received.append(error)

        with convotel.conversation(name, user_id="user-1"):
            if is_async:
                asyncio.run(run_all_async())
            else:
                for i in range(interactions):
                    kwargs = request_kwargs(name, i)
                    create = client.chat.completions.with_raw_response.create if raw else client.chat.completions.create
                    try:
                        received.append(create(**kwargs))
                    except openai.APIStatusError as error:
                        received.append(error)
        assert convotel.flush(10)
    return received


def stored(ingest: Any, name: str) -> list[Any]:
    return ingest.store.messages(name)


PLAIN_CASES = {
    "test_chat_completion_with_content": "This is a test.",
    "test_chat_completion_metrics": "This is a test.",
    "test_chat_completion_extra_params": "This is a test. How can I assist you further?",
    "test_chat_completion_handle_stop_sequences_as_string": "This is a test. How can I assist you further?",
    "test_chat_completion_handles_not_given": "This is a test. How can I assist you today?",
    "test_chat_completion_n_1_is_not_reported": "This is a test. How can I assist you today?",
    "test_async_chat_completion_with_content": "This is a test. How can I assist you further?",
    "test_async_chat_completion_extra_params": "This is a test. How can I assist you further?",
    "test_async_chat_completion_metrics": "This is a test. How can I assist you further?",
}


@pytest.mark.parametrize("name", sorted(PLAIN_CASES))
def test_plain_chat(name: str, ingest_server: Any) -> None:
    received = run_cassette(name, ingest_server, is_async="async" in name)
    recorded = recorded_response(name).response_json()
    assert received[0].model_dump(exclude_unset=True) == openai.types.chat.ChatCompletion.model_validate(
        recorded).model_dump(exclude_unset=True)
    assert tree(ingest_server.store, name) == [("user_message", SAY_TEST, None),
                                                ("assistant_message", PLAIN_CASES[name], 0)]
    answer = stored(ingest_server, name)[1]
    usage = recorded["usage"]
    assert answer.properties["usage"]["inputTokens"] == usage["prompt_tokens"]
    assert answer.properties["usage"]["outputTokens"] == usage["completion_tokens"]
    assert answer.properties["usage"]["totalTokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert answer.properties["responseId"] == recorded["id"]
    assert answer.properties["finishReason"] == "stop"
    assert answer.properties["provider"] == "openai"
    assert answer.model == recorded["model"]
    body = ingest_server.posted()[0]
    assert (body["externalConversationId"], body["externalUserId"], body["productId"]) == (name, "user-1", "prod-test")


@pytest.mark.parametrize("name", ["test_chat_completion_with_raw_response", "test_async_chat_completion_with_raw_response"])
def test_with_raw_response_app_still_gets_raw_object(name: str, ingest_server: Any) -> None:
    [raw] = run_cassette(name, ingest_server, is_async="async" in name, raw=True)
    assert raw.http_response.status_code == 200
    assert raw.parse().choices[0].message.content == "This is a test."
    assert tree(ingest_server.store, name) == [("user_message", SAY_TEST, None),
                                                ("assistant_message", "This is a test.", 0)]
    assert stored(ingest_server, name)[1].properties["usage"]["outputTokens"] == 5


@pytest.mark.parametrize("name", ["test_chat_completion_multiple_choices", "test_async_chat_completion_multiple_choices"])
def test_multiple_choices_keep_choice_zero_and_alternatives(name: str, ingest_server: Any) -> None:
    received = run_cassette(name, ingest_server, is_async="async" in name)
    assert len(received[0].choices) == 2
    texts = [c.message.content for c in received[0].choices]
    assert tree(ingest_server.store, name) == [("user_message", SAY_TEST, None), ("assistant_message", texts[0], 0)]
    assert stored(ingest_server, name)[1].properties["alternatives"] == [{"content": texts[1], "finishReason": "stop"}]


TOOL_CASES = ["test_chat_completion_tool_calls_with_content", "test_async_chat_completion_tool_calls_with_content"]


@pytest.mark.parametrize("name", TOOL_CASES)
def test_tool_calls_thread_under_their_calls(name: str, ingest_server: Any) -> None:
    received = run_cassette(name, ingest_server, is_async="async" in name)
    calls = received[0].choices[0].message.tool_calls
    final = received[1].choices[0].message.content
    assert tree(ingest_server.store, name) == [
        ("user_message", WEATHER_Q, None),
        ("tool_call", "get_current_weather", 0),
        ("tool_call", "get_current_weather", 0),
        ("observation", "50 degrees and raining", 1),
        ("observation", "70 degrees and sunny", 2),
        ("final_response", final, 4),
    ]
    messages = stored(ingest_server, name)
    assert [m.input for m in messages[1:3]] == [{"location": "Seattle, WA"}, {"location": "San Francisco, CA"}]
    assert [m.external_message_id for m in messages[1:3]] == [message_id(name, f"call:{c.id}") for c in calls]
    assert messages[1].properties["usage"] == {"inputTokens": 75, "outputTokens": 51, "totalTokens": 126,
                                               "reasoningTokens": 0, "cachedInputTokens": 0}
    assert messages[1].properties["finishReason"] == "tool_calls"
    assert messages[5].properties["usage"]["inputTokens"] == 99
    conversation = ingest_server.store.conversation(name)
    assert conversation.system_prompt == SYSTEM
    # the second call resent the whole history, yet each message crossed the wire once
    assert sum(len(body["messages"]) for body in ingest_server.posted()) == 6


@pytest.mark.parametrize("name", ["test_chat_completion_tool_calls_no_content",
                                  "test_async_chat_completion_tool_calls_no_content"])
def test_content_off_keeps_structure_and_sends_no_text(name: str, ingest_server: Any) -> None:
    run_cassette(name, ingest_server, is_async="async" in name, capture_content=False)
    assert tree(ingest_server.store, name) == [
        ("user_message", None, None),
        ("tool_call", "get_current_weather", 0),
        ("tool_call", "get_current_weather", 0),
        ("observation", None, 1),
        ("observation", None, 2),
        ("final_response", None, 4),
    ]
    wire = str(ingest_server.posted())
    for text in ("Seattle", "raining", "helpful assistant", "weather in"):
        assert text not in wire
    assert stored(ingest_server, name)[1].properties["usage"]["totalTokens"] == 126


@pytest.mark.parametrize("name", ["test_chat_completion_no_content", "test_async_chat_completion_no_content"])
def test_plain_chat_content_off(name: str, ingest_server: Any) -> None:
    run_cassette(name, ingest_server, is_async="async" in name, capture_content=False)
    assert tree(ingest_server.store, name) == [("user_message", None, None), ("assistant_message", None, 0)]
    assert "test" not in str([m["messages"] for m in ingest_server.posted()]).replace("test_", "")


@pytest.mark.parametrize("name", ["test_chat_completion_404", "test_async_chat_completion_404"])
def test_failed_call_delivers_input_and_llm_error(name: str, ingest_server: Any) -> None:
    [error] = run_cassette(name, ingest_server, is_async="async" in name)
    assert isinstance(error, openai.NotFoundError)
    assert tree(ingest_server.store, name) == [("user_message", SAY_TEST, None), ("llm", None, 0)]
    llm = stored(ingest_server, name)[1]
    assert llm.properties["error"]["type"] == "NotFoundError"
    assert llm.properties["error"]["status"] == 404
    assert llm.model == "this-model-does-not-exist"


def test_unsampled_spans_send_nothing_and_the_app_is_unaffected(ingest_server: Any) -> None:
    name = "test_chat_completion_with_content_span_unsampled"
    [completion] = run_cassette(name, ingest_server, tracer_provider=TracerProvider(sampler=ALWAYS_OFF))
    assert completion.choices[0].message.content == "This is a test."
    assert ingest_server.posted() == []
