"""Helpers for the OpenAI instrumentor tests: decoded span attributes and crafted SSE streams."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from convotel_openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

# The shared cassette replay helper lives in <repo>/tests/openai_replay.py.
_REPO_TESTS = str(Path(__file__).resolve().parents[3] / "tests")
if _REPO_TESTS not in sys.path:
    sys.path.insert(0, _REPO_TESTS)


JSON_ATTRS = (
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "convotel.input",
    "convotel.conversation.properties",
)


@contextmanager
def instrumented(tracer_provider: TracerProvider) -> Iterator[OpenAIInstrumentor]:
    """The OpenAI instrumentor on for the ``with`` block, off again however the block ends."""
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        yield instrumentor
    finally:
        instrumentor.uninstrument()


def decoded(span: ReadableSpan) -> dict[str, Any]:
    """The span's attributes with the JSON-valued ones decoded."""
    out = dict(span.attributes or {})
    for key in JSON_ATTRS:
        if key in out:
            out[key] = json.loads(out[key])
    return out


def all_text(span: ReadableSpan) -> str:
    """Every string the span carries (attributes, events, status), for no-content checks."""
    chunks = [span.name, span.status.description or ""]
    for value in (span.attributes or {}).values():
        chunks.append(repr(value))
    for event in span.events:
        chunks.append(event.name)
        chunks.extend(repr(v) for v in (event.attributes or {}).values())
    return "\n".join(chunks)


# --------------------------------------------------------------------------- crafted SSE streams


def chunk(
    content: str | None = None,
    *,
    index: int = 0,
    finish: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    reasoning: str | None = None,
    usage: dict[str, Any] | None = None,
    choices: bool = True,
    id: str = "chatcmpl-crafted",
    model: str = "crafted-model",
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` event body."""
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    body: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}] if choices else [],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def sse_bytes(events: list[dict[str, Any]], *, done: bool = True) -> list[bytes]:
    out = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events]
    if done:
        out.append(b"data: [DONE]\n\n")
    return out


def sse_transport(events: list[dict[str, Any]], *, cut: bool = False, done: bool = True) -> Any:
    """An httpx2 MockTransport answering every request with ``events`` as SSE.

    ``cut=True`` breaks the connection (``ReadError``) after the events.
    """
    import httpx2

    def sync_body() -> Iterator[bytes]:
        yield from sse_bytes(events, done=done and not cut)
        if cut:
            raise httpx2.ReadError("connection cut")

    async def async_body() -> Any:
        for part in sse_bytes(events, done=done and not cut):
            yield part
        if cut:
            raise httpx2.ReadError("connection cut")

    class Transport(httpx2.MockTransport):
        def __init__(self) -> None:
            super().__init__(self._sync)

        def _sync(self, request: Any) -> Any:
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=sync_body())

        async def handle_async_request(self, request: Any) -> Any:
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=async_body())

    return Transport()


def sse_client(events: list[dict[str, Any]], *, is_async: bool = False, **kw: Any) -> Any:
    import httpx2
    import openai

    transport = sse_transport(events, **kw)
    if is_async:
        http = httpx2.AsyncClient(transport=transport)
        return openai.AsyncOpenAI(base_url="http://crafted.test/v1", api_key="t", max_retries=0, http_client=http)
    http = httpx2.Client(transport=transport)
    return openai.OpenAI(base_url="http://crafted.test/v1", api_key="t", max_retries=0, http_client=http)


def json_client(body: Any, *, status: int = 200, is_async: bool = False) -> Any:
    """A client whose every request is answered with ``body`` as JSON."""
    import httpx2
    import openai

    def handler(request: Any) -> Any:
        return httpx2.Response(status, json=body)

    transport = httpx2.MockTransport(handler)
    if is_async:
        http = httpx2.AsyncClient(transport=transport)
        return openai.AsyncOpenAI(base_url="http://crafted.test/v1", api_key="t", max_retries=0, http_client=http)
    return openai.OpenAI(
        base_url="http://crafted.test/v1", api_key="t", max_retries=0, http_client=httpx2.Client(transport=transport)
    )
