"""Every other recorded OpenAI exchange, replayed through the real client with convotel on.

Companion of ``test_openai_cassettes_e2e.py`` (non-streaming chat): streamed chat
completions, the Responses API and embeddings. Each case

* runs the same app code twice against a local replay of the cassette: once
  without convotel, once with ``convotel.init()`` delivering through the
  Greenflash sink to the strict local ingest server, and asserts the app got
  exactly the same thing both times (every chunk / event / object / exception);
* states the full list of messages it expects at the ingest server: type,
  content, tool name, input, parent (index in the list), model and properties
  (all of them except the measured ``latencyMs``), with every value written out
  from the recording.

The last test fails when the corpus holds a cassette that no test here or in
``test_openai_cassettes_e2e.py`` replays.
"""

from __future__ import annotations

import ast
import asyncio
import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from convotel_openai import _responses
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

import convotel
from agent_session import captured
from convotel.mapping.ids import message_id
from openai_replay import cassette_names, replay_server, request_kwargs

SAY_TEST = "Say this is a test"
WEATHER_Q = "What's the weather in Seattle and San Francisco today?"
CHAT_SYSTEM = "You're a helpful assistant."
RESPONSES_SYSTEM = "You are a helpful assistant."
API_KEY = "sk-test-not-a-real-key"


# --------------------------------------------------------------------------- harness


@dataclass
class IngestView:
    """The module's ingest server as one test sees it: ``posted()`` holds only what this test delivered.

    Every test writes to conversations of its own, so they can share one (checked) server.
    """

    server: Any
    since: int

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token(self) -> str:
        return self.server.token

    @property
    def store(self) -> Any:
        return self.server.store

    def posted(self) -> list[Any]:
        mine = self.server.requests[self.since:]
        return [r.json() for r in mine if r.path == "/v1/messages" and 200 <= r.status < 300]


@pytest.fixture
def ingest(module_ingest_server: Any) -> IngestView:
    return IngestView(module_ingest_server, len(module_ingest_server.requests))


@dataclass
class Msg:
    """One message as stored by the ingest server; ``parent`` is the index of its parent in the list."""

    type: str
    content: str | None = None
    parent: int | None = None
    tool: str | None = None
    input: dict[str, Any] | None = None
    model: str | None = None
    props: dict[str, Any] | None = field(default=None)


def delivered(ingest: Any, conversation: str) -> list[Msg]:
    """The stored messages of ``conversation`` (``latencyMs`` checked for shape, then left out)."""
    stored = ingest.store.messages(conversation)
    index = {m.external_message_id: i for i, m in enumerate(stored)}
    out = []
    for m in stored:
        props = dict(m.properties or {})
        latency = props.pop("latencyMs", None)
        assert latency is None or (isinstance(latency, (int, float)) and latency >= 0)
        parent = m.parent_external_message_id
        out.append(Msg(m.message_type, m.content, index.get(parent, parent) if parent else None,
                       m.tool_name, m.input, m.model, props or None))
    return out


def posted_messages(ingest: Any) -> list[dict[str, Any]]:
    return [message for body in ingest.posted() for message in body["messages"]]


def view(value: Any) -> Any:
    """What the app can observe of a returned value, as plain data."""
    if isinstance(value, BaseException):
        return {"raised": type(value).__qualname__, "str": str(value),
                "status": getattr(value, "status_code", None), "body": getattr(value, "body", None)}
    if hasattr(value, "model_dump"):
        return {"type": type(value).__qualname__, "data": value.model_dump(mode="json", warnings=False)}
    if isinstance(value, (list, tuple)):
        return [view(v) for v in value]
    if isinstance(value, dict):
        return {k: view(v) for k, v in value.items()}
    return value


def chat_usage(prompt: int, completion: int) -> dict[str, int]:
    return {"inputTokens": prompt, "outputTokens": completion, "totalTokens": prompt + completion,
            "reasoningTokens": 0, "cachedInputTokens": 0}


def responses_usage(inputs: int, outputs: int, reasoning: int = 0, cached: int = 0) -> dict[str, int]:
    return {"inputTokens": inputs, "outputTokens": outputs, "totalTokens": inputs + outputs,
            "reasoningTokens": reasoning, "cachedInputTokens": cached}


def facts(usage: dict[str, int] | None, finish: str | None, response_id: str | None, **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"provider": "openai"}
    if usage is not None:
        out["usage"] = usage
    if finish is not None:
        out["finishReason"] = finish
    if response_id is not None:
        out["responseId"] = response_id
    out.update(more)
    return out


App = Callable[[Any], Any]


class CutTransport(httpx2.BaseTransport):
    """The real transport, but the response body breaks (``ReadError``) after ``events`` SSE events."""

    def __init__(self, events: int) -> None:
        self.inner = httpx2.HTTPTransport()
        self.events = events

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = self.inner.handle_request(request)
        return httpx2.Response(response.status_code, headers=response.headers,
                               stream=_CutStream(response.stream, self.events), extensions=response.extensions)

    def close(self) -> None:
        self.inner.close()


class _CutStream(httpx2.SyncByteStream):
    def __init__(self, inner: Any, events: int) -> None:
        self.inner = inner
        self.events = events

    def __iter__(self) -> Iterator[bytes]:
        buffer = b""
        for chunk in self.inner:
            buffer += chunk
            parts = buffer.split(b"\n\n")
            if len(parts) > self.events:
                yield b"\n\n".join(parts[: self.events]) + b"\n\n"
                raise httpx2.ReadError("connection reset by peer mid-stream")
        yield buffer

    def close(self) -> None:
        self.inner.close()


def replay(name: str, app: App, ingest: Any, *, conversation: str | None = "", is_async: bool | None = None,
           transport: Callable[[], Any] | None = None, **options: Any) -> Any:
    """Run ``app(client)`` on cassette ``name`` without convotel, then with it; assert the app saw the same.

    ``conversation=""`` wraps the convotel run in ``convotel.conversation(name)``; ``None`` runs it bare.
    Returns what the app got (its own plain-data view) in the convotel run.
    """
    is_async = name.startswith("test_async") if is_async is None else is_async

    def run_once() -> Any:
        with replay_server(name) as url:
            if is_async:
                async def go() -> Any:
                    client = openai.AsyncOpenAI(base_url=url, api_key=API_KEY, max_retries=0)
                    try:
                        return view(await app(client))
                    finally:
                        await client.close()

                return asyncio.run(go())
            http = httpx2.Client(transport=transport()) if transport else None
            client = openai.OpenAI(base_url=url, api_key=API_KEY, max_retries=0, http_client=http)
            try:
                return view(app(client))
            finally:
                client.close()

    baseline = run_once()
    with captured(ingest.url, ingest.token, **options):
        if conversation is None:
            received = run_once()
        else:
            with convotel.conversation(conversation or name, user_id="user-1"):
                received = run_once()
        gc.collect()
        assert convotel.flush(10)
    assert received == baseline
    return received


def conversation_of(ingest: Any, name: str) -> Any:
    body = next(b for b in ingest.posted() if b.get("externalConversationId") == name)
    assert (body["externalUserId"], body["productId"]) == ("user-1", "prod-test")
    return ingest.store.conversation(name)


# --------------------------------------------------------------------------- chat completions, streamed


def sync_iterate(client: Any, name: str, **extra: Any) -> Any:
    stream = client.chat.completions.create(**request_kwargs(name), **extra)
    return {"is_stream": isinstance(stream, openai.Stream), "chunks": list(stream)}


async def async_iterate(client: Any, name: str) -> Any:
    stream = await client.chat.completions.create(**request_kwargs(name))
    return {"is_stream": isinstance(stream, openai.AsyncStream), "chunks": [c async for c in stream]}


def test_chat_streaming_plain_iteration(ingest: Any) -> None:
    name = "test_chat_completion_streaming"
    got = replay(name, lambda c: sync_iterate(c, name), ingest)
    assert got["is_stream"] and len(got["chunks"]) == 8
    assert delivered(ingest, name) == [
        Msg("user_message", SAY_TEST),
        Msg("assistant_message", '"This is a test."', 0, model="gpt-4-0613",
            props=facts(chat_usage(12, 5), "stop", "chatcmpl-ASYMZ4oSykiIFK4lXLReDiKyAjsQl")),
    ]
    assert conversation_of(ingest, name).system_prompt is None


def test_chat_streaming_with_context_manager(ingest: Any) -> None:
    name = "test_chat_completion_with_context_manager_streaming"

    def app(client: Any) -> Any:
        with client.chat.completions.create(**request_kwargs(name)) as stream:
            return [chunk for chunk in stream]

    got = replay(name, app, ingest)
    assert len(got) == 15
    assert delivered(ingest, name) == [
        Msg("user_message", SAY_TEST),
        Msg("assistant_message", "This is a test. How can I assist you further?", 0, model="gpt-4o-mini-2024-07-18",
            props=facts(chat_usage(12, 12), "stop", "chatcmpl-CnMGGNmSdY4yYxO9NmV7cSVxXZ5ci")),
    ]


def test_async_chat_streaming_async_with(ingest: Any) -> None:
    name = "test_async_chat_completion_streaming"

    async def app(client: Any) -> Any:
        async with await client.chat.completions.create(**request_kwargs(name)) as stream:
            return [chunk async for chunk in stream]

    got = replay(name, app, ingest)
    assert len(got) == 8
    assert delivered(ingest, name) == [
        Msg("user_message", SAY_TEST),
        Msg("assistant_message", "This is a test.", 0, model="gpt-4-0613",
            props=facts(chat_usage(12, 5), "stop", "chatcmpl-ASv9ejXDUtAhGOJJxWuw026zdinc4")),
    ]


CHOICE_0 = ("I'm unable to provide real-time weather updates. To get the latest weather information for Seattle "
            "and San Francisco, I recommend checking a reliable weather website or using a weather app. You can "
            "also ask a voice assistant or search online for the current weather conditions.")
CHOICE_1 = ("I'm unable to provide real-time weather updates as my capabilities do not include accessing live data. "
            "However, you can easily check the current weather in Seattle and San Francisco using a weather website, "
            "app, or service. Would you like some tips on where to find this information?")


def test_chat_streaming_multiple_choices(ingest: Any) -> None:
    name = "test_chat_completion_multiple_choices_streaming"
    got = replay(name, lambda c: sync_iterate(c, name), ingest)
    assert len(got["chunks"]) == 109
    assert delivered(ingest, name) == [
        Msg("user_message", WEATHER_Q),
        Msg("assistant_message", CHOICE_0, 0, model="gpt-4o-mini-2024-07-18",
            props=facts(chat_usage(26, 104), "stop", "chatcmpl-ASYMaNc7XmbGRUNREnmvhyyISBHsv",
                        alternatives=[{"content": CHOICE_1, "finishReason": "stop"}])),
    ]
    assert conversation_of(ingest, name).system_prompt == CHAT_SYSTEM


TOOL_STREAMS = {
    "test_chat_completion_multiple_tools_streaming_no_content": (
        "chatcmpl-ASYMdbuQwnGMCODejEnbp2ufs6WgR", "call_j7L00WV19wwQCvKOIVZewXZm", "call_sAIOI3dvcd1YMsEqD8DI3l8B"),
    "test_async_chat_completion_multiple_tools_streaming_no_content": (
        "chatcmpl-ASv9l0RKJrq2fTx2dK5jhJoIr4rMI", "call_hqkL24CLEwnniv4GDrjk14Iu", "call_0s1enkFttXjIR7ozHoGMcnUu"),
}


@pytest.mark.parametrize("name", sorted(TOOL_STREAMS))
def test_chat_streaming_multiple_tool_calls_without_content(name: str, ingest: Any) -> None:
    response_id, first_call, second_call = TOOL_STREAMS[name]
    app = (lambda c: async_iterate(c, name)) if "async" in name else (lambda c: sync_iterate(c, name))
    got = replay(name, app, ingest, capture_content=False)
    calls = [t["id"] for ch in got["chunks"] for choice in ch["data"]["choices"]
             for t in choice["delta"].get("tool_calls") or () if t.get("id")]
    assert calls == [first_call, second_call]
    assert delivered(ingest, name) == [
        Msg("user_message", None),
        Msg("tool_call", None, 0, tool="get_current_weather", model="gpt-4o-mini-2024-07-18",
            props=facts(chat_usage(75, 51), "tool_calls", response_id)),
        Msg("tool_call", None, 0, tool="get_current_weather", model="gpt-4o-mini-2024-07-18"),
    ]
    stored = ingest.store.messages(name)
    assert [m.external_message_id for m in stored[1:]] == [message_id(name, f"call:{first_call}"),
                                                           message_id(name, f"call:{second_call}")]
    wire = str(ingest.posted())
    for text in ("Seattle", "San Francisco", "location", "helpful assistant", "weather in"):
        assert text not in wire
    assert conversation_of(ingest, name).system_prompt is None


def test_chat_stream_cut_short_by_the_app_is_partial(ingest: Any) -> None:
    name = "test_chat_completion_streaming_not_complete"

    def app(client: Any) -> Any:
        stream = client.chat.completions.create(**request_kwargs(name))
        seen = []
        for chunk in stream:
            seen.append(chunk)
            if chunk.choices and chunk.choices[0].delta.content:
                break
        stream.close()
        return seen

    got = replay(name, app, ingest)
    assert [c["data"]["choices"][0]["delta"]["content"] for c in got] == ["", "This"]
    assert delivered(ingest, name) == [
        Msg("user_message", SAY_TEST),
        Msg("assistant_message", "This", 0, model="gpt-4-0613",
            props=facts(None, "error", "chatcmpl-ASYMZbRqo8Bkz53FVzaTj7W7feOn4", partial=True)),
    ]


def test_async_chat_stream_cut_short_by_the_app_is_partial(ingest: Any) -> None:
    name = "test_async_chat_completion_streaming_not_complete"

    async def app(client: Any) -> Any:
        stream = await client.chat.completions.create(**request_kwargs(name))
        seen = []
        async for chunk in stream:
            seen.append(chunk)
            if len(seen) == 3:
                break
        await stream.close()
        return seen

    got = replay(name, app, ingest)
    assert [c["data"]["choices"][0]["delta"]["content"] for c in got] == ["", "This", " is"]
    assert delivered(ingest, name) == [
        Msg("user_message", SAY_TEST),
        Msg("assistant_message", "This is", 0, model="gpt-4-0613",
            props=facts(None, "error", "chatcmpl-ASv9gROIIAvRs9QnmLP8Nzs3PGMCX", partial=True)),
    ]


def test_async_chat_stream_unsampled_sends_nothing(ingest: Any) -> None:
    name = "test_async_chat_completion_streaming_unsampled"
    got = replay(name, lambda c: async_iterate(c, name), ingest,
                 tracer_provider=TracerProvider(sampler=ALWAYS_OFF))
    assert got["is_stream"] and len(got["chunks"]) == 8
    assert ingest.posted() == []


# --------------------------------------------------------------------------- Responses API


def create(name: str, **extra: Any) -> App:
    return lambda client: client.responses.create(**request_kwargs(name), **extra)


def iterate(name: str) -> App:
    def app(client: Any) -> Any:
        stream = client.responses.create(**request_kwargs(name))
        return {"is_stream": isinstance(stream, openai.Stream), "events": list(stream)}

    return app


RESPONSES_PLAIN = {
    # name: (answer, (input tokens, output tokens), response id)
    "test_responses_create_basic": (
        "This is a test.", (22, 6), "resp_0f4faba17dcd0f1e0069e2f3e4907881909179832ba1237025"),
    "test_responses_create_captures_content": (
        "This is a test. How can I assist you further?", (22, 13),
        "resp_0d6d73520bd9405c0069e2f3eb1108819590a9e98dba6a746d"),
    "test_responses_create_with_content_shapes": (
        "This is a test.", (22, 6), "resp_01acf44208ca9e520069e2f4099678819e8c2299266edf8dd9"),
    "test_responses_create_with_all_params": (
        "This is a test.", (22, 6), "resp_043deb558fe563590069e2f3ed46e881a198f40c952daa2f86"),
    "test_responses_create_aggregates_cache_tokens": (
        "This is a test.", (22, 6), "resp_0a8171a24e10956f0069e2f3f03a4c819da6eca7c5d387a3b8"),
    "test_responses_create_token_usage": (
        "Sure! Here we go: 1, 2, 3, 4, 5.", (22, 22), "resp_08bcd983e14520af0069e2f3ee9f748191af5a1d2b897cdbfe"),
}
RESPONSES_QUESTION = {"test_responses_create_token_usage": "Count to 5."}


@pytest.mark.parametrize("name", sorted(RESPONSES_PLAIN))
def test_responses_create(name: str, ingest: Any) -> None:
    answer, (inputs, outputs), response_id = RESPONSES_PLAIN[name]
    got = replay(name, create(name), ingest)
    assert got["type"] == "Response" and got["data"]["id"] == response_id
    assert delivered(ingest, name) == [
        Msg("user_message", RESPONSES_QUESTION.get(name, SAY_TEST)),
        Msg("assistant_message", answer, 0, model="gpt-4o-mini-2024-07-18",
            props=facts(responses_usage(inputs, outputs), "stop", response_id)),
    ]
    assert conversation_of(ingest, name).system_prompt == RESPONSES_SYSTEM


def test_responses_stop_reason_and_the_response_is_the_conversation(ingest: Any) -> None:
    """No ``convotel.conversation()``: the response (the root of its chain) names the conversation."""
    name = "test_responses_create_stop_reason"
    response_id = "resp_05dcf5da992fc48d0069e2f3f170288191a70029c8cac5857c"
    replay(name, create(name), ingest, conversation=None)
    [body] = ingest.posted()
    assert (body["externalConversationId"], body["externalUserId"]) == (response_id, "anonymous")
    assert delivered(ingest, response_id) == [
        Msg("user_message", "Say hi."),
        Msg("assistant_message", "Hi! How can I assist you today?", 0, model="gpt-4o-mini-2024-07-18",
            props=facts(responses_usage(20, 10), "stop", response_id)),
    ]


BASH_SCRIPT = (
    "```bash\n#!/usr/bin/env bash\n\n# Usage:\n#   ./transpose.sh '[1,2],[3,4],[5,6]'\n\ninput=\"$1\"\n\n"
    "# Extract rows into an array\nIFS='|' read -r -a rows <<< \"$(echo \"$input\" | sed 's/],\\[/]|[/g')\"\n\n"
    "# Remove leading/trailing brackets and split first row to get column count\nfirst_row=\"${rows[0]#[}\"\n"
    "first_row=\"${first_row%]}\"\nIFS=',' read -r -a first_vals <<< \"$first_row\"\ncols=\"${#first_vals[@]}\"\n\n"
    "# Build transpose\nresult=\"\"\nfor ((c=0; c<cols; c++)); do\n    transposed_row=\"\"\n"
    "    for row in \"${rows[@]}\"; do\n        row=\"${row#[}\"\n        row=\"${row%]}\"\n"
    "        IFS=',' read -r -a vals <<< \"$row\"\n        transposed_row+=\"${vals[c]},\"\n    done\n"
    "    transposed_row=\"[${transposed_row%,}]\"\n    result+=\"$transposed_row,\"\ndone\n\n"
    "# Remove trailing comma and print\necho \"${result%,}\"\n```\n\nExample:\n```bash\n"
    "$ ./transpose.sh '[1,2],[3,4],[5,6]'\n[1,3,5],[2,4,6]\n```"
)
MATRIX_QUESTION = ("\nWrite a bash script that takes a matrix represented as a string with\n"
                   "format '[1,2],[3,4],[5,6]' and prints the transpose in the same format.\n")


def test_responses_reasoning_tokens(ingest: Any) -> None:
    name = "test_responses_create_reports_reasoning_tokens"
    response_id = "resp_05177a4994c7df3a0069e2f402f00881a1b9eda520cb779fef"
    got = replay(name, create(name), ingest)
    assert [item["type"] for item in got["data"]["output"]] == ["reasoning", "message"]
    # The reasoning item carries no summary: nothing to show as a thought, its tokens are in the usage.
    assert delivered(ingest, name) == [
        Msg("user_message", MATRIX_QUESTION),
        Msg("assistant_message", BASH_SCRIPT, 0, model="gpt-5.4-2026-03-05",
            props=facts(responses_usage(44, 288, reasoning=9), "stop", response_id)),
    ]
    assert conversation_of(ingest, name).system_prompt is None


def test_responses_api_error(ingest: Any) -> None:
    name = "test_responses_create_api_error"
    got = replay(name, lambda c: _raises(lambda: c.responses.create(**request_kwargs(name))), ingest)
    assert (got["raised"], got["status"]) == ("BadRequestError", 400)
    assert delivered(ingest, name) == [
        Msg("user_message", "Hello"),
        Msg("llm", None, 0, model="this-model-does-not-exist", props={
            "provider": "openai",
            "error": {"type": "BadRequestError", "status": 400, "message": got["str"]}}),
    ]


def _raises(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as error:  # noqa: BLE001 - the app's view of the failure
        return error


def test_responses_content_off(ingest: Any) -> None:
    name = "test_responses_create_event_only_no_content_in_span"
    replay(name, create(name), ingest, capture_content=False)
    assert delivered(ingest, name) == [
        Msg("user_message", None),
        Msg("assistant_message", None, 0, model="gpt-4o-mini-2024-07-18",
            props=facts(responses_usage(22, 6), "stop", "resp_0da562f2b64fdb7e0069e2f40b28e081909487104de4d4c8c0")),
    ]
    wire = str(ingest.posted())
    for text in ("Say this", "This is a test", "helpful assistant"):
        assert text not in wire
    assert conversation_of(ingest, name).system_prompt is None


def test_responses_unsampled_sends_nothing(ingest: Any) -> None:
    name = "test_responses_create_with_content_span_unsampled"
    got = replay(name, create(name), ingest, tracer_provider=TracerProvider(sampler=ALWAYS_OFF))
    assert got["data"]["output"][0]["content"][0]["text"] == "This is a test."
    assert ingest.posted() == []


RESPONSES_STREAMS = {
    # name: (question, answer, (input tokens, output tokens), event count, response id)
    "test_responses_create_streaming": (
        SAY_TEST, "This is a test.", (22, 6), 13, "resp_0415a3de5d3015560069e2f3f4b3088192949253e91aff1eb3"),
    "test_responses_create_streaming_iteration": (
        "Say hi.", "Hi! How can I assist you today?", (20, 10), 17,
        "resp_0b1fe82eb73ff7c40069e2f3f8806c8196b5b50b51f2e1455b"),
    "test_responses_create_streaming_aggregates_cache_tokens": (
        SAY_TEST, "This is a test.", (22, 6), 13, "resp_09a88f733378b0bd0069e2f3f5ba44819184ad3279e8139473"),
}


@pytest.mark.parametrize("name", sorted(RESPONSES_STREAMS))
def test_responses_streaming(name: str, ingest: Any) -> None:
    question, answer, (inputs, outputs), count, response_id = RESPONSES_STREAMS[name]
    got = replay(name, iterate(name), ingest)
    assert got["is_stream"] and len(got["events"]) == count
    assert got["events"][-1]["data"]["type"] == "response.completed"
    assert delivered(ingest, name) == [
        Msg("user_message", question),
        Msg("assistant_message", answer, 0, model="gpt-4o-mini-2024-07-18",
            props=facts(responses_usage(inputs, outputs), "stop", response_id)),
    ]
    assert conversation_of(ingest, name).system_prompt == RESPONSES_SYSTEM


def test_responses_stream_delegates_the_sdk_attributes(ingest: Any) -> None:
    name = "test_responses_create_streaming_delegates_response_attribute"

    def app(client: Any) -> Any:
        stream = client.responses.create(**request_kwargs(name))
        http = stream.response  # the SDK stream's own attribute, through convotel's proxy
        return {"status": http.status_code, "content_type": http.headers["content-type"],
                "same_response": stream.response is http, "events": list(stream)}

    got = replay(name, app, ingest)
    assert (got["status"], got["content_type"], got["same_response"]) == (200, "text/event-stream; charset=utf-8", True)
    response_id = "resp_0f5fa871e49e7df30069e2f3f967748190824cf1b79b9ddfc9"
    assert delivered(ingest, name) == [
        Msg("user_message", "Say hi."),
        Msg("assistant_message", "Hi there! How can I assist you today?", 0, model="gpt-4o-mini-2024-07-18",
            props=facts(responses_usage(20, 11), "stop", response_id)),
    ]


def test_responses_stream_consumer_exception_reaches_the_app_unchanged(ingest: Any) -> None:
    name = "test_responses_create_streaming_user_exception"

    def app(client: Any) -> Any:
        boom = RuntimeError("the app gave up")
        seen = []
        try:
            with client.responses.create(**request_kwargs(name)) as stream:
                for event in stream:
                    seen.append(event)
                    if event.type == "response.output_text.delta":
                        raise boom
        except RuntimeError as error:
            assert error is boom
            return {"events": seen, "error": error}
        raise AssertionError("the exception was swallowed")

    got = replay(name, app, ingest)
    assert [e["data"]["type"] for e in got["events"]][-1] == "response.output_text.delta"
    assert got["error"] == {"raised": "RuntimeError", "str": "the app gave up", "status": None, "body": None}
    response_id = "resp_029aee05d8f429810069e2f3ff0ee88191a06134c4a0e9088a"
    # What the app had received is delivered, marked partial; the failure follows as an llm message.
    assert delivered(ingest, name) == [
        Msg("user_message", SAY_TEST),
        Msg("assistant_message", "This", 0, model="gpt-4o-mini-2024-07-18",
            props=facts(None, "error", response_id, partial=True)),
        Msg("llm", None, 0, model="gpt-4o-mini-2024-07-18",
            props={"error": {"type": "RuntimeError", "message": "the app gave up"}}),
    ]


def test_responses_stream_broken_connection_propagates(ingest: Any) -> None:
    name = "test_responses_create_stream_propagation_error"

    def app(client: Any) -> Any:
        seen = []
        try:
            for event in client.responses.create(**request_kwargs(name)):
                seen.append(event)
        except Exception as error:  # noqa: BLE001 - the app's view of the failure
            return {"events": seen, "error": error}
        raise AssertionError("the broken stream ended cleanly")

    got = replay(name, app, ingest, transport=lambda: CutTransport(events=7))
    assert [e["data"].get("delta") for e in got["events"]][4:] == ["This", " is", " a"]
    assert got["error"] == {"raised": "APIConnectionError", "str": "Connection error.", "status": None, "body": None}
    response_id = "resp_080c14c13caa16d10069e2f3fd66cc819e803927d8741bf6ae"
    assert delivered(ingest, name) == [
        Msg("user_message", SAY_TEST),
        Msg("assistant_message", "This is a", 0, model="gpt-4o-mini-2024-07-18",
            props=facts(None, "error", response_id, partial=True)),
        Msg("llm", None, 0, model="gpt-4o-mini-2024-07-18",
            props={"error": {"type": "APIConnectionError", "message": "Connection error."}}),
    ]


def test_responses_instrumentation_error_is_swallowed(ingest: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "test_responses_create_instrumentation_error_swallowed"

    def broken(self: Any, event: Any) -> None:
        raise ValueError("convotel bug")

    def app(client: Any) -> Any:
        monkeypatch.setattr(_responses.ResponsesStreamState, "process", broken)
        try:
            return iterate(name)(client)
        finally:
            monkeypatch.undo()

    got = replay(name, app, ingest)
    assert len(got["events"]) == 13 and got["events"][-1]["data"]["type"] == "response.completed"
    # The call still shows up (its input and a marker), without an output convotel could not trust.
    assert delivered(ingest, name) == [
        Msg("user_message", SAY_TEST),
        Msg("llm", None, 0, model="gpt-4o-mini", props={"provider": "openai"}),
    ]


def test_responses_stream_ends_once_however_it_is_finalized(ingest: Any) -> None:
    name = "test_responses_stream_wrapper_finalize_idempotent"
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))

    def app(client: Any) -> Any:
        with client.responses.create(**request_kwargs(name)) as stream:
            events = list(stream)
            stream.close()
            stream.close()
        stream.close()
        del stream
        gc.collect()
        return events

    got = replay(name, app, ingest, tracer_provider=provider)
    assert len(got) == 13
    assert len(spans.get_finished_spans()) == 1
    assert delivered(ingest, name) == [
        Msg("user_message", SAY_TEST),
        Msg("assistant_message", "This is a test.", 0, model="gpt-4o-mini-2024-07-18",
            props=facts(responses_usage(22, 6), "stop", "resp_08664f71729c977e0069e2f3fc662c819f8d6d31d4499cf5ad")),
    ]
    assert len(posted_messages(ingest)) == 2


# --------------------------------------------------------------------------- embeddings


def embed(name: str, **extra: Any) -> App:
    kwargs = {**request_kwargs(name), **extra}
    if name.startswith("test_async"):
        async def run(client: Any) -> Any:
            return await client.embeddings.create(**kwargs)

        return run
    return lambda client: client.embeddings.create(**kwargs)


EMBEDDINGS = {
    # name: (input texts, dimensions, prompt tokens, capture content, extra call arguments)
    "test_embeddings_with_content": (["This is a test for embeddings"], 1536, 6, True, {}),
    "test_async_embeddings_with_content": (["This is a test for async embeddings"], 1536, 7, True, {}),
    "test_embeddings_no_content": (["This is a test for embeddings"], 1536, 6, False, {}),
    "test_async_embeddings_no_content": (["This is a test for async embeddings"], 1536, 7, False, {}),
    "test_embeddings_with_batch_input": ([
        "This is the first test string for embeddings", "This is the second test string for embeddings",
        "This is the third test string for embeddings"], 1536, 24, True, {}),
    "test_async_embeddings_with_batch_input": ([
        "This is the first test string for async embeddings", "This is the second test string for async embeddings",
        "This is the third test string for async embeddings"], 1536, 27, True, {}),
    "test_embeddings_with_dimensions": (["This is a test for embeddings with dimensions"], 512, 8, True, {}),
    "test_async_embeddings_with_dimensions": (
        ["This is a test for async embeddings with dimensions"], 512, 9, True, {}),
    "test_embeddings_with_encoding_format": (["This is a test for embeddings with encoding format"], 1536, 9, True, {}),
    "test_async_embeddings_with_encoding_format": (
        ["This is a test for embeddings with encoding format"], 1536, 9, True, {}),
    "test_embeddings_with_not_given_values": (
        ["This is a test for embeddings with encoding format"], 1536, 9, True,
        {"dimensions": openai.NOT_GIVEN, "user": openai.omit}),
    "test_embeddings_token_metrics": (["This is a test for embeddings token metrics"], 1536, 8, True, {}),
    "test_async_embeddings_token_metrics": (["This is a test for async embeddings token metrics"], 1536, 9, True, {}),
}


@pytest.mark.parametrize("name", sorted(EMBEDDINGS))
def test_embeddings(name: str, ingest: Any) -> None:
    texts, dimensions, tokens, capture, extra = EMBEDDINGS[name]
    got = replay(name, embed(name, **extra), ingest, capture_content=capture)
    assert got["type"] == "CreateEmbeddingResponse" and len(got["data"]["data"]) == len(texts)
    assert delivered(ingest, name) == [
        Msg("embedding", None, input={"texts": texts} if capture else None, model="text-embedding-3-small", props={
            "provider": "openai", "dimensions": dimensions, "count": len(texts),
            "usage": {"inputTokens": tokens, "totalTokens": tokens}}),
    ]
    wire = str(posted_messages(ingest))
    assert str(got["data"]["data"][0]["embedding"])[1:12] not in wire  # never the vectors
    if not capture:
        assert "This is a test" not in wire


@pytest.mark.parametrize("name", ["test_embeddings_model_not_found", "test_async_embeddings_error_handling"])
def test_embeddings_error(name: str, ingest: Any) -> None:
    call = embed(name)
    if name.startswith("test_async"):
        async def app(client: Any) -> Any:
            try:
                return await call(client)
            except openai.APIError as error:
                return error
    else:
        def app(client: Any) -> Any:
            return _raises(lambda: call(client))

    got = replay(name, app, ingest)
    assert (got["raised"], got["status"]) == ("NotFoundError", 404)
    text = {"test_embeddings_model_not_found": "This is a test for embeddings with bad model",
            "test_async_embeddings_error_handling": "This is a test for async embeddings with error"}[name]
    assert delivered(ingest, name) == [
        Msg("embedding", None, input={"texts": [text]}, model="non-existent-embedding-model", props={
            "provider": "openai", "error": {"type": "NotFoundError", "status": 404, "message": got["str"]}}),
    ]


# --------------------------------------------------------------------------- the whole corpus


def _literals(path: Path) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_every_cassette_is_replayed_by_some_test() -> None:
    names = set(cassette_names())
    if not names:
        pytest.skip("OpenAI cassette corpus not found")
    here = Path(__file__).parent
    used = _literals(here / "test_openai_cassettes_e2e.py") | _literals(Path(__file__))
    assert sorted(names - used) == []
