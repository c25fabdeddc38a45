"""Span helpers shared by the callback handler and the store tracer."""

from __future__ import annotations

from opentelemetry.trace import Span

from convotel.instrumentation import record_failure

__all__ = ["hex_span_id", "record_failure"]  # record_failure: the one every instrumentor shares


def hex_span_id(span: Span) -> str:
    return format(span.get_span_context().span_id, "016x")
