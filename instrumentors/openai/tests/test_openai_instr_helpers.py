"""SDK helpers: chat.completions.parse, .stream() managers, with_streaming_response, responses.stream()."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest
from convotel_openai import _patching
from openai_replay import replay_server, request_kwargs
from openai_testing import decoded, instrumented, json_client
from pydantic import BaseModel


class Answer(BaseModel):
    city: str
    degrees: int


COMPLETION = {
    "id": "chatcmpl-parse",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": json.dumps({"city": "Oslo", "degrees": 4})},
        }
    ],
    "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29},
}
MESSAGES = [{"role": "system", "content": "Extract."}, {"role": "user", "content": "Oslo is at 4 degrees."}]


def _check_parse_span(exporter: Any) -> None:
    attrs = decoded(exporter.get_finished_spans()[-1])
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.output.type"] == "json"
    assert attrs["gen_ai.system_instructions"] == [{"type": "text", "content": "Extract."}]
    assert attrs["gen_ai.output.messages"] == [
        {"role": "assistant", "parts": [{"type": "text", "content": COMPLETION["choices"][0]["message"]["content"]}], "finish_reason": "stop"}
    ]


def test_parse_sync_async_and_raw(instrument, exporter):
    parsed = json_client(COMPLETION).chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=Answer)
    assert parsed.choices[0].message.parsed == Answer(city="Oslo", degrees=4)
    _check_parse_span(exporter)

    async def run() -> Any:
        return await json_client(COMPLETION, is_async=True).chat.completions.parse(
            model="gpt-4o", messages=MESSAGES, response_format=Answer
        )

    assert asyncio.run(run()).choices[0].message.parsed.city == "Oslo"
    _check_parse_span(exporter)

    raw = json_client(COMPLETION).chat.completions.with_raw_response.parse(
        model="gpt-4o", messages=MESSAGES, response_format=Answer
    )
    assert type(raw).__name__ == "LegacyAPIResponse"
    assert raw.parse().choices[0].message.parsed == Answer(city="Oslo", degrees=4)
    _check_parse_span(exporter)
    assert len(exporter.get_finished_spans()) == 3


def test_chat_stream_helper(instrument, exporter):
    name = "test_chat_completion_streaming"
    kwargs = {k: v for k, v in request_kwargs(name).items() if k != "stream"}
    with replay_server(name) as url:
        c = openai.OpenAI(base_url=url, api_key="t", max_retries=0)
        with c.chat.completions.stream(**kwargs) as stream:
            for _ in stream:
                pass
        final = stream.get_final_completion()
        assert len(exporter.get_finished_spans()) == 1  # create() inside the helper: one span
        with c.chat.completions.stream(**kwargs) as early:
            for _ in early:
                break
        # ended by the helper's close(), not left for the garbage collector
        assert len(exporter.get_finished_spans()) == 2
        assert early is not None
    full, cut = (decoded(s) for s in exporter.get_finished_spans())
    assert full["gen_ai.output.messages"][0]["parts"] == [{"type": "text", "content": final.choices[0].message.content}]
    assert "convotel.partial" not in full
    assert cut["convotel.partial"] is True


def test_async_chat_stream_helper(instrument, exporter):
    name = "test_async_chat_completion_streaming"
    kwargs = {k: v for k, v in request_kwargs(name).items() if k != "stream"}

    async def run() -> None:
        with replay_server(name) as url:
            c = openai.AsyncOpenAI(base_url=url, api_key="t", max_retries=0)
            async with c.chat.completions.stream(**kwargs) as stream:
                async for _ in stream:
                    pass
            async with c.chat.completions.stream(**kwargs) as early:
                async for _ in early:
                    break
            assert len(exporter.get_finished_spans()) == 2
            await c.close()

    asyncio.run(run())
    full, cut = (decoded(s) for s in exporter.get_finished_spans())
    assert "convotel.partial" not in full and cut["convotel.partial"] is True


@pytest.mark.parametrize("method", ["parse", "read", "text", "json", "nothing"])
def test_with_streaming_response_non_stream(instrument, exporter, method):
    name = "test_chat_completion_with_content"
    with replay_server(name) as url:
        c = openai.OpenAI(base_url=url, api_key="t", max_retries=0)
        with c.chat.completions.with_streaming_response.create(**request_kwargs(name)) as response:
            assert isinstance(response, openai.APIResponse)
            if method != "nothing":
                value = getattr(response, method)()
                assert value
            if method == "parse":
                assert value.choices[0].message.content == "This is a test."
                assert response.parse() is value
    (span,) = exporter.get_finished_spans()
    attrs = decoded(span)
    if method == "nothing":
        assert "gen_ai.output.messages" not in attrs
    else:
        assert attrs["gen_ai.output.messages"][0]["parts"] == [{"type": "text", "content": "This is a test."}]
        assert attrs["gen_ai.usage.output_tokens"] == 5


def test_with_streaming_response_stream(instrument, exporter):
    name = "test_chat_completion_streaming"
    with replay_server(name) as url:
        c = openai.OpenAI(base_url=url, api_key="t", max_retries=0)
        with c.chat.completions.with_streaming_response.create(**request_kwargs(name)) as response:
            stream = response.parse()
            assert isinstance(stream, openai.Stream)
            assert response.parse() is stream
            chunks = list(stream)
        assert chunks
        with c.chat.completions.with_streaming_response.create(**request_kwargs(name)) as response:
            lines = list(response.iter_lines())
        assert any(line.startswith("data:") for line in lines)
    full, lines_only = (decoded(s) for s in exporter.get_finished_spans())
    assert full["gen_ai.output.messages"][0]["parts"] == [{"type": "text", "content": '"This is a test."'}]
    assert lines_only["convotel.partial"] is True  # raw SSE lines are not decoded


def test_async_with_streaming_response(instrument, exporter):
    async def run() -> None:
        name = "test_async_chat_completion_with_content"
        with replay_server(name) as url:
            c = openai.AsyncOpenAI(base_url=url, api_key="t", max_retries=0)
            async with c.chat.completions.with_streaming_response.create(**request_kwargs(name)) as response:
                assert isinstance(response, openai.AsyncAPIResponse)
                completion = await response.parse()
                assert completion.choices[0].message.content
            await c.close()
        name = "test_async_chat_completion_streaming"
        with replay_server(name) as url:
            c = openai.AsyncOpenAI(base_url=url, api_key="t", max_retries=0)
            async with c.chat.completions.with_streaming_response.create(**request_kwargs(name)) as response:
                chunks = [x async for x in await response.parse()]
                assert chunks
            await c.close()

    asyncio.run(run())
    plain, streamed = (decoded(s) for s in exporter.get_finished_spans())
    assert plain["gen_ai.output.messages"][0]["finish_reason"] == "stop"
    assert streamed["gen_ai.output.messages"][0]["parts"][0]["content"] == "This is a test."
    assert "convotel.partial" not in streamed


def test_responses_stream_helper(instrument, exporter):
    name = "test_responses_create_streaming"
    kwargs = {k: v for k, v in request_kwargs(name).items() if k != "stream"}
    with replay_server(name) as url:
        c = openai.OpenAI(base_url=url, api_key="t", max_retries=0)
        with c.responses.stream(**kwargs) as stream:
            for _ in stream:
                pass
        assert stream.get_final_response().output_text == "This is a test."
        with c.responses.stream(**kwargs) as early:
            for _ in early:
                break
        assert len(exporter.get_finished_spans()) == 2
        assert early is not None
    full, cut = (decoded(s) for s in exporter.get_finished_spans())
    assert full["gen_ai.output.messages"][0]["parts"] == [{"type": "text", "content": "This is a test."}]
    assert cut["convotel.partial"] is True


def test_responses_raw_stream_like_langchain(instrument, exporter):
    """langchain-openai: ``with_raw_response.responses.create(stream=True).parse()`` used as a context manager."""
    name = "test_responses_create_streaming"
    with replay_server(name) as url:
        c = openai.OpenAI(base_url=url, api_key="t", max_retries=0)
        raw = c.with_raw_response.responses.create(**request_kwargs(name))
        with raw.parse() as stream:
            events = list(stream)
    assert events[-1].type == "response.completed"
    attrs = decoded(exporter.get_finished_spans()[0])
    assert attrs["gen_ai.output.messages"][0]["parts"] == [{"type": "text", "content": "This is a test."}]


def test_every_patch_is_restored(tracer_provider):
    with instrumented(tracer_provider):
        patches = _patching.active()
        assert len(patches) >= 12
        for patch in patches:
            assert patch.owner.__dict__[patch.name].__wrapped__ is patch.original
    for patch in patches:
        assert patch.owner.__dict__[patch.name] is patch.original
