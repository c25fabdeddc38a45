"""OpenTelemetry SDK hooks: a span processor (what ``init()`` installs) and a span exporter.

The processor is the fast path: ``on_end`` appends the span to the pipeline's
queue and returns, so no app thread waits on mapping or the network, and no
BatchSpanProcessor worker can starve and drop spans under load. The exporter
serves setups that choose their own processor (``OTEL_TRACES_EXPORTER=convotel``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from convotel import semconv
from convotel.mapping.runs import OPENING_TYPES
from convotel.pipeline import Pipeline
from convotel.records import from_readable_span, span_attributes


def is_conversation_span(attributes: Mapping[str, Any]) -> bool:
    """Cheap pre-filter: only GenAI and convotel spans can become messages, and not a model call
    that a framework span already maps (the mapping skips those too)."""
    return (bool(attributes) and (semconv.OPERATION_NAME in attributes or semconv.MESSAGE_TYPE in attributes)
            and semconv.COVERED_BY not in attributes)


class ConvotelSpanProcessor(SpanProcessor):
    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        # Runs that parent others (task, workflow, chain) are announced now, so the
        # API receives a parent before its children.
        if span_attributes(span).get(semconv.MESSAGE_TYPE) in OPENING_TYPES:
            self._pipeline.put(from_readable_span(span, started=True))

    def on_end(self, span: ReadableSpan) -> None:
        if is_conversation_span(span_attributes(span)):
            self._pipeline.put(span)

    def shutdown(self) -> None:
        self._pipeline.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._pipeline.flush(timeout_millis / 1000)


class ConvotelSpanExporter(SpanExporter):
    """``SpanExporter`` front door: hands spans to convotel's pipeline; never touches the network.

    Built with no arguments (as ``OTEL_TRACES_EXPORTER=convotel`` does), it uses
    the process-wide pipeline configured from the environment.
    """

    def __init__(self, pipeline: Pipeline | None = None) -> None:
        if pipeline is None:
            from convotel._runtime import ensure_pipeline

            pipeline = ensure_pipeline()
        self._pipeline = pipeline

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            if is_conversation_span(span_attributes(span)):
                self._pipeline.put(span)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._pipeline.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._pipeline.flush(timeout_millis / 1000)
