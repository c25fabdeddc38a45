"""Span helpers shared by the callback handler and the memory tracer."""

from __future__ import annotations

from opentelemetry.trace import Span


def hex_span_id(span: Span) -> str:
    return format(span.get_span_context().span_id, "016x")
