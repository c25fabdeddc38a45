"""Message/part conversion and response extraction on shapes the cassettes do not cover."""

from __future__ import annotations

import json

import openai
from convotel_openai import _call, _chat, _messages
from openai.types.chat import ChatCompletion
from opentelemetry.sdk.trace import TracerProvider


def test_leading_system_and_developer_become_instructions_later_system_stays():
    system, messages = _messages.input_messages(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric."}]},
            {"role": "user", "content": "hi", "name": "ann"},
            {"role": "developer", "content": "Now be verbose."},
            {"role": "system", "content": "Really."},
        ],
        True,
    )
    assert system == [{"type": "text", "content": "Be brief."}, {"type": "text", "content": "Use metric."}]
    assert messages == [
        {"role": "user", "parts": [{"type": "text", "content": "hi"}], "name": "ann"},
        {"role": "system", "parts": [{"type": "text", "content": "Now be verbose."}]},
        {"role": "system", "parts": [{"type": "text", "content": "Really."}]},
    ]
    system, _ = _messages.input_messages([{"role": "system", "content": "Be brief."}], False)
    assert system == [{"type": "text"}]


def test_content_parts_images_audio_files():
    parts = _messages.content_parts(
        [
            {"type": "text", "text": "look"},
            {"type": "text", "text": "closer"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
            {"type": "file", "file": {"file_id": "file-1"}},
        ],
        True,
    )
    assert parts == [
        {"type": "text", "content": "look\ncloser"},
        {"type": "uri", "modality": "image", "uri": "https://example.com/cat.png"},
        {"type": "blob", "modality": "image", "mime_type": "image/png"},
        {"type": "blob", "modality": "audio", "mime_type": "audio/wav"},
        {"type": "file", "file_id": "file-1"},
    ]
    off = _messages.content_parts([{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}], False)
    assert off == [{"type": "uri", "modality": "image"}]


def test_assistant_history_with_reasoning_invalid_arguments_and_tool_list_content():
    _, messages = _messages.input_messages(
        [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": "Calling.",
                "reasoning_content": "I should call f.",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{not json"}},
                    {"id": "c2", "type": "function", "function": {"name": "g", "arguments": '{"a": 1}'}},
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "o"}, {"type": "text", "text": "k"}]},
        ],
        True,
    )
    assert messages[1] == {
        "role": "assistant",
        "parts": [
            {"type": "reasoning", "content": "I should call f."},
            {"type": "text", "content": "Calling."},
            {"type": "tool_call", "id": "c1", "name": "f", "arguments": "{not json"},
            {"type": "tool_call", "id": "c2", "name": "g", "arguments": {"a": 1}},
        ],
    }
    assert messages[2] == {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "o\nk"}]}


def test_text_part_lists_join_like_a_string():
    as_list = _messages.content_parts([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], True)
    assert as_list == _messages.content_parts("a\nb", True) == [{"type": "text", "content": "a\nb"}]
    assert _messages.content_parts([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], False) == [{"type": "text"}]


def test_generator_messages_are_never_consumed():
    def gen():
        yield {"role": "user", "content": "hi"}

    g = gen()
    assert _messages.input_messages(g, True) == (None, [])
    assert next(g) == {"role": "user", "content": "hi"}


def _span_attrs(apply) -> dict:
    provider = TracerProvider()
    span = provider.get_tracer("t").start_span("s")
    apply(span)
    span.end()
    out = dict(span.attributes)
    if "gen_ai.output.messages" in out:
        out["gen_ai.output.messages"] = json.loads(out["gen_ai.output.messages"])
    return out


def test_response_reasoning_content_refusal_and_cache_tokens():
    completion = ChatCompletion.model_validate(
        {
            "id": "r1",
            "object": "chat.completion",
            "created": 1,
            "model": "deepseek-reasoner",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "42", "reasoning_content": "6*7"},
                },
                {
                    "index": 1,
                    "finish_reason": "content_filter",
                    "message": {"role": "assistant", "content": None, "refusal": "I can't."},
                },
            ],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 20,
                "total_tokens": 30,
                "prompt_tokens_details": {"cached_tokens": 4},
                "completion_tokens_details": {"reasoning_tokens": 15},
            },
        }
    )
    attrs = _span_attrs(lambda span: _chat.apply_response(span, completion, True))
    assert attrs["gen_ai.output.messages"] == [
        {
            "role": "assistant",
            "parts": [{"type": "reasoning", "content": "6*7"}, {"type": "text", "content": "42"}],
            "finish_reason": "stop",
        },
        {"role": "assistant", "parts": [{"type": "text", "content": "I can't."}], "finish_reason": "content_filter"},
    ]
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 15
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 4
    assert attrs["gen_ai.response.finish_reasons"] == ("stop", "content_filter")
    off = _span_attrs(lambda span: _chat.apply_response(span, completion, False))
    assert off["gen_ai.output.messages"][0]["parts"] == [{"type": "reasoning"}, {"type": "text"}]


def test_odd_response_shape_does_not_raise():
    attrs = _span_attrs(lambda span: _chat.apply_response(span, {"choices": None, "usage": "weird"}, True))
    assert attrs == {}


def test_provider_and_server_attributes():
    azure = openai.AzureOpenAI(api_key="k", azure_endpoint="https://acme.openai.azure.com", api_version="2024-10-21")
    assert _call.client_attributes(azure.chat.completions) == {
        "gen_ai.provider.name": "azure.ai.openai",
        "server.address": "acme.openai.azure.com",
        "server.port": 443,
    }
    plain = openai.OpenAI(api_key="k")
    assert _call.client_attributes(plain.chat.completions) == {
        "gen_ai.provider.name": "openai",
        "server.address": "api.openai.com",
        "server.port": 443,
    }
    custom = openai.OpenAI(api_key="k", base_url="http://localhost:8000/v1")
    assert _call.client_attributes(custom.chat.completions) == {
        "gen_ai.provider.name": "openai",
        "server.address": "localhost",
        "server.port": 8000,
    }


def test_tool_definitions_custom_and_legacy_functions():
    tools = _messages.tool_definitions(
        [{"type": "custom", "custom": {"name": "grammar", "description": "d"}}],
        [{"name": "legacy", "parameters": {"type": "object"}}],
        True,
    )
    assert tools == [
        {"type": "custom", "name": "grammar", "description": "d"},
        {"type": "function", "name": "legacy", "parameters": {"type": "object"}},
    ]
