"""Responses API: create (sync, async, streaming), input/output items, conversation chains."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import openai
import pytest
from convotel_openai import _responses
from convotel_openai._streams import SyncStreamProxy
from openai_replay import cassette_names, load_cassette, replay_server, request_kwargs
from openai_testing import all_text, decoded, instrumented, sse_client
from opentelemetry.trace import SpanKind, StatusCode

import convotel

RESPONSES = [n for n in cassette_names() if load_cassette(n).interactions[0].path == "/v1/responses"]
OK = [n for n in RESPONSES if load_cassette(n).interactions[0].status == 200]


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="test", max_retries=0)


def create(name: str, **overrides: Any) -> Any:
    """Call responses.create with the recorded arguments; a stream is consumed to a list of events."""
    with replay_server(name) as url:
        result = client(url).responses.create(**{**request_kwargs(name), **overrides})
        return list(result) if isinstance(result, openai.Stream) else result


def dump(result: Any) -> Any:
    return [e.model_dump() for e in result] if isinstance(result, list) else result.model_dump()


def final_response(result: Any) -> Any:
    if isinstance(result, list):
        return next(e.response for e in result if e.type == "response.completed")
    return result


@pytest.mark.parametrize("name", OK)
def test_every_responses_cassette(name, tracer_provider, exporter):
    baseline = dump(create(name))
    with instrumented(tracer_provider):
        result = create(name)
    assert dump(result) == baseline
    (span,) = exporter.get_finished_spans()
    attrs = decoded(span)
    response = final_response(result)
    assert span.kind is SpanKind.CLIENT
    assert span.name == f"chat {request_kwargs(name)['model']}"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.response.id"] == response.id
    assert attrs["gen_ai.response.model"] == response.model
    assert attrs["gen_ai.usage.input_tokens"] == response.usage.input_tokens
    assert attrs["gen_ai.usage.output_tokens"] == response.usage.output_tokens
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    (message,) = attrs["gen_ai.output.messages"]
    texts = [p["content"] for p in message["parts"] if p["type"] == "text"]
    assert "".join(texts) == response.output_text
    assert "convotel.partial" not in attrs
    instructions = request_kwargs(name).get("instructions")
    if instructions:
        assert attrs["gen_ai.system_instructions"] == [{"type": "text", "content": instructions}]


def test_basic_attributes(instrument, exporter):
    create("test_responses_create_with_all_params")
    attrs = decoded(exporter.get_finished_spans()[0])
    assert attrs["gen_ai.request.temperature"] == 0.7
    assert attrs["gen_ai.request.top_p"] == 0.9
    assert attrs["gen_ai.request.max_tokens"] == 50
    assert attrs["gen_ai.output.type"] == "text"
    assert attrs["openai.request.service_tier"] == "default"
    assert attrs["gen_ai.input.messages"] == [{"role": "user", "parts": [{"type": "text", "content": "Say this is a test"}]}]


def test_reasoning_tokens(instrument, exporter):
    create("test_responses_create_reports_reasoning_tokens")
    attrs = decoded(exporter.get_finished_spans()[0])
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 9
    assert attrs["gen_ai.request.max_tokens"] == 300
    assert attrs["gen_ai.input.messages"][0]["role"] == "user"
    assert "gen_ai.system_instructions" not in attrs


def test_api_error(instrument, exporter):
    with pytest.raises(openai.BadRequestError) as info:
        create("test_responses_create_api_error")
    (span,) = exporter.get_finished_spans()
    attrs = decoded(span)
    assert span.status.status_code is StatusCode.ERROR
    assert attrs["error.type"] == "BadRequestError"
    assert attrs["http.response.status_code"] == 400
    assert info.value.status_code == 400


def test_async_create_and_stream(instrument, exporter):
    async def run() -> None:
        with replay_server("test_responses_create_basic") as url:
            c = openai.AsyncOpenAI(base_url=url, api_key="t", max_retries=0)
            await c.responses.create(**request_kwargs("test_responses_create_basic"))
            await c.close()
        with replay_server("test_responses_create_streaming") as url:
            c = openai.AsyncOpenAI(base_url=url, api_key="t", max_retries=0)
            stream = await c.responses.create(**request_kwargs("test_responses_create_streaming"))
            assert isinstance(stream, openai.AsyncStream)
            events = [e async for e in stream]
            assert events[-1].type == "response.completed"
            await c.close()

    asyncio.run(run())
    plain, streamed = (decoded(s) for s in exporter.get_finished_spans())
    for attrs in (plain, streamed):
        assert attrs["gen_ai.output.messages"] == [
            {"role": "assistant", "parts": [{"type": "text", "content": "This is a test."}], "finish_reason": "stop"}
        ]


TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
    {"type": "web_search"},
]

HISTORY = [
    {"role": "developer", "content": "Prefer metric units."},
    {"role": "user", "content": [{"type": "input_text", "text": "Weather in Oslo?"}]},
    {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Need the weather tool."}]},
    {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
    {"type": "function_call_output", "call_id": "call_1", "output": "4 degrees, rain"},
    {"role": "assistant", "content": [{"type": "output_text", "text": "It is 4 degrees and raining."}]},
    {"role": "user", "content": "Thanks!"},
]


def test_input_items_tools_and_chains(instrument, exporter):
    name = "test_responses_create_basic"
    create(
        name, input=HISTORY, tools=TOOLS, previous_response_id="resp_prev", conversation={"id": "conv_abc"}, stream=False,
    )
    attrs = decoded(exporter.get_finished_spans()[0])
    assert attrs["gen_ai.system_instructions"] == [
        {"type": "text", "content": "You are a helpful assistant."},
        {"type": "text", "content": "Prefer metric units."},
    ]
    assert attrs["gen_ai.input.messages"] == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Oslo?"}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": "Need the weather tool."},
                {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}},
            ],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "4 degrees, rain"}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "It is 4 degrees and raining."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Thanks!"}]},
    ]
    assert attrs["gen_ai.tool.definitions"] == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"type": "web_search", "name": "web_search"},
    ]
    assert attrs["convotel.previous_response_id"] == "resp_prev"
    assert attrs["gen_ai.conversation.id"] == "conv_abc"
    assert attrs["gen_ai.response.id"].startswith("resp_")


def test_explicit_conversation_wins_over_openai_conversation(instrument, exporter):
    with convotel.conversation("mine"):
        create("test_responses_create_basic", conversation="conv_theirs")
    assert decoded(exporter.get_finished_spans()[0])["gen_ai.conversation.id"] == "mine"
    create("test_responses_create_basic", conversation="conv_theirs")
    assert decoded(exporter.get_finished_spans()[1])["gen_ai.conversation.id"] == "conv_theirs"


def test_capture_off(instrument, exporter, capture_off):
    create("test_responses_create_basic", input=HISTORY, tools=TOOLS)
    create("test_responses_create_streaming")
    secrets = ["Oslo", "metric", "degrees", "Need the weather", "Thanks", "helpful assistant", "This is a test", "Weather for"]
    spans = exporter.get_finished_spans()
    for span in spans:
        blob = all_text(span)
        for secret in secrets:
            assert secret not in blob
    first = decoded(spans[0])
    assert first["gen_ai.input.messages"][1]["parts"] == [
        {"type": "reasoning"},
        {"type": "tool_call", "id": "call_1", "name": "get_weather"},
    ]
    assert first["gen_ai.input.messages"][2] == {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1"}]}
    assert first["gen_ai.system_instructions"] == [{"type": "text"}, {"type": "text"}]
    assert first["gen_ai.tool.definitions"] == [{"type": "function", "name": "get_weather"}, {"type": "web_search", "name": "web_search"}]
    assert decoded(spans[1])["gen_ai.output.messages"][0]["parts"] == [{"type": "text"}]


# --------------------------------------------------------------------------- streaming edges


def test_stream_break_close_is_partial_with_delta_text(instrument, exporter):
    name = "test_responses_create_streaming_iteration"
    with replay_server(name) as url:
        stream = client(url).responses.create(**request_kwargs(name))
        assert isinstance(stream, SyncStreamProxy)
        seen = ""
        for event in stream:
            if event.type == "response.output_text.delta":
                seen += event.delta
                break
        stream.close()
    attrs = decoded(exporter.get_finished_spans()[0])
    assert attrs["convotel.partial"] is True
    assert attrs["gen_ai.output.messages"] == [
        {"role": "assistant", "parts": [{"type": "text", "content": seen}], "finish_reason": "error"}
    ]
    assert attrs["gen_ai.response.id"].startswith("resp_")


def test_stream_abandoned_and_consumer_exception(instrument, exporter):
    name = "test_responses_create_streaming_user_exception"
    with replay_server(name) as url:
        stream = client(url).responses.create(**request_kwargs(name))
        next(stream)
        del stream
        gc.collect()
        with pytest.raises(RuntimeError):
            with client(url).responses.create(**request_kwargs(name)) as stream:
                for _ in stream:
                    raise RuntimeError("consumer")
    abandoned, failed = (decoded(s) for s in exporter.get_finished_spans())
    assert abandoned["convotel.partial"] is True
    assert failed["convotel.partial"] is True and failed["error.type"] == "RuntimeError"


def _event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "sequence_number": 0, **fields}


def _response(status: str, output: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": "resp_x", "object": "response", "created_at": 1, "status": status, "model": "gpt-x",
        "output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], **extra,
    }


REASONING_ITEM = {"id": "rs_1", "type": "reasoning", "summary": []}
CALL_ITEM = {"id": "fc_1", "type": "function_call", "call_id": "call_9", "name": "lookup", "arguments": "", "status": "in_progress"}


def _tool_stream(complete: bool) -> list[dict[str, Any]]:
    done_call = {**CALL_ITEM, "arguments": '{"q": "x"}', "status": "completed"}
    done_reasoning = {**REASONING_ITEM, "summary": [{"type": "summary_text", "text": "Look it up."}]}
    events = [
        _event("response.created", response=_response("in_progress", [])),
        _event("response.output_item.added", output_index=0, item=REASONING_ITEM),
        _event("response.reasoning_summary_text.delta", output_index=0, item_id="rs_1", summary_index=0, delta="Look "),
        _event("response.reasoning_summary_text.delta", output_index=0, item_id="rs_1", summary_index=0, delta="it up."),
        _event("response.output_item.done", output_index=0, item=done_reasoning),
        _event("response.output_item.added", output_index=1, item=CALL_ITEM),
        _event("response.function_call_arguments.delta", output_index=1, item_id="fc_1", delta='{"q": '),
    ]
    if complete:
        events += [
            _event("response.function_call_arguments.delta", output_index=1, item_id="fc_1", delta='"x"}'),
            _event("response.output_item.done", output_index=1, item=done_call),
            _event(
                "response.completed",
                response=_response(
                    "completed", [done_reasoning, done_call],
                    usage={"input_tokens": 5, "output_tokens": 7, "total_tokens": 12,
                           "input_tokens_details": {"cached_tokens": 1}, "output_tokens_details": {"reasoning_tokens": 3}},
                ),
            ),
        ]
    return events


@pytest.mark.parametrize("complete", [True, False])
def test_streamed_function_call_and_reasoning(instrument, exporter, complete):
    c = sse_client(_tool_stream(complete), done=False)
    events = list(c.responses.create(model="gpt-x", input="look up x", stream=True))
    assert len(events) == len(_tool_stream(complete))
    attrs = decoded(exporter.get_finished_spans()[0])
    if complete:
        assert attrs["gen_ai.output.messages"] == [
            {
                "role": "assistant",
                "parts": [
                    {"type": "reasoning", "content": "Look it up."},
                    {"type": "tool_call", "id": "call_9", "name": "lookup", "arguments": {"q": "x"}},
                ],
                "finish_reason": "tool_calls",
            }
        ]
        assert attrs["gen_ai.usage.reasoning.output_tokens"] == 3
        assert attrs["gen_ai.usage.cache_read.input_tokens"] == 1
        assert "convotel.partial" not in attrs
    else:
        assert attrs["convotel.partial"] is True
        assert attrs["gen_ai.output.messages"] == [
            {
                "role": "assistant",
                "parts": [
                    {"type": "reasoning", "content": "Look it up."},
                    {"type": "tool_call", "id": "call_9", "name": "lookup", "arguments": '{"q": '},
                ],
                "finish_reason": "error",
            }
        ]


def test_incomplete_and_failed_responses(instrument, exporter):
    incomplete = _response(
        "incomplete",
        [{"id": "m1", "type": "message", "role": "assistant", "status": "incomplete",
          "content": [{"type": "output_text", "text": "Once upon", "annotations": []}]}],
        incomplete_details={"reason": "max_output_tokens"},
    )
    failed = _response("failed", [], error={"code": "server_error", "message": "boom"})
    list(sse_client([_event("response.incomplete", response=incomplete)], done=False).responses.create(
        model="gpt-x", input="story", stream=True))
    list(sse_client([_event("response.failed", response=failed)], done=False).responses.create(
        model="gpt-x", input="story", stream=True))
    first, second = exporter.get_finished_spans()
    assert decoded(first)["gen_ai.response.finish_reasons"] == ("length",)
    assert decoded(first)["gen_ai.output.messages"][0]["parts"] == [{"type": "text", "content": "Once upon"}]
    assert second.status.status_code is StatusCode.ERROR
    assert decoded(second)["error.type"] == "server_error"


def test_output_item_conversion_units():
    parts = _responses.assistant_item_parts(
        {"type": "custom_tool_call", "call_id": "c", "name": "sql", "input": "select 1"}, True
    )
    assert parts == [{"type": "tool_call", "id": "c", "name": "sql", "arguments": "select 1"}]
    assert _responses.assistant_item_parts({"type": "web_search_call", "id": "ws"}, True) == [{"type": "web_search_call"}]
    system, messages = _responses.input_messages("hi", False)
    assert system is None and messages == [{"role": "user", "parts": [{"type": "text"}]}]


def test_a_previous_response_chain_is_one_conversation(instrument, exporter):
    first = create("test_responses_create_basic")
    create("test_responses_create_basic", previous_response_id=first.id)
    spans = [decoded(s) for s in exporter.get_finished_spans()]
    assert [s["gen_ai.conversation.id"] for s in spans] == [first.id, first.id]
    assert spans[1]["convotel.previous_response_id"] == first.id
