"""Chat completions, non-streaming: recorded exchanges through the real client."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx2
import openai
import pytest
from convotel_openai import OpenAIInstrumentor, _patching
from openai_replay import (
    cassette_names,
    closed_port_url,
    load_cassette,
    recorded_response,
    replay_server,
    request_kwargs,
)
from openai_testing import all_text, decoded, instrumented
from opentelemetry.trace import SpanKind, StatusCode

import convotel

CHAT_PATH = "/v1/chat/completions"


def _chat_cassettes(*, stream: bool, status: int = 200) -> list[str]:
    out = []
    for name in cassette_names():
        cassette = load_cassette(name)
        first = cassette.interactions[0]
        if first.path == CHAT_PATH and bool((first.request_body or {}).get("stream")) == stream:
            if first.status == status:
                out.append(name)
    return out


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="test", max_retries=0)


def aclient(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url, api_key="test", max_retries=0)


def call_all(name: str, *, is_async: bool = False, raw: bool = False) -> list[Any]:
    """Replay every interaction of ``name`` with its recorded arguments; the app-visible results."""
    n = len(load_cassette(name).interactions)
    with replay_server(name) as url:
        if is_async:

            async def run() -> list[Any]:
                c = aclient(url)
                api = c.chat.completions.with_raw_response if raw else c.chat.completions
                results = [await api.create(**request_kwargs(name, i)) for i in range(n)]
                await c.close()
                return results

            return asyncio.run(run())
        c = client(url)
        api = c.chat.completions.with_raw_response if raw else c.chat.completions
        return [api.create(**request_kwargs(name, i)) for i in range(n)]


def dump(result: Any) -> Any:
    if hasattr(result, "http_response"):  # LegacyAPIResponse
        return {"content": result.http_response.content, "parsed": result.parse().model_dump()}
    return result.model_dump()


# --------------------------------------------------------------------------- every cassette


@pytest.mark.parametrize("name", _chat_cassettes(stream=False))
def test_every_chat_cassette_same_result_and_one_span(name, tracer_provider, exporter):
    is_async = name.startswith("test_async")
    baseline = [dump(r) for r in call_all(name, is_async=is_async)]
    with instrumented(tracer_provider):
        results = call_all(name, is_async=is_async)
    assert [dump(r) for r in results] == baseline
    spans = exporter.get_finished_spans()
    assert len(spans) == len(results)
    for span, result in zip(spans, results):
        attrs = decoded(span)
        assert span.kind is SpanKind.CLIENT
        assert span.name == f"chat {attrs['gen_ai.request.model']}"
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == "openai"
        assert attrs["gen_ai.response.id"] == result.id
        assert attrs["gen_ai.response.model"] == result.model
        assert attrs["gen_ai.usage.input_tokens"] == result.usage.prompt_tokens
        assert attrs["gen_ai.usage.output_tokens"] == result.usage.completion_tokens
        assert attrs["gen_ai.response.finish_reasons"] == tuple(c.finish_reason for c in result.choices)
        assert len(attrs["gen_ai.output.messages"]) == len(result.choices)
        assert span.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize("name", _chat_cassettes(stream=False))
def test_every_chat_cassette_raw_response(name, tracer_provider, exporter):
    baseline = [dump(r) for r in call_all(name, raw=True)]
    with instrumented(tracer_provider):
        results = call_all(name, raw=True)
        assert all(type(r).__name__ == "LegacyAPIResponse" for r in results)
        assert [dump(r) for r in results] == baseline
    spans = exporter.get_finished_spans()
    assert len(spans) == len(results)
    for span, result in zip(spans, results):
        attrs = decoded(span)
        assert attrs["gen_ai.response.id"] == result.parse().id
        assert len(attrs["gen_ai.output.messages"]) == len(result.parse().choices)


# --------------------------------------------------------------------------- explicit attributes


def test_basic_chat_span(instrument, exporter):
    name = "test_chat_completion_with_content"
    with replay_server(name) as url:
        completion = client(url).chat.completions.create(**request_kwargs(name))
    (span,) = exporter.get_finished_spans()
    attrs = decoded(span)
    port = int(url.split(":")[2].split("/")[0])
    assert span.name == "chat gpt-4o-mini"
    assert attrs == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "server.address": "127.0.0.1",
        "server.port": port,
        "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "Say this is a test"}]}],
        "gen_ai.response.id": "chatcmpl-ASYMQRl3A3DXL9FWCK9tnGRcKIO7q",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "openai.response.system_fingerprint": "fp_0ba0d124f1",
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 5,
        "gen_ai.usage.reasoning.output_tokens": 0,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.output.messages": [
            {"role": "assistant", "parts": [{"type": "text", "content": "This is a test."}], "finish_reason": "stop"}
        ],
    }
    assert completion.choices[0].message.content == "This is a test."


def test_async_chat_span(instrument, exporter):
    name = "test_async_chat_completion_with_content"
    (completion,) = call_all(name, is_async=True)
    (span,) = exporter.get_finished_spans()
    attrs = decoded(span)
    assert span.kind is SpanKind.CLIENT
    assert attrs["gen_ai.input.messages"] == [
        {"role": "user", "parts": [{"type": "text", "content": "Say this is a test"}]}
    ]
    assert attrs["gen_ai.output.messages"] == [
        {"role": "assistant", "parts": [{"type": "text", "content": completion.choices[0].message.content}], "finish_reason": "stop"}
    ]
    assert attrs["gen_ai.response.id"] == completion.id


WEATHER_TOOL = {
    "type": "function",
    "name": "get_current_weather",
    "description": "Get the current weather in a given location",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "The city and state, e.g. Boston, MA"}},
        "required": ["location"],
        "additionalProperties": False,
    },
}


@pytest.mark.parametrize("is_async", [False, True])
def test_tool_calls_and_tool_results(instrument, exporter, is_async):
    name = "test_async_chat_completion_tool_calls_with_content" if is_async else "test_chat_completion_tool_calls_with_content"
    first, second = call_all(name, is_async=is_async)
    one, two = (decoded(s) for s in exporter.get_finished_spans())
    system = [{"type": "text", "content": "You're a helpful assistant."}]
    user = {"role": "user", "parts": [{"type": "text", "content": "What's the weather in Seattle and San Francisco today?"}]}
    ids = [c.id for c in first.choices[0].message.tool_calls]
    calls = [
        {"type": "tool_call", "id": ids[0], "name": "get_current_weather", "arguments": {"location": "Seattle, WA"}},
        {"type": "tool_call", "id": ids[1], "name": "get_current_weather", "arguments": {"location": "San Francisco, CA"}},
    ]
    assert one["gen_ai.system_instructions"] == system
    assert one["gen_ai.input.messages"] == [user]
    assert one["gen_ai.tool.definitions"] == [WEATHER_TOOL]
    assert one["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert one["gen_ai.output.messages"] == [{"role": "assistant", "parts": calls, "finish_reason": "tool_calls"}]

    assert two["gen_ai.system_instructions"] == system
    assert "gen_ai.tool.definitions" not in two
    assert two["gen_ai.input.messages"] == [
        user,
        {"role": "assistant", "parts": calls},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": ids[0], "response": "50 degrees and raining"}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": ids[1], "response": "70 degrees and sunny"}]},
    ]
    assert two["gen_ai.output.messages"] == [
        {"role": "assistant", "parts": [{"type": "text", "content": second.choices[0].message.content}], "finish_reason": "stop"}
    ]


def test_multiple_choices(instrument, exporter):
    (completion,) = call_all("test_chat_completion_multiple_choices")
    attrs = decoded(exporter.get_finished_spans()[0])
    assert attrs["gen_ai.request.choice.count"] == 2
    assert attrs["gen_ai.response.finish_reasons"] == ("stop", "stop")
    assert [m["parts"][0]["content"] for m in attrs["gen_ai.output.messages"]] == [
        c.message.content for c in completion.choices
    ]


def test_n_1_not_reported(instrument, exporter):
    call_all("test_chat_completion_n_1_is_not_reported")
    assert "gen_ai.request.choice.count" not in decoded(exporter.get_finished_spans()[0])


def test_request_parameters(instrument, exporter):
    call_all("test_chat_completion_extra_params")
    attrs = decoded(exporter.get_finished_spans()[0])
    assert attrs["gen_ai.request.temperature"] == 0.5
    assert attrs["gen_ai.request.max_tokens"] == 50
    assert attrs["gen_ai.request.seed"] == 42
    assert attrs["gen_ai.output.type"] == "text"
    assert attrs["openai.request.service_tier"] == "default"


def test_stop_sequence_string(instrument, exporter):
    call_all("test_chat_completion_handle_stop_sequences_as_string")
    assert decoded(exporter.get_finished_spans()[0])["gen_ai.request.stop_sequences"] == ("stop",)


def test_not_given_values_are_not_recorded(instrument, exporter):
    name = "test_chat_completion_handles_not_given"
    with replay_server(name) as url:
        client(url).chat.completions.create(
            **request_kwargs(name), temperature=openai.NOT_GIVEN, top_p=openai.omit, seed=openai.NOT_GIVEN,
            max_tokens=openai.NOT_GIVEN, stop=openai.NOT_GIVEN, n=openai.NOT_GIVEN, tools=openai.NOT_GIVEN,
        )
    attrs = decoded(exporter.get_finished_spans()[0])
    for key in attrs:
        assert not key.startswith("gen_ai.request.") or key == "gen_ai.request.model"
    assert "gen_ai.tool.definitions" not in attrs


def test_raw_response_keeps_legacy_object(instrument, exporter):
    name = "test_chat_completion_with_raw_response"
    with replay_server(name) as url:
        raw = client(url).chat.completions.with_raw_response.create(**request_kwargs(name))
    assert isinstance(raw, openai._legacy_response.LegacyAPIResponse)
    assert raw.headers.get("x-request-id")
    body = recorded_response(name).response_json()
    assert raw.parse().model_dump()["id"] == body["id"]
    assert json.loads(raw.http_response.content) == body
    attrs = decoded(exporter.get_finished_spans()[0])
    assert attrs["gen_ai.response.id"] == body["id"]
    assert attrs["gen_ai.output.messages"][0]["parts"] == [{"type": "text", "content": "This is a test."}]


def test_conversation_context(instrument, exporter):
    name = "test_chat_completion_with_content"
    with replay_server(name) as url, convotel.conversation("conv-1", user_id="u-1", organization_id="org-1"):
        client(url).chat.completions.create(**request_kwargs(name))
    attrs = decoded(exporter.get_finished_spans()[0])
    assert attrs["gen_ai.conversation.id"] == "conv-1"
    assert attrs["user.id"] == "u-1"
    assert attrs["convotel.organization.id"] == "org-1"


# --------------------------------------------------------------------------- content off


@pytest.mark.parametrize("name", ["test_chat_completion_tool_calls_with_content", "test_chat_completion_multiple_choices"])
def test_capture_off_keeps_structure_without_text(instrument, exporter, capture_off, name):
    results = call_all(name)
    texts = set()
    for i, result in enumerate(results):
        for message in request_kwargs(name, i)["messages"]:
            texts.add(message.get("content"))
        for choice in result.choices:
            texts.add(choice.message.content)
            for call in choice.message.tool_calls or ():
                texts.add(call.function.arguments)
        for tool in request_kwargs(name, i).get("tools", []):
            texts.add(tool["function"]["description"])
    texts.discard(None)
    texts |= {"Seattle", "San Francisco", "degrees"}
    spans = exporter.get_finished_spans()
    for span in spans:
        blob = all_text(span)
        for text in texts:
            assert text not in blob
    attrs = [decoded(s) for s in spans]
    if name.endswith("tool_calls_with_content"):
        ids = [c.id for c in results[0].choices[0].message.tool_calls]
        assert attrs[0]["gen_ai.system_instructions"] == [{"type": "text"}]
        assert attrs[0]["gen_ai.input.messages"] == [{"role": "user", "parts": [{"type": "text"}]}]
        assert attrs[0]["gen_ai.tool.definitions"] == [{"type": "function", "name": "get_current_weather"}]
        assert attrs[0]["gen_ai.output.messages"] == [
            {
                "role": "assistant",
                "parts": [{"type": "tool_call", "id": i, "name": "get_current_weather"} for i in ids],
                "finish_reason": "tool_calls",
            }
        ]
        assert attrs[1]["gen_ai.input.messages"][2:] == [
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": i}]} for i in ids
        ]
        assert attrs[1]["gen_ai.output.messages"][0]["parts"] == [{"type": "text"}]
        assert attrs[1]["gen_ai.usage.output_tokens"] == results[1].usage.completion_tokens
    else:
        assert attrs[0]["gen_ai.response.finish_reasons"] == ("stop", "stop")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("is_async", [False, True])
def test_http_error_reraised_with_error_span(instrument, exporter, is_async):
    name = "test_async_chat_completion_404" if is_async else "test_chat_completion_404"
    with pytest.raises(openai.NotFoundError) as info:
        call_all(name, is_async=is_async)
    (span,) = exporter.get_finished_spans()
    attrs = decoded(span)
    assert span.status.status_code is StatusCode.ERROR
    assert attrs["error.type"] == "NotFoundError"
    assert attrs["http.response.status_code"] == 404
    assert attrs["gen_ai.request.model"] == "this-model-does-not-exist"
    assert attrs["gen_ai.input.messages"] == [{"role": "user", "parts": [{"type": "text", "content": "Say this is a test"}]}]
    assert "gen_ai.output.messages" not in attrs
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"].endswith("NotFoundError")
    assert info.value.status_code == 404


def test_connection_error(instrument, exporter):
    with pytest.raises(openai.APIConnectionError):
        client(closed_port_url()).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    (span,) = exporter.get_finished_spans()
    attrs = decoded(span)
    assert span.status.status_code is StatusCode.ERROR
    assert attrs["error.type"] == "APIConnectionError"
    assert "http.response.status_code" not in attrs


def test_timeout_error(instrument, exporter):
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("slow", request=request)

    c = openai.OpenAI(
        base_url="http://127.0.0.1:9/v1", api_key="t", max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    with pytest.raises(openai.APITimeoutError):
        c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert decoded(exporter.get_finished_spans()[0])["error.type"] == "APITimeoutError"


@pytest.mark.parametrize("is_async", [False, True])
def test_exception_is_the_same_object(tracer_provider, exporter, monkeypatch, is_async):
    boom = RuntimeError("boom")
    from openai.resources.chat import completions as chat

    def raising(self, **kwargs):
        raise boom

    async def araising(self, **kwargs):
        raise boom

    monkeypatch.setattr(chat.Completions, "create", raising)
    monkeypatch.setattr(chat.AsyncCompletions, "create", araising)
    with instrumented(tracer_provider), pytest.raises(RuntimeError) as info:
        if is_async:
            c = aclient("http://127.0.0.1:9/v1")
            asyncio.run(c.chat.completions.create(model="m", messages=[]))
        else:
            client("http://127.0.0.1:9/v1").chat.completions.create(model="m", messages=[])
    assert info.value is boom
    assert chat.Completions.__dict__["create"] is raising
    (span,) = exporter.get_finished_spans()
    assert span.attributes["error.type"] == "RuntimeError"


# --------------------------------------------------------------------------- instrument / uninstrument


def test_instrument_twice_and_uninstrument_restores_originals(tracer_provider):
    from openai.resources.chat import completions as chat

    originals = {cls: cls.__dict__["create"] for cls in (chat.Completions, chat.AsyncCompletions)}
    with instrumented(tracer_provider) as instrumentor:
        wrapped = {cls: cls.__dict__["create"] for cls in originals}
        for cls, original in originals.items():
            assert wrapped[cls] is not original
            assert wrapped[cls].__wrapped__ is original
        count = len(_patching.active())
        instrumentor.instrument(tracer_provider=tracer_provider)  # no-op
        OpenAIInstrumentor()._instrument(tracer_provider=tracer_provider)  # even bypassing the guard
        assert len(_patching.active()) == count
        for cls in originals:
            assert cls.__dict__["create"] is wrapped[cls]
    for cls, original in originals.items():
        assert cls.__dict__["create"] is original
    assert _patching.active() == []


def test_uninstrumented_calls_make_no_spans(tracer_provider, exporter):
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    instrumentor.uninstrument()
    call_all("test_chat_completion_with_content")
    assert exporter.get_finished_spans() == ()


# --------------------------------------------------------------------------- instrumentation faults


def test_instrumentation_bug_never_reaches_app(instrument, exporter, monkeypatch, caplog):
    from convotel_openai import _operations

    from convotel import instrumentation

    def broken(*args: Any, **kwargs: Any) -> None:
        raise KeyError("odd shape")

    monkeypatch.setattr(instrumentation, "_reported", set())  # log-once state, fresh
    original = _operations.CHAT.apply_response
    object.__setattr__(_operations.CHAT, "apply_response", broken)
    try:
        with caplog.at_level(logging.WARNING, logger="convotel_openai"):
            results = call_all("test_chat_completion_with_content") + call_all("test_chat_completion_with_content")
            raw = call_all("test_chat_completion_with_content", raw=True)
    finally:
        object.__setattr__(_operations.CHAT, "apply_response", original)
    assert all(r.choices[0].message.content == "This is a test." for r in results)
    assert raw[0].parse().choices[0].message.content == "This is a test."
    assert len(exporter.get_finished_spans()) == 3
    assert len([r for r in caplog.records if "chat.response" in r.getMessage()]) == 1


def test_malformed_messages_do_not_break_the_call(instrument, exporter, monkeypatch):
    from convotel_openai import _messages

    from convotel import instrumentation

    def broken(*args: Any, **kwargs: Any) -> None:
        raise TypeError("malformed")

    monkeypatch.setattr(instrumentation, "_reported", set())  # log-once state, fresh
    monkeypatch.setattr(_messages, "input_messages", broken)
    (result,) = call_all("test_chat_completion_with_content")
    assert result.choices[0].message.content == "This is a test."
    attrs = decoded(exporter.get_finished_spans()[0])
    assert "gen_ai.input.messages" not in attrs
    assert attrs["gen_ai.output.messages"]


def test_entry_point_registered():
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "convotel_openai"]
    assert ep.load() is OpenAIInstrumentor
    assert OpenAIInstrumentor().instrumentation_dependencies() == ("openai >= 1.40",)


def test_suppressed_instrumentation_makes_no_span(instrument, exporter):
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        (result,) = call_all("test_chat_completion_with_content")
    assert result.choices[0].message.content == "This is a test."
    assert exporter.get_finished_spans() == ()


def test_span_is_current_during_the_http_call(instrument, exporter, monkeypatch):
    from opentelemetry import trace

    seen = []
    original = openai.OpenAI._prepare_request if hasattr(openai.OpenAI, "_prepare_request") else None

    def spy(self, request):
        seen.append(trace.get_current_span().get_span_context().span_id)
        return original(self, request) if original else None

    monkeypatch.setattr(openai.OpenAI, "_prepare_request", spy)
    call_all("test_chat_completion_with_content")
    (span,) = exporter.get_finished_spans()
    assert seen == [span.context.span_id]
