"""Span helpers shared by the callback handler and the store tracer."""

from __future__ import annotations

from opentelemetry.trace import Span, Status, StatusCode

from convotel import semconv


def hex_span_id(span: Span) -> str:
    return format(span.get_span_context().span_id, "016x")


def record_failure(span: Span, error: BaseException) -> None:
    """Error type, HTTP status (when the error has one), the exception event and an error status."""
    if not span.is_recording():
        return
    span.set_attribute(semconv.ERROR_TYPE, type(error).__qualname__)
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        span.set_attribute(semconv.HTTP_RESPONSE_STATUS_CODE, status)
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, str(error) or type(error).__qualname__))
