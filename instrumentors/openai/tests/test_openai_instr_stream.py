"""Chat completions, streaming: pass-through, reassembly, ending the span exactly once."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import openai
import pytest
from convotel_openai._streams import AsyncStreamProxy, SyncStreamProxy
from openai_replay import cassette_names, load_cassette, replay_server, request_kwargs
from openai_testing import all_text, chunk, decoded, instrumented, sse_client
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import StatusCode

STREAM_CASSETTES = [
    n
    for n in cassette_names()
    if load_cassette(n).interactions[0].path == "/v1/chat/completions"
    and (load_cassette(n).interactions[0].request_body or {}).get("stream")
]


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="test", max_retries=0)


def stream_all(name: str, *, raw: bool = False) -> list[Any]:
    """Consume a recorded stream to the end (sync or async by cassette name); the chunks."""
    if name.startswith("test_async"):

        async def run() -> list[Any]:
            with replay_server(name) as url:
                c = openai.AsyncOpenAI(base_url=url, api_key="test", max_retries=0)
                if raw:
                    stream = (await c.chat.completions.with_raw_response.create(**request_kwargs(name))).parse()
                else:
                    stream = await c.chat.completions.create(**request_kwargs(name))
                chunks = [c async for c in stream]
                await c.close()
                return chunks

        return asyncio.run(run())
    with replay_server(name) as url:
        c = client(url)
        if raw:
            return list(c.chat.completions.with_raw_response.create(**request_kwargs(name)).parse())
        return list(c.chat.completions.create(**request_kwargs(name)))


def reassembled(chunks: list[Any]) -> dict[int, str]:
    texts: dict[int, str] = {}
    for c in chunks:
        for choice in c.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
    return texts


@pytest.mark.parametrize("raw", [False, True], ids=["plain", "raw"])
@pytest.mark.parametrize("name", STREAM_CASSETTES)
def test_every_stream_cassette_passes_chunks_through(name, raw, tracer_provider, exporter):
    baseline = [c.model_dump() for c in stream_all(name, raw=raw)]
    with instrumented(tracer_provider):
        chunks = stream_all(name, raw=raw)
    assert [c.model_dump() for c in chunks] == baseline
    (span,) = exporter.get_finished_spans()
    attrs = decoded(span)
    texts = reassembled(chunks)
    assert [m["parts"][0]["content"] for m in attrs["gen_ai.output.messages"] if m["parts"][0]["type"] == "text"] == [
        texts[i] for i in sorted(texts) if texts[i]
    ]
    assert attrs["gen_ai.response.id"] == chunks[0].id
    assert attrs["gen_ai.response.model"] == chunks[0].model
    assert "convotel.partial" not in attrs
    assert span.status.status_code is StatusCode.UNSET
    usage = next((c.usage for c in chunks if c.usage), None)
    if usage:
        assert attrs["gen_ai.usage.input_tokens"] == usage.prompt_tokens
        assert attrs["gen_ai.usage.output_tokens"] == usage.completion_tokens


def test_stream_span_attributes(instrument, exporter):
    name = "test_chat_completion_streaming"
    with replay_server(name) as url:
        stream = client(url).chat.completions.create(**request_kwargs(name))
        assert isinstance(stream, openai.Stream)
        assert isinstance(stream, SyncStreamProxy)
        assert exporter.get_finished_spans() == ()
        chunks = list(stream)
    (span,) = exporter.get_finished_spans()
    attrs = decoded(span)
    assert span.name == "chat gpt-4"
    assert attrs["gen_ai.input.messages"] == [{"role": "user", "parts": [{"type": "text", "content": "Say this is a test"}]}]
    assert attrs["gen_ai.output.messages"] == [
        {"role": "assistant", "parts": [{"type": "text", "content": '"This is a test."'}], "finish_reason": "stop"}
    ]
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.input_tokens"] == 12
    assert attrs["gen_ai.usage.output_tokens"] == 5
    assert attrs["gen_ai.response.id"] == chunks[0].id


@pytest.mark.parametrize("async_", [False, True])
def test_streamed_tool_calls(instrument, exporter, async_):
    name = "test_async_chat_completion_multiple_tools_streaming_no_content" if async_ else "test_chat_completion_multiple_tools_streaming_no_content"
    chunks = stream_all(name)
    attrs = decoded(exporter.get_finished_spans()[0])
    ids = [tc.id for c in chunks for ch in c.choices for tc in ch.delta.tool_calls or () if tc.id]
    assert len(ids) == 2
    assert attrs["gen_ai.output.messages"] == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": ids[0], "name": "get_current_weather", "arguments": {"location": "Seattle, WA"}},
                {"type": "tool_call", "id": ids[1], "name": "get_current_weather", "arguments": {"location": "San Francisco, CA"}},
            ],
            "finish_reason": "tool_calls",
        }
    ]
    assert attrs["gen_ai.system_instructions"] == [{"type": "text", "content": "You're a helpful assistant."}]
    assert [t["name"] for t in attrs["gen_ai.tool.definitions"]] == ["get_current_weather"]


def test_streamed_multiple_choices(instrument, exporter):
    chunks = stream_all("test_chat_completion_multiple_choices_streaming")
    attrs = decoded(exporter.get_finished_spans()[0])
    texts = reassembled(chunks)
    assert attrs["gen_ai.request.choice.count"] == 2
    assert [m["parts"] for m in attrs["gen_ai.output.messages"]] == [
        [{"type": "text", "content": texts[0]}],
        [{"type": "text", "content": texts[1]}],
    ]
    assert len(attrs["gen_ai.response.finish_reasons"]) == 2


def test_interleaved_tool_calls_reasoning_and_usage(instrument, exporter):
    events = [
        chunk(reasoning="Two cities, "),
        chunk(reasoning="two calls."),
        chunk(tool_calls=[{"index": 0, "id": "call_a", "type": "function", "function": {"name": "weather", "arguments": ""}}]),
        chunk(tool_calls=[{"index": 1, "id": "call_b", "type": "function", "function": {"name": "time", "arguments": '{"tz"'}}]),
        chunk(tool_calls=[{"index": 0, "function": {"arguments": '{"city": '}}]),
        chunk(tool_calls=[{"index": 1, "function": {"arguments": ': "CET"}'}}]),
        chunk(tool_calls=[{"index": 0, "function": {"arguments": '"Oslo"}'}}]),
        chunk(finish="tool_calls"),
        chunk(choices=False, usage={
            "prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16,
            "completion_tokens_details": {"reasoning_tokens": 3}, "prompt_tokens_details": {"cached_tokens": 2},
        }),
    ]
    chunks = list(sse_client(events).chat.completions.create(model="crafted-model", messages=[], stream=True))
    assert len(chunks) == len(events)
    attrs = decoded(exporter.get_finished_spans()[0])
    assert attrs["gen_ai.output.messages"] == [
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": "Two cities, two calls."},
                {"type": "tool_call", "id": "call_a", "name": "weather", "arguments": {"city": "Oslo"}},
                {"type": "tool_call", "id": "call_b", "name": "time", "arguments": {"tz": "CET"}},
            ],
            "finish_reason": "tool_calls",
        }
    ]
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 3
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 2


def test_capture_off_stream_buffers_no_text(instrument, exporter, capture_off):
    events = [chunk("secret "), chunk("words", reasoning="hidden thoughts"),
              chunk(tool_calls=[{"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"pin": 1234}'}}]),
              chunk(finish="stop")]
    stream = sse_client(events).chat.completions.create(model="m", messages=[{"role": "user", "content": "my secret"}], stream=True)
    state = stream._self_state
    for _ in stream:
        pass
    for buf in state.choices.values():
        assert buf.text == [] and buf.reasoning == []
        assert all(t.arguments == [] for t in buf.tool_calls.values())
    (span,) = exporter.get_finished_spans()
    blob = all_text(span)
    for text in ("secret", "words", "hidden", "1234", "pin"):
        assert text not in blob
    assert decoded(span)["gen_ai.output.messages"] == [
        {
            "role": "assistant",
            "parts": [{"type": "reasoning"}, {"type": "text"}, {"type": "tool_call", "id": "c1", "name": "f"}],
            "finish_reason": "stop",
        }
    ]


# --------------------------------------------------------------------------- ending exactly once


def _one_span(exporter) -> dict[str, Any]:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1
    return decoded(spans[0])


def test_context_manager_ends_span(instrument, exporter):
    name = "test_chat_completion_with_context_manager_streaming"
    with replay_server(name) as url:
        with client(url).chat.completions.create(**request_kwargs(name)) as stream:
            assert isinstance(stream, SyncStreamProxy)
            for _ in stream:
                pass
    attrs = _one_span(exporter)
    assert attrs["openai.response.service_tier"] == "default"
    assert "convotel.partial" not in attrs


def test_break_then_close_is_partial(instrument, exporter):
    name = "test_chat_completion_streaming_not_complete"
    with replay_server(name) as url:
        stream = client(url).chat.completions.create(**request_kwargs(name))
        for c in stream:
            if c.choices and c.choices[0].delta.content:
                break
        stream.close()
        stream.close()
    attrs = _one_span(exporter)
    assert attrs["convotel.partial"] is True
    assert attrs["gen_ai.output.messages"][0]["parts"] == [{"type": "text", "content": "This"}]
    assert attrs["gen_ai.output.messages"][0]["finish_reason"] == "error"


def test_break_inside_with_is_partial(instrument, exporter):
    name = "test_chat_completion_streaming"
    with replay_server(name) as url:
        with client(url).chat.completions.create(**request_kwargs(name)) as stream:
            next(stream)
    attrs = _one_span(exporter)
    assert attrs["convotel.partial"] is True


def test_abandoned_stream_ends_on_gc(instrument, exporter):
    name = "test_chat_completion_streaming"
    with replay_server(name) as url:
        stream = client(url).chat.completions.create(**request_kwargs(name))
        next(stream)
        del stream
        gc.collect()
    attrs = _one_span(exporter)
    assert attrs["convotel.partial"] is True


def test_consumer_exception_in_with(instrument, exporter):
    name = "test_chat_completion_streaming"
    boom = ValueError("consumer failed")
    with replay_server(name) as url:
        with pytest.raises(ValueError) as info:
            with client(url).chat.completions.create(**request_kwargs(name)) as stream:
                for _ in stream:
                    raise boom
    assert info.value is boom
    (span,) = exporter.get_finished_spans()
    attrs = decoded(span)
    assert span.status.status_code is StatusCode.ERROR
    assert attrs["error.type"] == "ValueError"
    assert attrs["convotel.partial"] is True


def test_error_event_mid_stream(instrument, exporter):
    c = sse_client([chunk("Hel"), {"error": {"message": "overloaded", "type": "server_error"}}])
    with pytest.raises(openai.APIError):
        for _ in c.chat.completions.create(model="m", messages=[], stream=True):
            pass
    (span,) = exporter.get_finished_spans()
    attrs = decoded(span)
    assert span.status.status_code is StatusCode.ERROR
    assert attrs["error.type"] == "APIError"
    assert attrs["convotel.partial"] is True
    assert attrs["gen_ai.output.messages"][0]["parts"] == [{"type": "text", "content": "Hel"}]


def test_connection_cut_mid_stream(instrument, exporter):
    c = sse_client([chunk("Hel"), chunk("lo")], cut=True)
    with pytest.raises(openai.APIConnectionError):
        for _ in c.chat.completions.create(model="m", messages=[], stream=True):
            pass
    attrs = _one_span(exporter)
    assert attrs["error.type"] == "APIConnectionError"
    assert attrs["convotel.partial"] is True
    assert attrs["gen_ai.output.messages"][0]["parts"] == [{"type": "text", "content": "Hello"}]


def test_stream_without_finish_reason_is_partial(instrument, exporter):
    list(sse_client([chunk("Hel"), chunk("lo")]).chat.completions.create(model="m", messages=[], stream=True))
    attrs = _one_span(exporter)
    assert attrs["convotel.partial"] is True
    assert "error.type" not in attrs


def test_chunks_are_the_same_objects():
    from convotel_openai._call import Call

    provider = TracerProvider()
    items = [object(), object()]

    class Fake:
        def __init__(self) -> None:
            self.it = iter(items)

        def __next__(self) -> Any:
            return next(self.it)

    from convotel_openai._chat import ChatStreamState

    span = provider.get_tracer("t").start_span("s")
    proxy = SyncStreamProxy(Fake(), Call(span, True), ChatStreamState(True), "chat")
    got = list(proxy)
    assert len(got) == 2 and all(a is b for a, b in zip(got, items))
    assert proxy._self_call.ended


# --------------------------------------------------------------------------- async


def test_async_stream_variants(instrument, exporter):
    name = "test_async_chat_completion_streaming"

    async def run() -> None:
        with replay_server(name) as url:
            c = openai.AsyncOpenAI(base_url=url, api_key="test", max_retries=0)
            # full, inside async with
            async with await c.chat.completions.create(**request_kwargs(name)) as stream:
                assert isinstance(stream, AsyncStreamProxy)
                assert isinstance(stream, openai.AsyncStream)
                full = [x async for x in stream]
            # early break + close
            stream = await c.chat.completions.create(**request_kwargs(name))
            async for _ in stream:
                break
            await stream.close()
            # early break + aclose
            stream = await c.chat.completions.create(**request_kwargs(name))
            await stream.__anext__()
            await stream.aclose()
            # abandoned
            stream = await c.chat.completions.create(**request_kwargs(name))
            await stream.__anext__()
            del stream
            gc.collect()
            await c.close()
            assert full

    asyncio.run(run())
    spans = [decoded(s) for s in exporter.get_finished_spans()]
    assert len(spans) == 4
    assert "convotel.partial" not in spans[0]
    assert spans[0]["gen_ai.output.messages"][0]["parts"] == [{"type": "text", "content": "This is a test."}]
    assert all(s["convotel.partial"] is True for s in spans[1:])


def test_async_consumer_exception_and_cut(instrument, exporter):
    async def run() -> None:
        c = sse_client([chunk("a"), chunk("b"), chunk(finish="stop")], is_async=True)
        with pytest.raises(KeyError):
            async with await c.chat.completions.create(model="m", messages=[], stream=True) as s:
                async for _ in s:
                    raise KeyError("x")
        c = sse_client([chunk("a")], is_async=True, cut=True)
        with pytest.raises(openai.APIConnectionError):
            async for _ in await c.chat.completions.create(model="m", messages=[], stream=True):
                pass

    asyncio.run(run())
    first, second = (decoded(s) for s in exporter.get_finished_spans())
    assert first["error.type"] == "KeyError" and first["convotel.partial"] is True
    assert second["error.type"] == "APIConnectionError" and second["convotel.partial"] is True


# --------------------------------------------------------------------------- sampling


def test_unsampled_stream_is_not_wrapped(exporter):
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    name = "test_chat_completion_streaming"
    with instrumented(provider), replay_server(name) as url:
        stream = client(url).chat.completions.create(**request_kwargs(name))
        assert type(stream) is openai.Stream
        assert len(list(stream)) > 1
    assert exporter.get_finished_spans() == ()


def test_instrumentation_fault_mid_stream_never_reaches_app(instrument, exporter, monkeypatch, caplog):
    import logging

    from convotel_openai import _chat

    from convotel import instrumentation

    calls = {"n": 0}
    original = _chat.ChatStreamState.process

    def flaky(self: Any, item: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise AttributeError("odd chunk")
        original(self, item)

    monkeypatch.setattr(instrumentation, "_reported", set())  # log-once state, fresh
    monkeypatch.setattr(_chat.ChatStreamState, "process", flaky)
    name = "test_chat_completion_streaming"
    with caplog.at_level(logging.WARNING, logger="convotel_openai"):
        with replay_server(name) as url:
            chunks = list(client(url).chat.completions.create(**request_kwargs(name)))
            chunks2 = list(client(url).chat.completions.create(**request_kwargs(name)))
    assert len(chunks) == len(chunks2) > 3
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == '"This is a test."'
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    assert "gen_ai.output.messages" not in spans[0].attributes  # incomplete state is not reported
    assert decoded(spans[1])["gen_ai.output.messages"][0]["parts"][0]["content"] == '"This is a test."'
    assert len([r for r in caplog.records if "chat.stream_chunk" in r.getMessage()]) == 1
