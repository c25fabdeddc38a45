"""Shared pieces of the LangChain / LangGraph tests (imported by the other test_langchain_* modules).

* ``scripted_app()``: the demo's scripted OpenAI-compatible server plus ``stream: true``
  (server-sent events, usage in the last chunk when ``stream_options.include_usage``),
  so LangGraph's streaming modes run real ``ChatOpenAI`` streams.
* ``Traced``: a tracer provider whose spans go through the real convotel pipeline
  (``ConvotelSpanProcessor`` → ``Pipeline`` → ``Delivery`` → ``GreenflashSink``) to the
  checked local ingest server; ``conversation(id)`` reads back what was stored as
  ``(type, content or tool name, parent index)`` rows.
* ``weather_tools()``: the ``get_weather`` tool as a LangChain tool.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from langchain_core.tools import tool
from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from convotel._asgi import ServerHandle, serve_in_thread
from convotel.delivery import Delivery
from convotel.demo import scripted_openai
from convotel.exporter import ConvotelSpanProcessor
from convotel.instrumentation import set_capture_content
from convotel.pipeline import Pipeline
from convotel.sinks.greenflash import GreenflashSink

Row = tuple[str, Any, Any]


# -- the scripted model server, streaming too ---------------------------------------------------
def _sse(chunks: list[dict[str, Any]]) -> Iterator[bytes]:
    for chunk in chunks:
        yield f"data: {json.dumps(chunk)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def _stream_chunks(completion: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    base = {k: completion[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    choice = completion["choices"][0]
    message = choice["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return base | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

    out = [chunk({"role": "assistant", "content": ""})]
    text = message.get("content") or ""
    half = len(text) // 2
    for piece in (text[:half], text[half:]):
        if piece:
            out.append(chunk({"content": piece}))
    for index, call in enumerate(message.get("tool_calls") or ()):
        out.append(chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                          "function": {"name": call["function"]["name"], "arguments": ""}}]}))
        out.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": call["function"]["arguments"]}}]}))
    out.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        out.append(base | {"choices": [], "usage": completion["usage"]})
    return out


async def _chat_completions(request: Request) -> Response:
    body = await request.json()  # cached: the demo handler reads the same body again
    response = await scripted_openai.chat_completions(request)
    if not body.get("stream"):
        return response
    completion = json.loads(bytes(response.body))
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    return StreamingResponse(_sse(_stream_chunks(completion, include_usage)), media_type="text/event-stream")


def scripted_app() -> Starlette:
    return Starlette(routes=[Route("/v1/chat/completions", _chat_completions, methods=["POST"])])


@pytest.fixture(scope="module")
def model_server() -> Iterator[ServerHandle]:
    with serve_in_thread(scripted_app(), name="scripted-openai") as handle:
        yield handle


def chat_model(server: ServerHandle, **kwargs: Any) -> Any:
    import httpx
    from langchain_openai import ChatOpenAI

    # Its own async client: langchain-openai otherwise shares one per base URL, bound to the
    # event loop of whichever test used it first.
    kwargs.setdefault("http_async_client", httpx.AsyncClient())
    return ChatOpenAI(model="demo-model", base_url=f"{server.url}/v1", api_key="test-key", max_retries=0,
                      stream_usage=True, **kwargs)


def weather_tools() -> list[Any]:
    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return scripted_openai.weather(city)

    return [get_weather]


# -- spans → the local ingest server --------------------------------------------------------------
@dataclass
class Traced:
    provider: TracerProvider
    pipeline: Pipeline
    server: Any  # conftest.IngestServer
    instrumentors: list[Any] = field(default_factory=list)

    def instrument(self, instrumentor: Any) -> Any:
        """Instrument into this provider; uninstrumented when the test ends."""
        instrumentor.instrument(tracer_provider=self.provider)
        self.instrumentors.append(instrumentor)
        return instrumentor

    def flush(self) -> None:
        assert self.provider.force_flush(10_000)
        assert self.pipeline.flush(10.0)

    def stored(self, conversation: str) -> list[Any]:
        self.flush()
        return self.server.store.messages(conversation)

    def conversation(self, conversation: str) -> list[Row]:
        return shape(self.stored(conversation))

    def conversation_ids(self) -> list[str]:
        self.flush()
        return [c.external_id for c in self.server.store.conversations()]


def shape(messages: list[Any]) -> list[Row]:
    """(type, content or tool name, index of the parent in the list / None / 'external')."""
    index = {m.external_message_id: i for i, m in enumerate(messages)}
    rows: list[Row] = []
    for m in messages:
        parent = m.parent_external_message_id
        where = None if parent is None else index.get(parent, "external")
        rows.append((m.message_type, m.tool_name or m.content, where))
    return rows


def make_traced(ingest_server: Any) -> Iterator[Traced]:
    set_capture_content(True)
    sink = GreenflashSink(api_key=ingest_server.token, base_url=ingest_server.url)
    pipeline = Pipeline([Delivery(sink, linger_s=0.01)])
    provider = TracerProvider()
    provider.add_span_processor(ConvotelSpanProcessor(pipeline))
    traced = Traced(provider, pipeline, ingest_server)
    try:
        yield traced
    finally:
        for instrumentor in traced.instrumentors:
            instrumentor.uninstrument()
        pipeline.shutdown(10.0)
        set_capture_content(None)


@pytest.fixture
def traced(ingest_server: Any) -> Iterator[Traced]:
    yield from make_traced(ingest_server)


def test_streaming_script_matches_the_plain_one(model_server: ServerHandle) -> None:
    """The streaming variant is the demo's answer, chunked (a guard for the other tests)."""
    model = chat_model(model_server)
    plain = model.invoke("weather in Paris?")
    streamed = None
    for chunk in model.stream("weather in Paris?"):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed is not None
    assert streamed.content == plain.content
    assert [c["args"] for c in streamed.tool_calls] == [c["args"] for c in plain.tool_calls] == [{"city": "Paris"}]
    assert streamed.usage_metadata["total_tokens"] == plain.usage_metadata["total_tokens"]
