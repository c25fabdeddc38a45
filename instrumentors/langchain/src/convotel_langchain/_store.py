"""LangGraph long-term memory: ``BaseStore`` reads and writes fire no callbacks, so wrap them.

``get``/``search`` (and their async twins) become ``memory_read`` spans,
``put``/``delete`` ``memory_write`` spans. They take their conversation and their
parent run from the context the LangChain handler sets while a graph node runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span

from convotel import semconv
from convotel.instrumentation import capture_content, context_attributes, json_attr

from ._spans import record_failure

#: (method, message type, positional parameter names after ``self``)
_METHODS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("get", "memory_read", ("namespace", "key")),
    ("search", "memory_read", ("namespace_prefix",)),
    ("put", "memory_write", ("namespace", "key", "value", "index")),
    ("delete", "memory_write", ("namespace", "key")),
)
_INPUT_KEYS = ("namespace", "namespace_prefix", "key", "query", "filter", "limit", "offset", "value")


def _inputs(names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any], capture: bool) -> dict[str, Any]:
    bound = dict(zip(names, args, strict=False))
    bound.update(kwargs)
    out: dict[str, Any] = {}
    for key in _INPUT_KEYS:
        value = bound.get(key)
        if value is None or (key == "value" and not capture) or (key == "query" and not capture):
            continue
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def _item(item: Any, capture: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"namespace": list(getattr(item, "namespace", ()) or ()), "key": getattr(item, "key", None)}
    if capture:
        out["value"] = getattr(item, "value", None)
    score = getattr(item, "score", None)
    if score is not None:
        out["score"] = score
    return out


def _outputs(method: str, result: Any, capture: bool) -> dict[str, Any] | None:
    if method == "get":
        return {"found": False} if result is None else {"found": True, "item": _item(result, capture)}
    if method == "search":
        return {"items": [_item(i, capture) for i in result or ()]}
    return None


class _Access:
    """One store call's span: ``done(result)`` records what it returned; leaving the ``with`` on an
    exception records the failure. Never raises into the store call."""

    __slots__ = ("span", "method", "capture")

    def __init__(self, span: Span | None, method: str, capture: bool) -> None:
        self.span = span
        self.method = method
        self.capture = capture

    def __enter__(self) -> _Access:
        return self

    def done(self, result: Any) -> Any:
        span, self.span = self.span, None
        if span is not None:
            try:
                if span.is_recording():
                    outputs = _outputs(self.method, result, self.capture)
                    if outputs is not None:
                        span.set_attribute(semconv.OUTPUT_VALUE, json_attr(outputs))
                span.end()
            except Exception:
                pass
        return result

    def __exit__(self, exc_type: Any, error: BaseException | None, tb: Any) -> None:
        span = self.span
        if span is not None and error is not None:
            self.span = None
            try:
                record_failure(span, error)
                span.end()
            except Exception:
                pass


class StoreTracer:
    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def access(self, method: str, message_type: str, names: tuple[str, ...], args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> _Access:
        try:
            capture = capture_content()
            attrs: dict[str, Any] = {semconv.MESSAGE_TYPE: message_type, "db.operation.name": method}
            attrs[semconv.INPUT_VALUE] = json_attr(_inputs(names, args, kwargs, capture))
            attrs.update(context_attributes())
            attrs.pop(semconv.COVERED_BY, None)
            return _Access(self._tracer.start_span(f"store.{method}", attributes=attrs), method, capture)
        except Exception:
            return _Access(None, method, False)

    def sync_wrapper(self, method: str, message_type: str, names: tuple[str, ...]) -> Callable[..., Any]:
        def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            with self.access(method, message_type, names, args, kwargs) as access:
                return access.done(wrapped(*args, **kwargs))

        return wrapper

    def async_wrapper(self, method: str, message_type: str, names: tuple[str, ...]) -> Callable[..., Any]:
        async def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                          kwargs: dict[str, Any]) -> Any:
            with self.access(method, message_type, names, args, kwargs) as access:
                return access.done(await wrapped(*args, **kwargs))

        return wrapper


def targets() -> list[tuple[type, str, str, str, tuple[str, ...], bool]]:
    """(class, attribute, method, message type, parameter names, is_async) to wrap; empty without LangGraph."""
    try:
        from langgraph.store.base import BaseStore
    except ImportError:
        return []
    classes: list[type] = [BaseStore]
    try:
        from langgraph.store.base.batch import AsyncBatchedBaseStore

        classes.append(AsyncBatchedBaseStore)
    except ImportError:
        pass
    out = []
    for cls in classes:
        for method, message_type, names in _METHODS:
            for attribute, is_async in ((method, False), (f"a{method}", True)):
                if attribute in vars(cls):
                    if cls is not BaseStore and not is_async:
                        continue  # AsyncBatchedBaseStore's sync methods call its async ones
                    out.append((cls, attribute, method, message_type, names, is_async))
    return out
