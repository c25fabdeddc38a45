"""Streams flow through untouched: the first chunk reaches the app while the server still holds the rest,
and thousands of streams ended every which way leave no memory behind."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import tracemalloc
from collections.abc import AsyncIterator, Iterator, Sequence

import openai
import pytest
from openai_testing import chunk
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

import convotel
from convotel._asgi import ServerHandle, serve_in_thread
from convotel_openai import OpenAIInstrumentor

FIRST = chunk("Hel")
# Allocations made by convotel, the OTel SDK or wrapt themselves. An abandoned stream's open
# connection is the app's and the HTTP client's to keep; what the instrumentation keeps is measured.
OURS = [tracemalloc.Filter(True, f"*{name}*") for name in ("convotel", "opentelemetry", "wrapt")]
REST = [chunk("lo"), chunk(None, finish="stop")]


class GatedStream:
    """An SSE chat endpoint that sends the first chunk, then waits for ``release`` before the rest."""

    def __init__(self) -> None:
        self.release = threading.Event()

    async def endpoint(self, request: Request) -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            yield b"data: " + json.dumps(FIRST).encode() + b"\n\n"
            await asyncio.to_thread(self.release.wait, 30)
            for event in REST:
                yield b"data: " + json.dumps(event).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


@pytest.fixture
def gated() -> Iterator[tuple[GatedStream, ServerHandle]]:
    stream = GatedStream()
    app = Starlette(routes=[Route("/v1/chat/completions", stream.endpoint, methods=["POST"])])
    with serve_in_thread(app) as server:
        yield stream, server
    stream.release.set()


def test_first_chunk_reaches_the_app_before_the_server_sends_more(instrument, exporter, gated) -> None:
    stream_server, server = gated
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="t", max_retries=0)
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
    first = next(stream)  # returns although the server holds everything after the first chunk
    assert not stream_server.release.is_set()
    assert first.model_dump(exclude_unset=True) == openai.types.chat.ChatCompletionChunk.model_validate(
        FIRST).model_dump(exclude_unset=True)
    stream_server.release.set()
    rest = [c.choices[0].delta.content for c in stream]
    assert rest == ["lo", None]
    [span] = exporter.get_finished_spans()
    output = json.loads(span.attributes["gen_ai.output.messages"])
    assert output == [{"role": "assistant", "parts": [{"type": "text", "content": "Hello"}], "finish_reason": "stop"}]


class CountingExporter(SpanExporter):
    """Keeps a count, not the spans, so memory measures the instrumentation alone."""

    def __init__(self) -> None:
        self.ended = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.ended += len(spans)
        return SpanExportResult.SUCCESS


def test_memory_is_flat_over_many_streams_ended_every_which_way() -> None:
    counting = CountingExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(counting))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    events = [chunk("partial "), chunk("answer"), chunk(None, finish="stop")]
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"

    async def endpoint(request: Request) -> StreamingResponse:
        return StreamingResponse(iter([body]), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/chat/completions", endpoint, methods=["POST"])])
    try:
        with serve_in_thread(app) as server:
            client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="t", max_retries=0)

            def round_of(n: int) -> None:
                for i in range(n):
                    with convotel.conversation(f"mem-{i}"):
                        stream = client.chat.completions.create(model="m", messages=[], stream=True)
                        mode = i % 4
                        if mode == 0:
                            list(stream)
                        elif mode == 1:
                            next(stream)
                            stream.close()
                        elif mode == 2:
                            next(stream)  # abandoned mid-way
                        # mode 3: never read
                        del stream

            round_of(200)  # warm-up: pools, caches, lazy imports
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.take_snapshot().filter_traces(OURS)
            round_of(600)
            gc.collect()
            after = tracemalloc.take_snapshot().filter_traces(OURS)
            tracemalloc.stop()
    finally:
        instrumentor.uninstrument()
    assert counting.ended == 800
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # 600 more calls: anything convotel kept per call (a span, a buffer, a wrapper) would be far above this.
    assert grown < 64 * 1024, f"memory allocated by the instrumentation grew by {grown} bytes over 600 streamed calls"
