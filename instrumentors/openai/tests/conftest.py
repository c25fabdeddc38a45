"""Fixtures: an SDK tracer provider with an in-memory exporter, the instrumentor, content capture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from convotel_openai import OpenAIInstrumentor
from openai_testing import instrumented  # also puts <repo>/tests on sys.path for the shared replay helper
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from convotel.instrumentation import set_capture_content


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture(autouse=True)
def _clean_state() -> Iterator[None]:
    """Content capture on, and the SDK not instrumented by anything another test left behind."""
    instrumentor = OpenAIInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    set_capture_content(True)
    yield
    set_capture_content(None)


@pytest.fixture
def capture_off() -> Iterator[None]:
    set_capture_content(False)
    yield
    set_capture_content(True)


@pytest.fixture
def instrument(tracer_provider: TracerProvider) -> Iterator[OpenAIInstrumentor]:
    with instrumented(tracer_provider) as instrumentor:
        yield instrumentor
