"""Embeddings: texts (never vectors), dimensions, usage, errors."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import openai
import pytest
from openai_replay import cassette_names, load_cassette, replay_server, request_kwargs
from openai_testing import all_text, decoded, instrumented
from opentelemetry.trace import StatusCode

EMBEDDINGS = [n for n in cassette_names() if load_cassette(n).interactions[0].path == "/v1/embeddings"]
OK = [n for n in EMBEDDINGS if load_cassette(n).interactions[0].status == 200]


def embed(name: str, **overrides: Any) -> Any:
    kwargs = {**request_kwargs(name), **overrides}
    with replay_server(name) as url:
        if name.startswith("test_async"):

            async def run() -> Any:
                c = openai.AsyncOpenAI(base_url=url, api_key="t", max_retries=0)
                try:
                    return await c.embeddings.create(**kwargs)
                finally:
                    await c.close()

            return asyncio.run(run())
        return openai.OpenAI(base_url=url, api_key="t", max_retries=0).embeddings.create(**kwargs)


@pytest.mark.parametrize("name", OK)
def test_every_embeddings_cassette(name, tracer_provider, exporter):
    baseline = embed(name).model_dump(warnings=False)
    with instrumented(tracer_provider):
        result = embed(name)
    assert result.model_dump(warnings=False) == baseline
    (span,) = exporter.get_finished_spans()
    attrs = decoded(span)
    kwargs = request_kwargs(name)
    texts = [kwargs["input"]] if isinstance(kwargs["input"], str) else kwargs["input"]
    assert span.name == f"embeddings {kwargs['model']}"
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["gen_ai.request.model"] == kwargs["model"]
    assert attrs["gen_ai.response.model"] == result.model
    assert attrs["convotel.input"] == {"texts": texts}
    assert attrs["convotel.embeddings.count"] == len(result.data) == len(texts)
    vector = result.data[0].embedding
    if isinstance(vector, str):  # encoding_format="base64" hands the app the base64 float32 bytes
        assert vector[:16] not in all_text(span)
        vector = base64.b64decode(vector)[::4]
    assert attrs["gen_ai.embeddings.dimension.count"] == len(vector)
    assert attrs["gen_ai.usage.input_tokens"] == result.usage.prompt_tokens
    blob = all_text(span)
    for value in list(result.data[0].embedding)[:5]:
        assert repr(value)[:8] not in blob  # never vectors
    assert len(blob) < 2000


def test_dimensions_and_encoding_format(instrument, exporter):
    embed("test_embeddings_with_dimensions")
    embed("test_embeddings_with_encoding_format")
    dims, fmt = (decoded(s) for s in exporter.get_finished_spans())
    assert dims["gen_ai.embeddings.dimension.count"] == 512
    assert fmt["gen_ai.request.encoding_formats"] == ("base64",)


def test_not_given_values(instrument, exporter):
    embed("test_embeddings_with_not_given_values", dimensions=openai.NOT_GIVEN, user=openai.omit)
    attrs = decoded(exporter.get_finished_spans()[0])
    assert attrs["gen_ai.request.encoding_formats"] == ("base64",)
    assert attrs["gen_ai.embeddings.dimension.count"] == 1536


def test_capture_off(instrument, exporter, capture_off):
    embed("test_embeddings_with_batch_input")
    (span,) = exporter.get_finished_spans()
    assert "convotel.input" not in span.attributes
    assert "test string" not in all_text(span)
    assert span.attributes["convotel.embeddings.count"] == 3


def test_token_inputs_are_not_recorded(instrument, exporter):
    embed("test_embeddings_with_content", input=[[1, 2, 3]])
    assert "convotel.input" not in exporter.get_finished_spans()[0].attributes


@pytest.mark.parametrize("name", [n for n in EMBEDDINGS if n not in OK])
def test_errors(instrument, exporter, name):
    with pytest.raises(openai.NotFoundError):
        embed(name)
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "NotFoundError"
    assert span.attributes["http.response.status_code"] == 404
    assert json.loads(span.attributes["convotel.input"])["texts"] == [request_kwargs(name)["input"]]
