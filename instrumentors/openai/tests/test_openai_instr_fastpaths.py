"""The hot paths' shortcuts read the same facts as the general code: field views, cached client
facts, the stream proxy's generator."""

from __future__ import annotations

from collections import UserDict
from types import SimpleNamespace
from typing import Any

import openai
import pytest
from convotel_openai import _call
from convotel_openai._utils import get, view
from openai.types.chat import ChatCompletionChunk
from openai_testing import chunk, decoded, sse_client

NAMES = ("id", "content", "reasoning_content", "reasoning", "role", "tool_calls", "missing", "model_fields")


def _objects() -> list[Any]:
    delta = {"content": "hi", "reasoning_content": "because", "role": "assistant"}
    event = chunk("hi", reasoning="because")
    constructed = ChatCompletionChunk.construct(**event)
    validated = ChatCompletionChunk.model_validate(event)
    return [
        delta,
        UserDict(delta),
        SimpleNamespace(**delta),
        constructed.choices[0].delta,  # reasoning_content is an extra field
        validated.choices[0].delta,
        validated,
        openai.types.chat.chat_completion_chunk.ChoiceDelta.construct(content="x"),  # no extras at all
        None,
        "a string",
        42,
    ]


@pytest.mark.parametrize("obj", _objects(), ids=lambda o: type(o).__name__)
def test_view_reads_what_get_reads(obj: Any) -> None:
    fields = view(obj)
    for name in NAMES:
        if name == "model_fields" and hasattr(type(obj), "model_fields"):
            continue  # a class attribute, not a field: never read through a view
        assert fields.get(name) == get(obj, name), name


def test_view_of_a_model_with_extras_is_a_copy() -> None:
    delta = ChatCompletionChunk.model_validate(chunk("hi", reasoning="r")).choices[0].delta
    fields = view(delta)
    assert fields.get("reasoning_content") == "r"
    assert fields is not delta.__dict__  # merged: the model's own storage is never handed out


def test_client_attributes_follow_a_changed_base_url() -> None:
    client = openai.OpenAI(api_key="k", base_url="http://first.test:8001/v1")
    assert _call.client_attributes(client.chat.completions) == {
        "gen_ai.provider.name": "openai",
        "server.address": "first.test",
        "server.port": 8001,
    }
    client.base_url = "https://second.test/v1"
    assert _call.client_attributes(client.chat.completions) == {
        "gen_ai.provider.name": "openai",
        "server.address": "second.test",
        "server.port": 443,
    }
    other = openai.OpenAI(api_key="k", base_url="http://third.test/v1")
    assert _call.client_attributes(other.chat.completions)["server.address"] == "third.test"
    assert _call.client_attributes(client.chat.completions)["server.address"] == "second.test"


def test_client_attributes_are_a_fresh_dict() -> None:
    client = openai.OpenAI(api_key="k", base_url="http://fresh.test/v1")
    first = _call.client_attributes(client.chat.completions)
    first["server.address"] = "changed by the caller"
    assert _call.client_attributes(client.chat.completions)["server.address"] == "fresh.test"


EVENTS = [chunk("Hel"), chunk("lo, "), chunk("wor"), chunk("ld", finish="stop")]


def test_next_and_for_can_be_mixed(instrument: Any, exporter: Any) -> None:
    stream = sse_client(EVENTS).chat.completions.create(model="m", messages=[], stream=True)
    first, second = next(stream), next(stream)
    rest = list(stream)
    texts = [c.choices[0].delta.content for c in [first, second, *rest]]
    assert texts == ["Hel", "lo, ", "wor", "ld"]
    (span,) = exporter.get_finished_spans()
    attrs = decoded(span)
    assert attrs["gen_ai.output.messages"][0]["parts"] == [{"type": "text", "content": "Hello, world"}]
    assert "convotel.partial" not in attrs
    assert list(stream) == []  # exhausted; the span is not ended twice
    assert len(exporter.get_finished_spans()) == 1


def test_iterating_twice_sees_one_stream(instrument: Any, exporter: Any) -> None:
    stream = sse_client(EVENTS).chat.completions.create(model="m", messages=[], stream=True)
    for c in stream:
        if c.choices[0].delta.content == "lo, ":
            break
    assert [c.choices[0].delta.content for c in stream] == ["wor", "ld"]
    attrs = decoded(exporter.get_finished_spans()[0])
    assert attrs["gen_ai.output.messages"][0]["parts"][0]["content"] == "Hello, world"
