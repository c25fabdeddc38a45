"""The span record: the one shape every span takes before mapping.

Both an SDK ``ReadableSpan`` (in-process exporter) and a decoded OTLP span (the
bridge) become a :class:`SpanRecord`; the mapping sees nothing else. A record
holds what the mapping reads: ids, name, times, attributes, status (events,
resource and scope are left behind: copying them cost a third of the record).

Records are values: nothing changes one after it is built. They are not frozen
dataclasses because one is built per span on the export path, and a frozen
dataclass pays an ``object.__setattr__`` per field (about 5x the construction
cost); the same holds for the mapping's and the messages' value classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from opentelemetry.trace import StatusCode

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return _EMPTY


@dataclass(slots=True)
class SpanRecord:
    """An I/O-free view of one span (a value: see above).

    ``end_ns`` is ``None`` for a record taken when the span started (structural
    spans announce themselves then so that parents reach the API first).
    """

    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int | None
    attributes: Mapping[str, Any] = field(default_factory=_empty)
    status_error: bool = False
    status_message: str | None = None

    @property
    def ended(self) -> bool:
        return self.end_ns is not None


def span_attributes(span: Any) -> dict[str, Any]:
    """A copy of an SDK span's attributes, as a plain dict."""
    # The SDK's attributes are a BoundedAttributes behind a mappingproxy: copying through the
    # Mapping protocol runs Python code per key (and a lookup of a missing key raises and catches
    # a KeyError), copying its inner dict is one C call.
    inner = getattr(getattr(span, "_attributes", None), "_dict", None)
    if type(inner) is dict:
        return inner.copy()
    return dict(span.attributes or {})


def from_readable_span(span: Any, *, started: bool = False) -> SpanRecord:
    """Build a record from an OpenTelemetry SDK span (``ReadableSpan``).

    ``started`` takes the record at span start, before it has an end time.
    """
    ctx = span.context
    parent = span.parent
    status = span.status
    return SpanRecord(
        format(ctx.trace_id, "032x"),
        format(ctx.span_id, "016x"),
        format(parent.span_id, "016x") if parent is not None else None,
        span.name,
        span.start_time or 0,
        None if started else span.end_time,
        span_attributes(span),
        status is not None and status.status_code is StatusCode.ERROR,
        status.description if status is not None else None,
    )


__all__ = ["SpanRecord", "from_readable_span", "span_attributes"]
